//! `aerolith-client`: a Rust client for AerolithDB's REST API.
//!
//! Typed collections and documents, queries whose cursors are followed as async streams,
//! bulk writes, change feeds that resume after a disconnect, a session that carries
//! `X-Aerolith-Session` across calls, an idempotency key per logical write reused on its
//! retries, write concern and deadlines per call, failover between several gateways, and
//! the server's error codes as one enum. See `docs/CLIENTS.md` ("Rust").

mod admin;
mod bulk;
mod client;
mod collections;
mod documents;
mod endpoints;
mod error;
mod feed;
mod query;
mod session;

pub use admin::AdminClient;
pub use bulk::{BulkError, BulkOp, BulkResult};
pub use client::{CallOptions, Client, ClientBuilder, DEFAULT_TIMEOUT, MAX_TIMEOUT, WriteConcern};
pub use collections::{Collection, CollectionInfo, ConflictStrategy};
pub use documents::{ConflictVersion, Document, Patch, Written};
pub use endpoints::Endpoints;
pub use error::{Error, ErrorCode, Result};
pub use feed::{Change, ChangeFeed, ChangeOp};
pub use query::{Page, Query};
pub use reqwest::Method;
pub use session::Session;

#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "grpc")]
pub use grpc::GrpcClient;
