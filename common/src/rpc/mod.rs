//! The internal QUIC RPC: framing, mutual TLS, the server loop and the client pool.
//! Only this module touches quinn.

mod batch;
pub mod client;
pub mod frame;
pub mod role;
pub mod server;
pub mod service;
pub mod tls;

pub use client::{RpcClient, Typed};
pub use role::PeerRole;
pub use server::{Handler, RpcServer};
pub use service::{Call, Lane, Node, Replicator, Service};
pub use tls::{DevCa, TlsMaterial};
