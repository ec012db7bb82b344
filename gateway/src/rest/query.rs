//! REST handler for `POST /v1/collections/{c}/query`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use aerolith_common::json::{parse_value, type_name};
use aerolith_common::{Error, Result};

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, PathParams, RequestCtx};
use crate::ops::{DEFAULT_LIMIT, MAX_LIMIT, QueryInput};

/// Nesting accepted in a query body (a 64-deep value under a filter operator).
const QUERY_DEPTH: usize = 80;

/// The fields a query body may have.
const FIELDS: [&str; 5] = ["filter", "sort", "limit", "cursor", "projection"];

/// Parses a query body; an empty body is the empty query (everything, in id order).
pub fn parse_query(body: &[u8]) -> Result<QueryInput> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(QueryInput {
            limit: DEFAULT_LIMIT,
            ..QueryInput::default()
        });
    }
    parse_query_value(parse_value(body, QUERY_DEPTH)?)
}

/// Reads a query from a parsed JSON value (the REST body, or a WebSocket `query` frame).
pub fn parse_query_value(v: Value) -> Result<QueryInput> {
    let Value::Object(mut obj) = v else {
        return Err(Error::invalid("a query body must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "unknown query field \"{k}\" (expected one of {})",
            FIELDS.join(", ")
        )));
    }
    // `null` means absent, as with MongoDB drivers.
    let mut take = |k: &str| obj.remove(k).filter(|v| !v.is_null());
    let limit = match take("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            _ => {
                return Err(Error::invalid(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, got {v}"
                )));
            }
        },
    };
    let cursor = match take("cursor") {
        None => None,
        Some(Value::String(c)) => Some(c),
        Some(other) => {
            return Err(Error::invalid(format!(
                "cursor must be a string or null, not {}",
                type_name(&other)
            )));
        }
    };
    Ok(QueryInput {
        filter: take("filter"),
        sort: take("sort"),
        limit,
        cursor,
        projection: take("projection"),
    })
}

/// `POST /v1/collections/{c}/query`: one page of matching documents.
pub async fn query(
    State(s): State<AppState>,
    RequestCtx(ctx): RequestCtx,
    PathParams(c): PathParams<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let input = parse_query(&body)?;
    let page = s.ops.query(ctx, &c, &input).await?;
    Ok(Json(page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: &str) -> Result<QueryInput> {
        parse_query(v.as_bytes())
    }

    #[test]
    fn fields_defaults_and_nulls() {
        let q = parse(r#"{"filter": {"a": 1}, "sort": [{"field": "a"}], "limit": 5, "cursor": "x", "projection": ["a"]}"#)
            .expect("valid");
        assert_eq!(q.filter, Some(json!({"a": 1})));
        assert_eq!(q.limit, 5);
        assert_eq!(q.cursor.as_deref(), Some("x"));
        let q = parse(r#"{"filter": null, "limit": null, "cursor": null}"#).expect("valid");
        assert_eq!(q.filter, None);
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(parse("").expect("valid").limit, DEFAULT_LIMIT);
    }

    #[test]
    fn rejects_bad_bodies() {
        for bad in [
            "[]",
            r#"{"filtre": {}}"#,
            r#"{"limit": 0}"#,
            r#"{"limit": 1001}"#,
            r#"{"limit": 2.5}"#,
            r#"{"limit": "10"}"#,
            r#"{"cursor": 5}"#,
            r#"{"a": 1, "a": 2}"#,
            "{",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.code, aerolith_common::ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
