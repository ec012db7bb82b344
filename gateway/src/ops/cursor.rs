//! Opaque listing cursors: a versioned, URL-safe encoding of the last id returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use aerolith_common::name::validate_doc_id;
use aerolith_common::{Error, Result};

const VERSION: &str = "k1:";

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
}
