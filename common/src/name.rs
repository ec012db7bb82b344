//! Validation of collection and index names, document ids and DC ids (API.md "Data model").

use crate::error::{Error, Result};

/// Checks a collection name: `^[A-Za-z][A-Za-z0-9_-]{0,63}$`.
pub fn validate_collection(name: &str) -> Result<()> {
    validate_name("collection", name)
}

/// Checks an index name: the collection-name rule (issue 24).
pub fn validate_index(name: &str) -> Result<()> {
    validate_name("index", name)
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {what} name {:?}: it must match ^[A-Za-z][A-Za-z0-9_-]{{0,63}}$",
            truncate(name)
        )))
    }
}

/// Checks an indexed field's dotted path: non-empty segments of at most 1 024 bytes in all,
/// none starting with `$`, and not the document id (`_id`, which every query can already
/// range over).
pub fn validate_index_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 1024
        && path
            .split('.')
            .all(|s| !s.is_empty() && !s.starts_with('$'))
        && path.split('.').next() != Some("_id");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid index field path {:?}: a dotted path of non-empty segments, none starting with $, and not _id",
            truncate(path)
        )))
    }
}

/// Checks a document id: `^[A-Za-z0-9_.:~-]{1,256}$`, except `.` and `..`.
pub fn validate_doc_id(id: &str) -> Result<()> {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 256
        && id != "."
        && id != ".."
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'~' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid document id {:?}: it must match ^[A-Za-z0-9_.:~-]{{1,256}}$ and not be . or ..",
            truncate(id)
        )))
    }
}

/// Checks a DC id: `^[a-z][a-z0-9-]{0,31}$`.
pub fn validate_dc(id: &str) -> Result<()> {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid DC id {:?}: it must match ^[a-z][a-z0-9-]{{0,31}}$",
            truncate(id)
        )))
    }
}

/// Checks a storage node id given to the admin API: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
pub fn validate_node(id: &str) -> Result<()> {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid node id {:?}: it must match ^[A-Za-z0-9][A-Za-z0-9_-]{{0,63}}$",
            truncate(id)
        )))
    }
}

/// Shortens user input quoted in messages so an error never echoes a huge value.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_and_paths() {
        assert!(validate_index("by_age").is_ok());
        let e = validate_index("1x").unwrap_err();
        assert!(e.message.contains("invalid index name"), "{}", e.message);
        for ok in ["age", "address.city", "a.b.c", "x_id"] {
            assert!(validate_index_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "$a", "a.$b", "_id", "_id.x"] {
            assert!(validate_index_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collection_names() {
        for ok in ["a", "users", "A1_-x", &format!("a{}", "b".repeat(63))] {
            assert!(validate_collection(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_sys",
            "1abc",
            "-a",
            "a b",
            "a/b",
            "é",
            &format!("a{}", "b".repeat(64)),
        ] {
            assert!(validate_collection(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn doc_ids() {
        for ok in ["u1", "a.b:c~d-e_f", "...", "0", &"x".repeat(256)] {
            assert!(validate_doc_id(ok).is_ok(), "{ok}");
        }
        for bad in [".", "..", "", "a/b", "a b", "a%20", "ü", &"x".repeat(257)] {
            assert!(validate_doc_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dc_ids() {
        for ok in ["dc1", "eu-west-1", "a"] {
            assert!(validate_dc(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1dc",
            "DC1",
            "dc_1",
            "dc.1",
            &format!("a{}", "b".repeat(32)),
        ] {
            assert!(validate_dc(bad).is_err(), "{bad}");
        }
    }
}
