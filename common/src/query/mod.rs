//! Query evaluation (API.md "Query"): filters, the value order, sorting and projection.
//!
//! This module is pure: it never touches storage, so a storage node, the gateway (to merge
//! shard results) and tests all evaluate queries identically.
//!
//! Semantic choices, where API.md is silent or leaves room (MongoDB unless noted):
//! - Range operators (`$gt $gte $lt $lte`) compare in API.md's total type order
//!   (null < bool < number < string < array < object), the same order `sort` uses, so
//!   `{"$gt": 5}` also matches every string, array and object. This departs from MongoDB's
//!   type bracketing because API.md states one comparison order for everything. A missing
//!   field matches no range operator. Arrays and objects compare as whole values.
//! - Equality, `$in`, `$ne` and `$nin` against an array field also test each element, one
//!   level deep; `$ne`/`$nin` are the exact negations of equality/`$in`.
//! - A missing field matches only `$exists: false`, `$ne`, `$nin` and negations of
//!   conditions it fails; unlike MongoDB, `{"f": null}` does not match a missing `f`.
//! - Numbers compare exactly by decimal value whatever their spelling (`1`, `1.0`, `1e0`);
//!   64-bit integers never go through floating point.
//! - Dotted paths walk objects only: an array (or any non-object) in the middle of a path
//!   makes the field missing; there is no numeric indexing.
//! - A path whose first segment is `_id` is the document id (a string); `_id.x` is missing.
//!   A body key literally named `_id` is shadowed for filters and sort, but not projection.
//! - A field's value is an operator object when all its keys start with `$`; mixing `$` and
//!   plain keys is rejected; `{}` and objects without `$` keys mean equality.
//! - `$not` is accepted at the filter level (`{"$not": {filter}}`) and per field
//!   (`{"f": {"$not": {"$gt": 5}}}`); it negates the conjunction inside it.
//! - `$regex` is an unanchored search with Rust `regex` syntax (inline flags such as `(?i)`
//!   instead of `$options`), compiled once with a size limit.
//! - `$and`/`$or` need a non-empty array of filter objects.

mod bounds;
mod filter;
pub mod index_key;
mod keyset;
mod order;
mod projection;
mod sort;

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use bounds::KeyBounds;
pub use filter::Filter;
pub use keyset::Position;
pub use order::{compare_numbers, compare_values, type_rank, values_equal};
pub use projection::{parse_projection, project, projection_paths};
pub use sort::{SortKey, compare_docs, normalize_sort, parse_sort, sort_json};

/// The pseudo-field naming the document id.
pub const ID_FIELD: &str = "_id";

/// A validated field path, split once so evaluation does no parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldPath {
    /// `_id`: the document id.
    Id,
    /// `_id.…`: always missing, since the id is a string.
    InsideId,
    /// A path into the body.
    Data(Vec<String>),
}

impl FieldPath {
    pub(crate) fn resolve<'a>(
        &self,
        id: &'a str,
        data: &'a Map<String, Value>,
    ) -> Option<Cow<'a, Value>> {
        match self {
            FieldPath::Id => Some(Cow::Owned(Value::String(id.to_owned()))),
            FieldPath::InsideId => None,
            FieldPath::Data(segments) => lookup_data(data, segments).map(Cow::Borrowed),
        }
    }
}

/// Validates a dotted path: non-empty, with no empty segments.
pub(crate) fn parse_path(path: &str) -> Result<FieldPath> {
    if path.is_empty() {
        return Err(Error::invalid("empty field path"));
    }
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(Error::invalid(format!(
            "field path \"{path}\" has an empty segment"
        )));
    }
    Ok(match segments.first().map(String::as_str) {
        Some(ID_FIELD) if segments.len() == 1 => FieldPath::Id,
        Some(ID_FIELD) => FieldPath::InsideId,
        _ => FieldPath::Data(segments),
    })
}

/// Looks up a dotted path in a document; `_id` is the id, and a non-object mid-path is missing.
pub fn lookup<'a>(id: &'a str, data: &'a Map<String, Value>, path: &str) -> Option<Cow<'a, Value>> {
    if path == ID_FIELD {
        Some(Cow::Owned(Value::String(id.to_owned())))
    } else if path.split('.').next() == Some(ID_FIELD) {
        None
    } else {
        lookup_data(data, path.split('.')).map(Cow::Borrowed)
    }
}

/// Walks `segments` through nested objects of `data`.
pub(crate) fn lookup_data<S: AsRef<str>>(
    data: &Map<String, Value>,
    segments: impl IntoIterator<Item = S>,
) -> Option<&Value> {
    let mut segments = segments.into_iter();
    let mut current = data.get(segments.next()?.as_ref())?;
    for seg in segments {
        current = current.as_object()?.get(seg.as_ref())?;
    }
    Some(current)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A test document from a `json!` object.
    pub(crate) fn doc(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test documents are objects"),
        }
    }

    #[test]
    fn lookup_walks_objects_only() {
        let d = doc(json!({"a": {"b": {"c": 1}}, "arr": [{"x": 1}], "s": "str", "_id": "shadow"}));
        assert_eq!(lookup("k", &d, "a.b.c").as_deref(), Some(&json!(1)));
        assert_eq!(lookup("k", &d, "a.b").as_deref(), Some(&json!({"c": 1})));
        assert_eq!(lookup("k", &d, "a.x"), None);
        assert_eq!(lookup("k", &d, "a.b.c.d"), None);
        assert_eq!(lookup("k", &d, "arr.x"), None);
        assert_eq!(lookup("k", &d, "arr.0"), None);
        assert_eq!(lookup("k", &d, "s.len"), None);
        assert_eq!(lookup("k", &d, "nope"), None);
        assert_eq!(lookup("k", &d, "_id").as_deref(), Some(&json!("k")));
        assert_eq!(lookup("k", &d, "_id.x"), None);
    }

    #[test]
    fn parse_path_rules() {
        assert_eq!(parse_path("_id"), Ok(FieldPath::Id));
        assert_eq!(parse_path("_id.a"), Ok(FieldPath::InsideId));
        assert_eq!(
            parse_path("a.b"),
            Ok(FieldPath::Data(vec!["a".into(), "b".into()]))
        );
        assert_eq!(parse_path("_idx"), Ok(FieldPath::Data(vec!["_idx".into()])));
        assert!(parse_path("").is_err());
        assert!(parse_path("a..b").is_err());
        assert!(parse_path(".").is_err());
    }
}

#[cfg(test)]
mod proptests {
    use std::cmp::Ordering;

    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::{Filter, compare_values};

    fn number() -> impl Strategy<Value = Value> {
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,2})?"
            .prop_map(|t| serde_json::from_str(&t).expect("the pattern is JSON number syntax"))
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number(),
            "[ab]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[ab]{1}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn field_filter() -> impl Strategy<Value = Value> {
        let op = prop_oneof![
            json_value().prop_map(|v| json!({"$eq": v})),
            json_value().prop_map(|v| json!({"$ne": v})),
            json_value().prop_map(|v| json!({"$gt": v})),
            json_value().prop_map(|v| json!({"$gte": v})),
            json_value().prop_map(|v| json!({"$lt": v})),
            json_value().prop_map(|v| json!({"$lte": v})),
            prop::collection::vec(json_value(), 0..3).prop_map(|v| json!({"$in": v})),
            prop::collection::vec(json_value(), 0..3).prop_map(|v| json!({"$nin": v})),
            any::<bool>().prop_map(|b| json!({"$exists": b})),
            "[ab]{0,2}".prop_map(|p| json!({"$prefix": p})),
            "[ab]{0,2}".prop_map(|p| json!({"$regex": p})),
        ];
        (prop_oneof![Just("a"), Just("o.a"), Just("_id")], op)
            .prop_map(|(path, op)| json!({ path: op }))
    }

    fn document() -> impl Strategy<Value = (String, Map<String, Value>)> {
        (
            "[ab]{1,2}",
            json_value(),
            json_value(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(id, a, oa, has_a, has_o)| {
                let mut m = Map::new();
                if has_a {
                    m.insert("a".into(), a);
                }
                if has_o {
                    m.insert("o".into(), json!({ "a": oa }));
                }
                (id, m)
            })
    }

    proptest! {
        #[test]
        fn compare_values_is_a_total_order(
            a in json_value(), b in json_value(), c in json_value(),
        ) {
            let cmp = |x: &Value, y: &Value| compare_values(Some(x), Some(y));
            prop_assert_eq!(cmp(&a, &a), Ordering::Equal);
            prop_assert_eq!(cmp(&a, &b), cmp(&b, &a).reverse());
            let mut v = [a, b, c];
            v.sort_by(cmp);
            prop_assert_ne!(cmp(&v[0], &v[1]), Ordering::Greater);
            prop_assert_ne!(cmp(&v[1], &v[2]), Ordering::Greater);
            prop_assert_ne!(cmp(&v[0], &v[2]), Ordering::Greater);
            if cmp(&v[0], &v[1]) == Ordering::Equal && cmp(&v[1], &v[2]) == Ordering::Equal {
                prop_assert_eq!(cmp(&v[0], &v[2]), Ordering::Equal);
            }
            prop_assert_eq!(compare_values(None, Some(&v[0])), Ordering::Less);
        }

        #[test]
        fn integers_compare_like_i128_in_any_spelling(
            x in prop_oneof![any::<i64>().prop_map(i128::from), any::<u64>().prop_map(i128::from)],
            y in prop_oneof![any::<i64>().prop_map(i128::from), any::<u64>().prop_map(i128::from)],
            spelling in 0..3u8,
        ) {
            let parse = |t: String| serde_json::from_str::<Value>(&t).expect("valid number");
            let respell = |n: i128| match spelling {
                0 => format!("{n}.0"),
                1 => format!("{n}0e-1"),
                _ => format!("{n}.000e0"),
            };
            let (a, b) = (parse(x.to_string()), parse(respell(y)));
            prop_assert_eq!(compare_values(Some(&a), Some(&b)), x.cmp(&y));
            prop_assert_eq!(
                compare_values(Some(&parse(respell(x))), Some(&a)),
                Ordering::Equal
            );
        }

        #[test]
        fn decimals_compare_like_scaled_integers(
            m1 in -1_000_000_000i64..1_000_000_000, e1 in -10i32..10,
            m2 in -1_000_000_000i64..1_000_000_000, e2 in -10i32..10,
        ) {
            // Scaled to a common exponent, both values are exact i128s.
            let scaled = |m: i64, e: i32| i128::from(m) * 10i128.pow((e + 10).unsigned_abs());
            let parse = |t: String| serde_json::from_str::<Value>(&t).expect("valid number");
            let (a, b) = (parse(format!("{m1}e{e1}")), parse(format!("{m2}E{e2}")));
            prop_assert_eq!(
                compare_values(Some(&a), Some(&b)),
                scaled(m1, e1).cmp(&scaled(m2, e2))
            );
        }

        #[test]
        fn not_matches_exactly_when_the_filter_does_not(
            f in field_filter(), (id, data) in document(),
        ) {
            let filter = Filter::parse(&f).expect("generated filters are valid");
            let negated = Filter::parse(&json!({"$not": f.clone()})).expect("valid");
            prop_assert_eq!(negated.matches(&id, &data), !filter.matches(&id, &data));
            // The field-level $not agrees with the filter-level one.
            let (path, ops) = f.as_object().and_then(|m| m.iter().next()).expect("one key");
            let field_not = Filter::parse(&json!({ path.clone(): {"$not": ops} })).expect("valid");
            prop_assert_eq!(field_not.matches(&id, &data), !filter.matches(&id, &data));
        }

        #[test]
        fn ne_and_nin_negate_eq_and_in(
            v in json_value(), list in prop::collection::vec(json_value(), 0..3),
            (id, data) in document(),
        ) {
            let m = |f: Value| Filter::parse(&f).expect("valid").matches(&id, &data);
            prop_assert_eq!(m(json!({"a": {"$ne": v.clone()}})), !m(json!({"a": {"$eq": v}})));
            prop_assert_eq!(m(json!({"a": {"$nin": list.clone()}})), !m(json!({"a": {"$in": list}})));
        }

        #[test]
        fn id_lower_bound_never_excludes_a_match(
            f in field_filter(), g in field_filter(), (id, data) in document(),
        ) {
            let filter = Filter::parse(&json!({"$and": [f, g]})).expect("valid");
            if filter.matches(&id, &data) {
                if let Some((s, inclusive)) = filter.id_lower_bound() {
                    prop_assert!(id > s || (inclusive && id == s));
                }
                if let Some((s, inclusive)) = filter.id_upper_bound() {
                    prop_assert!(id < s || (inclusive && id == s));
                }
            }
        }
    }
}
