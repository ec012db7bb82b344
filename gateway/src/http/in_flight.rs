//! The HTTP port's share of the gateway's places in flight (`--max-in-flight`, a semaphore
//! the gRPC port shares) as middleware. It runs after admission, so refused requests take
//! no place, and inside the deadline middleware, so a request waits for a place only
//! within its deadline. The probes' part goes without it (`Part::Probes`): probes must
//! answer under load. No request holds a place longer than the longest deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use aerolith_common::Error;

use super::error::ApiError;
use crate::ops::MAX_TIMEOUT;

/// Slack past the longest deadline before a request is cut off (its own deadline normally
/// ends it first).
const GRACE: Duration = Duration::from_secs(1);

/// Middleware: runs the request holding one place in flight.
pub async fn limit(State(places): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    let late = || {
        ApiError::from(Error::deadline(
            "the gateway had no place for the request within the deadline",
        ))
        .into_response()
    };
    let Ok(Ok(_place)) = tokio::time::timeout(MAX_TIMEOUT, places.acquire_owned()).await else {
        return late();
    };
    match tokio::time::timeout(MAX_TIMEOUT + GRACE, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => late(),
    }
}
