//! Shared foundations of AerolithDB: domain types, the error type, topology, shard mapping
//! and the internal QUIC RPC layer.

pub mod audit;
pub mod auth;
pub mod body;
pub mod dc_state;
pub mod document;
pub mod error;
pub mod healthcheck;
pub mod hlc;
pub mod https;
pub mod idempotency;
pub mod index_def;
pub mod json;
pub mod name;
pub mod origin;
pub mod patch;
pub mod query;
pub mod refusal;
pub mod rpc;
pub mod shard;
pub mod shard_map;
pub mod signal;
pub mod strategy;
pub mod telemetry;
pub mod time;
pub mod topology;
pub mod version;

pub use aerolith_proto::internal::v1 as pb;
pub use error::{Error, ErrorCode, Result};
