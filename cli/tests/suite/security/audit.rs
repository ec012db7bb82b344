//! The gateway's audit trail over the wire (docs/SECURITY.md "Audit trail"): a line for every
//! collection and index creation and deletion, whichever protocol asked, and for every
//! refused authentication or authorisation on REST, GraphQL (HTTP and WebSocket), the
//! WebSocket API and gRPC, each naming role, token id, peer and outcome, and none holding a
//! token's value; and the `aerolith_audit_events_total` counts beside them.

use std::net::{IpAddr, Ipv4Addr};

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tonic::Code;

use super::wire::{Open, frame, frame_of, grpc_client, next_message, websocket, with_token};
use crate::support::audit_log::{self, Line};
use crate::support::{TestCluster, metrics, start_with_tokens};
use aerolith_common::auth::token_id;
use aerolith_proto::v1 as api;

const READ: &str = "audit-suite-read-token-value";
const WRITE: &str = "audit-suite-write-token-value";
const ADMIN: &str = "audit-suite-admin-token-value";
const WRONG: &str = "audit-suite-unknown-token-value";

/// Where this test's requests come from: its lines are the ones with this peer.
const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 91));

/// A REST or GraphQL call from [`FROM`]: status and JSON body.
async fn call(
    c: &TestCluster,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .local_address(FROM)
        .build()
        .unwrap();
    let mut req = http.request(method, format!("{}{path}", c.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A GraphQL request over HTTP from [`FROM`]: its body.
async fn graphql(c: &TestCluster, token: Option<&str>, query: &str) -> (u16, Value) {
    let body = json!({ "query": query });
    call(c, reqwest::Method::POST, "/graphql", token, Some(body)).await
}

/// A WebSocket from [`FROM`].
fn from_here<'a>(query: Option<&'a str>, protocol: Option<&'a str>) -> Open<'a> {
    Open {
        query,
        protocol,
        source: Some(FROM),
        ..Open::default()
    }
}

/// Does the request side of the test: admin actions and refusals on every protocol.
async fn act(c: &TestCluster) {
    use reqwest::Method as M;

    // Admin actions, REST.
    let col = "/v1/collections/aud_rest";
    let index = json!({"fields": [{"path": "n"}]});
    assert_eq!(call(c, M::PUT, col, Some(WRITE), None).await.0, 201);
    let idx = "/v1/collections/aud_rest/indexes/by_n";
    let put = call(c, M::PUT, idx, Some(WRITE), Some(index)).await;
    assert!(matches!(put.0, 200 | 202), "{put:?}");
    assert_eq!(call(c, M::DELETE, idx, Some(WRITE), None).await.0, 204);
    assert_eq!(call(c, M::DELETE, col, Some(ADMIN), None).await.0, 204);
    let missing = "/v1/collections/aud_missing";
    assert_eq!(call(c, M::DELETE, missing, Some(ADMIN), None).await.0, 404);

    // Admin actions, gRPC.
    let mut grpc = grpc_client(&c.grpc_addr, Some(FROM)).await;
    let name = || "aud_grpc".to_string();
    let create = api::CreateCollectionRequest {
        name: name(),
        ..Default::default()
    };
    grpc.create_collection(with_token(create, Some(WRITE)))
        .await
        .unwrap();
    let field = api::IndexField {
        path: "n".into(),
        order: String::new(),
    };
    let index = api::CreateIndexRequest {
        collection: name(),
        name: "by_n".into(),
        fields: vec![field],
    };
    grpc.create_index(with_token(index, Some(WRITE)))
        .await
        .unwrap();
    let drop = api::DropIndexRequest {
        collection: name(),
        name: "by_n".into(),
    };
    grpc.drop_index(with_token(drop, Some(WRITE)))
        .await
        .unwrap();
    let delete = || api::DeleteCollectionRequest { name: name() };
    grpc.delete_collection(with_token(delete(), Some(ADMIN)))
        .await
        .unwrap();

    // Admin actions, GraphQL and the WebSocket API.
    let mutations = [
        r#"mutation { createCollection(name: "aud_gql") { name } }"#,
        r#"mutation { createIndex(collection: "aud_gql", name: "by_n", fields: [{path: "n"}]) { name } }"#,
        r#"mutation { dropIndex(collection: "aud_gql", name: "by_n") }"#,
    ];
    for m in mutations {
        let (_, b) = graphql(c, Some(WRITE), m).await;
        assert!(b["errors"].is_null(), "{m}: {b}");
    }
    let mut ws = websocket(&c.http_addr, "/v1/ws", from_here(Some(WRITE), None))
        .await
        .expect("socket");
    let create = json!({"type": "create_collection", "req": "c", "collection": "aud_ws"});
    ws.send(Message::text(create.to_string())).await.unwrap();
    assert_eq!(frame(&mut ws).await["type"], "result");

    // Refusals, REST: no token, then a token without the role.
    let (s, _) = call(c, M::GET, "/v1/collections", None, None).await;
    assert_eq!(s, 401);
    let (s, _) = call(c, M::DELETE, "/v1/collections/aud_gql", Some(WRITE), None).await;
    assert_eq!(s, 403);

    // GraphQL over HTTP.
    assert_eq!(graphql(c, None, "{ collections { name } }").await.0, 401);
    let (_, b) = graphql(c, Some(READ), mutations[0]).await;
    assert_eq!(b["errors"][0]["extensions"]["code"], "permission_denied");

    // The WebSocket API: the upgrade, then a frame.
    let refused = websocket(&c.http_addr, "/v1/ws", from_here(None, None)).await;
    assert_eq!(refused.err(), Some(401));
    let mut ws = websocket(&c.http_addr, "/v1/ws", from_here(Some(READ), None))
        .await
        .expect("socket");
    let put = json!({"type": "put", "req": "p", "collection": "aud_ws", "id": "x", "data": {}});
    ws.send(Message::text(put.to_string())).await.unwrap();
    assert_eq!(frame(&mut ws).await["error"]["code"], "permission_denied");

    // GraphQL over a WebSocket: a wrong token in connection_init, then a read token's
    // mutation.
    let proto = Some("graphql-transport-ws");
    let mut gws = websocket(&c.http_addr, "/graphql/ws", from_here(None, proto))
        .await
        .expect("socket");
    let init = json!({"type": "connection_init", "payload": {"token": WRONG}});
    gws.send(Message::text(init.to_string())).await.unwrap();
    assert!(next_message(&mut gws).await.is_err(), "closed");
    let mut gws = websocket(&c.http_addr, "/graphql/ws", from_here(Some(READ), proto))
        .await
        .expect("socket");
    let init = json!({"type": "connection_init"});
    gws.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(frame(&mut gws).await["type"], "connection_ack");
    let op = json!({"type": "subscribe", "id": "m", "payload": {"query": mutations[0]}});
    gws.send(Message::text(op.to_string())).await.unwrap();
    let f = frame_of(&mut gws, "m").await;
    assert_eq!(
        f["payload"]["errors"][0]["extensions"]["code"],
        "permission_denied"
    );

    // gRPC.
    let get = api::GetDocumentRequest {
        collection: "aud_grpc".into(),
        id: "x".into(),
    };
    let status = grpc.get_document(with_token(get, None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = grpc
        .delete_collection(with_token(delete(), Some(WRITE)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

/// Whether a line of `lines` has every field of `want`.
fn has(lines: &[Line], want: &[(&str, &str)]) -> bool {
    lines.iter().any(|l| {
        want.iter()
            .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_and_refusals_leave_audit_lines_on_every_protocol() {
    audit_log::capture();
    let dir = tempfile::tempdir().unwrap();
    let tokens = format!("read:{READ},write:{WRITE},admin:{ADMIN}");
    let mut c = start_with_tokens(dir.path(), &tokens, Default::default()).await;
    act(&c).await;

    let here = format!("{FROM}:");
    let mine = audit_log::lines(|l| l.get("peer").is_some_and(|p| p.starts_with(&here)));
    let (write, admin, read) = (token_id(WRITE), token_id(ADMIN), token_id(READ));
    let done = |action: &str, target: &str, role: &str, id: &str| {
        let want = [
            ("action", action),
            ("object", target),
            ("role", role),
            ("token_id", id),
            ("outcome", "done"),
            ("process", "gateway"),
        ];
        assert!(has(&mine, &want), "no line {want:?} in {mine:#?}");
    };
    for col in ["aud_rest", "aud_grpc", "aud_gql", "aud_ws"] {
        done("collection.create", col, "write", &write);
    }
    for col in ["aud_rest", "aud_grpc", "aud_gql"] {
        let index = format!("{col}/by_n");
        done("index.create", &index, "write", &write);
        done("index.delete", &index, "write", &write);
    }
    for col in ["aud_rest", "aud_grpc"] {
        done("collection.delete", col, "admin", &admin);
    }
    let failed = [
        ("action", "collection.delete"),
        ("object", "aud_missing"),
        ("outcome", "failed"),
        ("reason", "not_found"),
    ];
    assert!(has(&mine, &failed), "{mine:#?}");

    // Refusals: without a token (no role, no id), and with a token lacking the role.
    let unauthenticated = |target: &str| {
        let want = [
            ("action", "request"),
            ("object", target),
            ("role", "-"),
            ("token_id", "-"),
            ("outcome", "unauthenticated"),
        ];
        assert!(has(&mine, &want), "no line {want:?} in {mine:#?}");
    };
    unauthenticated("GET /v1/collections");
    unauthenticated("POST /graphql");
    unauthenticated("GET /v1/ws");
    unauthenticated("GET /graphql/ws connection_init");
    unauthenticated("/aerolith.v1.Documents/GetDocument");
    let denied = |target: &str, role: &str, id: &str| {
        let want = [
            ("action", "request"),
            ("object", target),
            ("role", role),
            ("token_id", id),
            ("outcome", "denied"),
            ("reason", "permission_denied"),
        ];
        assert!(has(&mine, &want), "no line {want:?} in {mine:#?}");
    };
    denied("DELETE /v1/collections/aud_gql", "write", &write);
    denied("graphql createCollection", "read", &read);
    denied("/v1/ws put", "read", &read);
    denied("/aerolith.v1.Documents/DeleteCollection", "write", &write);
    let graphql_denials = mine
        .iter()
        .filter(|l| l.get("object").map(String::as_str) == Some("graphql createCollection"))
        .count();
    assert!(
        graphql_denials >= 2,
        "over HTTP and over a WebSocket: {mine:#?}"
    );

    // No token value in any line of any test, nor in the metrics; the counts are there.
    let all = audit_log::text();
    let metrics = metrics(&c.http, &c.base).await;
    for secret in [READ, WRITE, ADMIN, WRONG] {
        assert!(!all.contains(secret), "a token value in an audit line");
        assert!(!metrics.contains(secret), "a token value in the metrics");
    }
    for series in [
        r#"aerolith_audit_events_total{action="collection.create",outcome="done"}"#,
        r#"aerolith_audit_events_total{action="collection.delete",outcome="failed"}"#,
        r#"aerolith_audit_events_total{action="index.create",outcome="done"}"#,
        r#"aerolith_audit_events_total{action="index.delete",outcome="done"}"#,
        r#"aerolith_audit_events_total{action="request",outcome="unauthenticated"}"#,
        r#"aerolith_audit_events_total{action="request",outcome="denied"}"#,
    ] {
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(count.is_some_and(|n| n >= 1.0), "{series} in\n{metrics}");
    }
    c.stop().await;
}
