//! `GET /v1/cluster`: DCs, nodes, health and shard ownership as this gateway sees them.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;

/// `GET /v1/cluster`.
pub async fn cluster(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
) -> Result<Response, ApiError> {
    Ok(Json(s.ops.cluster(ctx).await?).into_response())
}
