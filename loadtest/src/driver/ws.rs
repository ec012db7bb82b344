//! The WebSocket driver: `get`/`put`/`query` frames on one connection, one request at a time
//! (each answer is matched by its `req` id).

use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::{Connector, Driver, OpError, OpResult, scan_filter};

/// Makes WebSocket drivers for one gateway.
pub struct WsConnector {
    /// Base URL of the gateway (`http://host:port`).
    pub target: String,
    /// The collection holding the records.
    pub collection: String,
}

impl Connector for WsConnector {
    fn prepare(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let ws = self.open().await?;
            let frame = serde_json::json!({
                "type": "create_collection", "req": "0", "collection": self.collection,
            });
            ws.call("0", frame.to_string())
                .await
                .map_err(|e| anyhow::anyhow!("creating collection: {}: {}", e.code, e.message))
        })
    }

    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move { Ok(Box::new(self.open().await?) as Box<dyn Driver>) })
    }
}

impl WsConnector {
    async fn open(&self) -> anyhow::Result<Ws> {
        let url = format!("{}/v1/ws", self.target.replacen("http", "ws", 1));
        let (stream, _) = connect_async(url.as_str()).await?;
        Ok(Ws {
            stream: Mutex::new(stream),
            collection: serde_json::to_string(&self.collection)?,
            next: AtomicU64::new(1),
        })
    }
}

/// One WebSocket connection.
struct Ws {
    stream: Mutex<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    /// The collection name as a JSON string.
    collection: String,
    next: AtomicU64,
}

impl Ws {
    fn req(&self) -> String {
        self.next.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Sends one request frame and waits for the `result` or `error` frame answering it
    /// (an error frame without a `req` answers it too: requests go one at a time). An
    /// answer that never comes is a `timeout`, so a lost frame cannot stall a worker.
    async fn call(&self, req: &str, frame: String) -> OpResult {
        let mut ws = self.stream.lock().await;
        tokio::time::timeout(super::REQUEST_TIMEOUT, Self::exchange(&mut ws, req, frame))
            .await
            .unwrap_or_else(|_| Err(OpError::new("timeout", "no answer on the WebSocket")))
    }

    async fn exchange(
        ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
        req: &str,
        frame: String,
    ) -> OpResult {
        ws.send(Message::text(frame))
            .await
            .map_err(OpError::transport)?;
        loop {
            let text = match ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => {
                    return Err(OpError::transport(format!("closed: {c:?}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(OpError::transport(e)),
                None => return Err(OpError::transport("connection ended")),
            };
            let v: Value = serde_json::from_str(text.as_str()).map_err(OpError::transport)?;
            let kind = v.get("type").and_then(Value::as_str);
            match v.get("req").and_then(Value::as_str) {
                Some(r) if r == req => {}
                None if kind == Some("error") => {}
                _ => continue,
            }
            return match kind {
                Some("result") => Ok(()),
                _ => Err(OpError::new(
                    v.pointer("/error/code")
                        .and_then(Value::as_str)
                        .unwrap_or("bad_answer"),
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )),
            };
        }
    }
}

impl Driver for Ws {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let req = self.req();
            let frame = format!(
                r#"{{"type":"get","req":"{req}","collection":{},"id":"{key}"}}"#,
                self.collection
            );
            self.call(&req, frame).await
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let req = self.req();
            let frame = format!(
                r#"{{"type":"put","req":"{req}","collection":{},"id":"{key}","data":{record}}}"#,
                self.collection
            );
            self.call(&req, frame).await
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let req = self.req();
            let frame = format!(
                r#"{{"type":"query","req":"{req}","collection":{},"filter":{},"limit":{count}}}"#,
                self.collection,
                scan_filter(start)
            );
            self.call(&req, frame).await
        })
    }
}
