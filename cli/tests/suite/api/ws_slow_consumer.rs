//! A WebSocket subscriber that stops reading is disconnected as a slow consumer (an error
//! frame, then close code 1013) and resumes from the last token it saw without gaps.

use std::collections::HashSet;
use std::time::Duration;

use aerolith_cli::dev::DevOptions;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Documents written while the subscriber does not read; big enough bodies that the frames
/// overrun the socket buffers and the tiny queue.
const DOCS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_and_resumes_from_its_last_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start_with(DevOptions {
        nodes_per_dc: 1,
        ws_queue_frames: 4,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let ws_url = format!("{}/v1/ws", c.base.replace("http://", "ws://"));
    // A small receive buffer (which also turns off the kernel's buffer autotuning), so the
    // documents below cannot all fit in socket buffers and the client must fall behind.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let stream = socket.connect(c.http_addr.parse().unwrap()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(&ws_url, stream)
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"type": "subscribe", "sub": "s", "collection": "big"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let m = ws.next().await.unwrap().unwrap();
        if let Message::Text(t) = m {
            assert!(t.as_str().contains("subscribed"), "{t}");
            break;
        }
    }

    // Write without reading the socket.
    let pad = "x".repeat(64 * 1024);
    for chunk in 0..(DOCS / 50) {
        let ops: Vec<Value> = (0..50)
            .map(|i| json!({"op": "put", "id": format!("d{}", chunk * 50 + i), "data": {"pad": pad}}))
            .collect();
        let r = c
            .post_json("/v1/collections/big/bulk", &json!({ "ops": ops }))
            .await;
        assert_eq!(r.status, 200);
    }

    // The server gives a full queue a few seconds before it flags the client; reading
    // earlier would let it catch up. Wait until it has been flagged, then read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while slow_disconnects(&c).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never flagged the client as a slow consumer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Now read what was delivered: changes, then the slow-consumer error and the close.
    let mut seen = HashSet::new();
    let mut last_token = None;
    let mut got_error = false;
    let mut close_code = None;
    let read = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["type"].as_str() {
                        Some("change") => {
                            seen.insert(v["id"].as_str().unwrap().to_string());
                            last_token = v["token"].as_str().map(str::to_string);
                        }
                        Some("error") => {
                            assert_eq!(v["error"]["code"], "rate_limited", "{v}");
                            assert_eq!(v["error"]["message"], "slow consumer", "{v}");
                            got_error = true;
                        }
                        _ => {}
                    }
                }
                Ok(Message::Close(f)) => {
                    close_code = f.map(|f| f.code);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the connection ends");
    assert!(got_error, "no slow-consumer error");
    assert_eq!(close_code, Some(CloseCode::Again));
    assert!(
        seen.len() < DOCS,
        "everything arrived: the consumer was not slow"
    );

    // Resume from the last token seen: the union covers every document.
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    // Nothing seen before the cut: a token at every shard's oldest retained change.
    let since = last_token.unwrap_or_else(|| {
        aerolith_gateway::ops::Positions::oldest(aerolith_common::shard::DEFAULT_SHARDS)
            .encode("dc1")
    });
    let sub = json!({"type": "subscribe", "sub": "s", "collection": "big", "since": since});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    let resume = async {
        while seen.len() < DOCS {
            let Some(Ok(m)) = ws.next().await else { break };
            if let Ok(t) = m.to_text()
                && let Ok(v) = serde_json::from_str::<Value>(t)
                && v["type"] == "change"
            {
                seen.insert(v["id"].as_str().unwrap().to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), resume)
        .await
        .expect("the resumed subscription catches up");
    assert_eq!(seen.len(), DOCS);

    // The metrics saw it: one open subscription, events delivered, one slow consumer cut off.
    let metrics = String::from_utf8(c.get("/metrics").await.raw).unwrap();
    let value = |name: &str| metric(&metrics, name).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(value("aerolith_ws_subscriptions "), 1.0);
    assert!(value("aerolith_ws_events_delivered_total ") >= DOCS as f64);
    assert!(value("aerolith_ws_slow_consumer_disconnects_total ") >= 1.0);
    c.stop().await;
}

/// The value of an unlabelled metric in a Prometheus text page (`name` ends with a space).
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Slow consumers the gateway has flagged so far (0 before the counter first appears).
async fn slow_disconnects(c: &crate::support::TestCluster) -> f64 {
    let page = String::from_utf8(c.get("/metrics").await.raw).unwrap_or_default();
    metric(&page, "aerolith_ws_slow_consumer_disconnects_total ").unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_pings_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start_with(DevOptions {
        nodes_per_dc: 1,
        ws_heartbeat: Duration::from_millis(300),
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let ws_url = format!("{}/v1/ws", c.base.replace("http://", "ws://"));
    // tokio-tungstenite answers pings only while it is read; this client never reads until
    // the server has given up on it.
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "subscribe", "sub": "s", "collection": "hb"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    // Silent for three intervals (0.9 s), the client is dropped; allow generous slack, and
    // read everything the server sent: pings, `subscribed`, checkpoints, then the close.
    let ended = async {
        let mut close = None;
        let mut pings = 0;
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Ping(_)) => pings += 1,
                Ok(Message::Close(f)) => {
                    close = f.map(|f| f.code);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (close, pings)
    };
    // Stay silent first: a fixed wait is the point of this test (the client must be silent).
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Without heartbeat detection the connection would stay open and this would time out.
    let (close, pings) = tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .expect("the server closes a silent client");
    assert!(pings >= 1, "the server never pinged");
    // The close frame (1001) may be lost when the server's socket closes with the client's
    // unread data in flight; what matters is that the connection ended.
    assert!(
        close.is_none_or(|code| code == CloseCode::Away),
        "{close:?}"
    );
    c.stop().await;
}
