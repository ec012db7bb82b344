//! The query filter's grammar as JSON Schema (`aerolith_common::query::filter` reads it):
//! field paths to values or operator objects, combined with `$and`, `$or` and `$not`.

use serde_json::{Value, json};

use super::reference;

/// A dotted field path of non-empty segments (sort keys, projections; `_id` included).
pub const FIELD_PATH: &str = "^[^.]+(\\.[^.]+)*$";
/// A filter key naming a field: a field path whose first segment does not start with `$`
/// (those are the logical operators).
const FILTER_FIELD: &str = "^[^$.][^.]*(\\.[^.]+)*$";
/// An indexed field's path: no segment starting with `$`, and not the id.
pub const INDEX_PATH: &str = "^(?!_id(\\.|$))[^.$][^.]*(\\.[^.$][^.]*)*$";

/// `Filter`, `FieldCondition` and `Operators`.
pub fn schemas() -> Value {
    let filters = json!({"type": "array", "minItems": 1, "items": reference("schemas", "Filter")});
    let any = json!({});
    json!({
        "Filter": {"type": "object",
            "description": "Field paths (dotted; _id is the id) to a value (equality) or an \
                operator object, combined with $and and $or (non-empty arrays of filters) and \
                $not (a filter). {} matches everything; anything else is invalid_argument.",
            "properties": {"$and": filters, "$or": filters, "$not": reference("schemas", "Filter")},
            "propertyNames": {"anyOf": [{"enum": ["$and", "$or", "$not"]},
                {"pattern": FILTER_FIELD}]},
            "additionalProperties": reference("schemas", "FieldCondition")},
        "FieldCondition": {"anyOf": [
            {"type": ["null", "boolean", "number", "string", "array"],
                "description": "Equality (an array field also matches an equal element)."},
            {"type": "object", "propertyNames": {"not": {"pattern": "^\\$"}},
                "description": "Equality with an object (no key starting with $)."},
            reference("schemas", "Operators"),
        ]},
        "Operators": {"type": "object", "minProperties": 1, "additionalProperties": false,
            "description": "Every key an operator; several must all hold.",
            "properties": {
                "$eq": any, "$ne": any, "$gt": any, "$gte": any, "$lt": any, "$lte": any,
                "$in": {"type": "array"}, "$nin": {"type": "array"},
                "$exists": {"type": "boolean"},
                "$prefix": {"type": "string"},
                "$regex": {"type": "string", "format": "aerolith-regex",
                    "description": "A pattern in the syntax of the Rust regex crate \
                        (https://docs.rs/regex/1/regex/#syntax): linear time, so no \
                        look-around or backreferences; at most 1 MiB compiled."},
                "$not": reference("schemas", "Operators"),
            }},
    })
}
