//! The integration suite: the product's over-the-wire tests in one binary (one link
//! instead of one per file), grouped by concern, on one harness (`support`) and one set of
//! protocol clients (`protocols`). Tests that start a cluster take turns where they must
//! (`support::TURN`); the fault-injection run keeps a binary of its own (`tests/faults.rs`),
//! as it needs the machine to itself for its timings to mean anything.

mod protocols;
mod support;

mod api;
mod client;
mod failover;
mod replication;
mod security;
mod storage;
mod tools;
mod topology;
