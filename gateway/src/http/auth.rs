//! Admission on the HTTP port as middleware: the request's token (the `Authorization`
//! header, or `access_token` where the route allows it) becomes a
//! [`Who`](crate::admission::Who) in the request's extensions, and a caller below the
//! route's role ([`Gate`]), over its cap of connections or over its rate, is refused before
//! the handler runs. GraphQL and WebSocket frames check per operation.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;

use aerolith_common::auth::{Role, bearer};
use aerolith_common::refusal::after_body;
use aerolith_common::{Error, ErrorCode};

use crate::admission::Admission;
use crate::conn::ClientConn;

/// What one route asks of its callers (the middleware's state).
#[derive(Clone)]
pub struct Gate {
    /// The callers' tokens and rates.
    pub admission: Arc<Admission>,
    /// The least role the route needs.
    pub role: Role,
    /// Whether the token may come as `?access_token=`.
    pub token_in_query: bool,
    /// Whether a request without a token goes on to the handler, which reads the token
    /// from the protocol's first message (GraphQL's `connection_init`).
    pub token_later: bool,
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
/// "Authentication"), holds the connection for the caller's token (its cap of connections)
/// and charges the caller's rate; the caller goes into the request's extensions.
pub async fn authenticate(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let token = presented(&req, gate.token_in_query);
    if token.is_none() && gate.token_later && gate.admission.auth_on() {
        return next.run(req).await;
    }
    let conn = ClientConn::of(req.extensions()).cloned();
    let peer = conn.as_ref().and_then(ClientConn::peer);
    // The target is the path only (the query may hold an access token), written out only
    // for a refusal.
    let (method, path) = (req.method(), req.uri().path());
    let admitted = gate.admission.identify(
        token.as_deref(),
        gate.role,
        peer,
        format_args!("{method} {path}"),
    );
    let who = match admitted {
        Ok(who) => who,
        Err(e) => return after_body(req, refuse(&gate, e)).await,
    };
    if let Some(Err(e)) = conn.map(|c| c.hold(&who)) {
        let mut resp = refuse(&gate, e);
        // An HTTP/1 connection over the cap is closed: it will not be served (HTTP/2 has
        // no such header; its connection stays, carrying whatever else is allowed).
        if req.version() <= Version::HTTP_11 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return after_body(req, resp).await;
    }
    if let Err(e) = who.charge() {
        return after_body(req, refuse(&gate, e)).await;
    }
    req.extensions_mut().insert(who);
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
