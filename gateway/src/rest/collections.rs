//! REST handlers for `/v1/collections`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use aerolith_common::Error;
use aerolith_common::json::parse_value;

use super::extract::{JsonBody, PathParams};
use crate::http::AppState;
use crate::http::context::RequestCtx;
use crate::http::error::ApiError;

/// `GET /v1/collections`.
pub async fn list(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
) -> Result<Response, ApiError> {
    let cols = s.ops.list_collections(ctx).await?;
    let items: Vec<Value> = cols
        .into_iter()
        .map(|c| json!({"name": c.name, "conflict_strategy": c.conflict_strategy}))
        .collect();
    Ok(Json(json!({ "collections": items })).into_response())
}

/// `GET /v1/collections/{c}`.
pub async fn get(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.ops.get_collection(ctx, &name).await?).into_response())
}

/// Reads `{"conflict_strategy": ...}` (an empty body means the defaults).
fn strategy_from_body(body: &[u8]) -> Result<Option<String>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Value::Object(map) = parse_value(body, 8)? else {
        return Err(Error::invalid("collection settings must be a JSON object"));
    };
    let mut strategy = None;
    for (k, v) in map {
        match (k.as_str(), v) {
            ("conflict_strategy", Value::String(s)) => strategy = Some(s),
            ("conflict_strategy", _) => {
                return Err(Error::invalid("conflict_strategy must be a string"));
            }
            (other, _) => {
                return Err(Error::invalid(format!(
                    "unknown collection setting {other:?}"
                )));
            }
        }
    }
    Ok(strategy)
}

/// `PUT /v1/collections/{c}`: 201 created, 200 unchanged.
pub async fn put(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let strategy = strategy_from_body(&body)?;
    let (info, created) = s
        .ops
        .put_collection(ctx, &name, strategy.as_deref())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

/// `DELETE /v1/collections/{c}`: 204.
pub async fn delete(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    s.ops.delete_collection(ctx, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
