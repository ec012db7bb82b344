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

/// Applies `patch` to a document body and returns the new body.
///
/// A failed JSON Patch `test` is `precondition_failed`; any other failure, or a result that is
/// not an object, is `invalid_argument`.
pub fn apply(
    kind: PatchKind,
    doc: &Map<String, Value>,
    patch: &Value,
) -> Result<Map<String, Value>> {
    let mut value = Value::Object(doc.clone());
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(Error::invalid(format!(
                    "a merge patch must be a JSON object, not {}",
                    type_name(patch)
                )));
            }
            json_patch::merge(&mut value, patch);
        }
        PatchKind::JsonPatch => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| Error::invalid(format!("invalid JSON Patch document: {e}")))?;
            json_patch::patch(&mut value, &ops).map_err(|e| {
                let code = match e.kind {
                    json_patch::PatchErrorKind::TestFailed => ErrorCode::PreconditionFailed,
                    _ => ErrorCode::InvalidArgument,
                };
                Error::new(
                    code,
                    format!(
                        "JSON Patch operation {} at {:?} failed: {}",
                        e.operation,
                        e.path.as_str(),
                        e.kind
                    ),
                )
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        )
        .unwrap();
        assert_eq!(Value::Object(out), json!({"b": {"c": 9, "d": 3}, "e": [1]}));
        assert!(apply(PatchKind::Merge, &doc, &json!([1])).is_err());
    }

    #[test]
    fn json_patch_ops_and_failed_test() {
        let doc = obj(json!({"a": 1, "list": [1, 2]}));
        let p = json!([{"op": "replace", "path": "/a", "value": 2}, {"op": "add", "path": "/list/-", "value": 3}]);
        let out = apply(PatchKind::JsonPatch, &doc, &p).unwrap();
        assert_eq!(Value::Object(out), json!({"a": 2, "list": [1, 2, 3]}));
        let t = json!([{"op": "test", "path": "/a", "value": 5}]);
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &t).unwrap_err().code,
            ErrorCode::PreconditionFailed
        );
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &bad).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let garbage = json!({"op": "add"});
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &garbage)
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
        let whole = json!([{"op": "replace", "path": "", "value": 1}]);
        assert_eq!(
            apply(PatchKind::JsonPatch, &doc, &whole).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}
