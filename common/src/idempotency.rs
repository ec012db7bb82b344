//! Idempotency keys (API.md "Idempotency"): the key a client sends with a write, and the
//! fingerprint of the request it names, which a retry must match.

use ring::digest::{Context, SHA256};

use crate::error::{Error, Result};

/// Longest key, in characters.
pub const MAX_KEY_LEN: usize = 128;

/// A validated `Idempotency-Key`: 1 to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key as a client sent it.
    pub fn parse(s: &str) -> Result<IdempotencyKey> {
        let printable = s.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if s.is_empty() || s.len() > MAX_KEY_LEN || !printable {
            return Err(Error::invalid(format!(
                "an idempotency key is 1 to {MAX_KEY_LEN} printable ASCII characters"
            )));
        }
        Ok(IdempotencyKey(s.to_string()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of one op of a bulk request sent with this key: each op is its own write.
    pub fn for_op(&self, index: usize) -> String {
        format!("{}#{index}", self.0)
    }
}

/// SHA-256 over `parts`, each length-prefixed (so no two different part lists collide by
/// concatenation): the fingerprint of a logical request.
pub fn fingerprint(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_printable_ascii() {
        assert!(IdempotencyKey::parse("order-42 retry").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        for bad in ["", "tab\there", "é", &"k".repeat(129)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"put", b"x"]), fingerprint(&[b"put", b"x"]));
    }
}
