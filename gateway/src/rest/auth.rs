//! Admission on the HTTP port as middleware: the request's token (the `Authorization`
//! header, or `access_token` on the WebSocket upgrades, for browsers) becomes a
//! [`Caller`](aerolith_common::auth::Caller) in the request's extensions, and a route that
//! needs more than the caller's role, or a caller over its rate, is refused before the
//! handler runs. GraphQL and WebSocket frames check per operation.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use aerolith_common::auth::{bearer, rest_role};
use aerolith_common::{Error, ErrorCode};

use super::error::ApiError;
use crate::admission::Admission;

/// The routes a browser opens with `new WebSocket(url)`, which cannot set headers.
const QUERY_TOKEN_PATHS: [&str; 2] = ["/v1/ws", "/graphql/ws"];

/// The `access_token` query parameter's value, percent-decoded.
fn query_token(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "access_token").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token a request presents.
fn presented(req: &Request) -> Option<String> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        return h.to_str().ok().and_then(bearer).map(str::to_string);
    }
    if QUERY_TOKEN_PATHS.contains(&req.uri().path()) {
        return query_token(req);
    }
    None
}

/// An authentication failure in the shape of the route's protocol: GraphQL's errors list on
/// `/graphql`, the REST error body elsewhere; 401s say which scheme to use (RFC 6750).
fn refuse(path: &str, e: Error) -> Response {
    let mut resp = if path == "/graphql" {
        crate::graphql::refusal(e.clone())
    } else {
        ApiError::from(e.clone()).into_response()
    };
    match e.code {
        ErrorCode::Unauthenticated => {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Buckets refill at least one request a second.
        ErrorCode::RateLimited => {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    resp
}

/// Middleware: authenticates the request, checks its route's role (API.md
/// "Authentication") and charges the caller's rate; the caller goes into the request's
/// extensions.
pub async fn authenticate(
    State(admission): State<Arc<Admission>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let Some(needed) = rest_role(req.method().as_str(), &path) else {
        return next.run(req).await;
    };
    let caller = match admission.admit(presented(&req).as_deref(), needed) {
        Ok(c) => c,
        Err(e) => return refuse(&path, e),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_are_percent_decoded() {
        assert_eq!(
            percent_decode("a%2Fb+c%"),
            "a/b+c%",
            "tokens never hold spaces"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let req = Request::builder()
            .uri("/v1/ws?x=1&access_token=abc%3D")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(presented(&req).as_deref(), Some("abc="));
        let rest = Request::builder()
            .uri("/v1/collections?access_token=abc")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(presented(&rest), None, "only the WebSocket routes take it");
    }
}
