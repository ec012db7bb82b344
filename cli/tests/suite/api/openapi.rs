//! `GET /openapi.json` over the wire: it documents every served route (and API.md's), and
//! every route it documents is served while the methods it leaves out are not.

use crate::support::{TestCluster, start};
use reqwest::Method;
use serde_json::Value;

/// API.md's REST routes that are served today (the change feed is not yet).
const API_MD_ROUTES: [(&str, &str); 19] = [
    ("GET", "/v1/collections"),
    ("GET", "/v1/collections/{c}"),
    ("PUT", "/v1/collections/{c}"),
    ("DELETE", "/v1/collections/{c}"),
    ("GET", "/v1/collections/{c}/docs"),
    ("POST", "/v1/collections/{c}/docs"),
    ("GET", "/v1/collections/{c}/docs/{id}"),
    ("PUT", "/v1/collections/{c}/docs/{id}"),
    ("PATCH", "/v1/collections/{c}/docs/{id}"),
    ("DELETE", "/v1/collections/{c}/docs/{id}"),
    ("POST", "/v1/collections/{c}/query"),
    ("POST", "/v1/collections/{c}/bulk"),
    ("GET", "/v1/collections/{c}/changes"),
    ("GET", "/v1/ws"),
    ("GET", "/v1/cluster"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The methods probed on every documented path.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "PATCH", "DELETE"];

/// The message of the router's fallback for unknown routes (gateway/src/rest/error.rs).
const NO_ROUTE: &str = "no such route";

/// A documented path with concrete values for its parameters.
fn concrete(path: &str) -> String {
    path.replace("{c}", "probe").replace("{id}", "p1")
}

/// Sends `method` to `path` with a small JSON body for the methods that take one.
async fn probe(c: &TestCluster, method: &str, path: &str) -> crate::support::Reply {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
    let body = match method {
        "PUT" | "POST" | "PATCH" => Some(("application/json", b"{}".to_vec())),
        _ => None,
    };
    c.send(m, path, body, &[]).await
}

/// Whether a reply is the router's answer to an unknown route.
fn is_unknown_route(r: &crate::support::Reply) -> bool {
    r.status == 404 && r.body["error"]["message"] == NO_ROUTE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_exactly_the_served_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;

    let r = c.get("/openapi.json").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let doc: Value = r.body;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi {version:?}");
    let paths = doc["paths"].as_object().expect("paths");

    // Every route of the table, and every served route of API.md, is documented.
    let served = aerolith_gateway::app::served_routes();
    for (method, path) in &served {
        let op = &doc["paths"][*path][method.to_ascii_lowercase()];
        assert!(
            op["operationId"].is_string(),
            "{method} {path} undocumented"
        );
    }
    for (method, path) in API_MD_ROUTES {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(
            op["operationId"].is_string(),
            "{method} {path} undocumented"
        );
        assert!(
            served.contains(&(method, path)),
            "{method} {path} not in the table"
        );
    }

    // The probes below can tell a served route from an unserved one.
    let unknown = c.get("/v1/collections/probe/nothing-here").await;
    unknown.assert_error(404, "not_found");
    assert!(is_unknown_route(&unknown), "{:?}", unknown.body);
    probe(&c, "PATCH", "/v1/collections/probe")
        .await
        .assert_error(405, "invalid_argument");

    // Each documented method is served; each other method on a documented path is not.
    let mut documented = 0;
    for (path, item) in paths {
        let item = item.as_object().expect("path item");
        let url = concrete(path);
        for method in METHODS {
            let r = probe(&c, method, &url).await;
            if item.contains_key(&method.to_ascii_lowercase()) {
                documented += 1;
                assert!(
                    !is_unknown_route(&r) && r.status != 405,
                    "{method} {url}: {} {:?}",
                    r.status,
                    r.body
                );
            } else {
                r.assert_error(405, "invalid_argument");
            }
        }
        // Parameters are documented for every `{name}` in the path.
        for op in item.values() {
            let params = op["parameters"].as_array().map(Vec::len).unwrap_or(0);
            assert!(params >= path.matches('{').count(), "{path} parameters");
        }
    }
    assert_eq!(
        documented,
        served.len(),
        "documented and served routes differ"
    );

    c.stop().await;
}

/// The WebSocket routes answer a request that is no handshake as every route answers a bad
/// request, and as `/openapi.json` says: 400 `invalid_argument` with the JSON error body
/// (axum's own rejections were plain text, or an empty 400 for `/graphql/ws`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_routes_refuse_non_handshakes_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    let handshake = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
    ];
    for path in ["/v1/ws", "/graphql/ws"] {
        c.get(path).await.assert_error(400, "invalid_argument");
        let bad_key = [&handshake[..], &[("sec-websocket-key", "not-a-key")]].concat();
        c.send(Method::GET, path, None, &bad_key)
            .await
            .assert_error(400, "invalid_argument");
    }
    // A sound handshake to /graphql/ws that offers no GraphQL subprotocol.
    let no_protocol = [
        &handshake[..],
        &[
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "chat"),
        ],
    ]
    .concat();
    c.send(Method::GET, "/graphql/ws", None, &no_protocol)
        .await
        .assert_error(400, "invalid_argument");
    c.stop().await;
}
