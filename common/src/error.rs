//! The one error type of AerolithDB and its mapping to every protocol's status.

use std::fmt;

/// A stable error code from API.md's table; every protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad JSON, bad name/id, bad filter, wrong content type.
    InvalidArgument,
    /// Missing or invalid credentials.
    Unauthenticated,
    /// Credentials lack the role.
    PermissionDenied,
    /// No such document or collection.
    NotFound,
    /// `If-None-Match: *` and the document exists.
    AlreadyExists,
    /// `If-Match` version is not current.
    PreconditionFailed,
    /// Body over the size limit.
    PayloadTooLarge,
    /// Over the configured request rate.
    RateLimited,
    /// Change-feed history no longer held for that token.
    ResumeTokenExpired,
    /// No replica of the shard reachable.
    Unavailable,
    /// The request timed out.
    DeadlineExceeded,
    /// A bug; details go to the log.
    Internal,
    /// Internal RPC only, never shown to clients: the storage node does not own the shard
    /// in the shard map it holds, whose epoch the message names. The gateway refreshes its
    /// map and retries (answering `unavailable` if it cannot); not in [`ErrorCode::ALL`].
    NotOwner,
}

impl ErrorCode {
    /// Every code, in API.md's order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::PreconditionFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::ResumeTokenExpired,
        ErrorCode::Unavailable,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Internal,
    ];

    /// The wire name of the code (`not_found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ResumeTokenExpired => "resume_token_expired",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Internal => "internal",
            ErrorCode::NotOwner => "not_owner",
        }
    }

    /// Parses a wire name; unknown names (from a newer peer) become `internal`.
    pub fn from_wire(s: &str) -> ErrorCode {
        Self::ALL
            .into_iter()
            .chain([ErrorCode::NotOwner])
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Internal)
    }

    /// The code a client is shown for this one: internal codes become `unavailable`.
    pub fn public(self) -> ErrorCode {
        match self {
            ErrorCode::NotOwner => ErrorCode::Unavailable,
            c => c,
        }
    }

    /// The gRPC status code (its number in `google.rpc.Code`) that carries this code.
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::InvalidArgument => 3,
            ErrorCode::DeadlineExceeded => 4,
            ErrorCode::NotFound => 5,
            ErrorCode::AlreadyExists => 6,
            ErrorCode::PermissionDenied => 7,
            ErrorCode::PayloadTooLarge | ErrorCode::RateLimited => 8,
            ErrorCode::PreconditionFailed => 9,
            ErrorCode::ResumeTokenExpired => 11,
            ErrorCode::Internal => 13,
            ErrorCode::Unavailable | ErrorCode::NotOwner => 14,
            ErrorCode::Unauthenticated => 16,
        }
    }

    /// The HTTP status API.md assigns to the code: the one place that mapping lives.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::PreconditionFailed => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::ResumeTokenExpired => 410,
            ErrorCode::Unavailable | ErrorCode::NotOwner => 503,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as clients see it: a code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// A message for people; never holds secrets or internal details of `internal` errors.
    pub message: String,
}

/// Result with AerolithDB's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `already_exists`.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }

    /// `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// `deadline_exceeded`.
    pub fn deadline(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DeadlineExceeded, message)
    }

    /// The error as a client is shown it: an internal code becomes `unavailable`
    /// ([`ErrorCode::public`]), the message kept.
    pub fn public(self) -> Self {
        Error {
            code: self.code.public(),
            message: self.message,
        }
    }

    /// `internal`: logs the detail and returns a generic message, so internals never reach clients.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}
