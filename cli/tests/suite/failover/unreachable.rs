//! A gateway whose storage node never answers: requests end in `deadline_exceeded` or
//! `unavailable` with API.md's error body, never hang, and the gateway stays healthy.

use std::net::UdpSocket;

use serde_json::Value;

use crate::support::http::{gateway_to_nowhere, get_with};

/// A GET through a fresh client.
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    get_with(&reqwest::Client::new(), url, headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_storage_node_gives_deadline_exceeded_then_unavailable() {
    // A bound UDP socket that never reads: QUIC handshakes to it go unanswered.
    let blackhole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let gateway = gateway_to_nowhere(&blackhole).await;
    let base = format!("http://{}", gateway.http_addr());

    let (status, body) = get(
        &format!("{base}/v1/collections/c/docs/x"),
        &[("x-aerolith-timeout-ms", "300")],
    )
    .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "deadline_exceeded");

    let (status, body) = get(&format!("{base}/v1/collections/c/docs/x"), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    let (status, body) = get(&format!("{base}/readyz"), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    let (status, _) = get(&format!("{base}/healthz"), &[]).await;
    assert_eq!(status, 200);
    gateway.shutdown().await;
    drop(blackhole);
}
