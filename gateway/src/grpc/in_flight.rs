//! The gRPC port's share of the gateway's places in flight (`--max-in-flight`, a semaphore
//! the HTTP port shares). A call waits for a place only within its own deadline
//! (`grpc-timeout`, or the default 10 s), then answers `deadline_exceeded` like any slow
//! call, and the operation gets what is left of the deadline. The admission layer
//! (`super::auth`) waits here after admitting a call, so refused calls take no place. A
//! call holds its place until its answer's head is ready (a `Watch` stream does not hold
//! one while it streams).

use std::sync::Arc;

use axum::http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::Status;

use aerolith_common::Error;

use super::status::{call_timeout, to_status};

/// When a call that arrives now with `headers` runs out of time (a malformed
/// `grpc-timeout` gets the default here; the operation then refuses it).
pub fn deadline(headers: &HeaderMap) -> Instant {
    let header = headers.get("grpc-timeout").map(|v| v.to_str().ok());
    Instant::now() + call_timeout(header).unwrap_or(crate::ops::DEFAULT_TIMEOUT)
}

/// A place in flight, waited for until `by`; `deadline_exceeded` after that.
pub async fn place(places: Arc<Semaphore>, by: Instant) -> Result<OwnedSemaphorePermit, Status> {
    match tokio::time::timeout_at(by, places.acquire_owned()).await {
        Ok(Ok(place)) => Ok(place),
        _ => Err(to_status(Error::deadline(
            "the gateway had no place for the call within its deadline",
        ))),
    }
}
