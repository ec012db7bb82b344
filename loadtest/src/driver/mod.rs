//! Drivers: one client connection that performs the YCSB operations over one protocol. A
//! [`Connector`] makes one driver per worker, so workers never share a connection.

pub mod etcd;
pub mod graphql;
pub mod grpc;
pub mod rest;
pub mod ws;

use std::sync::Arc;

use futures::future::BoxFuture;

/// Why an operation failed: API.md's error code (or the transport's), and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// `not_found`, `unavailable`, `http_502`, `transport`, ...
    pub code: String,
    /// What the server or the transport said.
    pub message: String,
}

impl OpError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> OpError {
        OpError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A failure to reach the server or to read its answer.
    pub fn transport(e: impl std::fmt::Display) -> OpError {
        OpError::new("transport", e.to_string())
    }
}

/// An operation's outcome.
pub type OpResult = Result<(), OpError>;

/// One client connection performing YCSB operations on records (JSON objects, as text).
pub trait Driver: Send + Sync {
    /// Reads one record; a missing one is `not_found`.
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult>;
    /// Writes a whole record over an existing one.
    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult>;
    /// Writes a new record.
    fn insert<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        self.update(key, record)
    }
    /// Reads up to `count` records in key order, from `start` on.
    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult>;
    /// Inserts many records (the load phase); protocols with a bulk call use it.
    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            for (key, record) in records {
                self.insert(key, record).await?;
            }
            Ok(())
        })
    }
}

/// Makes drivers for one target.
pub trait Connector: Send + Sync {
    /// Prepares the target once before a phase (creates the collection, say).
    fn prepare(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Opens one driver (one connection).
    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>>;
    /// The largest batch `insert_batch` takes in one request.
    fn max_batch(&self) -> usize {
        1
    }
}

/// The protocols the harness speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// AerolithDB's REST API.
    Rest,
    /// AerolithDB's gRPC API.
    Grpc,
    /// AerolithDB's WebSocket API.
    Ws,
    /// AerolithDB's GraphQL API.
    Graphql,
    /// etcd's HTTP/JSON v3 API (the comparison peer).
    Etcd,
}

impl Protocol {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
            Protocol::Ws => "ws",
            Protocol::Graphql => "graphql",
            Protocol::Etcd => "etcd",
        }
    }
}

/// The connector of `protocol` for the server at `target` (a base URL such as
/// `http://127.0.0.1:8080`); AerolithDB protocols use `collection`.
pub fn connector(protocol: Protocol, target: &str, collection: &str) -> Arc<dyn Connector> {
    let target = target.trim_end_matches('/').to_string();
    let collection = collection.to_string();
    match protocol {
        Protocol::Rest => Arc::new(rest::RestConnector { target, collection }),
        Protocol::Grpc => Arc::new(grpc::GrpcConnector { target, collection }),
        Protocol::Ws => Arc::new(ws::WsConnector { target, collection }),
        Protocol::Graphql => Arc::new(graphql::GraphqlConnector { target, collection }),
        Protocol::Etcd => Arc::new(etcd::EtcdConnector { target }),
    }
}

/// A reqwest client for one worker: one connection, a generous per-request timeout (a
/// slow answer is measured, a lost one becomes a `timeout` error).
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

/// The error of a failed HTTP request.
pub(crate) fn request_error(e: reqwest::Error) -> OpError {
    if e.is_timeout() {
        OpError::new("timeout", e.to_string())
    } else {
        OpError::transport(e)
    }
}

/// Sends a request and reads the whole answer, whatever its status.
pub(crate) async fn exchange(
    req: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, bytes::Bytes), OpError> {
    let resp = req.send().await.map_err(request_error)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(request_error)?;
    Ok((status, body))
}

/// Sends a request and reads the whole answer; a status other than success is an error.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<bytes::Bytes, OpError> {
    let (status, body) = exchange(req).await?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(status_error(status, &body))
    }
}

/// The error of an HTTP answer that is not a success: API.md's `error.code` when the body
/// has one, else `http_<status>`.
pub(crate) fn status_error(status: reqwest::StatusCode, body: &[u8]) -> OpError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    OpError::new(code, message)
}

/// The filter of a scan from `start` on, in AerolithDB's query language.
pub(crate) fn scan_filter(start: &str) -> serde_json::Value {
    serde_json::json!({"_id": {"$gte": start}})
}
