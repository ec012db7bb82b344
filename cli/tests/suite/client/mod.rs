//! The Rust client crate (`aerolith-client`) over the wire against `aerolith dev` and
//! clusters of processes: every operation, sessions across DCs, a retried write applied
//! once, failover between gateways, change feeds and streams (one surviving a gateway
//! restart), and typed data that does not fit.

mod failover;
mod grpc;
mod operations;
mod retries;
mod session;
mod streams;
