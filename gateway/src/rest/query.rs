//! REST handler for `POST /v1/collections/{c}/query`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::extract::{JsonBody, PathParams};
use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;
use crate::ops::QueryInput;

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
