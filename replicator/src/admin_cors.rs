//! Which web pages may use the admin API: the gateways' consoles named by
//! `--console-origin`, and no other. A browser marks every cross-origin request with an
//! `Origin` header; one from a page not named here is refused before anything runs (even a
//! simple `POST`, which a browser sends without asking first), so another site open in the
//! operator's browser cannot drive an admin API it can reach. Requests without `Origin`
//! (the CLI, curl, probes) pass untouched. A named console gets the CORS headers
//! (<https://fetch.spec.whatwg.org/#http-cors-protocol>) and its preflights are answered
//! here, without a token: a browser never sends one on a preflight.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use aerolith_common::origin::Origin;
use aerolith_common::refusal::after_body;
use aerolith_common::{Error, ErrorCode, audit};

use crate::admin::AdminError;

/// The console origins an admin API answers.
pub type ConsoleOrigins = Arc<Vec<Origin>>;

/// Middleware: refuses a request from a page not named by `--console-origin`, answers a
/// named page's preflight, and lets a named page read the answers.
pub(crate) async fn console_origins(
    State(origins): State<ConsoleOrigins>,
    req: Request,
    next: Next,
) -> Response {
    let Some(sent) = req.headers().get(ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let named = sent
        .to_str()
        .ok()
        .and_then(|o| o.parse::<Origin>().ok())
        .is_some_and(|o| origins.contains(&o));
    if !named {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        audit::record(&audit::Event {
            process: "replicator",
            action: "request",
            target: req.uri().path(),
            role: None,
            token_id: "-",
            peer,
            outcome: audit::Outcome::Denied,
            reason: "origin",
        });
        let refused = AdminError(Error::new(
            ErrorCode::PermissionDenied,
            "this admin API answers web pages only from the console origins named by \
             --console-origin",
        ))
        .into_response();
        return after_body(req, refused).await;
    }
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        // Chromium asks before a public page reaches a private address (Private Network
        // Access); a named console may.
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
        r
    } else {
        next.run(req).await
    };
    resp.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, sent);
    resp.headers_mut()
        .append(VARY, HeaderValue::from_static("Origin"));
    resp
}
