//! Request parsing shared by the REST handlers: path parameters, bodies with content-type
//! and size checks, and preconditions.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::HeaderMap;
use axum::http::header::{IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use aerolith_common::Error;
use aerolith_common::json::{parse_object, parse_value};
use aerolith_common::patch::PatchKind;

use crate::http::AppState;
use crate::http::body::{json_body, media_type, read_body};
use crate::http::context::header_str;
use crate::http::error::ApiError;
use crate::ops::{BULK_MAX_BYTES, Data, Precondition, unquote};

/// Path parameters, with malformed ones answered as `invalid_argument`.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(|e| Error::invalid(e.body_text()).into())
    }
}

/// A JSON request body (`application/json`, or no Content-Type), within the size limit.
pub struct JsonBody(pub Bytes);

/// A bulk request body: JSON like [`JsonBody`], with the larger bulk size limit.
pub struct BulkBody(pub Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        Ok(JsonBody(
            json_body(req, state.ops.limits().max_bytes).await?,
        ))
    }
}

impl FromRequest<AppState> for BulkBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        Ok(BulkBody(json_body(req, BULK_MAX_BYTES).await?))
    }
}

/// A document body: a JSON object, within the size and depth limits.
pub struct DataBody(pub Data);

impl FromRequest<AppState> for DataBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = state.ops.limits();
        let bytes = json_body(req, limits.max_bytes).await?;
        Ok(DataBody(parse_object(&bytes, limits)?))
    }
}

/// A PATCH body, parsed, and its format, chosen by Content-Type.
pub struct PatchBody(pub PatchKind, pub Value);

impl FromRequest<AppState> for PatchBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let kind = match media_type(req.headers())?.as_deref() {
            None | Some("application/merge-patch+json") | Some("application/json") => {
                PatchKind::Merge
            }
            Some("application/json-patch+json") => PatchKind::JsonPatch,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "Content-Type must be application/merge-patch+json or application/json-patch+json, not {other}"
                ))
                .into());
            }
        };
        let limits = state.ops.limits();
        let bytes = read_body(req, limits.max_bytes).await?;
        Ok(PatchBody(kind, parse_value(&bytes, limits.max_depth + 2)?))
    }
}

/// Reads `If-Match` and `If-None-Match` for a write.
pub fn write_precondition(headers: &HeaderMap) -> Result<Precondition, Error> {
    Precondition::from_tags(
        header_str(headers, IF_MATCH)?,
        header_str(headers, IF_NONE_MATCH)?,
    )
}

/// Whether a GET's `If-None-Match` matches the current version (answer 304).
pub fn not_modified(headers: &HeaderMap, version: &str) -> Result<bool, Error> {
    Ok(match header_str(headers, IF_NONE_MATCH)? {
        None => false,
        Some("*") => true,
        Some(list) => list.split(',').any(|t| unquote(t) == version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preconditions_from_headers() {
        let p = write_precondition(&headers(&[("if-match", "\"dc1@1:2\"")])).unwrap();
        assert_eq!(p.if_match.as_deref(), Some("dc1@1:2"));
        let p = write_precondition(&headers(&[("if-match", "dc1@1:2")])).unwrap();
        assert_eq!(p.if_match.as_deref(), Some("dc1@1:2"));
        assert!(
            write_precondition(&headers(&[("if-match", "*")]))
                .unwrap()
                .if_match_any
        );
        assert!(
            write_precondition(&headers(&[("if-none-match", "*")]))
                .unwrap()
                .if_none_match_any
        );
        assert!(write_precondition(&headers(&[("if-none-match", "\"x\"")])).is_err());
        let p = write_precondition(&headers(&[("if-match", "W/\"dc1@1:2~1f\"")])).unwrap();
        assert_eq!(p.if_match.as_deref(), Some("dc1@1:2~1f"));
        for bad in [
            "garbage",
            "\"dc1@1:2",
            "W/dc1@1:2",
            "dc1@1:2.",
            "dc1@x:2",
            "dc1@1:2~",
            "D@1:2",
        ] {
            assert!(
                write_precondition(&headers(&[("if-match", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(
            not_modified(
                &headers(&[("if-none-match", "\"a\", \"dc1@1:2\"")]),
                "dc1@1:2"
            )
            .unwrap()
        );
        assert!(!not_modified(&headers(&[("if-none-match", "\"a\"")]), "dc1@1:2").unwrap());
    }
}
