//! Applying PATCH bodies: RFC 7396 JSON Merge Patch and RFC 6902 JSON Patch.

use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::json::type_name;

/// Which patch format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    JsonPatch,
}

impl PatchKind {
    /// The format of a patch that arrives without a media type (gRPC, GraphQL, WebSocket,
    /// bulk): an array is a JSON Patch, anything else a merge patch.
    pub fn of(patch: &serde_json::Value) -> PatchKind {
        if patch.is_array() {
            PatchKind::JsonPatch
        } else {
            PatchKind::Merge
        }
    }
}

/// Checks that `patch` is a patch of `kind` at all (a merge patch is an object; a JSON Patch
/// an array of at most [`MAX_OPS`] operations), whatever document it will meet: a malformed
/// patch is `invalid_argument` before any precondition or document is looked at.
pub fn check(kind: PatchKind, patch: &Value) -> Result<Option<json_patch::Patch>> {
    match kind {
        PatchKind::Merge if !patch.is_object() => Err(Error::invalid(format!(
            "a merge patch must be a JSON object, not {}",
            type_name(patch)
        ))),
        PatchKind::Merge => Ok(None),
        PatchKind::JsonPatch => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| Error::invalid(format!("invalid JSON Patch document: {e}")))?;
            if ops.0.len() > MAX_OPS {
                return Err(Error::invalid(format!(
                    "a JSON Patch may hold at most {MAX_OPS} operations, not {}",
                    ops.0.len()
                )));
            }
            Ok(Some(ops))
        }
    }
}

/// Applies `patch` to a document body and returns the new body.
///
/// A failed JSON Patch `test` is `precondition_failed`; any other failure, or a result that is
/// not an object, is `invalid_argument`.
///
/// JSON Patch operations apply one at a time with the body's size checked after each, so a
/// patch of `copy` operations cannot grow a document without bound before it is rejected.
pub fn apply(
    kind: PatchKind,
    doc: &Map<String, Value>,
    patch: &Value,
    max_bytes: usize,
) -> Result<Map<String, Value>> {
    let mut value = Value::Object(doc.clone());
    match check(kind, patch)? {
        None => json_patch::merge(&mut value, patch),
        Some(ops) => {
            for (i, op) in ops.0.iter().enumerate() {
                apply_op(&mut value, op, i)?;
                if exceeds(&value, max_bytes) {
                    return Err(Error::new(
                        ErrorCode::PayloadTooLarge,
                        format!(
                            "JSON Patch operation {i} grows the document past {max_bytes} bytes"
                        ),
                    ));
                }
            }
        }
    }
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::invalid(format!(
            "the patched document must be a JSON object, not {}",
            type_name(&other)
        ))),
    }
}

/// Most operations one JSON Patch may hold.
pub const MAX_OPS: usize = 1000;

fn apply_op(value: &mut Value, op: &json_patch::PatchOperation, index: usize) -> Result<()> {
    json_patch::patch(value, std::slice::from_ref(op)).map_err(|e| {
        let code = match e.kind {
            json_patch::PatchErrorKind::TestFailed => ErrorCode::PreconditionFailed,
            _ => ErrorCode::InvalidArgument,
        };
        Error::new(
            code,
            format!(
                "JSON Patch operation {index} at {:?} failed: {}",
                e.path.as_str(),
                e.kind
            ),
        )
    })
}

/// Whether a value encodes to more than `max` bytes; stops counting once past it.
fn exceeds(value: &Value, max: usize) -> bool {
    struct Counter {
        n: usize,
        max: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.max {
                return Err(std::io::Error::other("too large"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { n: 0, max }, value).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_array_is_a_json_patch_and_anything_else_a_merge_patch() {
        assert_eq!(PatchKind::of(&json!([])), PatchKind::JsonPatch);
        assert_eq!(PatchKind::of(&json!({"a": 1})), PatchKind::Merge);
        assert_eq!(PatchKind::of(&json!(null)), PatchKind::Merge);
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn merge_patch_sets_and_removes() {
        let doc = obj(json!({"a": 1, "b": {"c": 2, "d": 3}}));
        let out = apply(
            PatchKind::Merge,
            &doc,
            &json!({"a": null, "b": {"c": 9}, "e": [1]}),
            1 << 20,
        )
        .unwrap();
        assert_eq!(Value::Object(out), json!({"b": {"c": 9, "d": 3}, "e": [1]}));
        assert!(apply(PatchKind::Merge, &doc, &json!([1]), 1 << 20).is_err());
    }

    #[test]
    fn growth_is_bounded_while_applying() {
        let doc = obj(json!({"a": "x".repeat(1000)}));
        let ops: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
            .collect();
        let err = apply(PatchKind::JsonPatch, &doc, &Value::Array(ops), 1 << 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        let many: Vec<Value> = (0..=MAX_OPS)
            .map(|_| json!({"op": "test", "path": "/a", "value": "x"}))
            .collect();
        let err = apply(PatchKind::JsonPatch, &doc, &Value::Array(many), 1 << 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn json_patch_ops_and_failed_test() {
        let doc = obj(json!({"a": 1, "list": [1, 2]}));
        let p = json!([{"op": "replace", "path": "/a", "value": 2}, {"op": "add", "path": "/list/-", "value": 3}]);
        let out = apply(PatchKind::JsonPatch, &doc, &p, 1 << 20).unwrap();
        assert_eq!(Value::Object(out), json!({"a": 2, "list": [1, 2, 3]}));
        let t = json!([{"op": "test", "path": "/a", "value": 5}]);
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &t, 1 << 20)
                .unwrap_err()
                .code,
            ErrorCode::PreconditionFailed
        );
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &bad, 1 << 20)
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
        let garbage = json!({"op": "add"});
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &garbage, 1 << 20)
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
        let whole = json!([{"op": "replace", "path": "", "value": 1}]);
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &whole, 1 << 20)
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
    }
}
