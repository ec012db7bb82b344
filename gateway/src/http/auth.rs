//! Admission on the HTTP port as middleware: the request's token (the `Authorization`
//! header, or `access_token` where the route allows it) becomes a
//! [`Caller`](aerolith_common::auth::Caller) in the request's extensions, and a caller
//! below the route's role ([`Gate`]), or over its rate, is refused before the handler
//! runs. GraphQL and WebSocket frames check per operation.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use aerolith_common::auth::{Role, bearer};
use aerolith_common::{Error, ErrorCode};

use crate::admission::Admission;

/// What one route asks of its callers (the middleware's state).
#[derive(Clone)]
pub struct Gate {
    /// The callers' tokens and rates.
    pub admission: Arc<Admission>,
    /// The least role the route needs.
    pub role: Role,
    /// Whether the token may come as `?access_token=`.
    pub token_in_query: bool,
    /// How a refusal is answered.
    pub refuse: fn(Error) -> Response,
}

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
fn presented(req: &Request, token_in_query: bool) -> Option<String> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        return h.to_str().ok().and_then(bearer).map(str::to_string);
    }
    if token_in_query {
        return query_token(req);
    }
    None
}

/// An authentication failure in the shape of the route's protocol; 401s say which scheme to
/// use (RFC 6750).
fn refuse(gate: &Gate, e: Error) -> Response {
    let mut resp = (gate.refuse)(e.clone());
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

/// Middleware: authenticates the request, checks the route's role (API.md
/// "Authentication") and charges the caller's rate; the caller goes into the request's
/// extensions.
pub async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let token = presented(&req, gate.token_in_query);
    let caller = match gate.admission.admit(token.as_deref(), gate.role) {
        Ok(c) => c,
        Err(e) => return refuse(&gate, e),
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
        assert_eq!(presented(&req, true).as_deref(), Some("abc="));
        assert_eq!(
            presented(&req, false),
            None,
            "only where the route allows it"
        );
    }
}
