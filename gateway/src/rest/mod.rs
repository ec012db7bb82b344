//! The REST adapter: routes of API.md, each a thin handler that parses, calls `ops` and
//! renders. Deadlines and metrics are middleware layers.

mod collections;
mod documents;
pub mod error;
pub mod extract;
mod health;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::track;
use crate::ops::Ops;

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The operation layer.
    pub ops: Ops,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
}

/// The REST router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/collections", get(collections::list))
        .route(
            "/v1/collections/{c}",
            get(collections::get)
                .put(collections::put)
                .delete(collections::delete),
        )
        .route(
            "/v1/collections/{c}/docs",
            get(documents::list).post(documents::create),
        )
        .route(
            "/v1/collections/{c}/docs/{id}",
            get(documents::get)
                .put(documents::put)
                .patch(documents::patch)
                .delete(documents::delete),
        )
        .route("/v1/collections/{c}/bulk", post(documents::bulk))
        .route("/v1/cluster", get(health::cluster))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(extract::deadline))
        .layer(axum::middleware::from_fn(track))
        .with_state(state)
}
