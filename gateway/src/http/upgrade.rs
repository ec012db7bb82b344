//! The WebSocket handshake of the upgrade routes (`/v1/ws`, `/graphql/ws`): axum's checks
//! plus the key's syntax, each refusal a REST error body (a plain GET is 400
//! `invalid_argument` in JSON, as `/openapi.json` says, not axum's plain text).

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_KEY;

use aerolith_common::Error;

use super::error::ApiError;

/// Whether `key` is base64 of 16 bytes, as RFC 6455 section 4.1 has the client send.
pub fn valid_key(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/');
    key.len() == 24
        && key[..21].iter().all(b64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

/// The request's handshake, or why it is not one (`invalid_argument`).
pub fn handshake(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
) -> Result<WebSocketUpgrade, ApiError> {
    let ws = ws.map_err(|e| {
        Error::invalid(format!(
            "not a WebSocket handshake ({}): send GET with Connection: Upgrade, \
             Upgrade: websocket, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key",
            e.body_text()
        ))
    })?;
    // HTTP/2's extended CONNECT (RFC 8441) has no key; HTTP/1.1's is checked by axum for
    // presence only.
    if let Some(key) = headers.get(SEC_WEBSOCKET_KEY)
        && !valid_key(key.as_bytes())
    {
        return Err(Error::invalid("Sec-WebSocket-Key must be base64 of 16 bytes").into());
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_are_base64_of_16_bytes() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            &b""[..],
            b"abc",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25j*Q==",
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
