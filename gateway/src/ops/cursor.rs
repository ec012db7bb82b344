//! Opaque cursors: a versioned, URL-safe encoding of the last position a page covered. A
//! listing's cursor is the last id (`k1:`); a query's is a keyset position (`q1:`) holding the
//! last document's sort values and id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use aerolith_common::name::validate_doc_id;
use aerolith_common::query::Position;
use aerolith_common::{Error, Result};

const VERSION: &str = "k1:";
const QUERY_VERSION: &[u8] = b"q1:";

/// Encodes a keyset position (the last id a page covered).
pub fn encode(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}{after}"))
}

/// Decodes a cursor from a client.
pub fn decode(cursor: &str) -> Result<String> {
    let bad = || Error::invalid("malformed cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let after = text.strip_prefix(VERSION).ok_or_else(bad)?;
    validate_doc_id(after).map_err(|_| bad())?;
    Ok(after.to_string())
}

/// Encodes a query's keyset position.
pub fn encode_position(pos: &Position) -> String {
    let mut raw = QUERY_VERSION.to_vec();
    raw.extend(pos.to_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a query cursor for a query with `keys` sort keys.
pub fn decode_position(cursor: &str, keys: usize) -> Result<Position> {
    let bad = |why: String| Error::invalid(format!("malformed cursor: {why}"));
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad("not base64url".into()))?;
    let body = raw
        .strip_prefix(QUERY_VERSION)
        .ok_or_else(|| bad("not a query cursor".into()))?;
    let pos = Position::from_bytes(body, keys).map_err(|e| bad(e.message))?;
    validate_doc_id(&pos.id).map_err(|_| bad("bad id".into()))?;
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_garbage() {
        let c = encode("user:42");
        assert_eq!(decode(&c).unwrap(), "user:42");
        for bad in [
            "",
            "!!",
            "abc",
            &URL_SAFE_NO_PAD.encode("k2:x"),
            &URL_SAFE_NO_PAD.encode("k1:a/b"),
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_round_trip_and_check_the_key_count() {
        let pos = Position {
            values: vec![Some(serde_json::json!({"a": [1, "x"]})), None],
            id: "doc-1".into(),
        };
        let c = encode_position(&pos);
        assert_eq!(decode_position(&c, 2).unwrap(), pos);
        assert!(decode_position(&c, 1).is_err());
        assert!(decode_position(&encode("doc-1"), 0).is_err());
        assert!(decode_position("@@", 0).is_err());
    }
}
