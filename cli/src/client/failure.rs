//! How a client command fails: an exit code scripts can rely on and one line for people.

use serde_json::Value;

/// Exit code: the document, collection or route does not exist.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit code: the command line is wrong (clap's own usage errors exit 2 too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: anything else (the server refused, the network failed, ...).
pub const EXIT_OTHER: u8 = 3;

/// A failed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process's exit code.
    pub exit: u8,
    /// One line saying what went wrong.
    pub message: String,
}

impl Failure {
    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Any other failure (exit 3).
    pub fn other(message: impl Into<String>) -> Failure {
        Failure {
            exit: EXIT_OTHER,
            message: message.into(),
        }
    }

    /// A server's error body (`{"error":{"code","message"}}`): `not_found` exits 1.
    pub fn from_error(code: &str, message: &str) -> Failure {
        let exit = if code == "not_found" {
            EXIT_NOT_FOUND
        } else {
            EXIT_OTHER
        };
        Failure {
            exit,
            message: format!("{code}: {message}"),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A JSON argument from the command line, or a usage error saying where it broke (with the
/// start of the text, on one line).
pub fn parse_json_arg(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(60).collect();
        let start = start.replace(['\n', '\r'], " ");
        let more = if text.chars().count() > 60 { "..." } else { "" };
        Failure::usage(format!("not valid JSON ({e}): {start}{more}"))
    })
}

/// A collection name checked against API.md's rule (so it cannot change the request's
/// path), or a usage error.
pub fn collection_arg(name: &str) -> Result<&str, Failure> {
    aerolith_common::name::validate_collection(name)
        .map(|()| name)
        .map_err(|e| Failure::usage(e.message))
}

/// A document id checked against API.md's rule, or a usage error.
pub fn id_arg(id: &str) -> Result<&str, Failure> {
    aerolith_common::name::validate_doc_id(id)
        .map(|()| id)
        .map_err(|e| Failure::usage(e.message))
}
