//! `aerolith-client`: a Rust client for AerolithDB's REST and WebSocket APIs.
//!
//! Typed collections and documents, queries whose cursors are followed as async streams,
//! bulk writes, change streams (WebSocket) and polled feeds that resume after a disconnect,
//! a session that carries `X-Aerolith-Session` across calls, an idempotency key per logical write reused on its
//! retries, write concern and deadlines per call, failover between several gateways, and
//! the server's error codes as one enum. See `docs/CLIENTS.md` ("Rust").
//!
//! The README's first example (kept compiling here):
//!
//! ```no_run
//! use aerolith_client::{CallOptions, Client, Query};
//! use futures::TryStreamExt;
//! use serde_json::{Value, json};
//!
//! # async fn run() -> aerolith_client::Result<()> {
//! let client = Client::builder()
//!     .endpoint("http://127.0.0.1:8080")
//!     .endpoint("http://127.0.0.1:8081") // failover
//!     .build()?;
//! client.create_collection("users", None).await?;
//! let users = client.collection::<Value>("users");
//! let doc = users.put("u1", &json!({"name": "Ada", "age": 36})).await?.document;
//! let only_if_unchanged = CallOptions::default().if_match(doc.version);
//! users.put_with("u1", &json!({"name": "Ada", "age": 37}), &only_if_unchanged).await?;
//! let adults: Vec<_> = users
//!     .query(Query::filter(json!({"age": {"$gt": 30}})))
//!     .try_collect()
//!     .await?;
//! println!("{} found", adults.len());
//! # Ok(())
//! # }
//! ```

mod admin;
mod bulk;
mod client;
mod collections;
mod documents;
mod endpoints;
mod error;
mod feed;
mod query;
mod resume;
mod session;
mod stream;
mod ws;

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
pub use stream::{ChangeStream, IDLE_TIMEOUT};

// docs/CLIENTS.md's marked Rust blocks as doc tests: `scripts/check-docs.py` writes them,
// their ports moved to its cluster's, to the file AEROLITH_DOCS_RUST names and runs them with
// `--cfg aerolith_docs`. A plain `cargo test` leaves them out: they need a running cluster.
#[cfg(all(doctest, aerolith_docs))]
#[doc = include_str!(env!("AEROLITH_DOCS_RUST"))]
mod docs_examples {}

#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "grpc")]
pub use grpc::{GrpcChangeStream, GrpcClient};
