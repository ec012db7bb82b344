//! Request metrics as a middleware layer, labelled with the protocol of the part of the
//! port it wraps (the process-wide recorder is in `aerolith_common::telemetry`).
//!
//! Each route's layer owns its label set: the `op` label is formatted once when the router
//! is assembled and the recorder's handles are registered once per outcome, so a request
//! costs two atomic updates rather than a label formatting and two registry lookups.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};

use aerolith_common::ErrorCode;

/// Outcomes a route's handles are kept for: every error code, then success.
const OUTCOMES: usize = ErrorCode::ALL.len() + 1;

/// The metric labels and handles of one route's layer.
pub struct RouteMetrics {
    /// The `protocol` label.
    protocol: &'static str,
    /// The method the route serves and its `op` label (`GET /v1/…`); `None` for the
    /// fallbacks, which label each request from what it asked.
    route: Option<(Method, Arc<str>)>,
    /// Handles per outcome, registered on first use so unused outcomes make no series.
    handles: [OnceLock<Handles>; OUTCOMES],
}

/// The recorder's handles for one label set.
struct Handles {
    count: Counter,
    duration: Histogram,
}

impl Handles {
    fn register(protocol: &'static str, op: Arc<str>, code: &'static str) -> Handles {
        let labels = [
            ("protocol", metrics::SharedString::const_str(protocol)),
            ("op", metrics::SharedString::from(op)),
            ("code", metrics::SharedString::const_str(code)),
        ];
        Handles {
            count: metrics::counter!("aerolith_requests_total", &labels),
            duration: metrics::histogram!("aerolith_request_duration_seconds", &labels),
        }
    }

    fn record(&self, started: Instant) {
        self.count.increment(1);
        self.duration.record(started.elapsed().as_secs_f64());
    }
}

impl RouteMetrics {
    /// The labels of a route serving `method` at `path` (empty for a fallback).
    pub fn new(protocol: &'static str, method: &'static str, path: &'static str) -> Arc<Self> {
        let route = (!path.is_empty())
            .then(|| Method::from_bytes(method.as_bytes()).ok())
            .flatten()
            .map(|m| (m, Arc::from(format!("{method} {path}"))));
        Arc::new(RouteMetrics {
            protocol,
            route,
            handles: std::array::from_fn(|_| OnceLock::new()),
        })
    }
}

/// Middleware: counts HTTP requests (REST, GraphQL, WebSocket upgrades) and records latency
/// by protocol, operation and code.
pub async fn track(State(m): State<Arc<RouteMetrics>>, req: Request, next: Next) -> Response {
    // A request the route's own labels do not describe (a fallback's, or HEAD answered by
    // a GET route) is labelled from the request, at the old cost.
    let own = matches!(&m.route, Some((method, _)) if method == req.method());
    let op = (!own).then(|| request_op(&req));
    let started = Instant::now();
    let resp = next.run(req).await;
    let code = resp.extensions().get::<ErrorCode>().copied();
    match (op, &m.route) {
        (None, Some((_, route_op))) => {
            let slot = code
                .and_then(|c| ErrorCode::ALL.iter().position(|a| *a == c))
                .unwrap_or(ErrorCode::ALL.len());
            m.handles[slot]
                .get_or_init(|| Handles::register(m.protocol, route_op.clone(), label(code)))
                .record(started)
        }
        (op, _) => {
            let op = op.unwrap_or_else(|| Arc::from("unmatched"));
            Handles::register(m.protocol, op, label(code)).record(started)
        }
    }
    resp
}

/// The `code` label of an outcome.
fn label(code: Option<ErrorCode>) -> &'static str {
    code.map(ErrorCode::as_str).unwrap_or("ok")
}

/// The `op` label of a request outside its route's own labels: the method (only standard
/// ones, so clients cannot mint unbounded series) and the matched path.
fn request_op(req: &Request) -> Arc<str> {
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
    Arc::from(format!("{method} {}", path.unwrap_or("unmatched")))
}
