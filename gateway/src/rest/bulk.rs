//! The REST bulk body, `{"ops": [{"op", "id", "data" | "patch", "if_match"}]}`, read into
//! the operation layer's typed ops. A malformed op becomes a [`BadOp`] that fails alone.

use serde_json::{Map, Value};

use aerolith_common::json::{Limits, parse_value};
use aerolith_common::patch::PatchKind;
use aerolith_common::{Error, Result};

use crate::ops::{BadOp, BulkInput, BulkOp, Precondition};

/// Reads a bulk body: the whole body must be well-formed; each op may fail alone.
pub fn parse(body: &[u8], limits: Limits) -> Result<Vec<BulkInput>> {
    let Value::Object(mut top) = parse_value(body, limits.max_depth + 3)? else {
        return Err(Error::invalid(
            "a bulk body must be a JSON object {\"ops\": [...]}",
        ));
    };
    let Some(Value::Array(ops)) = top.remove("ops") else {
        return Err(Error::invalid("a bulk body needs ops: an array"));
    };
    if let Some(key) = top.keys().next() {
        return Err(Error::invalid(format!("unknown bulk field {key:?}")));
    }
    Ok(ops.into_iter().map(op).collect())
}

/// A field, `null` counting as absent.
fn field(op: &mut Map<String, Value>, name: &str) -> Option<Value> {
    op.remove(name).filter(|v| !v.is_null())
}

/// Reads one op.
fn op(v: Value) -> BulkInput {
    let Value::Object(mut op) = v else {
        return Err(BadOp {
            id: None,
            error: Error::invalid("each bulk op must be a JSON object"),
        });
    };
    let id = match field(&mut op, "id") {
        None => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(BadOp {
                id: None,
                error: Error::invalid("a bulk op's id must be a string"),
            });
        }
    };
    let bad = |error| BadOp {
        id: id.clone(),
        error,
    };
    read(&mut op, id.clone()).map_err(bad)
}

/// Reads one op object whose id has been taken out.
fn read(op: &mut Map<String, Value>, id: Option<String>) -> Result<BulkOp> {
    let kind = field(op, "op");
    let if_match = match field(op, "if_match") {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err(Error::invalid("if_match must be a string")),
    };
    let data = field(op, "data");
    let patch = field(op, "patch");
    if let Some(key) = op.keys().next() {
        return Err(Error::invalid(format!("unknown bulk op field {key:?}")));
    }
    let pre = Precondition::from_tags(if_match.as_deref(), None)?;
    let needs_id = || {
        id.clone()
            .ok_or_else(|| Error::invalid("a bulk patch or delete needs an id"))
    };
    match kind.as_ref().and_then(Value::as_str) {
        Some("put") => match data {
            Some(Value::Object(data)) => Ok(BulkOp::Put { id, data, pre }),
            _ => Err(Error::invalid("a bulk put needs data: a JSON object")),
        },
        Some("patch") => match patch {
            Some(patch @ (Value::Object(_) | Value::Array(_))) => Ok(BulkOp::Patch {
                id: needs_id()?,
                kind: PatchKind::of(&patch),
                patch,
                pre,
            }),
            _ => Err(Error::invalid(
                "a bulk patch needs patch: a merge patch object or a JSON Patch array",
            )),
        },
        Some("delete") => Ok(BulkOp::Delete {
            id: needs_id()?,
            pre,
        }),
        _ => Err(Error::invalid(
            "a bulk op's op must be put, delete or patch",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(body: &str) -> Vec<BulkInput> {
        parse(body.as_bytes(), Limits::default()).expect("well-formed")
    }

    #[test]
    fn ops_are_typed_and_bad_ones_fail_alone() {
        let read = ops(r#"{"ops": [
                {"op": "put", "id": "a", "data": {"x": 1}, "if_match": "\"dc1@1:1\""},
                {"op": "patch", "id": "a", "patch": [{"op": "add", "path": "/y", "value": 2}]},
                {"op": "delete", "id": "a", "if_match": "*"},
                {"op": "patch", "patch": {}},
                {"op": "put", "id": 5, "data": {}},
                {"op": "put", "data": {}, "extra": 1}
            ]}"#);
        match &read[0] {
            Ok(BulkOp::Put { id, pre, .. }) => {
                assert_eq!(id.as_deref(), Some("a"));
                assert_eq!(pre.if_match.as_deref(), Some("dc1@1:1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &read[1],
            Ok(BulkOp::Patch {
                kind: PatchKind::JsonPatch,
                ..
            })
        ));
        assert!(matches!(&read[2], Ok(BulkOp::Delete { pre, .. }) if pre.if_match_any));
        for bad in &read[3..] {
            assert!(bad.is_err(), "{bad:?}");
        }
        assert!(parse(b"[]", Limits::default()).is_err());
        assert!(parse(br#"{"ops": [], "x": 1}"#, Limits::default()).is_err());
    }
}
