//! The GraphQL client of the parity suite: queries and mutations over `POST /graphql`,
//! subscriptions over `graphql-transport-ws` at `/graphql/ws`.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Outcome, doc, event, with_plan};

const DOC_FIELDS: &str = "collection id version updatedAt origin data";

/// A `Document` selection reduced.
pub fn doc_from_graphql(d: &Value) -> Value {
    doc(
        d["collection"].as_str().unwrap_or("?"),
        d["id"].as_str().unwrap_or("?"),
        d["version"].as_str().unwrap_or("?"),
        d["updatedAt"].as_str().unwrap_or("?"),
        d["origin"].as_str().unwrap_or("?"),
        serde_json::to_string(&d["data"]).unwrap(),
    )
}

/// The code of a GraphQL response's first error.
pub fn first_error(resp: &Value) -> Option<String> {
    let e = resp["errors"].as_array()?.first()?;
    Some(
        e["extensions"]["code"]
            .as_str()
            .unwrap_or("<no code>")
            .to_string(),
    )
}

pub struct Graphql {
    http_addr: String,
    url: String,
    http: reqwest::Client,
    /// Sent as `X-Aerolith-Timeout-Ms` when set.
    pub deadline_ms: Option<u64>,
    /// Sent as the `X-Aerolith-Session` header when set.
    pub session: Option<String>,
    /// Passed as the mutations' `idempotencyKey` argument when set.
    pub idempotency_key: Option<String>,
}

impl Graphql {
    pub fn new(http: &str) -> Graphql {
        Graphql {
            http_addr: http.to_string(),
            url: format!("http://{http}/graphql"),
            http: reqwest::Client::new(),
            deadline_ms: None,
            session: None,
            idempotency_key: None,
        }
    }

    /// Runs a request; the named field of `data`, or the first error's code.
    pub async fn run(&self, query: &str, variables: Value, field: &str) -> Outcome {
        let mut req = self.http.post(&self.url);
        if let Some(ms) = self.deadline_ms {
            req = req.header("x-aerolith-timeout-ms", ms.to_string());
        }
        if let Some(s) = &self.session {
            req = req.header("x-aerolith-session", s);
        }
        let resp = req
            .header("content-type", "application/json")
            .body(json!({"query": query, "variables": variables}).to_string())
            .send()
            .await
            .expect("GraphQL request sent");
        assert_eq!(resp.status(), 200);
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).expect("JSON");
        match first_error(&body) {
            Some(code) => Err(code),
            None => Ok(body["data"][field].clone()),
        }
    }

    pub async fn create_collection(&mut self, name: &str, strategy: Option<&str>) -> Outcome {
        let q = "mutation($n: String!, $s: ConflictStrategy) { createCollection(name: $n, conflictStrategy: $s) { name conflictStrategy } }";
        let mut vars = json!({"n": name});
        if let Some(s) = strategy {
            vars["s"] = json!(s.to_uppercase());
        }
        let c = self.run(q, vars, "createCollection").await?;
        let strategy = c["conflictStrategy"].as_str().unwrap_or("?").to_lowercase();
        Ok(json!({"name": c["name"], "conflict_strategy": strategy}))
    }

    pub async fn put(
        &mut self,
        coll: &str,
        id: Option<&str>,
        data: &str,
        m: Option<&str>,
        none_match: bool,
    ) -> Outcome {
        let q = format!(
            "mutation($c: String!, $id: ID, $d: JSON!, $m: String, $n: Boolean, $k: String) {{ putDocument(collection: $c, id: $id, data: $d, ifMatch: $m, ifNoneMatch: $n, idempotencyKey: $k) {{ {DOC_FIELDS} }} }}"
        );
        let data: Value = serde_json::from_str(data).expect("test data is JSON");
        let vars = json!({"c": coll, "id": id, "d": data, "m": m, "n": none_match, "k": self.idempotency_key});
        Ok(doc_from_graphql(&self.run(&q, vars, "putDocument").await?))
    }

    pub async fn get(&mut self, coll: &str, id: &str) -> Outcome {
        let q = format!(
            "query($c: String!, $id: ID!) {{ document(collection: $c, id: $id) {{ {DOC_FIELDS} }} }}"
        );
        let d = self
            .run(&q, json!({"c": coll, "id": id}), "document")
            .await?;
        Ok(doc_from_graphql(&d))
    }

    pub async fn patch(&mut self, coll: &str, id: &str, patch: &str, m: Option<&str>) -> Outcome {
        let q = format!(
            "mutation($c: String!, $id: ID!, $p: JSON!, $m: String, $k: String) {{ patchDocument(collection: $c, id: $id, patch: $p, ifMatch: $m, idempotencyKey: $k) {{ {DOC_FIELDS} }} }}"
        );
        let patch: Value = serde_json::from_str(patch).expect("test patch is JSON");
        let vars = json!({"c": coll, "id": id, "p": patch, "m": m, "k": self.idempotency_key});
        Ok(doc_from_graphql(
            &self.run(&q, vars, "patchDocument").await?,
        ))
    }

    pub async fn delete(&mut self, coll: &str, id: &str, m: Option<&str>) -> Outcome {
        let q = "mutation($c: String!, $id: ID!, $m: String, $k: String) { deleteDocument(collection: $c, id: $id, ifMatch: $m, idempotencyKey: $k) }";
        let vars = json!({"c": coll, "id": id, "m": m, "k": self.idempotency_key});
        let done = self.run(q, vars, "deleteDocument").await?;
        assert_eq!(done, json!(true));
        Ok(Value::Null)
    }

    pub async fn query(&mut self, coll: &str, body: &Value) -> Outcome {
        let q = format!(
            "query($c: String!, $f: JSON, $s: [SortInput!], $l: Int, $cur: String, $p: [String!], $e: Boolean) {{ documents(collection: $c, filter: $f, sort: $s, limit: $l, cursor: $cur, projection: $p, explain: $e) {{ documents {{ {DOC_FIELDS} }} nextCursor plan {{ node index examined }} }} }}"
        );
        let mut vars = json!({"c": coll, "f": body["filter"], "s": body["sort"],
            "cur": body["cursor"], "p": body["projection"], "e": body["explain"]});
        if !body["limit"].is_null() {
            vars["l"] = body["limit"].clone();
        }
        let page = self.run(&q, vars, "documents").await?;
        let docs: Vec<Value> = page["documents"]
            .as_array()
            .map(|d| d.iter().map(doc_from_graphql).collect())
            .unwrap_or_default();
        Ok(with_plan(
            json!({"documents": docs, "next_cursor": page["nextCursor"]}),
            &page["plan"],
        ))
    }

    pub async fn count(&mut self, coll: &str, filter: &Value) -> Outcome {
        let q = "query($c: String!, $f: JSON) { count(collection: $c, filter: $f) }";
        let n = self
            .run(q, json!({"c": coll, "f": filter}), "count")
            .await?;
        Ok(json!({ "count": n }))
    }

    pub async fn watch(&mut self, coll: &str, since: Option<&str>) -> Result<GraphqlFeed, String> {
        let mut feed = GraphqlFeed::connect(&self.http_addr).await;
        feed.subscribe(
            "subscription($c: String!, $s: String) { changes(collection: $c, since: $s) { op collection id version updatedAt origin data token } }",
            json!({"c": coll, "s": since}),
        )
        .await;
        // An error that ends the feed at once is the subscription's answer.
        let first = feed.next().await?;
        feed.pending = Some(first);
        Ok(feed)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `graphql-transport-ws` connection with one subscription.
pub struct GraphqlFeed {
    socket: Socket,
    pending: Option<Value>,
}

impl GraphqlFeed {
    /// Connects and completes the `connection_init` / `connection_ack` handshake.
    pub async fn connect(http: &str) -> GraphqlFeed {
        let mut req = format!("ws://{http}/graphql/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("GraphQL WebSocket connects");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("graphql-transport-ws")
        );
        socket
            .send(Message::Text(
                json!({"type": "connection_init"}).to_string().into(),
            ))
            .await
            .unwrap();
        let mut feed = GraphqlFeed {
            socket,
            pending: None,
        };
        let ack = feed.message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        feed
    }

    /// Starts subscription `1`.
    pub async fn subscribe(&mut self, query: &str, variables: Value) {
        let msg = json!({"id": "1", "type": "subscribe",
            "payload": {"query": query, "variables": variables}});
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
    }

    /// The next protocol message (pings answered); a silent server fails the test.
    pub async fn message(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(20), self.socket.next());
            match next.await.expect("a GraphQL WebSocket message within 20 s") {
                Some(Ok(Message::Text(t))) => {
                    let m: Value = serde_json::from_str(&t).expect("JSON message");
                    if m["type"] == "ping" {
                        let pong = json!({"type": "pong"}).to_string();
                        self.socket.send(Message::Text(pong.into())).await.unwrap();
                        continue;
                    }
                    return m;
                }
                Some(Ok(_)) => continue,
                other => panic!("GraphQL WebSocket closed: {other:?}"),
            }
        }
    }

    /// The next `changes` event, or the code of the error that ended the subscription.
    pub async fn next(&mut self) -> Outcome {
        if let Some(v) = self.pending.take() {
            return Ok(v);
        }
        let m = self.message().await;
        match m["type"].as_str() {
            Some("next") => {
                if let Some(code) = first_error(&m["payload"]) {
                    return Err(code);
                }
                let c = &m["payload"]["data"]["changes"];
                if c["op"] == "checkpoint" {
                    return Ok(json!({"op": "checkpoint", "token": c["token"]}));
                }
                let data =
                    (!c["data"].is_null()).then(|| serde_json::to_string(&c["data"]).unwrap());
                Ok(event(
                    c["op"].as_str().unwrap_or("?"),
                    c["id"].as_str().unwrap_or("?"),
                    c["version"].as_str().unwrap_or("?"),
                    data,
                    c["token"].as_str().unwrap_or("?"),
                ))
            }
            Some("error") => {
                let code = m["payload"][0]["extensions"]["code"]
                    .as_str()
                    .unwrap_or("<no code>");
                Err(code.to_string())
            }
            _ => panic!("unexpected message {m}"),
        }
    }
}
