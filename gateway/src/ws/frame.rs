//! WebSocket frames (API.md "WebSocket"): what a client may send, parsed strictly enough to
//! answer a precise `invalid_argument`, and the frames the server sends back.

use serde_json::{Map, Value, json};

use aerolith_common::auth::Role;
use aerolith_common::json::{parse_value, type_name};
use aerolith_common::{Error, Result};

/// Nesting accepted in a frame (a 64-deep body inside the frame object).
const FRAME_DEPTH: usize = 80;

/// A client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Start a subscription.
    Subscribe {
        /// The client's name for it.
        sub: String,
        /// Its collection.
        collection: String,
        /// Puts must match it (deletes always pass).
        filter: Option<Value>,
        /// Resume token; `None` starts at the current head.
        since: Option<String>,
    },
    /// Stop a subscription.
    Unsubscribe {
        /// Its name.
        sub: String,
    },
    /// A request answered by one `result` or `error` frame.
    Request {
        /// The client's request id.
        req: String,
        /// `get`, `put`, `patch`, `delete`, `query` or `create_collection`.
        kind: RequestKind,
        /// The whole frame, for the fields of its kind.
        fields: Map<String, Value>,
    },
    /// Liveness check.
    Ping,
}

/// The request frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Read a document.
    Get,
    /// Create or replace a document.
    Put,
    /// Patch a document.
    Patch,
    /// Delete a document.
    Delete,
    /// A query page.
    Query,
    /// How many documents match a filter.
    Count,
    /// Create (or confirm) a collection.
    CreateCollection,
}

impl RequestKind {
    /// The role a request of this kind needs (API.md "Authentication").
    pub fn role(self) -> Role {
        match self {
            RequestKind::Get | RequestKind::Query | RequestKind::Count => Role::Read,
            RequestKind::Put
            | RequestKind::Patch
            | RequestKind::Delete
            | RequestKind::CreateCollection => Role::Write,
        }
    }

    /// The frame's `type`.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Get => "get",
            RequestKind::Put => "put",
            RequestKind::Patch => "patch",
            RequestKind::Delete => "delete",
            RequestKind::Query => "query",
            RequestKind::Count => "count",
            RequestKind::CreateCollection => "create_collection",
        }
    }
}

/// A frame-level failure, tagged with the `sub` or `req` it concerns when one is known.
#[derive(Debug)]
pub struct FrameError {
    /// `("sub", id)` or `("req", id)`.
    pub about: Option<(&'static str, String)>,
    /// What went wrong.
    pub error: Error,
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(format!(
            "\"{key}\" must be a string, not {}",
            type_name(other)
        ))),
    }
}

fn required(obj: &Map<String, Value>, key: &str, kind: &str) -> Result<String> {
    string_field(obj, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid(format!("a {kind} frame needs a \"{key}\" string")))
}

/// Parses one text frame.
pub fn parse(text: &str) -> std::result::Result<ClientFrame, FrameError> {
    let untagged = |error: Error| FrameError { about: None, error };
    let Value::Object(obj) = parse_value(text.as_bytes(), FRAME_DEPTH).map_err(untagged)? else {
        return Err(untagged(Error::invalid("a frame must be a JSON object")));
    };
    let kind = required(&obj, "type", "client").map_err(untagged)?;
    let request = |k: RequestKind| -> std::result::Result<ClientFrame, FrameError> {
        let req = required(&obj, "req", &kind).map_err(untagged)?;
        Ok(ClientFrame::Request {
            req,
            kind: k,
            fields: obj.clone(),
        })
    };
    match kind.as_str() {
        "subscribe" => {
            let sub = required(&obj, "sub", "subscribe").map_err(untagged)?;
            let tagged = |error: Error| FrameError {
                about: Some(("sub", sub.clone())),
                error,
            };
            let collection = required(&obj, "collection", "subscribe").map_err(tagged)?;
            let since = string_field(&obj, "since").map_err(tagged)?;
            let filter = obj.get("filter").filter(|f| !f.is_null()).cloned();
            Ok(ClientFrame::Subscribe {
                sub,
                collection,
                filter,
                since,
            })
        }
        "unsubscribe" => Ok(ClientFrame::Unsubscribe {
            sub: required(&obj, "sub", "unsubscribe").map_err(untagged)?,
        }),
        "ping" => Ok(ClientFrame::Ping),
        "get" => request(RequestKind::Get),
        "put" => request(RequestKind::Put),
        "patch" => request(RequestKind::Patch),
        "delete" => request(RequestKind::Delete),
        "query" => request(RequestKind::Query),
        "count" => request(RequestKind::Count),
        "create_collection" => request(RequestKind::CreateCollection),
        other => Err(untagged(Error::invalid(format!(
            "unknown frame type \"{other}\" (expected subscribe, unsubscribe, get, put, patch, delete, query, count, create_collection or ping)"
        )))),
    }
}

/// An `error` frame, tagged with its `sub` or `req` when known.
pub fn error(about: Option<(&str, &str)>, e: &Error) -> Value {
    let mut v = json!({"type": "error", "error": {"code": e.code.as_str(), "message": e.message}});
    if let Some((k, id)) = about {
        v[k] = json!(id);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerolith_common::ErrorCode;

    #[test]
    fn parses_every_type() {
        let f = parse(
            r#"{"type":"subscribe","sub":"s1","collection":"c","filter":{"a":1},"since":"t"}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            ClientFrame::Subscribe {
                sub: "s1".into(),
                collection: "c".into(),
                filter: Some(json!({"a": 1})),
                since: Some("t".into())
            }
        );
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
        assert!(matches!(
            parse(r#"{"type":"query","req":"r","collection":"c"}"#).unwrap(),
            ClientFrame::Request {
                kind: RequestKind::Query,
                ..
            }
        ));
    }

    #[test]
    fn malformed_frames_are_invalid_argument() {
        for bad in [
            "nope",
            "[]",
            r#"{"type":"dance"}"#,
            r#"{"type":5}"#,
            r#"{"type":"subscribe","collection":"c"}"#,
            r#"{"type":"get","collection":"c","id":"x"}"#,
            r#"{"type":"subscribe","sub":"s","collection":"c","since":5}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.error.code, ErrorCode::InvalidArgument, "{bad}");
        }
        let e = parse(r#"{"type":"subscribe","sub":"s9"}"#).unwrap_err();
        assert_eq!(e.about, Some(("sub", "s9".to_string())));
    }
}
