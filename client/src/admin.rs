//! The replicator admin API (API.md "Replicator admin"): status, conflicts, peers, failover,
//! nodes and shard moves, as JSON.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::http_client;
use crate::endpoints::base_url;
use crate::error::{Error, Result};

/// A client of one replicator's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// A client of the admin API at `url`, with an optional bearer token and CA PEM.
    pub fn new(url: &str, token: Option<String>, ca_pem: Option<&[u8]>) -> Result<AdminClient> {
        Ok(AdminClient {
            http: http_client(ca_pem)?,
            base: base_url(url)?,
            token,
        })
    }

    /// The admin API's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// A GET of `path` (from `/admin/...`).
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// A POST of a JSON body to `path`.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Replication state per peer DC.
    pub async fn status(&self) -> Result<Value> {
        self.get("/admin/status").await
    }

    /// The DC's storage nodes and shard map.
    pub async fn nodes(&self) -> Result<Value> {
        self.get("/admin/nodes").await
    }

    /// The DC's shard moves.
    pub async fn moves(&self) -> Result<Value> {
        self.get("/admin/moves").await
    }

    /// Plans the moves that balance the DC's nodes.
    pub async fn rebalance(&self) -> Result<Value> {
        self.post("/admin/rebalance", b"{}".to_vec()).await
    }

    /// Marks DC `dc` out of (`down: true`) or back into service.
    pub async fn failover(&self, dc: &str, down: bool) -> Result<Value> {
        let body = json!({"dc": dc, "state": if down { "down" } else { "up" }});
        self.post("/admin/failover", body.to_string().into_bytes())
            .await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            // Longer than the longest server deadline (60 s), so the server's answer wins.
            .timeout(std::time::Duration::from_secs(75));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(bytes) = body {
            req = req.header("content-type", "application/json").body(bytes);
        }
        let resp = req.send().await.map_err(|e| Error::Connect {
            url: url.clone(),
            message: crate::client::transport_message(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::Transport {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(Error::from_body(url, status.as_u16(), &body))
    }
}
