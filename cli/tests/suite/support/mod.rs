//! Helpers for the over-the-wire tests: an in-process dev cluster on free loopback ports
//! and a small REST client.

#![allow(dead_code)]

pub mod audit_log;
pub mod http;
pub mod procs;

use std::path::Path;

use aerolith_cli::dev::{DevCluster, DevOptions};
use aerolith_storagenode::{DEFAULT_SCAN_BUDGET, Retention};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Taken by tests that run clusters of processes, so that two of them never share the two
/// cores (their timeouts assume a machine that is not doubly loaded).
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster under test and a client for its REST endpoint.
pub struct TestCluster {
    pub cluster: Option<DevCluster>,
    pub base: String,
    /// The gateway's HTTP address (`127.0.0.1:port`).
    pub http_addr: String,
    /// The gateway's gRPC address.
    pub grpc_addr: String,
    pub http: reqwest::Client,
}

/// Starts a one-DC cluster of `nodes` storage nodes with its data in `dir`.
pub async fn start(dir: &Path, nodes: usize) -> TestCluster {
    start_with_budget(dir, nodes, DEFAULT_SCAN_BUDGET).await
}

/// Like [`start`], with the nodes keeping only `retention` of each shard's change log.
pub async fn start_with_retention(dir: &Path, nodes: usize, retention: Retention) -> TestCluster {
    start_opts(dir, nodes, DEFAULT_SCAN_BUDGET, retention).await
}

/// Like [`start`], with nodes that examine at most `scan_budget` records per scan call, so
/// that short pages (and the gateway's handling of them) show up with little data.
pub async fn start_with_budget(dir: &Path, nodes: usize, scan_budget: usize) -> TestCluster {
    start_opts(dir, nodes, scan_budget, Retention::default()).await
}

async fn start_opts(
    dir: &Path,
    nodes: usize,
    scan_budget: usize,
    retention: Retention,
) -> TestCluster {
    start_with(DevOptions {
        nodes_per_dc: nodes,
        scan_budget,
        retention,
        ..DevOptions::new(dir.to_path_buf())
    })
    .await
}

/// Starts two DCs of two nodes each; the cluster and both DCs' HTTP base URLs.
pub async fn start_two_dcs(dir: &Path) -> (TestCluster, String, String) {
    let c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        ..DevOptions::new(dir.to_path_buf())
    })
    .await;
    let dcs = c.cluster.as_ref().expect("running").endpoints().dcs.clone();
    let (dc1, dc2) = (
        format!("http://{}", dcs[0].http),
        format!("http://{}", dcs[1].http),
    );
    (c, dc1, dc2)
}

/// Starts a dev cluster with any options.
pub async fn start_with(opts: DevOptions) -> TestCluster {
    let cluster = DevCluster::start(opts).await.expect("cluster starts");
    let dc = &cluster.endpoints().dcs[0];
    let (http_addr, grpc_addr) = (dc.http.clone(), dc.grpc.clone());
    TestCluster {
        cluster: Some(cluster),
        base: format!("http://{http_addr}"),
        http_addr,
        grpc_addr,
        http: reqwest::Client::new(),
    }
}

/// Starts a one-DC cluster of one storage node whose gateways ask for the tokens of
/// `tokens` (`role:token,…`; empty: authentication off), within `requests`' limits.
pub async fn start_with_tokens(
    dir: &Path,
    tokens: &str,
    requests: aerolith_gateway::admission::RequestLimits,
) -> TestCluster {
    let mut set = aerolith_common::auth::Tokens::default();
    set.add_list(tokens).expect("valid tokens");
    start_with(DevOptions {
        nodes_per_dc: 1,
        tokens: set,
        requests,
        ..DevOptions::new(dir.to_path_buf())
    })
    .await
}

/// A response reduced to what the tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts an error with API.md's body shape.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {:?}", self.body);
        assert_eq!(self.code(), code, "code of {:?}", self.body);
        assert!(
            self.body["error"]["message"].is_string(),
            "message in {:?}",
            self.body
        );
        let keys: Vec<_> = self.body["error"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(keys, vec!["code".to_string(), "message".to_string()]);
    }
}

impl TestCluster {
    /// Sends a request with optional body bytes, content type and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.bytes().await.expect("body read").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, None, headers).await
    }

    pub async fn put_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send(
            Method::PUT,
            path,
            Some(("application/json", bytes)),
            headers,
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send(Method::POST, path, Some(("application/json", bytes)), &[])
            .await
    }

    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send(Method::PATCH, path, Some((content_type, bytes)), headers)
            .await
    }

    pub async fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::DELETE, path, None, headers).await
    }

    /// Writes `n` small documents `k0`, `k1`, … to `collection` with bulk requests.
    pub async fn bulk_puts(&self, collection: &str, n: usize) {
        let ids: Vec<usize> = (0..n).collect();
        for chunk in ids.chunks(160) {
            let ops: Vec<Value> = chunk
                .iter()
                .map(|i| serde_json::json!({"op": "put", "id": format!("k{i}"), "data": {"i": i}}))
                .collect();
            let r = self
                .post_json(
                    &format!("/v1/collections/{collection}/bulk"),
                    &serde_json::json!({ "ops": ops }),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }

    /// Stops the cluster (flushing stores).
    pub async fn stop(&mut self) {
        if let Some(c) = self.cluster.take() {
            c.shutdown().await.expect("clean shutdown");
        }
    }
}

/// Reads a counter every 3 s until two readings agree, and returns it; fails after 60 s.
/// For counters that must stop moving once a cluster is quiet (a fixed observation window
/// is the point: "nothing more happens" has no event to wait for).
pub async fn settles<F, Fut>(what: &str, mut read: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = read().await;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let now = read().await;
        if now == last {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never settles: {last} -> {now}"
        );
        last = now;
    }
}

/// A DC's per-shard digests from its replicator admin API (`http://host:port`), retried
/// while a node does not answer (restarting, or being rebuilt).
pub async fn digests(http: &reqwest::Client, admin: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answer: Value = match http.get(format!("{admin}/admin/digests")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if answer["shards"].is_array() {
            return answer["shards"].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{admin}: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Records (documents and tombstones) a DC holds, from its digests.
pub fn records(digests: &Value) -> u64 {
    digests
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["records"].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until two DCs' per-shard digests are equal.
pub async fn converged(http: &reqwest::Client, a: &str, b: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if digests(http, a).await == digests(http, b).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the DCs never converged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The Prometheus text of a process's `/metrics` (a replicator admin API or a gateway:
/// `http://host:port`).
pub async fn metrics(http: &reqwest::Client, admin: &str) -> String {
    http.get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text")
}
