//! A DC's shape over time (issue 25): its versioned shard map, learned by every caller
//! without a restart.

mod admin_api;
mod dev_growth;
mod shard_map;

use serde_json::Value;

/// One JSON request; the status and the JSON body (`null` when there is none).
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Polls a replicator's `GET /admin/nodes` and `GET /admin/moves` until `done` holds of
/// them; fails after two minutes.
pub async fn until(
    http: &reqwest::Client,
    admin: &str,
    what: &str,
    done: impl Fn(&Value, &Value) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let get = |path: &str| call(http, reqwest::Method::GET, format!("{admin}{path}"), None);
        let ((_, nodes), (_, moves)) = (get("/admin/nodes").await, get("/admin/moves").await);
        if done(&nodes, &moves) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {nodes} {moves}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
