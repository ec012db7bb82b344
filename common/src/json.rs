//! Strict JSON for document bodies: size and depth limits, no duplicate keys, canonical form.
//!
//! Bodies are parsed with `serde_json`'s `arbitrary_precision`, so numbers come back exactly as
//! written, and stored in canonical form (object keys in byte order), so equal documents are
//! byte-identical in every DC.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, ErrorCode, Result};

/// How `serde_json` (with `arbitrary_precision`) hands a number to a visitor: a one-entry map.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Size and nesting limits for document bodies (API.md "Data model").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded body in bytes.
    pub max_bytes: usize,
    /// Deepest nesting; the top-level object counts as 1.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Parses any JSON value strictly: duplicate keys and nesting beyond `max_depth` are rejected.
pub fn parse_value(bytes: &[u8], max_depth: usize) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth: 1,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?;
    de.end()
        .map_err(|e| Error::invalid(format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// Parses a document body: a JSON object within `limits`.
pub fn parse_object(bytes: &[u8], limits: Limits) -> Result<Map<String, Value>> {
    if bytes.len() > limits.max_bytes {
        return Err(too_large(bytes.len(), limits));
    }
    object_of(parse_value(bytes, limits.max_depth)?)
}

/// A parsed value that must be a document body: a JSON object.
pub fn object_of(v: Value) -> Result<Map<String, Value>> {
    match v {
        Value::Object(map) => Ok(map),
        other => Err(Error::invalid(format!(
            "a document body must be a JSON object, not {}",
            type_name(&other)
        ))),
    }
}

/// Encodes a body canonically and checks it against `limits` (used after patches, too).
pub fn encode_object(map: &Map<String, Value>, limits: Limits) -> Result<Vec<u8>> {
    let depth = depth_of_map(map);
    if depth > limits.max_depth {
        return Err(Error::invalid(format!(
            "document nesting depth {depth} exceeds the limit of {}",
            limits.max_depth
        )));
    }
    let bytes = serde_json::to_vec(map).map_err(Error::internal)?;
    if bytes.len() > limits.max_bytes {
        return Err(too_large(bytes.len(), limits));
    }
    Ok(bytes)
}

/// Checks a body a peer sent already canonical ([`encode_object`]'s output under the same
/// limits): its size and that it is an object's text, nothing that costs a parse (peers
/// hold the cluster's certificate).
pub fn check_canonical(bytes: &[u8], limits: Limits) -> Result<()> {
    if bytes.len() > limits.max_bytes {
        return Err(too_large(bytes.len(), limits));
    }
    if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
        return Err(Error::invalid("the body must be a JSON object"));
    }
    Ok(())
}

/// Decodes a stored canonical body (trusted: written by a storage node).
pub fn decode_stored(bytes: &[u8]) -> Result<Map<String, Value>> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("corrupt stored body: {e}")))
}

/// The JSON type name of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn too_large(len: usize, limits: Limits) -> Error {
    Error::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "document body of {len} bytes exceeds the limit of {} bytes",
            limits.max_bytes
        ),
    )
}

fn depth_of_map(map: &Map<String, Value>) -> usize {
    1 + map.values().map(depth_of).max().unwrap_or(0)
}

fn depth_of(v: &Value) -> usize {
    match v {
        Value::Object(m) => depth_of_map(m),
        Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// Builds a `Value`, counting depth and rejecting duplicate keys as it goes.
#[derive(Clone, Copy)]
struct StrictValue {
    depth: usize,
    max_depth: usize,
}

impl StrictValue {
    fn enter<E: de::Error>(&self) -> Result<StrictValue, E> {
        if self.depth > self.max_depth {
            return Err(E::custom(format!(
                "nesting depth exceeds the limit of {}",
                self.max_depth
            )));
        }
        Ok(StrictValue {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.enter()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(child)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let Some(first) = map.next_key::<String>()? else {
            self.enter::<A::Error>()?;
            return Ok(Value::Object(out));
        };
        if first == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            let n: Number = text.parse().map_err(de::Error::custom)?;
            return Ok(Value::Number(n));
        }
        let child = self.enter()?;
        let mut key = Some(first);
        while let Some(k) = key {
            let v = map.next_value_seed(child)?;
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
            out.insert(k, v);
            key = map.next_key::<String>()?;
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canonical_body_is_checked_without_a_parse() {
        let limits = Limits::default();
        let canonical = encode_object(
            &parse_object(br#"{"b":1,"a":[2]}"#, limits).unwrap(),
            limits,
        )
        .unwrap();
        assert!(check_canonical(&canonical, limits).is_ok());
        for bad in [&b""[..], b"[1]", b"12", b"{\"a\":1"] {
            let e = check_canonical(bad, limits).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad:?}");
        }
        let small = Limits {
            max_bytes: 4,
            ..limits
        };
        let e = check_canonical(b"{\"a\":1}", small).unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    }

    fn nested(depth: usize) -> String {
        let mut s = String::new();
        for _ in 0..depth - 1 {
            s.push_str("{\"a\":");
        }
        s.push_str("{}");
        for _ in 0..depth - 1 {
            s.push('}');
        }
        s
    }

    #[test]
    fn numbers_round_trip_as_written() {
        let body =
            br#"{"a":1.0,"b":18446744073709551615,"c":-9223372036854775808,"d":1e3,"e":0.10}"#;
        let map = parse_object(body, Limits::default()).unwrap();
        let out = encode_object(&map, Limits::default()).unwrap();
        // serde_json normalises only the exponent's sign.
        let expected =
            br#"{"a":1.0,"b":18446744073709551615,"c":-9223372036854775808,"d":1e+3,"e":0.10}"#;
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected.to_vec()).unwrap()
        );
    }

    #[test]
    fn keys_come_back_sorted() {
        let map = parse_object(br#"{"b":1,"a":{"z":1,"B":2},"_":3}"#, Limits::default()).unwrap();
        let out = encode_object(&map, Limits::default()).unwrap();
        assert_eq!(out, br#"{"_":3,"a":{"B":2,"z":1},"b":1}"#.to_vec());
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_object(br#"{"a":1,"b":{"x":1,"x":2}}"#, Limits::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("duplicate key"), "{}", err.message);
    }

    #[test]
    fn depth_limit_counts_the_top_level_object() {
        let limits = Limits::default();
        assert!(parse_object(nested(64).as_bytes(), limits).is_ok());
        let err = parse_object(nested(65).as_bytes(), limits).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        let err = parse_object(nested(100).as_bytes(), limits).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(63), "]".repeat(63));
        assert!(parse_object(arrays.as_bytes(), limits).is_ok());
        let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert!(parse_object(arrays.as_bytes(), limits).is_err());
    }

    #[test]
    fn non_objects_and_garbage_are_invalid() {
        for body in [
            &b"[1]"[..],
            b"1",
            b"\"x\"",
            b"null",
            b"{",
            b"{}x",
            b"\xff",
            b"",
        ] {
            let err = parse_object(body, Limits::default()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidArgument, "{body:?}");
        }
    }

    #[test]
    fn size_limit_is_payload_too_large() {
        let limits = Limits {
            max_bytes: 10,
            max_depth: 64,
        };
        let err = parse_object(br#"{"a":"0123456789"}"#, limits).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
    }
}
