//! The operation layer: every protocol adapter calls these and only these, so the protocols
//! agree by construction. Inputs are validated here, once.

mod audit;
mod built_indexes;
mod bulk;
mod changes;
mod cluster;
mod collections;
pub mod cursor;
mod documents;
mod indexes;
pub mod query;
mod session;
mod token;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aerolith_common::idempotency::IdempotencyKey;
use aerolith_common::json::Limits;
use aerolith_common::{Error, Result};

use crate::admission::Who;
use crate::router::Router;

pub use bulk::{BULK_MAX_BYTES, BadOp, BulkError, BulkInput, BulkItem, BulkOp, MAX_BULK_OPS};
pub use changes::{ChangePage, ChangeView, FeedStart, Fetched, assemble};
pub use cluster::{ClusterView, DcView, NodeView};
pub use collections::CollectionInfo;
pub use documents::{Data, Page, Precondition, is_version, unquote};
pub use indexes::{IndexFieldInfo, IndexInfo, index_field};
pub use query::QueryInput;
pub use session::{Session, WriteConcern};
pub use token::Positions;
pub use watch::{Watch, WatchItem};

/// Default request deadline (API.md: REST default 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest deadline a client may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;
/// A page stops after this many bytes of documents.
pub const PAGE_BYTES: u64 = 16 * 1024 * 1024;

/// Per-request context: the deadline every internal call inherits, the client's session,
/// its write concern, its idempotency key and who is asking.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// When the request runs out of time.
    pub deadline: Instant,
    /// The session the request presented, growing with what it reads and writes.
    pub session: Arc<Session>,
    /// How widely a write must be applied before it is acknowledged.
    pub write_concern: WriteConcern,
    /// The write's `Idempotency-Key`, if the client sent one.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The admitted caller (for audit lines and subscription caps); `None` for the
    /// gateway's own calls (readiness).
    pub who: Option<Who>,
}

impl Ctx {
    /// A context with `timeout` from now, a new session and write concern `local`.
    pub fn new(timeout: Duration) -> Ctx {
        Ctx {
            deadline: Instant::now() + timeout,
            session: Arc::default(),
            write_concern: WriteConcern::Local,
            idempotency_key: None,
            who: None,
        }
    }

    /// The same context on behalf of `who`.
    pub fn by(self, who: Option<Who>) -> Ctx {
        Ctx { who, ..self }
    }

    /// The same context with the client's idempotency key (validated), if it sent one.
    pub fn with_idempotency_key(self, key: Option<&str>) -> Result<Ctx> {
        Ok(Ctx {
            idempotency_key: key.map(IdempotencyKey::parse).transpose()?,
            ..self
        })
    }

    /// The same context within `session`, with `write_concern`.
    pub fn with(self, session: Arc<Session>, write_concern: WriteConcern) -> Ctx {
        Ctx {
            session,
            write_concern,
            ..self
        }
    }

    /// Time left, failing with `deadline_exceeded` once none is.
    pub fn remaining(&self) -> Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(Error::deadline("request deadline exceeded"))
        } else {
            Ok(left)
        }
    }
}

/// The operations of the public API over one DC's storage nodes.
#[derive(Clone)]
pub struct Ops {
    router: Arc<Router>,
    limits: Limits,
    /// Secondary indexes known built on every node of the DC.
    built: Arc<built_indexes::BuiltIndexes>,
}

impl Ops {
    /// Operations routed by `router`, with body `limits`.
    pub fn new(router: Arc<Router>, limits: Limits) -> Ops {
        Ops {
            router,
            limits,
            built: Arc::default(),
        }
    }

    /// Body limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The router (for health checks).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Readiness (API.md): every shard has an owner that answers a ping and serves its data
    /// (not a new store waiting for its seeding decision, nor one being rebuilt), the local
    /// DC's or, for the shards of a local node that is down, the next DC's.
    pub async fn ready(&self, ctx: Ctx) -> Result<()> {
        let results = self
            .router
            .scatter(|_| aerolith_common::pb::PingRequest {}, ctx.remaining()?)
            .await;
        for (_, r) in results {
            // A node that could not answer within the request's own deadline says nothing
            // about readiness: that is deadline_exceeded, as for any request.
            ctx.remaining()?;
            let pong = r.map_err(|e| {
                Error::unavailable(format!(
                    "some shards have no reachable owner: {}",
                    e.message
                ))
            })?;
            if !pong.not_serving.is_empty() {
                return Err(Error::unavailable(format!(
                    "some shards have no owner that serves them yet: {}/{}: {}",
                    pong.dc, pong.node, pong.not_serving
                )));
            }
        }
        Ok(())
    }
}

/// Parses a page-size parameter: 1 to 1000, default 100.
pub fn parse_limit(raw: Option<&str>) -> Result<u32> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => check_limit(s.trim().parse::<i64>().ok(), &format!("{s:?}")),
    }
}

/// A JSON number's integer value when it has one: `5` and `5.0` alike (JSON Schema counts
/// both as integers, and so does `/openapi.json`'s `"type": "integer"`).
pub fn integral(v: &serde_json::Value) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact.
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < EXACT)
            .map(|f| f as i64)
    })
}

/// The one check of a page size, whatever carried it: an integer from 1 to [`MAX_LIMIT`]
/// (`shown` is what the client sent, for the message).
pub fn check_limit(n: Option<i64>, shown: &dyn std::fmt::Display) -> Result<u32> {
    match n {
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        _ => Err(Error::invalid(format!(
            "limit must be an integer from 1 to {MAX_LIMIT}, got {shown}"
        ))),
    }
}
