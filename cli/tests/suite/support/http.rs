//! One HTTP request as the tests look at it (status and JSON body), and a gateway with
//! nothing behind it.

use std::net::SocketAddr;

use aerolith_common::json::Limits;
use aerolith_common::rpc::{DevCa, PeerRole};
use aerolith_common::topology::{ClusterConfig, DcConfig, NodeConfig};
use aerolith_gateway::{Gateway, GatewayOptions};
use serde_json::Value;

/// Sends one request; its status and JSON body (`null` when the body is not JSON).
pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A GET with `headers`.
pub async fn get_with(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    send(http, reqwest::Method::GET, url, None, headers).await
}

/// A gateway whose only storage node never answers (its address is a UDP socket that
/// drops every datagram).
pub async fn gateway_to_nowhere(blackhole: &std::net::UdpSocket) -> Gateway {
    let cluster = ClusterConfig {
        name: "t".into(),
        shards: 16,
        tls: None,
        dcs: vec![DcConfig {
            id: "dc1".into(),
            nodes: vec![NodeConfig {
                id: "n1".into(),
                rpc: blackhole.local_addr().unwrap().to_string(),
            }],
        }],
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    Gateway::start(GatewayOptions {
        cluster,
        dc: "dc1".into(),
        http_listen: loopback,
        grpc_listen: loopback,
        tls: DevCa::generate()
            .unwrap()
            .issue("gateway", PeerRole::Gateway)
            .unwrap(),
        limits: Limits::default(),
        ws_queue_frames: aerolith_gateway::ws::DEFAULT_QUEUE_FRAMES,
        ws_heartbeat: aerolith_gateway::ws::DEFAULT_HEARTBEAT,
        tokens: Default::default(),
        requests: Default::default(),
        public_tls: None,
        console_admin: None,
    })
    .await
    .unwrap()
}
