//! REST handler for the polled change feed: `GET /v1/collections/{c}/changes?since=&limit=`.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use aerolith_common::Error;

use super::extract::PathParams;
use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;
use crate::ops::parse_limit;

/// Query string of a poll.
#[derive(Debug, Deserialize)]
pub struct PollParams {
    since: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/collections/{c}/changes`: changes after `since`, and the token to poll with next.
pub async fn poll(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    params: Result<Query<PollParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| Error::invalid(e.body_text()))?;
    let limit = parse_limit(params.limit.as_deref())?;
    let since = params.since.as_deref().filter(|t| !t.is_empty());
    let page = s.ops.changes(ctx, &c, since, limit).await?;
    Ok(Json(page).into_response())
}
