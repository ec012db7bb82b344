//! Request metrics as a middleware layer, labelled with the protocol of the part of the
//! port it wraps (the process-wide recorder is in `aerolith_common::telemetry`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use aerolith_common::ErrorCode;

/// Middleware: counts HTTP requests (REST, GraphQL, WebSocket upgrades) and records latency
/// by protocol (the state), operation and code.
pub async fn track(State(protocol): State<&'static str>, req: Request, next: Next) -> Response {
    // Only standard methods become labels, so clients cannot mint unbounded series.
    let method = match *req.method() {
        Method::GET
        | Method::PUT
        | Method::POST
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD => req.method().as_str(),
        _ => "OTHER",
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let op = format!("{method} {}", path.unwrap_or("unmatched"));
    let started = Instant::now();
    let resp = next.run(req).await;
    let code = resp
        .extensions()
        .get::<ErrorCode>()
        .map(|c| c.as_str())
        .unwrap_or("ok");
    let labels = [
        ("protocol", protocol.to_string()),
        ("op", op),
        ("code", code.to_string()),
    ];
    metrics::counter!("aerolith_requests_total", &labels).increment(1);
    metrics::histogram!("aerolith_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    resp
}
