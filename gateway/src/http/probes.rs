//! Liveness, readiness and metrics: the probes' part of the HTTP port (no credentials
//! needed, no place in flight).

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use aerolith_common::ErrorCode as E;

use super::AppState;
use super::context::RequestCtx;
use super::error::ApiError;
use super::openapi::{Method, Op, Reply};
use super::route::Route;

/// The probes' routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::Get,
            "/healthz",
            healthz,
            Op::new("healthz", "operations", "Liveness: the process is up")
                .reply(Reply::json(200, "Up", "Status")),
        )
        .open(),
        Route::new(
            Method::Get,
            "/readyz",
            readyz,
            Op::new(
                "readyz",
                "operations",
                "Readiness: every shard has a reachable owner",
            )
            .reply(Reply::json(200, "Ready", "Status"))
            .errors(&[E::Unavailable, E::Internal]),
        )
        .open(),
        Route::new(
            Method::Get,
            "/metrics",
            metrics,
            Op::new("metrics", "operations", "Prometheus metrics").reply(Reply::content(
                200,
                "Prometheus text format",
                "text/plain",
                "MetricsText",
            )),
        )
        .open(),
    ]
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: every shard's owner is reachable.
pub async fn readyz(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
) -> Result<Response, ApiError> {
    s.ops.ready(ctx).await?;
    Ok(Json(json!({"status": "ready"})).into_response())
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
