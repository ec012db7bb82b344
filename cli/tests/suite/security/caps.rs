//! Caps per token over the wire (README "Limits"): open connections (HTTP and gRPC ports),
//! WebSocket connections, and live subscriptions (WebSocket, GraphQL and gRPC `Watch`
//! together). Over a cap a client gets `rate_limited` in its protocol's shape, naming the
//! cap; a closed connection or subscription gives its place back; other tokens never notice.

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tonic::Code;

use super::wire::{
    Open, Raw, Socket, eventually, frame, frame_of, grpc_client, websocket, with_token,
};
use crate::support::{TestCluster, start_with_tokens};
use aerolith_gateway::admission::RequestLimits;
use aerolith_gateway::caps::CapLimits;
use aerolith_proto::v1 as api;

/// The token whose caps each test fills.
const FULL: &str = "caps-suite-token-that-fills-its-caps";
/// A token beside it, whose places are its own.
const OTHER: &str = "caps-suite-token-that-stays-clear";

async fn cluster(dir: &std::path::Path, caps: CapLimits) -> TestCluster {
    let requests = RequestLimits {
        caps,
        ..RequestLimits::default()
    };
    start_with_tokens(dir, &format!("read:{FULL},read:{OTHER}"), requests).await
}

/// Asserts a `rate_limited` message names the cap's flag.
fn names_cap(message: &str, flag: &str) {
    assert!(message.contains(flag), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_are_capped_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let caps = CapLimits {
        connections: 2,
        ..CapLimits::default()
    };
    let mut c = cluster(dir.path(), caps).await;
    let addr = c.http_addr.clone();
    let list = "/v1/collections";

    // Two kept-alive connections of one token, each carrying several requests: two places.
    let mut first = Raw::connect(&addr, None).await;
    let mut second = Raw::connect(&addr, None).await;
    for _ in 0..3 {
        assert_eq!(first.get(list, FULL).await.status, 200);
        assert_eq!(second.get(list, FULL).await.status, 200);
    }

    // A third connection is refused on its first request, and closed.
    let mut third = Raw::connect(&addr, None).await;
    let refused = third.get(list, FULL).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    names_cap(
        refused.body["error"]["message"].as_str().unwrap_or(""),
        "--max-connections-per-token",
    );
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(third.closed_by_server().await, "an HTTP/1 refusal closes");

    // The gRPC port's connections count with the HTTP port's.
    let mut grpc = grpc_client(&c.grpc_addr, None).await;
    let status = grpc
        .list_collections(with_token(
            api::ListCollectionsRequest::default(),
            Some(FULL),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().starts_with("rate_limited: "), "{status:?}");
    names_cap(status.message(), "--max-connections-per-token");

    // Another token has places of its own.
    let mut other = Raw::connect(&addr, None).await;
    assert_eq!(other.get(list, OTHER).await.status, 200);
    let answered = grpc
        .list_collections(with_token(
            api::ListCollectionsRequest::default(),
            Some(OTHER),
        ))
        .await;
    assert!(answered.is_ok(), "{answered:?}");

    // Closing a connection gives its place back.
    drop(first);
    let mut again = eventually("a closed connection's place is given back", || {
        let addr = addr.clone();
        async move {
            let mut raw = Raw::connect(&addr, None).await;
            (raw.get(list, FULL).await.status == 200).then_some(raw)
        }
    })
    .await;
    assert_eq!(again.get(list, FULL).await.status, 200);

    // HTTP/2: one connection carries many calls at once, and holds one place per token it
    // carries (this one already carries the other token's calls).
    drop(again);
    let statuses = eventually("the gRPC connection gets the freed place", || {
        let grpc = grpc.clone();
        async move {
            let calls = (0..8).map(|_| {
                let mut grpc = grpc.clone();
                let req = with_token(api::ListCollectionsRequest::default(), Some(FULL));
                async move { grpc.list_collections(req).await.is_ok() }
            });
            let answers = futures::future::join_all(calls).await;
            answers.iter().all(|ok| *ok).then_some(answers)
        }
    })
    .await;
    assert_eq!(statuses.len(), 8);
    let mut fourth = Raw::connect(&addr, None).await;
    assert_eq!(fourth.get(list, FULL).await.status, 429, "still two places");
    drop(second);
    c.stop().await;
}

/// Opens a WebSocket (`/v1/ws` or `/graphql/ws`) with `token` in its query.
async fn open_socket(c: &TestCluster, path: &str, token: &str) -> Result<Socket, u16> {
    let protocol = (path == "/graphql/ws").then_some("graphql-transport-ws");
    let open = Open {
        query: Some(token),
        protocol,
        ..Open::default()
    };
    websocket(&c.http_addr, path, open).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_are_capped_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let caps = CapLimits {
        connections: 2,
        websockets: 3,
        ..CapLimits::default()
    };
    let mut c = cluster(dir.path(), caps).await;

    // WebSocket API and GraphQL sockets: the token's three places. Three sockets with a cap
    // of two connections: an upgraded connection counts as a WebSocket, not as an HTTP
    // connection (its connection place goes once the server has handed it over, which the
    // client does not see: retried until then).
    let mut api_socket = open_socket(&c, "/v1/ws", FULL).await.expect("first");
    let _graphql = open_socket(&c, "/graphql/ws", FULL).await.expect("second");
    let _third = eventually(
        "upgraded connections let their connection places go",
        || async { open_socket(&c, "/v1/ws", FULL).await.ok() },
    )
    .await;

    // A fourth, on either path, is refused with 429 naming the cap.
    for path in ["/v1/ws", "/graphql/ws"] {
        assert_eq!(open_socket(&c, path, FULL).await.err(), Some(429), "{path}");
    }
    let mut raw = Raw::connect(&c.http_addr, None).await;
    let upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let refused = raw.request("GET", "/v1/ws", Some(FULL), &upgrade).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    names_cap(
        refused.body["error"]["message"].as_str().unwrap_or(""),
        "--max-websockets-per-token",
    );

    // Another token is not affected.
    let _other = open_socket(&c, "/v1/ws", OTHER).await.expect("other token");

    // The sockets still work, and closing one gives its place back.
    let ping = json!({"type": "ping"}).to_string();
    api_socket.send(Message::text(ping)).await.unwrap();
    assert_eq!(frame(&mut api_socket).await["type"], "pong");
    api_socket.close(None).await.unwrap();
    drop(api_socket);
    let _again = eventually("a closed socket's place is given back", || async {
        open_socket(&c, "/v1/ws", FULL).await.ok()
    })
    .await;
    c.stop().await;
}

/// Subscribes socket `ws` (the WebSocket API) to `collection` as `sub`: the answer frame.
async fn ws_subscribe(ws: &mut Socket, sub: &str) -> serde_json::Value {
    let f = json!({"type": "subscribe", "sub": sub, "collection": "caps"});
    ws.send(Message::text(f.to_string())).await.unwrap();
    loop {
        let f = frame(ws).await;
        if f["sub"] == sub && f["type"] != "checkpoint" {
            return f;
        }
    }
}

/// Subscribes GraphQL socket `gws` to the change feed as operation `id`: the first frame.
async fn graphql_subscribe(gws: &mut Socket, id: &str) -> serde_json::Value {
    let query = r#"subscription { changes(collection: "caps") { op token } }"#;
    let f = json!({"type": "subscribe", "id": id, "payload": {"query": query}});
    gws.send(Message::text(f.to_string())).await.unwrap();
    frame_of(gws, id).await
}

/// Subscribes `ws` under fresh ids (`s{n}`) until one is placed: a place is given back
/// asynchronously, so this retries until a deadline.
async fn subscribe_when_placed(ws: &mut Socket, n: &mut u32, what: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        *n += 1;
        if ws_subscribe(ws, &format!("s{n}")).await["type"] == "subscribed" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn watch(token: &str) -> tonic::Request<api::WatchRequest> {
    let req = api::WatchRequest {
        collection: "caps".into(),
        ..Default::default()
    };
    with_token(req, Some(token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_per_token_across_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let caps = CapLimits {
        subscriptions: 3,
        ..CapLimits::default()
    };
    let mut c = cluster(dir.path(), caps).await;

    // One subscription on each protocol: the token's three places.
    let mut ws = open_socket(&c, "/v1/ws", FULL).await.expect("socket");
    let f = ws_subscribe(&mut ws, "s1").await;
    assert_eq!(f["type"], "subscribed", "{f}");
    let mut grpc = grpc_client(&c.grpc_addr, None).await;
    let mut feed = grpc.watch(watch(FULL)).await.expect("watch").into_inner();
    assert!(
        feed.message().await.unwrap().is_some(),
        "a first checkpoint"
    );
    let mut gws = open_socket(&c, "/graphql/ws", FULL).await.expect("socket");
    gws.send(Message::text(
        json!({"type": "connection_init"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(frame(&mut gws).await["type"], "connection_ack");
    let f = graphql_subscribe(&mut gws, "g1").await;
    assert_eq!(f["type"], "next", "{f}");

    // A fourth is refused on every protocol, naming the cap.
    let f = ws_subscribe(&mut ws, "s2").await;
    assert_eq!(f["type"], "error", "{f}");
    assert_eq!(f["error"]["code"], "rate_limited", "{f}");
    names_cap(
        f["error"]["message"].as_str().unwrap_or(""),
        "--max-subscriptions-per-token",
    );
    let status = grpc.watch(watch(FULL)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    names_cap(status.message(), "--max-subscriptions-per-token");
    let f = graphql_subscribe(&mut gws, "g2").await;
    assert_eq!(
        f["payload"]["errors"][0]["extensions"]["code"], "rate_limited",
        "{f}"
    );

    // Another token subscribes freely.
    let mut other = open_socket(&c, "/v1/ws", OTHER).await.expect("socket");
    assert_eq!(ws_subscribe(&mut other, "o1").await["type"], "subscribed");

    // Ending any subscription gives its place back: a gRPC Watch the client drops, a
    // WebSocket unsubscribe, a GraphQL `complete`.
    drop(feed);
    let mut n = 2;
    subscribe_when_placed(&mut ws, &mut n, "a dropped Watch's place is given back").await;
    let unsubscribe = json!({"type": "unsubscribe", "sub": "s1"});
    ws.send(Message::text(unsubscribe.to_string()))
        .await
        .unwrap();
    subscribe_when_placed(&mut ws, &mut n, "an unsubscribed place is given back").await;
    let complete = json!({"type": "complete", "id": "g1"});
    gws.send(Message::text(complete.to_string())).await.unwrap();
    let what = "a completed GraphQL subscription's place is given back";
    subscribe_when_placed(&mut ws, &mut n, what).await;
    c.stop().await;
}
