//! Liveness, readiness, metrics (no credentials needed) and the cluster view.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::RequestCtx;

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

/// `GET /v1/cluster`: DCs, nodes, health and shard ownership.
pub async fn cluster(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
) -> Result<Response, ApiError> {
    Ok(Json(s.ops.cluster(ctx).await?).into_response())
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
