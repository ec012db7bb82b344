//! Request parsing shared by the REST handlers: path parameters, bodies with content-type
//! and size checks, preconditions and the request deadline.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, IF_MATCH, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use aerolith_common::json::Limits;
use aerolith_common::patch::PatchKind;
use aerolith_common::{Error, ErrorCode};

use super::AppState;
use super::error::ApiError;
use crate::ops::{Ctx, DEFAULT_TIMEOUT, MAX_TIMEOUT, Precondition, Session, WriteConcern, unquote};

/// The header that sets a request's deadline in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-aerolith-timeout-ms";
/// The header that carries a session token, both ways.
pub const SESSION_HEADER: &str = "x-aerolith-session";
/// The header that sets a write's concern (`local` or `all`).
pub const WRITE_CONCERN_HEADER: &str = "x-aerolith-write-concern";

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

/// The request context set by [`deadline`].
pub struct RequestCtx(pub Ctx);

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ctx = parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .unwrap_or_else(|| Ctx::new(DEFAULT_TIMEOUT));
        Ok(RequestCtx(ctx))
    }
}

fn media_type(headers: &HeaderMap) -> Result<Option<String>, Error> {
    match headers.get(CONTENT_TYPE) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| Error::invalid("unreadable Content-Type"))?;
            let essence = s
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            Ok(Some(essence))
        }
    }
}

/// Past this many bytes an oversized body is no longer drained: the connection is dropped.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

/// Reads a body of at most `limit` bytes. An oversized body is still read (and discarded) up
/// to [`DRAIN_CAP`], so the client, which is still sending, receives the 413 instead of a
/// connection reset.
async fn read_body(req: Request, limit: usize) -> Result<Bytes, Error> {
    use http_body_util::BodyExt;
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP as u64) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::invalid(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_CAP {
                break;
            }
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// A JSON request body (`application/json`, or no Content-Type), within the size limit.
pub struct JsonBody(pub Bytes);

/// A bulk request body: JSON like [`JsonBody`], with the larger bulk size limit.
pub struct BulkBody(pub Bytes);

/// Largest bulk request body: keeps every per-node bulk RPC within the internal frame cap.
pub const BULK_MAX_BYTES: usize = 16 * 1024 * 1024;

async fn json_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    match media_type(req.headers())?.as_deref() {
        None | Some("application/json") => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "Content-Type must be application/json, not {other}"
            ))
            .into());
        }
    }
    Ok(read_body(req, limit).await?)
}

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

/// A GraphQL request body: JSON like [`JsonBody`], with room for the query beside a
/// document of the largest size.
pub struct GraphqlBody(pub Bytes);

/// Bytes a GraphQL body may hold beyond the document size limit.
const GRAPHQL_EXTRA_BYTES: usize = 64 * 1024;

/// The largest GraphQL request (a body or a WebSocket message): room for a document's
/// data and a patch of it, plus the query text.
pub fn graphql_max_bytes(limits: Limits) -> usize {
    limits.max_bytes * 2 + GRAPHQL_EXTRA_BYTES
}

impl FromRequest<AppState> for GraphqlBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = graphql_max_bytes(state.ops.limits());
        Ok(GraphqlBody(json_body(req, limit).await?))
    }
}

/// A PATCH body and its format, chosen by Content-Type.
pub struct PatchBody(pub PatchKind, pub Bytes);

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
        Ok(PatchBody(
            kind,
            read_body(req, state.ops.limits().max_bytes).await?,
        ))
    }
}

fn header_str(headers: &HeaderMap, name: axum::http::HeaderName) -> Result<Option<&str>, Error> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| Error::invalid(format!("unreadable {name} header")))
        })
        .transpose()
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

/// The deadline a request asks for with `X-Aerolith-Timeout-Ms` (1 to 60000), or the default.
pub fn request_timeout(headers: &HeaderMap) -> Result<std::time::Duration, Error> {
    match header_str(headers, axum::http::HeaderName::from_static(TIMEOUT_HEADER))? {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= 1 && ms <= MAX_TIMEOUT.as_millis() as u64 => {
                Ok(std::time::Duration::from_millis(ms))
            }
            _ => Err(Error::invalid(format!(
                "{TIMEOUT_HEADER} must be an integer from 1 to {}",
                MAX_TIMEOUT.as_millis()
            ))),
        },
    }
}

/// The context a request's headers ask for: deadline (`X-Aerolith-Timeout-Ms`), session
/// (`X-Aerolith-Session`), write concern (`X-Aerolith-Write-Concern`) and idempotency key
/// (`Idempotency-Key`).
pub fn request_ctx(headers: &HeaderMap) -> Result<Ctx, Error> {
    let timeout = request_timeout(headers)?;
    let session = Session::parse(header_str(
        headers,
        axum::http::HeaderName::from_static(SESSION_HEADER),
    )?)?;
    let concern = WriteConcern::parse(header_str(
        headers,
        axum::http::HeaderName::from_static(WRITE_CONCERN_HEADER),
    )?)?;
    let key = header_str(
        headers,
        axum::http::HeaderName::from_static("idempotency-key"),
    )?;
    Ctx::new(timeout)
        .with(std::sync::Arc::new(session), concern)
        .with_idempotency_key(key)
}

/// Sets the session header of `resp` to `session`'s token.
pub fn with_session(mut resp: Response, session: &Session) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(&session.token()) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    resp
}

/// Middleware: gives the request its context from its headers, answers `deadline_exceeded`
/// when the deadline passes, and hands the session token back on every answer. GraphQL
/// routes answer their own deadline errors, in GraphQL's shape.
pub async fn deadline(mut req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/graphql" | "/graphql/ws") {
        return next.run(req).await;
    }
    let ctx = match request_ctx(req.headers()) {
        Ok(c) => c,
        Err(e) => return with_session(ApiError::from(e).into_response(), &Session::default()),
    };
    let session = ctx.session.clone();
    let timeout = ctx.remaining().unwrap_or_default();
    req.extensions_mut().insert(ctx);
    let resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::from(Error::deadline("request deadline exceeded")).into_response(),
    };
    with_session(resp, &session)
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
