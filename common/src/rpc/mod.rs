//! The internal QUIC RPC: framing, mutual TLS, the server loop and the client pool.
//! Only this module touches quinn.

pub mod client;
pub mod frame;
pub mod server;
pub mod tls;

pub use client::RpcClient;
pub use server::{Handler, RpcServer, error_response};
pub use tls::{DevCa, TlsMaterial};
