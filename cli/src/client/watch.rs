//! `aerolith watch COLLECTION`: follows the change feed over the WebSocket API, one change
//! a line; on exit (Ctrl-C or `--count`) says how to resume.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Failure;
use super::api::Api;
use super::output::{Output, Printer, cell};

/// Follows `collection`'s changes until `count` changes, Ctrl-C, or an error.
pub async fn run(
    api: &Api,
    out: &Printer,
    collection: &str,
    since: Option<String>,
    filter: Option<Value>,
    count: Option<u64>,
) -> Result<(), Failure> {
    if api.endpoint().starts_with("https://") {
        return Err(Failure::usage(
            "watch speaks ws:// only for now: point --endpoint at a plain http:// gateway port",
        ));
    }
    let url = format!("{}/v1/ws", api.endpoint().replacen("http://", "ws://", 1));
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure::usage(format!("{url}: {e}")))?;
    if let Some(t) = api.token() {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| Failure::usage("the token is not a valid header value"))?;
        req.headers_mut().insert("authorization", value);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                let body: Value = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                match (
                    body["error"]["code"].as_str(),
                    body["error"]["message"].as_str(),
                ) {
                    (Some(c), Some(m)) => Failure::from_error(c, m),
                    _ => Failure::other(format!("{url} refused: {}", resp.status())),
                }
            }
            other => Failure::other(format!("cannot reach {url}: {other}")),
        })?;
    let mut subscribe = json!({"type": "subscribe", "sub": "w", "collection": collection});
    if let Some(s) = &since {
        subscribe["since"] = json!(s);
    }
    if let Some(f) = filter {
        subscribe["filter"] = f;
    }
    ws.send(Message::text(subscribe.to_string()))
        .await
        .map_err(|e| Failure::other(format!("subscribing: {e}")))?;
    let format = out.format(Output::Json);
    // Changes stream in, so a table's columns are tab-separated rather than aligned.
    if format == Output::Table {
        super::output::emit("OP\tID\tVERSION\tTOKEN");
    }
    let mut last_token = since;
    let mut seen = 0u64;
    // `--count` is checked only once the server confirmed the subscription, so
    // `--count 0` reports the feed's current position.
    let mut subscribed = false;
    let interrupted = aerolith_common::signal::shutdown_signal();
    tokio::pin!(interrupted);
    let ended = loop {
        if subscribed && count.is_some_and(|c| seen >= c) {
            break Ok(());
        }
        let msg = tokio::select! {
            m = ws.next() => m,
            () = &mut interrupted => break Ok(()),
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => {
                break Err(Failure::other("the server closed the feed"));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => break Err(Failure::other(format!("the feed broke: {e}"))),
        };
        let Ok(mut frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if let Some(t) = frame["token"].as_str() {
            last_token = Some(t.to_string());
        }
        match frame["type"].as_str() {
            Some("change") => {
                seen += 1;
                if let Some(obj) = frame.as_object_mut() {
                    obj.remove("type");
                    obj.remove("sub");
                }
                match format {
                    Output::Json => out.line(&frame),
                    Output::Table => super::output::emit(&format!(
                        "{}\t{}\t{}\t{}",
                        cell(&frame["op"]),
                        cell(&frame["id"]),
                        cell(&frame["version"]),
                        cell(&frame["token"])
                    )),
                }
            }
            Some("subscribed") => subscribed = true,
            Some("error") => {
                let e = &frame["error"];
                break Err(Failure::from_error(
                    e["code"].as_str().unwrap_or("internal"),
                    e["message"].as_str().unwrap_or("the feed failed"),
                ));
            }
            _ => {}
        }
    };
    let _ = ws.close(None).await;
    if let Some(t) = last_token {
        eprintln!("resume with: aerolith watch {collection} --since {t}");
    }
    ended
}
