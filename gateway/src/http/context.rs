//! A request's context from its headers (deadline, session, write concern, idempotency
//! key), the deadline middleware that sets it, and the session header on every answer.

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use aerolith_common::Error;

use super::error::ApiError;
use crate::admission::Who;
use crate::ops::{Ctx, DEFAULT_TIMEOUT, MAX_TIMEOUT, Session, WriteConcern};

/// The header that sets a request's deadline in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-aerolith-timeout-ms";
/// The header that carries a session token, both ways.
pub const SESSION_HEADER: &str = "x-aerolith-session";
/// The header that sets a write's concern (`local` or `all`).
pub const WRITE_CONCERN_HEADER: &str = "x-aerolith-write-concern";

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

/// A header's value, trimmed; an unreadable one is `invalid_argument`.
pub(crate) fn header_str(
    headers: &HeaderMap,
    name: axum::http::HeaderName,
) -> Result<Option<&str>, Error> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| Error::invalid(format!("unreadable {name} header")))
        })
        .transpose()
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

/// Middleware: gives the request its context from its headers and its admitted caller,
/// answers `deadline_exceeded` when the deadline passes, and hands the session token back
/// on every answer. (GraphQL's routes go without it: they answer their own deadline
/// errors, in GraphQL's shape.)
pub async fn deadline(mut req: Request, next: Next) -> Response {
    let who = req.extensions().get::<Who>().cloned();
    let ctx = match request_ctx(req.headers()) {
        Ok(c) => c.by(who),
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
