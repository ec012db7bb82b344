//! AerolithDB storage node: a RocksDB store of document records and per-shard change logs,
//! served over the internal QUIC RPC. Only this crate touches RocksDB.

mod acks;
pub mod apply;
pub mod backup;
mod batch;
pub mod ceiling;
pub mod changes;
pub mod cli;
mod clock;
pub mod collections;
pub mod digest;
pub mod documents;
mod engine;
mod group;
mod idempotency;
pub mod index_build;
pub mod index_defs;
mod index_entries;
mod index_scan;
mod keys;
pub mod merge;
mod newest;
pub mod node;
mod open;
mod ownership;
pub mod query;
mod query_plan;
mod relay;
mod scan;
pub mod seed;
pub mod service;
pub mod session;
mod shard_move;
pub mod store;

pub use changes::Retention;
pub use engine::MemoryProfile;
pub use node::{NodeOptions, StorageNode};
pub use query::DEFAULT_SCAN_BUDGET;
pub use store::{Durability, NewStore, RESTORE_MARKER, Restored, Store, StoreConfig};
