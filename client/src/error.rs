//! The error codes of API.md's table as one enum, and the client's error type.

use std::fmt;

/// An error code of API.md's error table (the `code` of every error body).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad JSON, a bad name or id, a bad filter or content type (400).
    InvalidArgument,
    /// Missing or invalid credentials (401).
    Unauthenticated,
    /// The credentials lack the role (403).
    PermissionDenied,
    /// No such document, collection or route (404).
    NotFound,
    /// `If-None-Match: *` and the document exists (412).
    AlreadyExists,
    /// The `If-Match` version is not current (412).
    PreconditionFailed,
    /// The body is over the size limit (413).
    PayloadTooLarge,
    /// Over the configured request rate (429).
    RateLimited,
    /// The change-feed history for that token is no longer held (410).
    ResumeTokenExpired,
    /// No replica reachable, or a write's outcome is unknown (503).
    Unavailable,
    /// The request's deadline passed (504).
    DeadlineExceeded,
    /// A server bug (500).
    Internal,
    /// A code this client does not know (a newer server).
    Other(String),
}

impl ErrorCode {
    /// The code as the server spells it.
    pub fn as_str(&self) -> &str {
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
            ErrorCode::Other(s) => s,
        }
    }

    /// The HTTP status API.md gives this code (500 for an unknown one).
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::PreconditionFailed => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::ResumeTokenExpired => 410,
            ErrorCode::Unavailable => 503,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::Internal | ErrorCode::Other(_) => 500,
        }
    }

    /// The code named by `s` (an unknown one as [`ErrorCode::Other`]).
    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "invalid_argument" => ErrorCode::InvalidArgument,
            "unauthenticated" => ErrorCode::Unauthenticated,
            "permission_denied" => ErrorCode::PermissionDenied,
            "not_found" => ErrorCode::NotFound,
            "already_exists" => ErrorCode::AlreadyExists,
            "precondition_failed" => ErrorCode::PreconditionFailed,
            "payload_too_large" => ErrorCode::PayloadTooLarge,
            "rate_limited" => ErrorCode::RateLimited,
            "resume_token_expired" => ErrorCode::ResumeTokenExpired,
            "unavailable" => ErrorCode::Unavailable,
            "deadline_exceeded" => ErrorCode::DeadlineExceeded,
            "internal" => ErrorCode::Internal,
            other => ErrorCode::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong with a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body (API.md's `{"error":{"code","message"}}`).
    #[error("{code}: {message}")]
    Api {
        /// The error's code.
        code: ErrorCode,
        /// The HTTP status it came with.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server answered an error status without API.md's error body.
    #[error("{url} answered {}", status_line(*.status))]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// No gateway could be reached (connection refused, DNS, TLS): nothing was sent.
    #[error("cannot reach {url}: {message}")]
    Connect {
        /// The last URL tried.
        url: String,
        /// Why, as the transport said.
        message: String,
    },
    /// The request may have been sent but no answer came (a write's outcome is unknown).
    #[error("no answer from {url}: {message}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why, as the transport said.
        message: String,
    },
    /// The call's client-side deadline passed before any answer.
    #[error("deadline of {0:?} exceeded before an answer came")]
    Timeout(std::time::Duration),
    /// An answer that is not what API.md promises (unparseable JSON, a missing field).
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The client was configured or called wrongly (a bad URL, a bad CA file, bad data).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The error of an answer with error `status` and JSON `body` from `url`: API.md's
    /// `{"error":{"code","message"}}`, or the bare status.
    pub(crate) fn from_body(url: String, status: u16, body: &serde_json::Value) -> Error {
        let err = &body["error"];
        match (err["code"].as_str(), err["message"].as_str()) {
            (Some(code), Some(message)) => Error::Api {
                code: ErrorCode::parse(code),
                status,
                message: message.to_string(),
            },
            _ => Error::Status { url, status },
        }
    }

    /// The server's error code, for [`Error::Api`].
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for [`Error::Api`] and [`Error::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is the server's `not_found`.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(&ErrorCode::NotFound)
    }

    /// Whether a write that failed this way may or may not have been applied: a transport
    /// failure after sending, or the gateway's `unavailable` saying the outcome is unknown.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout(_) => true,
            Error::Api {
                code: ErrorCode::Unavailable,
                message,
                ..
            } => says_outcome_unknown(message),
            _ => false,
        }
    }
}

/// An HTTP status with its reason phrase (`404 Not Found`).
fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(s) => s.to_string(),
        Err(_) => status.to_string(),
    }
}

/// Whether an `unavailable` message is the gateway's "the outcome ... is unknown".
pub(crate) fn says_outcome_unknown(message: &str) -> bool {
    message.contains("outcome") && message.contains("unknown")
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_name() {
        let all = [
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
        for code in all {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(
            ErrorCode::parse("brand_new"),
            ErrorCode::Other("brand_new".into())
        );
    }

    #[test]
    fn only_unknown_outcomes_say_so() {
        let unknown = Error::Api {
            code: ErrorCode::Unavailable,
            status: 503,
            message: "the outcome of the write is unknown: ...".into(),
        };
        let refused = Error::Api {
            code: ErrorCode::Unavailable,
            status: 503,
            message: "no replica of shard 3 reachable".into(),
        };
        assert!(unknown.outcome_unknown());
        assert!(!refused.outcome_unknown());
        assert!(
            Error::Transport {
                url: "u".into(),
                message: "reset".into()
            }
            .outcome_unknown()
        );
        assert!(
            !Error::Connect {
                url: "u".into(),
                message: "refused".into()
            }
            .outcome_unknown()
        );
    }
}
