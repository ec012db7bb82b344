//! A WebSocket subscriber to one collection for the length of a class's run (the `reshard`
//! class: shards move under it): it keeps the `(id, version)` of every change delivered and
//! resumes from its last token after a disconnect, so the check can ask whether every
//! acknowledged write was delivered at least once (API.md "Change feeds and resume tokens").

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// Pause before reconnecting after the connection ended.
const RECONNECT: Duration = Duration::from_millis(200);

/// What a subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    /// `(id, version)` of every change delivered.
    changes: HashSet<(String, String)>,
    /// Times the connection was opened again.
    reconnects: u64,
}

/// A running subscriber.
pub struct Feed {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Feed {
    /// Subscribes to `collection` through the gateway at `gateway` (`http://host:port`),
    /// from now on.
    pub async fn subscribe(gateway: &str, collection: &str) -> anyhow::Result<Feed> {
        let url = format!("{}/v1/ws", gateway.replacen("http", "ws", 1));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        // The first subscription is made here, so changes from now on are covered.
        let (first, token) = open(&url, collection, None).await?;
        let task = tokio::spawn(follow(
            url,
            collection.to_string(),
            first,
            token,
            seen.clone(),
            stop.clone(),
        ));
        Ok(Feed { seen, stop, task })
    }

    /// Waits until every `(id, version)` of `expected` was delivered, or `within` passes;
    /// stops the subscriber and answers those never delivered and the reconnections made.
    pub async fn finish(
        self,
        expected: &[(String, String)],
        within: Duration,
    ) -> (Vec<(String, String)>, u64) {
        let deadline = Instant::now() + within;
        let missing = loop {
            let missing: Vec<(String, String)> = {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                expected
                    .iter()
                    .filter(|e| !seen.changes.contains(*e))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() || Instant::now() >= deadline {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
        let reconnects = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reconnects;
        (missing, reconnects)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a connection and subscribes, from `since` when given; the socket and the token
/// the subscription starts at.
async fn open(
    url: &str,
    collection: &str,
    since: Option<&str>,
) -> anyhow::Result<(Socket, String)> {
    let (mut ws, _) = connect_async(url).await?;
    let mut frame = json!({"type": "subscribe", "sub": "s", "collection": collection});
    if let Some(t) = since {
        frame["since"] = json!(t);
    }
    ws.send(Message::Text(frame.to_string().into())).await?;
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("subscribed") => {
                let token = v["token"].as_str().unwrap_or_default().to_string();
                return Ok((ws, token));
            }
            Some("error") => anyhow::bail!("subscribe refused: {v}"),
            _ => {}
        }
    }
    anyhow::bail!("the connection closed before the subscription was confirmed")
}

/// Reads changes until stopped, reconnecting from the last token whenever the connection
/// ends or the feed reports an error.
async fn follow(
    url: String,
    collection: String,
    mut ws: Socket,
    mut token: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            match v["type"].as_str() {
                Some("change") => {
                    if let (Some(id), Some(version)) = (v["id"].as_str(), v["version"].as_str()) {
                        seen.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .changes
                            .insert((id.to_string(), version.to_string()));
                    }
                    if let Some(t) = v["token"].as_str() {
                        token = t.to_string();
                    }
                }
                Some("checkpoint") => {
                    if let Some(t) = v["token"].as_str() {
                        token = t.to_string();
                    }
                }
                Some("error") => break,
                _ => {}
            }
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(RECONNECT).await;
            if let Ok((again, _)) = open(&url, &collection, Some(&token)).await {
                ws = again;
                seen.lock().unwrap_or_else(|p| p.into_inner()).reconnects += 1;
                break;
            }
        }
    }
}
