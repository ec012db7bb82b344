//! Drivers: one client connection that performs the YCSB operations over one protocol. A
//! [`Connector`] makes one driver per worker, so workers never share a connection.

pub mod etcd;
pub mod graphql;
pub mod grpc;
pub(crate) mod http;
pub mod postgres;
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
    /// etcd's native gRPC KV API (a comparison peer).
    Etcd,
    /// PostgreSQL's wire protocol, a `jsonb` table (a comparison peer).
    Postgres,
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
            Protocol::Postgres => "postgres",
        }
    }
}

/// The connector of `protocol` for the server at `target` (a base URL such as
/// `http://127.0.0.1:8080`, or a connection URL for PostgreSQL); AerolithDB protocols use
/// `collection`, PostgreSQL uses it as the table's name.
pub fn connector(protocol: Protocol, target: &str, collection: &str) -> Arc<dyn Connector> {
    let target = target.trim_end_matches('/').to_string();
    let collection = collection.to_string();
    match protocol {
        Protocol::Rest => Arc::new(rest::RestConnector { target, collection }),
        Protocol::Grpc => Arc::new(grpc::GrpcConnector { target, collection }),
        Protocol::Ws => Arc::new(ws::WsConnector { target, collection }),
        Protocol::Graphql => Arc::new(graphql::GraphqlConnector { target, collection }),
        Protocol::Etcd => Arc::new(etcd::EtcdConnector { target }),
        Protocol::Postgres => Arc::new(postgres::PostgresConnector {
            target,
            table: collection,
        }),
    }
}

/// How long one request may take before it counts as a `timeout` error: long enough that
/// a slow answer is measured rather than dropped.
pub(crate) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The filter of a scan from `start` on, in AerolithDB's query language.
pub(crate) fn scan_filter(start: &str) -> serde_json::Value {
    serde_json::json!({"_id": {"$gte": start}})
}
