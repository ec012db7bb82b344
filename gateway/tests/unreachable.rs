//! A gateway whose storage node never answers: requests end in `deadline_exceeded` or
//! `unavailable` with API.md's error body, never hang, and the gateway stays healthy.

use std::net::{SocketAddr, UdpSocket};

use aerolith_common::json::Limits;
use aerolith_common::rpc::DevCa;
use aerolith_common::topology::{ClusterConfig, DcConfig, NodeConfig};
use aerolith_gateway::{Gateway, GatewayOptions};
use serde_json::Value;

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_storage_node_gives_deadline_exceeded_then_unavailable() {
    // A bound UDP socket that never reads: QUIC handshakes to it go unanswered.
    let blackhole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cluster = ClusterConfig {
        name: "t".into(),
        shards: 4,
        tls: None,
        dcs: vec![DcConfig {
            id: "dc1".into(),
            nodes: vec![NodeConfig {
                id: "n1".into(),
                rpc: blackhole.local_addr().unwrap().to_string(),
            }],
        }],
    };
    let gateway = Gateway::start(GatewayOptions {
        cluster,
        dc: "dc1".into(),
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        grpc_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: DevCa::generate().unwrap().issue("gateway").unwrap(),
        limits: Limits::default(),
        ws_queue_frames: aerolith_gateway::ws::DEFAULT_QUEUE_FRAMES,
        ws_heartbeat: aerolith_gateway::ws::DEFAULT_HEARTBEAT,
        tokens: Default::default(),
        requests: Default::default(),
        public_tls: None,
    })
    .await
    .unwrap();
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
