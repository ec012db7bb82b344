//! REST handlers for `POST /v1/collections/{c}/query` and `…/count`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, PathParams};
use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;
use crate::ops::QueryInput;
use crate::ops::query::count_filter;

/// `POST /v1/collections/{c}/query`: one page of matching documents.
pub async fn query(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let input = QueryInput::from_body(&body)?;
    let page = s.ops.query(ctx, &c, &input).await?;
    Ok(Json(page).into_response())
}

/// `POST /v1/collections/{c}/count`: how many documents match the filter.
pub async fn count(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let filter = count_filter(&body)?;
    let count = s.ops.count(ctx, &c, filter.as_ref()).await?;
    Ok(Json(serde_json::json!({ "count": count })).into_response())
}
