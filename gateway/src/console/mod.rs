//! The web console (`GET /console`): static HTML, CSS and JavaScript embedded in the binary,
//! served with a strict Content-Security-Policy. The page holds no data and needs no token;
//! everything it shows it fetches from the gateway's own public API with the token the
//! person signs in with, so every action needs the role the API already asks for.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use aerolith_common::origin::Origin;
use bytes::Bytes;

/// The console's pages and scripts only from this origin, its API calls (HTTP and
/// WebSocket) only to this origin and the replicator admin API it is configured with, no
/// inline script or style, no framing, no forms posted anywhere, no plugins.
pub fn csp(admin: Option<&Origin>) -> String {
    let admin = admin.map(|a| format!(" {a}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{admin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");
const ROOT: &str = include_str!("assets/root.html");

/// The console's routes: `/` (a link to it), `/console`, its two assets and
/// `/console/config.json` (the replicator admin API the page may use, `--console-admin`).
pub fn router<S: Clone + Send + Sync + 'static>(admin: Option<Origin>) -> Router<S> {
    // Built from a validated origin, so the header value cannot fail; an empty policy
    // would be worse than none, so fall back to the policy without the admin API.
    let csp = HeaderValue::from_str(&csp(admin.as_ref()))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let config = serde_json::json!({ "admin": admin.as_ref().map(Origin::as_str) }).to_string();
    let asset = move |content_type: &'static str, body: Bytes| {
        let csp = csp.clone();
        get(move || {
            let (body, csp) = (body.clone(), csp.clone());
            async move { page(content_type, body, csp) }
        })
    };
    Router::new()
        .route("/", asset(HTML, Bytes::from_static(ROOT.as_bytes())))
        .route(
            "/console",
            asset(HTML, Bytes::from_static(INDEX.as_bytes())),
        )
        .route(
            "/console/console.js",
            asset(
                "text/javascript; charset=utf-8",
                Bytes::from_static(SCRIPT.as_bytes()),
            ),
        )
        .route(
            "/console/console.css",
            asset(
                "text/css; charset=utf-8",
                Bytes::from_static(STYLE.as_bytes()),
            ),
        )
        .route(
            "/console/config.json",
            asset("application/json", Bytes::from(config)),
        )
}

const HTML: &str = "text/html; charset=utf-8";

/// One asset with the console's security headers.
fn page(content_type: &'static str, body: Bytes, csp: HeaderValue) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CONTENT_SECURITY_POLICY, csp),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // The assets change with the binary; a stale script against a new API is worse
        // than a reload.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}
