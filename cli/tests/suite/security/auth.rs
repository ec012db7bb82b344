//! Authentication over the wire (API.md "Authentication"): a cluster with read, write and
//! admin tokens, checked identically on REST, GraphQL (HTTP and WebSocket), the WebSocket
//! API, gRPC (Watch and reflection included) and the replicator admin API.

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tonic::Code;
use tonic::transport::Channel;

use super::wire::{self, Open, Socket, bearer, frame, grpc_client, with_token};

use crate::support::{TestCluster, start_with, start_with_tokens};
use aerolith_cli::dev::DevOptions;
use aerolith_common::auth::Tokens;
use aerolith_proto::v1 as api;

const READ: &str = "read-token-for-the-auth-suite";
const WRITE: &str = "write-token-for-the-auth-suite";
const ADMIN: &str = "admin-token-for-the-auth-suite";

async fn cluster(dir: &std::path::Path) -> TestCluster {
    let tokens = format!("read:{READ},write:{WRITE},admin:{ADMIN}");
    start_with_tokens(dir, &tokens, Default::default()).await
}

/// A REST call with an optional token: its status and JSON body.
async fn rest(
    c: &TestCluster,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = c.http.request(method, format!("{}{path}", c.base));
    if let Some(t) = token {
        req = req.header("authorization", bearer(t));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_the_admin_api_need_each_routes_role() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path()).await;

    // Open endpoints.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(rest(&c, M::GET, path, None, None).await.0, 200, "{path}");
    }

    // No token, a malformed one and an unknown one: 401 with the scheme to use.
    let (s, b, h) = rest(&c, M::GET, "/v1/collections", None, None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    assert_eq!(h["www-authenticate"], "Bearer");
    let unknown = rest(
        &c,
        M::GET,
        "/v1/collections",
        Some("not-a-known-token-at-all"),
        None,
    );
    assert_eq!(unknown.await.0, 401);
    let basic = c
        .http
        .get(format!("{}/v1/collections", c.base))
        .header("authorization", format!("Basic {READ}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    // Unknown routes and methods need a token too, then answer 404 and 405.
    assert_eq!(rest(&c, M::GET, "/v1/nope", None, None).await.0, 401);
    assert_eq!(rest(&c, M::GET, "/v1/nope", Some(READ), None).await.0, 404);
    assert_eq!(
        rest(&c, M::PATCH, "/v1/collections", None, None).await.0,
        401
    );
    let wrong = rest(&c, M::PATCH, "/v1/collections", Some(READ), None);
    assert_eq!(wrong.await.0, 405);
    assert_eq!(rest(&c, M::GET, "/openapi.json", None, None).await.0, 200);
    // An open path's other methods are 405 without a token (issue 29: schemathesis).
    let (s, b, _) = rest(&c, M::POST, "/healthz", None, None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (405, Some("invalid_argument"))
    );

    // write: writes; read: reads only; admin: deletes collections.
    let doc = "/v1/collections/people/docs/ada";
    let (s, b, _) = rest(&c, M::PUT, doc, Some(READ), Some(json!({"n": 1}))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    assert_eq!(
        rest(&c, M::PUT, doc, Some(WRITE), Some(json!({"n": 1})))
            .await
            .0,
        201
    );
    assert_eq!(rest(&c, M::GET, doc, Some(READ), None).await.0, 200);
    let query = json!({"filter": {"n": 1}});
    let q = rest(
        &c,
        M::POST,
        "/v1/collections/people/query",
        Some(READ),
        Some(query),
    )
    .await;
    assert_eq!(q.0, 200, "a query is a read: {}", q.1);
    let changes = rest(
        &c,
        M::GET,
        "/v1/collections/people/changes",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(changes.0, 200);
    assert_eq!(
        rest(&c, M::GET, "/v1/cluster", Some(READ), None).await.0,
        200
    );
    let bulk = json!({"ops": [{"op": "put", "id": "b", "data": {}}]});
    let denied = rest(
        &c,
        M::POST,
        "/v1/collections/people/bulk",
        Some(READ),
        Some(bulk.clone()),
    );
    assert_eq!(denied.await.0, 403);
    assert_eq!(
        rest(
            &c,
            M::POST,
            "/v1/collections/people/bulk",
            Some(WRITE),
            Some(bulk)
        )
        .await
        .0,
        200
    );
    assert_eq!(rest(&c, M::DELETE, doc, Some(READ), None).await.0, 403);
    let (s, b, _) = rest(&c, M::DELETE, "/v1/collections/people", Some(WRITE), None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("permission_denied"))
    );
    assert_eq!(
        rest(&c, M::GET, doc, Some(ADMIN), None).await.0,
        200,
        "nothing was deleted"
    );
    let del = rest(&c, M::DELETE, "/v1/collections/people", Some(ADMIN), None).await;
    assert_eq!(del.0, 204, "{}", del.1);

    // The replicator admin API: health and metrics open, the rest admin only.
    let admin = format!(
        "http://{}",
        c.cluster.as_ref().unwrap().endpoints().dcs[0].admin
    );
    let get = |path: &str, token: Option<&str>| {
        let mut req = c.http.get(format!("{admin}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", bearer(t));
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/healthz", None).await, 200);
    assert_eq!(get("/metrics", None).await, 200);
    assert_eq!(get("/admin/status", None).await, 401);
    assert_eq!(get("/admin/status", Some(WRITE)).await, 403);
    assert_eq!(get("/admin/status", Some(ADMIN)).await, 200);

    // No token value reaches the metrics.
    let metrics = c
        .http
        .get(format!("{}/metrics", c.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for t in [READ, WRITE, ADMIN] {
        assert!(!metrics.contains(t), "a token in /metrics");
    }
    c.stop().await;
}

/// A GraphQL request over HTTP with an optional token: status and body.
async fn graphql(c: &TestCluster, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut req = c
        .http
        .post(format!("{}/graphql", c.base))
        .json(&json!({ "query": query }));
    if let Some(t) = token {
        req = req.header("authorization", bearer(t));
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

fn gql_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// Connects a WebSocket to `path` (`/v1/ws` or `/graphql/ws`) with a header token, a query
/// token, or none: the socket, or the refused upgrade's status.
async fn websocket(
    c: &TestCluster,
    path: &str,
    header: Option<&str>,
    query: Option<&str>,
    protocol: Option<&str>,
) -> Result<Socket, u16> {
    let open = Open {
        header,
        query,
        protocol,
        source: None,
    };
    wire::websocket(&c.http_addr, path, open).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_and_websockets_check_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path()).await;
    let put = r#"mutation { putDocument(collection: "g", id: "x", data: {n: 1}) { id } }"#;
    let get = r#"{ document(collection: "g", id: "x") { id } }"#;

    // GraphQL over HTTP: the token's role per operation.
    let (s, b) = graphql(&c, None, get).await;
    assert_eq!((s, gql_code(&b)), (401, Some("unauthenticated")), "{b}");
    let (s, b) = graphql(&c, Some(READ), put).await;
    assert_eq!(s, 200);
    assert_eq!(gql_code(&b), Some("permission_denied"), "{b}");
    let (_, b) = graphql(&c, Some(WRITE), put).await;
    assert_eq!(b["data"]["putDocument"]["id"], "x", "{b}");
    let (_, b) = graphql(&c, Some(READ), get).await;
    assert_eq!(b["data"]["document"]["id"], "x", "{b}");

    // The WebSocket API: the upgrade needs a token (header or access_token); each request
    // frame needs its kind's role.
    assert_eq!(
        websocket(&c, "/v1/ws", None, None, None).await.err(),
        Some(401)
    );
    assert_eq!(
        websocket(&c, "/v1/ws", None, Some("wrong-token-wrong-token"), None)
            .await
            .err(),
        Some(401)
    );
    let mut ws = websocket(&c, "/v1/ws", None, Some(READ), None)
        .await
        .expect("a read token opens the socket");
    let frames = [
        json!({"type": "get", "req": "r1", "collection": "g", "id": "x"}),
        json!({"type": "put", "req": "r2", "collection": "g", "id": "y", "data": {}}),
        json!({"type": "create_collection", "req": "r3", "collection": "h"}),
    ];
    for f in &frames {
        ws.send(Message::text(f.to_string())).await.unwrap();
    }
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 3 {
        let f = frame(&mut ws).await;
        if let Some(req) = f["req"].as_str() {
            answers.insert(req.to_string(), f);
        }
    }
    assert_eq!(answers["r1"]["type"], "result", "{}", answers["r1"]);
    for r in ["r2", "r3"] {
        assert_eq!(
            answers[r]["error"]["code"], "permission_denied",
            "{}",
            answers[r]
        );
    }
    let mut ws = websocket(&c, "/v1/ws", Some(WRITE), None, None)
        .await
        .expect("a header token opens the socket");
    ws.send(Message::text(frames[1].to_string())).await.unwrap();
    let f = frame(&mut ws).await;
    assert_eq!(f["type"], "result", "{f}");

    // GraphQL over a WebSocket: without a token on the upgrade, `connection_init` must
    // bring one (see graphql_init.rs); the upgrade's token holds for the connection.
    let proto = Some("graphql-transport-ws");
    let mut bare = websocket(&c, "/graphql/ws", None, None, proto)
        .await
        .expect("the upgrade waits for connection_init's token");
    let init = json!({"type": "connection_init"}).to_string();
    bare.send(Message::text(init)).await.unwrap();
    let closed = wire::next_message(&mut bare).await.err().flatten();
    assert_eq!(
        closed.map(|(code, _)| code),
        Some(4403),
        "no token: refused"
    );
    let mut gws = websocket(&c, "/graphql/ws", None, Some(READ), proto)
        .await
        .expect("access_token opens a GraphQL socket");
    gws.send(Message::text(
        json!({"type": "connection_init"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(frame(&mut gws).await["type"], "connection_ack");
    let mutation = json!({"type": "subscribe", "id": "m", "payload": {"query": put}});
    gws.send(Message::text(mutation.to_string())).await.unwrap();
    let f = frame(&mut gws).await;
    assert_eq!(
        f["payload"]["errors"][0]["extensions"]["code"], "permission_denied",
        "{f}"
    );
    let sub = json!({"type": "subscribe", "id": "s", "payload": {
        "query": r#"subscription { changes(collection: "g") { op token } }"#}});
    gws.send(Message::text(sub.to_string())).await.unwrap();
    let f = loop {
        let f = frame(&mut gws).await;
        if f["id"] == "s" {
            break f;
        }
    };
    assert_eq!(f["type"], "next", "a read token subscribes: {f}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_checks_every_method_including_watch_and_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path()).await;
    let mut client = grpc_client(&c.grpc_addr, None).await;
    let put = |token| {
        with_token(
            api::PutDocumentRequest {
                collection: "g".into(),
                id: "x".into(),
                data_json: "{}".into(),
                ..Default::default()
            },
            token,
        )
    };
    let get = |token| {
        with_token(
            api::GetDocumentRequest {
                collection: "g".into(),
                id: "x".into(),
            },
            token,
        )
    };
    let status = client.put_document(put(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().starts_with("unauthenticated: "),
        "{status:?}"
    );
    let status = client.put_document(put(Some(READ))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    client.put_document(put(Some(WRITE))).await.unwrap();
    assert_eq!(
        client.get_document(get(None)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    client.get_document(get(Some(READ))).await.unwrap();
    let delete = |token| with_token(api::DeleteCollectionRequest { name: "g".into() }, token);
    assert_eq!(
        client
            .delete_collection(delete(Some(WRITE)))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // Watch: refused without a token, streams with a read token.
    let watch = |token| {
        with_token(
            api::WatchRequest {
                collection: "g".into(),
                ..Default::default()
            },
            token,
        )
    };
    assert_eq!(
        client.watch(watch(None)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut feed = client.watch(watch(Some(READ))).await.unwrap().into_inner();
    assert!(
        feed.message().await.unwrap().is_some(),
        "a first checkpoint"
    );

    // Reflection needs a token; health does not.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let channel = Channel::from_shared(format!("http://{}", c.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let list = || ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let refused = reflection
        .server_reflection_info(futures::stream::iter(vec![list()]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let allowed = reflection
        .server_reflection_info(with_token(futures::stream::iter(vec![list()]), Some(READ)))
        .await;
    assert!(allowed.is_ok(), "{allowed:?}");
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "{health:?}");

    let deleted = client.delete_collection(delete(Some(ADMIN))).await;
    assert!(deleted.is_ok(), "{deleted:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_a_request_rate_on_every_protocol() {
    use aerolith_gateway::admission::RequestLimits;
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = Tokens::default();
    tokens
        .add_list(&format!("read:{READ},write:{WRITE},admin:{ADMIN}"))
        .unwrap();
    let mut c = start_with(DevOptions {
        nodes_per_dc: 1,
        tokens,
        requests: RequestLimits {
            rate_per_second: 1,
            burst: 5,
            // One place in flight: concurrent requests queue rather than fail.
            max_in_flight: 1,
            ..RequestLimits::default()
        },
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;

    // REST: within 30 requests the bucket (5, refilled at 1/s) runs dry: 429 with
    // Retry-After; another token's bucket is untouched.
    let mut refused = None;
    for _ in 0..30 {
        let (s, b, h) = rest(
            &c,
            reqwest::Method::GET,
            "/v1/collections",
            Some(READ),
            None,
        )
        .await;
        if s != 200 {
            refused = Some((s, b, h));
            break;
        }
    }
    let (s, b, h) = refused.expect("the rate is enforced");
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{b}"
    );
    assert_eq!(h["retry-after"], "1");
    let other = rest(
        &c,
        reqwest::Method::GET,
        "/v1/collections",
        Some(WRITE),
        None,
    )
    .await;
    assert_eq!(other.0, 200);

    // gRPC shares the token's bucket.
    let mut client = grpc_client(&c.grpc_addr, None).await;
    let mut code = Code::Ok;
    for _ in 0..30 {
        let req = with_token(api::ListCollectionsRequest::default(), Some(READ));
        match client.list_collections(req).await {
            Ok(_) => {}
            Err(s) => {
                code = s.code();
                assert!(s.message().starts_with("rate_limited: "), "{s:?}");
                break;
            }
        }
    }
    assert_eq!(code, Code::ResourceExhausted);

    // WebSocket request frames count too; the connection stays open.
    let (mut ws, _) = connect_async(format!(
        "{}/v1/ws?access_token={WRITE}",
        c.base.replacen("http://", "ws://", 1)
    ))
    .await
    .unwrap();
    let mut limited = false;
    for i in 0..30 {
        let get = json!({"type": "get", "req": format!("r{i}"), "collection": "c", "id": "x"});
        ws.send(Message::text(get.to_string())).await.unwrap();
        let f = frame(&mut ws).await;
        if f["error"]["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited, "the rate holds for WebSocket frames");

    // So does each GraphQL operation over a WebSocket (a token whose bucket is still full).
    let mut gws = websocket(
        &c,
        "/graphql/ws",
        None,
        Some(ADMIN),
        Some("graphql-transport-ws"),
    )
    .await
    .expect("a GraphQL socket");
    gws.send(Message::text(
        json!({"type": "connection_init"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(frame(&mut gws).await["type"], "connection_ack");
    let mut limited = false;
    for i in 0..30 {
        let op = json!({"type": "subscribe", "id": format!("q{i}"),
            "payload": {"query": "{ collections { name } }"}});
        gws.send(Message::text(op.to_string())).await.unwrap();
        let f = loop {
            let f = frame(&mut gws).await;
            if f["type"] != "complete" {
                break f;
            }
        };
        if f["payload"]["errors"][0]["extensions"]["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited, "the rate holds for GraphQL over a WebSocket");

    // With one place in flight, concurrent requests wait their turn and all succeed.
    let c2dir = tempfile::tempdir().unwrap();
    let one_place = RequestLimits {
        max_in_flight: 1,
        ..RequestLimits::default()
    };
    let c2 = start_with_tokens(c2dir.path(), "", one_place).await;
    let calls = (0..16).map(|i| {
        let body = json!({ "i": i });
        let path = format!("/v1/collections/q/docs/d{i}");
        let c2 = &c2;
        async move {
            rest(c2, reqwest::Method::PUT, &path, None, Some(body))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    c.stop().await;
    let mut c2 = c2;
    c2.stop().await;
}
