//! `components.parameters`, `components.headers` and `components.securitySchemes`: the
//! path, query and header values the routes read, with the exact syntax the server checks.

use serde_json::{Value, json};

use aerolith_common::idempotency::MAX_KEY_LEN;

use crate::http::context::{SESSION_HEADER, TIMEOUT_HEADER, WRITE_CONCERN_HEADER};
use crate::ops::{DEFAULT_LIMIT, DEFAULT_TIMEOUT, MAX_LIMIT, MAX_TIMEOUT};

/// API.md's collection name pattern (also index names).
pub const COLLECTION_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{0,63}$";
/// API.md's document id pattern, without `.` and `..`.
pub const DOC_ID_PATTERN: &str = "^(?!\\.{1,2}$)[A-Za-z0-9_.:~-]{1,256}$";
/// A document version (`dc1@1:3.dc2@1:1`, with `~<hex>` once its collection was re-created),
/// as `crate::ops::is_version` checks it.
pub const VERSION: &str =
    "[a-z][a-z0-9-]{0,31}@[0-9]+:[0-9]+(\\.[a-z][a-z0-9-]{0,31}@[0-9]+:[0-9]+)*(~[0-9a-f]+)?";
/// A server-issued token or cursor: URL-safe base64 without padding, after its prefix.
const BASE64URL: &str = "[A-Za-z0-9_-]+";

/// The schema of a value only the server issues: its outer syntax, a format naming it, and
/// where the server hands it out.
fn issued(format: &str, pattern: String, issued_by: &str) -> Value {
    json!({"type": "string", "format": format, "pattern": pattern,
        "x-aerolith-issued-by": issued_by})
}

/// A path parameter: a string of the pattern, at most `max` characters.
fn path_param(name: &str, description: &str, pattern: &str, max: usize) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string", "pattern": pattern, "minLength": 1, "maxLength": max}})
}

/// `upgrade` in any case (ECMA-262 patterns have no case-insensitive flag).
const UPGRADE: &str = "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]";

/// A required header of the WebSocket handshake: a string with `constraint`.
fn handshake(name: &str, what: &str, constraint: Value) -> Value {
    let mut schema = json!({"type": "string"});
    if let (Some(s), Value::Object(c)) = (schema.as_object_mut(), constraint) {
        s.extend(c);
    }
    json!({"name": name, "in": "header", "required": true,
        "description": format!("The WebSocket handshake: {what}."), "schema": schema})
}

/// `components.parameters`.
pub fn parameters() -> Value {
    let version = format!("^(|\\*|(W/)?\"{VERSION}\"|{VERSION})$");
    json!({
        "Collection": path_param("c", "Collection name; names starting with _ are reserved.",
            COLLECTION_PATTERN, 64),
        "IndexName": path_param("name", "Index name (the collection-name rule).",
            COLLECTION_PATTERN, 64),
        "DocumentId": path_param("id",
            "Document id: 1 to 256 of A-Z a-z 0-9 _ . : ~ -, not . or ..", DOC_ID_PATTERN, 256),
        "Limit": {
            "name": "limit", "in": "query", "required": false,
            "description": "Page size; anything else than an integer in range is invalid_argument.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT},
        },
        "Cursor": {
            "name": "cursor", "in": "query", "required": false,
            "description": "The next_cursor of the previous page of the same listing; any other \
                value is invalid_argument.",
            "schema": issued("aerolith-cursor", format!("^{BASE64URL}$"),
                "the next_cursor field of GET /v1/collections/{c}/docs"),
        },
        "Since": {
            "name": "since", "in": "query", "required": false,
            "description": "A resume token of this DC (next, or any change's token); without it \
                (or empty) the feed starts at the oldest retained change. Any other value is \
                invalid_argument; one older than the retained history is resume_token_expired.",
            "schema": issued("aerolith-resume-token", format!("^(t1\\.{BASE64URL})?$"),
                "the next and token fields of GET /v1/collections/{c}/changes \
                 (and WebSocket and GraphQL change events)"),
        },
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": false,
            "description": "Write only if the document's current version is this one (quoted, \
                bare or W/-quoted), or with * if the document exists; otherwise \
                precondition_failed. A value that is not a version or * is invalid_argument; \
                an empty one is none.",
            "schema": {"type": "string", "pattern": version},
        },
        "IfNoneMatchRead": {
            "name": "If-None-Match", "in": "header", "required": false,
            "description": "Versions (ETags, comma-separated) or *: a match answers 304; \
                anything else simply does not match.",
            "schema": {"type": "string"},
        },
        "IfNoneMatchWrite": {
            "name": "If-None-Match", "in": "header", "required": false,
            "description": "* creates only: an existing document is already_exists. An empty \
                value is none; any other is invalid_argument.",
            "schema": {"type": "string", "enum": ["*", ""]},
        },
        "Session": {
            "name": SESSION_HEADER, "in": "header", "required": false,
            "description": "A session token the server issued (the X-Aerolith-Session header of \
                an earlier answer; empty starts a new session): reads wait (up to the deadline) \
                until this DC holds everything the session wrote or read. A token not issued \
                by the server is invalid_argument.",
            "schema": {"maxLength": 65536, "anyOf": [
                issued("aerolith-session", format!("^s1\\.{BASE64URL}$"),
                    "the X-Aerolith-Session header of every answer"),
                {"type": "string", "enum": [""]},
            ]},
        },
        "WriteConcern": {
            "name": WRITE_CONCERN_HEADER, "in": "header", "required": false,
            "description": "local (acknowledged once durable on one node; also an empty value) \
                or all (once every DC not marked down has applied it; deadline_exceeded \
                otherwise, and the write stands).",
            "schema": {"type": "string", "enum": ["local", "all", ""], "default": "local"},
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "1 to 128 printable ASCII characters, chosen by the client and fresh \
                for each distinct request: a retry of the same request with the same key \
                within the retention window (default 24 h) answers what the first answered \
                and writes nothing again; the same key with another request is \
                invalid_argument.",
            "schema": {"type": "string", "format": "aerolith-idempotency-key",
                "pattern": format!("^[\\x21-\\x7E]([\\x20-\\x7E]{{0,{}}}[\\x21-\\x7E])?$",
                    MAX_KEY_LEN - 2),
                "minLength": 1, "maxLength": MAX_KEY_LEN},
        },
        "Timeout": {
            "name": TIMEOUT_HEADER, "in": "header", "required": false,
            "description": "The request deadline in milliseconds; past it the answer is \
                deadline_exceeded.",
            "schema": {"type": "integer", "minimum": 1,
                "maximum": MAX_TIMEOUT.as_millis() as u64,
                "default": DEFAULT_TIMEOUT.as_millis() as u64},
        },
        "WebSocketConnection": handshake("Connection", "a list holding upgrade (any case)",
            json!({"pattern": format!("^([^,]*,)*[ \\t]*{UPGRADE}[ \\t]*(,[^,]*)*$")})),
        "WebSocketUpgrade": handshake("Upgrade", "websocket (any case)",
            json!({"pattern": "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"})),
        "WebSocketVersion": handshake("Sec-WebSocket-Version", "version 13 (RFC 6455)",
            json!({"enum": ["13"]})),
        "WebSocketKey": handshake("Sec-WebSocket-Key", "16 random bytes in base64 (RFC 6455)",
            json!({"pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"})),
        "GraphqlSubprotocol": handshake("Sec-WebSocket-Protocol",
            "the subprotocols offered, one of them graphql-transport-ws or graphql-ws",
            json!({"pattern":
                "^([^,]*,)*[ \\t]*(graphql-transport-ws|graphql-ws)[ \\t]*(,[^,]*)*$"})),
    })
}

/// `components.headers`: response headers.
pub fn headers() -> Value {
    json!({
        "ETag": {
            "description": "The document's version, quoted.",
            "schema": {"type": "string", "pattern": format!("^\"{VERSION}\"$")},
        },
        "Location": {
            "description": "The new document's path, /v1/collections/{c}/docs/{id}.",
            "schema": {"type": "string",
                "pattern": "^/v1/collections/[A-Za-z][A-Za-z0-9_-]{0,63}/docs/[A-Za-z0-9_.:~-]{1,256}$"},
        },
        SESSION_HEADER: {
            "description": "The session token: the request's merged with what it read or wrote \
                (on every answer of the routes that read it, errors included). Send it back \
                as X-Aerolith-Session.",
            "schema": {"type": "string", "pattern": format!("^s1\\.{BASE64URL}$")},
        },
    })
}

/// `components.securitySchemes`: the bearer token, and the query-parameter form WebSocket
/// upgrades also accept.
pub fn security_schemes(bearer: &str, access_token: &str) -> Value {
    json!({
        bearer: {"type": "http", "scheme": "bearer",
            "description": "A token configured with a role: read, write (implies read) or \
                admin (implies write). Without configured tokens (dev mode, loopback only) \
                authentication is off."},
        access_token: {"type": "apiKey", "in": "query", "name": "access_token",
            "description": "The bearer token as a query parameter, for browsers opening a \
                WebSocket."},
    })
}
