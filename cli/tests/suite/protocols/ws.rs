//! The WebSocket client of the parity suite (API.md "WebSocket").

use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Outcome, doc_from_json, event, page_from_json};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(http: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{http}/v1/ws"))
        .await
        .expect("WebSocket connects");
    socket
}

/// The next JSON text frame (pings are answered by tungstenite itself).
async fn frame(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("JSON frame"),
            Some(Ok(_)) => continue,
            other => panic!("WebSocket closed: {other:?}"),
        }
    }
}

fn error_code(f: &Value) -> String {
    f["error"]["code"]
        .as_str()
        .unwrap_or("<no code>")
        .to_string()
}

pub struct Ws {
    http: String,
    socket: Socket,
    next_req: u64,
    /// Sent as every request's `session` when set.
    pub session: Option<String>,
    /// Sent as writes' `idempotency_key` when set.
    pub idempotency_key: Option<String>,
}

impl Ws {
    pub async fn connect(http: &str) -> Ws {
        Ws {
            http: http.to_string(),
            socket: connect(http).await,
            next_req: 0,
            session: None,
            idempotency_key: None,
        }
    }

    /// Sends a request frame and waits for its answer.
    async fn request(&mut self, kind: &str, fields: Value) -> Result<Value, String> {
        self.next_req += 1;
        let req = format!("r{}", self.next_req);
        let mut f: Map<String, Value> = fields.as_object().cloned().unwrap_or_default();
        f.insert("type".into(), json!(kind));
        f.insert("req".into(), json!(req));
        if let Some(s) = &self.session
            && matches!(kind, "get" | "put" | "patch" | "delete" | "query")
        {
            f.insert("session".into(), json!(s));
        }
        if let Some(k) = &self.idempotency_key
            && matches!(kind, "put" | "patch" | "delete")
        {
            f.insert("idempotency_key".into(), json!(k));
        }
        self.socket
            .send(Message::Text(Value::Object(f).to_string().into()))
            .await
            .expect("frame sent");
        loop {
            let f = frame(&mut self.socket).await;
            if f["req"] != json!(req) {
                continue;
            }
            return match f["type"].as_str() {
                Some("result") => Ok(f),
                Some("error") => Err(error_code(&f)),
                _ => panic!("unexpected frame {f}"),
            };
        }
    }

    pub async fn create_collection(&mut self, name: &str, strategy: Option<&str>) -> Outcome {
        let mut f = json!({"collection": name});
        if let Some(s) = strategy {
            f["conflict_strategy"] = json!(s);
        }
        let r = self.request("create_collection", f).await?;
        let c = &r["collection"];
        Ok(json!({"name": c["name"], "conflict_strategy": c["conflict_strategy"]}))
    }

    pub async fn put(
        &mut self,
        coll: &str,
        id: Option<&str>,
        data: &str,
        m: Option<&str>,
        none_match: bool,
    ) -> Outcome {
        let data: Value = serde_json::from_str(data).expect("test data is JSON");
        let mut f = json!({"collection": coll, "data": data});
        if let Some(id) = id {
            f["id"] = json!(id);
        }
        if let Some(m) = m {
            f["if_match"] = json!(m);
        }
        if none_match {
            f["if_none_match"] = json!("*");
        }
        let r = self.request("put", f).await?;
        Ok(doc_from_json(&r["document"]))
    }

    pub async fn get(&mut self, coll: &str, id: &str) -> Outcome {
        let r = self
            .request("get", json!({"collection": coll, "id": id}))
            .await?;
        Ok(doc_from_json(&r["document"]))
    }

    pub async fn patch(&mut self, coll: &str, id: &str, patch: &str, m: Option<&str>) -> Outcome {
        let patch: Value = serde_json::from_str(patch).expect("test patch is JSON");
        let mut f = json!({"collection": coll, "id": id, "patch": patch});
        if let Some(m) = m {
            f["if_match"] = json!(m);
        }
        let r = self.request("patch", f).await?;
        Ok(doc_from_json(&r["document"]))
    }

    pub async fn delete(&mut self, coll: &str, id: &str, m: Option<&str>) -> Outcome {
        let mut f = json!({"collection": coll, "id": id});
        if let Some(m) = m {
            f["if_match"] = json!(m);
        }
        let r = self.request("delete", f).await?;
        assert_eq!(r["status"], 204);
        Ok(Value::Null)
    }

    pub async fn query(&mut self, coll: &str, q: &Value) -> Outcome {
        let mut f = q.clone();
        f["collection"] = json!(coll);
        let r = self.request("query", f).await?;
        Ok(page_from_json(&r["page"]))
    }

    pub async fn count(&mut self, coll: &str, filter: &Value) -> Outcome {
        let r = self
            .request("count", json!({"collection": coll, "filter": filter}))
            .await?;
        Ok(json!({"count": r["count"]}))
    }

    /// Subscribes on a connection of its own, so dropping the feed interrupts it.
    pub async fn watch(&mut self, coll: &str, since: Option<&str>) -> Result<WsFeed, String> {
        let mut socket = connect(&self.http).await;
        let mut f = json!({"type": "subscribe", "sub": "s1", "collection": coll});
        if let Some(s) = since {
            f["since"] = json!(s);
        }
        socket
            .send(Message::Text(f.to_string().into()))
            .await
            .expect("frame sent");
        let first = frame(&mut socket).await;
        match first["type"].as_str() {
            Some("subscribed") => Ok(WsFeed {
                socket,
                first: Some(json!({"op": "checkpoint", "token": first["token"]})),
            }),
            Some("error") => Err(error_code(&first)),
            _ => panic!("unexpected frame {first}"),
        }
    }
}

pub struct WsFeed {
    socket: Socket,
    first: Option<Value>,
}

impl WsFeed {
    pub async fn next(&mut self) -> Outcome {
        if let Some(f) = self.first.take() {
            return Ok(f);
        }
        let f = frame(&mut self.socket).await;
        match f["type"].as_str() {
            Some("change") => {
                let data =
                    (!f["data"].is_null()).then(|| serde_json::to_string(&f["data"]).unwrap());
                Ok(event(
                    f["op"].as_str().unwrap_or("?"),
                    f["id"].as_str().unwrap_or("?"),
                    f["version"].as_str().unwrap_or("?"),
                    data,
                    f["token"].as_str().unwrap_or("?"),
                ))
            }
            Some("checkpoint") => Ok(json!({"op": "checkpoint", "token": f["token"]})),
            Some("error") => Err(error_code(&f)),
            _ => panic!("unexpected frame {f}"),
        }
    }
}
