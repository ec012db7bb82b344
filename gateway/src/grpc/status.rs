//! How errors and deadlines cross the gRPC boundary (API.md "Errors"): the status code from
//! [`ErrorCode::grpc_code`], a message starting with `<code>: `, and `google.rpc.ErrorInfo`
//! whose reason is the code.

use std::collections::HashMap;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use aerolith_common::{Error, ErrorCode};

use std::sync::Arc;

use super::session::{SESSION_KEY, SessionSlot};
use crate::admission::Who;
use crate::ops::{Ctx, DEFAULT_TIMEOUT, MAX_TIMEOUT, Session, WriteConcern};

/// The `google.rpc.ErrorInfo` domain of every AerolithDB error.
pub const ERROR_DOMAIN: &str = "aerolithdb";

/// The status a client sees for an error.
pub fn to_status(e: Error) -> Status {
    Status::with_error_details(
        Code::from_i32(e.code.grpc_code()),
        format!("{}: {}", e.code, e.message),
        ErrorDetails::with_error_info(e.code.as_str(), ERROR_DOMAIN, HashMap::new()),
    )
}

/// Part of a client's deadline kept back for the answer's trip: tonic's server answers a
/// call still running at the client's deadline with a bare CANCELLED, so the operation must
/// give up a little earlier for the client to see `deadline_exceeded` with its details.
fn answer_margin(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_millis(100))
}

/// When a call runs out of time, as admission computed it on the call's arrival (in the
/// call's extensions), so that time spent waiting for a place in flight counts.
#[derive(Debug, Clone, Copy)]
pub struct CallDeadline(pub tokio::time::Instant);

/// The request's context: its deadline ([`deadline_ctx`], or the [`CallDeadline`] set on
/// arrival), its session from `x-aerolith-session` (left in the call's [`SessionSlot`] so
/// that the answer carries it), its `x-aerolith-write-concern` and its admitted caller.
pub fn ctx_of<T>(req: &tonic::Request<T>) -> Result<Ctx, Status> {
    let slot = req.extensions().get::<SessionSlot>();
    // Every answer carries a token: a new session's until the client's has been read.
    if let Some(slot) = slot {
        slot.fill(Arc::default());
    }
    let mut ctx = deadline_ctx(req.metadata())?;
    if let Some(CallDeadline(by)) = req.extensions().get::<CallDeadline>() {
        ctx.deadline = ctx.deadline.min(*by);
    }
    let text = |key: &str| -> Result<Option<&str>, Status> {
        req.metadata()
            .get(key)
            .map(|v| {
                v.to_str()
                    .map_err(|_| to_status(Error::invalid(format!("{key} is not text"))))
            })
            .transpose()
    };
    let session = Arc::new(Session::parse(text(SESSION_KEY)?).map_err(to_status)?);
    if let Some(slot) = slot {
        slot.fill(session.clone());
    }
    let concern = WriteConcern::parse(text("x-aerolith-write-concern")?).map_err(to_status)?;
    ctx.with(session, concern)
        .with_idempotency_key(text("idempotency-key")?)
        .map(|ctx| ctx.by(who_of(req)))
        .map_err(to_status)
}

/// The call's admitted caller (set by the authentication layer).
pub fn who_of<T>(req: &tonic::Request<T>) -> Option<Who> {
    req.extensions().get::<Who>().cloned()
}

/// A context with the client's `grpc-timeout` (at most 60 s, less the [`answer_margin`]),
/// or the default 10 s.
pub fn deadline_ctx(metadata: &MetadataMap) -> Result<Ctx, Status> {
    let header = metadata.get("grpc-timeout").map(|v| v.to_str().ok());
    Ok(Ctx::new(call_timeout(header)?))
}

/// How long a call may take, from its `grpc-timeout` value (`None`: no header;
/// `Some(None)`: unreadable): at most 60 s less the [`answer_margin`], or the default 10 s.
pub fn call_timeout(header: Option<Option<&str>>) -> Result<Duration, Status> {
    match header {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) => v
            .and_then(parse_timeout)
            .ok_or_else(|| {
                to_status(Error::new(
                    ErrorCode::InvalidArgument,
                    "malformed grpc-timeout header",
                ))
            })
            .map(|t| t.min(MAX_TIMEOUT))
            .map(|t| t - answer_margin(t)),
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_per_the_grpc_spec() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("S"), None);
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("5x"), None);
        assert_eq!(parse_timeout(""), None);
    }

    #[test]
    fn statuses_carry_the_code_three_ways() {
        let s = to_status(Error::new(ErrorCode::PreconditionFailed, "stale version"));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "precondition_failed: stale version");
        let info = s.get_details_error_info().map(|i| i.reason);
        assert_eq!(info.as_deref(), Some("precondition_failed"));
    }
}
