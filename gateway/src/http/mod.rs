//! The HTTP port's host: the state every handler shares, the route type and the layers each
//! part of the port runs through (metrics, authentication, deadline, places in flight),
//! error rendering and body reading. It knows nothing of REST, GraphQL or WebSocket: each
//! of those contributes its routes, and `crate::app` assembles them.

pub mod auth;
pub mod body;
pub mod context;
pub mod error;
pub mod in_flight;
pub mod metrics;
pub mod openapi;
pub mod probes;
pub mod route;
pub mod stack;
pub mod upgrade;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::ops::Ops;

pub use route::{Access, Route};
pub use stack::Part;

/// State shared by the handlers: one reference count per request, however many parts the
/// state has (axum clones the state into every handler call).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    /// The handlers' state over `shared`.
    pub fn new(shared: Shared) -> AppState {
        AppState(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the handlers share.
pub struct Shared {
    /// The operation layer.
    pub ops: Ops,
    /// The GraphQL schema over the same operation layer.
    pub graphql: crate::graphql::GraphqlExecutor,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// Frames a WebSocket connection may have queued before its client is a slow consumer.
    pub ws_queue_frames: usize,
    /// How often WebSocket connections are pinged (three silent intervals: dead).
    pub ws_heartbeat: std::time::Duration,
    /// Who may do what, how often.
    pub admission: std::sync::Arc<crate::admission::Admission>,
    /// Places for requests in flight, shared with the gRPC server.
    pub in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    /// The OpenAPI document of the served routes, serialised once at assembly.
    pub openapi: bytes::Bytes,
    /// The replicator admin API the web console may call from the browser.
    pub console_admin: Option<aerolith_common::origin::Origin>,
}
