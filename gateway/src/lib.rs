//! AerolithDB gateway: stateless; speaks the public protocols to clients and the internal
//! QUIC RPC to storage nodes. Protocol adapters (`rest`, `ws`, `graphql`, `grpc`) only parse, call `ops` and
//! render.

pub mod admission;
pub mod app;
pub mod caps;
pub mod cli;
pub mod concern;
pub mod conn;
pub mod console;
pub mod deletion_floor;
pub mod graphql;
pub mod grpc;
pub mod health;
pub mod http;
pub mod ops;
pub mod rest;
pub mod router;
pub mod server;
pub mod unsettled;
pub mod ws;

pub use server::{Gateway, GatewayOptions};
