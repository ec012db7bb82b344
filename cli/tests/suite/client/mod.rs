//! The Rust client crate (`aerolith-client`) over the wire against `aerolith dev` and
//! clusters of processes: every operation, sessions across DCs, a retried write applied
//! once, failover between gateways, and a change feed that survives a gateway restart.

mod failover;
mod operations;
mod retries;
mod session;
