//! A stored document body on its way to a client: the canonical text a storage node holds,
//! written into answers as it is and parsed only where a caller needs its fields.
//!
//! Every body a node stores is already canonical JSON (`json::encode_object`), so parsing it
//! into a tree and serialising the tree again (once per read, per protocol) only reproduces
//! the same bytes. A `Body` checks the text is one JSON object (a scan that builds nothing)
//! and serialises as raw JSON.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A document body as its canonical JSON text: an object, checked once when it arrives.
#[derive(Clone)]
pub struct Body(Box<RawValue>);

impl Body {
    /// Takes a stored body (empty means `{}`), checking it is one JSON object.
    pub fn from_stored(bytes: &[u8]) -> Result<Body> {
        if bytes.is_empty() {
            return Body::from_text("{}".to_owned());
        }
        let text = std::str::from_utf8(bytes).map_err(|e| corrupt(&e))?;
        Body::from_text(text.to_owned())
    }

    fn from_text(text: String) -> Result<Body> {
        if !text.starts_with('{') {
            return Err(Error::internal("corrupt stored body: not a JSON object"));
        }
        RawValue::from_string(text)
            .map(Body)
            .map_err(|e| corrupt(&e))
    }

    /// The body's JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The body parsed, for callers that read its fields (GraphQL's `JSON`, feed filters).
    pub fn object(&self) -> Result<Map<String, Value>> {
        serde_json::from_str(self.as_str()).map_err(|e| corrupt(&e))
    }
}

fn corrupt(e: &dyn fmt::Display) -> Error {
    Error::internal(format!("corrupt stored body: {e}"))
}

impl PartialEq for Body {
    /// Canonical text: equal bodies are equal bytes.
    fn eq(&self, other: &Body) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_the_stored_text_as_is() {
        #[derive(Serialize)]
        struct Answer {
            data: Body,
        }
        let b = Body::from_stored(br#"{"a":1.50,"b":[true,null]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&Answer { data: b.clone() }).unwrap_or_default(),
            r#"{"data":{"a":1.50,"b":[true,null]}}"#,
            "numbers keep their spelling"
        );
        assert_eq!(b.object().unwrap()["b"], json!([true, null]));
    }

    #[test]
    fn empty_is_an_empty_object() {
        assert_eq!(Body::from_stored(b"").unwrap().as_str(), "{}");
    }

    #[test]
    fn rejects_what_is_not_one_object() {
        for bad in [&b"[1]"[..], b"{\"a\":", b"{} {}", b"\xff", b"1"] {
            assert!(Body::from_stored(bad).is_err(), "{bad:?}");
        }
    }
}
