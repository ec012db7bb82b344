//! The bad-input suite over the wire, protocol by protocol (REST's body, name and limit
//! cases are in rest_errors.rs; the internal RPC's in storagenode/tests/hostile_rpc.rs):
//! each bad request gets its documented error, and after each the gateway still serves and
//! the document written first is intact.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{TestCluster, start};
use aerolith_proto::v1 as api;
use aerolith_proto::v1::documents_client::DocumentsClient;

/// The gateway is ready and the sentinel document is unchanged.
async fn still_serving(c: &TestCluster, sentinel: &Value, after: &str) {
    assert_eq!(
        c.get("/readyz").await.status,
        200,
        "not ready after {after}"
    );
    let r = c.get("/v1/collections/c/docs/keep").await;
    assert_eq!(r.status, 200, "after {after}");
    assert_eq!(r.body["version"], sentinel["version"], "after {after}");
    assert_eq!(r.body["data"], json!({"v": 1}), "after {after}");
}

async fn sentinel(c: &TestCluster) -> Value {
    let r = c
        .put_json("/v1/collections/c/docs/keep", &json!({"v": 1}), &[])
        .await;
    assert_eq!(r.status, 201);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_queries_feeds_and_bulk_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    let keep = sentinel(&c).await;
    let query = "/v1/collections/c/query";
    let bodies = [
        ("unknown operator", json!({"filter": {"v": {"$nope": 1}}})),
        ("operator at the top", json!({"filter": {"$eq": 1}})),
        ("filter not an object", json!({"filter": [1]})),
        ("$in without a list", json!({"filter": {"v": {"$in": 1}}})),
        (
            "$regex not a string",
            json!({"filter": {"v": {"$regex": 5}}}),
        ),
        ("bad regex", json!({"filter": {"v": {"$regex": "("}}})),
        ("negative limit", json!({"limit": -1})),
        ("zero limit", json!({"limit": 0})),
        ("huge limit", json!({"limit": 1_000_000_000_000u64})),
        ("fractional limit", json!({"limit": 1.5})),
        (
            "bad sort order",
            json!({"sort": [{"field": "v", "order": "up"}]}),
        ),
        ("sort not a list", json!({"sort": "v"})),
        ("bad projection", json!({"projection": [1]})),
        ("garbage cursor", json!({"cursor": "!!"})),
        ("unknown field", json!({"filtre": {}})),
    ];
    for (what, body) in bodies {
        let r = c.post_json(query, &body).await;
        assert_eq!(r.status, 400, "{what}: {:?}", r.body);
        r.assert_error(400, "invalid_argument");
        still_serving(&c, &keep, what).await;
    }
    for q in ["limit=-1", "limit=1001", "since=garbage", "since=t1.AAAA"] {
        c.get(&format!("/v1/collections/c/changes?{q}"))
            .await
            .assert_error(400, "invalid_argument");
        still_serving(&c, &keep, q).await;
    }
    let bulk = "/v1/collections/c/bulk";
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"op": "put", "id": format!("b{i}"), "data": {}}))
        .collect();
    // A bad op fails alone (API.md: per-op results), the request does not.
    let r = c
        .post_json(
            bulk,
            &json!({"ops": [{"op": "upsert", "id": "x", "data": {}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["error"]["code"], "invalid_argument");
    still_serving(&c, &keep, "an unknown bulk op").await;
    for (what, body) in [
        ("ops missing", json!({})),
        ("ops not a list", json!({"ops": 1})),
        ("too many ops", json!({ "ops": many })),
    ] {
        c.post_json(bulk, &body)
            .await
            .assert_error(400, "invalid_argument");
        still_serving(&c, &keep, what).await;
    }
    for (what, headers) in [
        ("garbage session token", ("x-aerolith-session", "s1.%%%")),
        (
            "unknown write concern",
            ("x-aerolith-write-concern", "most"),
        ),
    ] {
        let r = c
            .put_json("/v1/collections/c/docs/other", &json!({}), &[headers])
            .await;
        r.assert_error(400, "invalid_argument");
        still_serving(&c, &keep, what).await;
    }
    for (what, body) in [
        ("unknown strategy", json!({"conflict_strategy": "newest"})),
        ("strategy not a string", json!({"conflict_strategy": 1})),
    ] {
        c.put_json("/v1/collections/d", &body, &[])
            .await
            .assert_error(400, "invalid_argument");
        still_serving(&c, &keep, what).await;
    }
    c.get("/v1/collections/c/docs/%FF%FE")
        .await
        .assert_error(400, "invalid_argument");
    still_serving(&c, &keep, "an id that is not UTF-8").await;
    c.stop().await;
}

async fn graphql(c: &TestCluster, body: Vec<u8>) -> Value {
    let r = c
        .send(
            reqwest::Method::POST,
            "/graphql",
            Some(("application/json", body)),
            &[],
        )
        .await;
    r.body
}

fn gql_code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<no code>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_refuses_bad_input_with_coded_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    let keep = sentinel(&c).await;
    let q = |query: &str| serde_json::to_vec(&json!({ "query": query })).unwrap();
    let mut too_deep = String::from("{ __schema { types { ");
    for _ in 0..30 {
        too_deep.push_str("ofType { ");
    }
    too_deep.push_str("name");
    for _ in 0..30 {
        too_deep.push_str(" }");
    }
    too_deep.push_str(" } } }");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed JSON", b"{\"query\": ".to_vec()),
        (
            "invalid UTF-8",
            vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}'],
        ),
        ("not a request", b"[1, 2]".to_vec()),
        ("syntax error", q("{ document(collection: ")),
        ("unknown field", q("{ nope }")),
        ("deep query", q(&too_deep)),
        (
            "variables of the wrong type",
            serde_json::to_vec(&json!({
            "query": "query($l: Int) { documents(collection: \"c\", limit: $l) { nextCursor } }",
            "variables": {"l": "ten"}}))
            .unwrap(),
        ),
        (
            "unknown $operator",
            serde_json::to_vec(&json!({
            "query": "query($f: JSON) { documents(collection: \"c\", filter: $f) { nextCursor } }",
            "variables": {"f": {"v": {"$nope": 1}}}}))
            .unwrap(),
        ),
        (
            "negative limit",
            q(r#"{ documents(collection: "c", limit: -1) { nextCursor } }"#),
        ),
        (
            "huge limit",
            q(r#"{ documents(collection: "c", limit: 2000000000) { nextCursor } }"#),
        ),
        (
            "invalid collection name",
            q(r#"{ document(collection: "_bad", id: "x") { id } }"#),
        ),
        (
            "invalid id",
            q(r#"{ document(collection: "c", id: "a b") { id } }"#),
        ),
        (
            "garbage cursor",
            q(r#"{ documents(collection: "c", cursor: "!!") { nextCursor } }"#),
        ),
        (
            "batch too large",
            serde_json::to_vec(&vec![json!({"query": "{ collections { name } }"}); 17]).unwrap(),
        ),
    ];
    for (what, body) in cases {
        let v = graphql(&c, body).await;
        assert_eq!(gql_code(&v), "invalid_argument", "{what}: {v}");
        still_serving(&c, &keep, what).await;
    }
    // Wrong content type is refused too.
    let r = c
        .send(
            reqwest::Method::POST,
            "/graphql",
            Some(("text/plain", q("{ collections { name } }"))),
            &[],
        )
        .await;
    assert_eq!(gql_code(&r.body), "invalid_argument", "{:?}", r.body);
    still_serving(&c, &keep, "wrong content type").await;
    c.stop().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(c: &TestCluster) -> Ws {
    let url = format!("{}/v1/ws", c.base.replacen("http://", "ws://", 1));
    connect_async(url).await.expect("WebSocket connects").0
}

/// The next text frame as JSON, or the close code.
async fn next(ws: &mut Ws) -> Result<Value, Option<CloseCode>> {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("an answer within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(f))) => return Err(f.map(|f| f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_refuse_bad_input_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    let keep = sentinel(&c).await;
    let mut s = ws(&c).await;
    let frames = [
        ("malformed JSON", "{\"type\":".to_string()),
        ("not an object", "[1]".to_string()),
        (
            "unknown type",
            json!({"type": "upsert", "req": "r"}).to_string(),
        ),
        (
            "missing req",
            json!({"type": "get", "collection": "c", "id": "keep"}).to_string(),
        ),
        (
            "invalid collection",
            json!({"type": "get", "req": "r", "collection": "_x", "id": "a"}).to_string(),
        ),
        (
            "invalid id",
            json!({"type": "get", "req": "r", "collection": "c", "id": "a b"}).to_string(),
        ),
        (
            "data not an object",
            json!({"type": "put", "req": "r", "collection": "c", "id": "a", "data": 1}).to_string(),
        ),
        (
            "unknown operator",
            json!({"type": "query", "req": "r", "collection": "c", "filter": {"v": {"$nope": 1}}})
                .to_string(),
        ),
        (
            "negative limit",
            json!({"type": "query", "req": "r", "collection": "c", "limit": -1}).to_string(),
        ),
        (
            "huge limit",
            json!({"type": "query", "req": "r", "collection": "c", "limit": 1u64 << 40})
                .to_string(),
        ),
        (
            "subscription filter",
            json!({"type": "subscribe", "sub": "s", "collection": "c", "filter": {"$x": 1}})
                .to_string(),
        ),
        (
            "garbage resume token",
            json!({"type": "subscribe", "sub": "s", "collection": "c", "since": "t1.%%"})
                .to_string(),
        ),
    ];
    for (what, text) in frames {
        s.send(Message::text(text)).await.unwrap();
        let f = next(&mut s)
            .await
            .unwrap_or_else(|e| panic!("{what}: closed {e:?}"));
        assert_eq!(f["type"], "error", "{what}: {f}");
        assert_eq!(f["error"]["code"], "invalid_argument", "{what}: {f}");
        still_serving(&c, &keep, what).await;
    }
    // A binary frame: an error frame, and the connection stays open.
    s.send(Message::binary(vec![0xff, 0x00, 0x13]))
        .await
        .unwrap();
    let f = next(&mut s).await.expect("an error frame");
    assert_eq!(f["error"]["code"], "invalid_argument", "{f}");
    s.send(Message::text(json!({"type": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next(&mut s).await.expect("a pong")["type"], "pong");
    still_serving(&c, &keep, "a binary frame").await;

    // An oversized frame closes the connection with 1009; a new one works.
    let big = json!({"type": "put", "req": "r", "collection": "c", "id": "big",
        "data": {"x": "y".repeat(2 * 1024 * 1024)}});
    let _ = s.send(Message::text(big.to_string())).await;
    let closed = loop {
        match next(&mut s).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, Some(CloseCode::Size));
    still_serving(&c, &keep, "an oversized frame").await;
    let mut again = ws(&c).await;
    again
        .send(Message::text(json!({"type": "ping"}).to_string()))
        .await
        .unwrap();
    assert_eq!(next(&mut again).await.expect("a pong")["type"], "pong");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_bad_input_with_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    let keep = sentinel(&c).await;
    let channel = Channel::from_shared(format!("http://{}", c.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut g = DocumentsClient::new(channel);
    let invalid = |r: Option<tonic::Status>, what: &str| {
        let s = r.unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(s.code(), Code::InvalidArgument, "{what}: {s:?}");
        assert!(
            s.message().starts_with("invalid_argument: "),
            "{what}: {s:?}"
        );
    };
    let put = |collection: &str, id: &str, data: &str| api::PutDocumentRequest {
        collection: collection.into(),
        id: id.into(),
        data_json: data.into(),
        ..Default::default()
    };
    for (what, req) in [
        ("malformed JSON", put("c", "a", "{\"a\":")),
        ("not an object", put("c", "a", "[1]")),
        ("invalid collection", put("_x", "a", "{}")),
        ("invalid id", put("c", "a b", "{}")),
        ("duplicate keys", put("c", "a", r#"{"a":1,"a":2}"#)),
    ] {
        invalid(g.put_document(req).await.err(), what);
        still_serving(&c, &keep, what).await;
    }
    let query = |filter: &str, limit: Option<u32>, cursor: &str| api::QueryRequest {
        collection: "c".into(),
        filter_json: filter.into(),
        limit,
        cursor: cursor.into(),
        ..Default::default()
    };
    for (what, req) in [
        ("unknown operator", query(r#"{"v":{"$nope":1}}"#, None, "")),
        ("filter not JSON", query("{", None, "")),
        ("zero limit", query("", Some(0), "")),
        ("huge limit", query("", Some(u32::MAX), "")),
        ("garbage cursor", query("", None, "!!")),
    ] {
        invalid(g.query(req).await.err(), what);
        still_serving(&c, &keep, what).await;
    }
    let watch = api::WatchRequest {
        collection: "c".into(),
        since: "t1.%%%".into(),
        ..Default::default()
    };
    let refused = match g.watch(watch).await {
        Err(s) => s,
        Ok(stream) => stream
            .into_inner()
            .message()
            .await
            .expect_err("a garbage resume token is refused"),
    };
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    still_serving(&c, &keep, "a garbage resume token").await;

    // A message over the 20 MiB limit.
    let huge = format!(r#"{{"x":"{}"}}"#, "y".repeat(21 * 1024 * 1024));
    let s = g.put_document(put("c", "huge", &huge)).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(s.message().starts_with("payload_too_large"), "{s:?}");
    still_serving(&c, &keep, "an oversized gRPC message").await;
    c.stop().await;
}
