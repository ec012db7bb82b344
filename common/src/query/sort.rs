//! Query sort keys and the document order they define.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::order::compare_values;
use super::{FieldPath, parse_path};
use crate::error::{Error, Result};
use crate::json::type_name;

/// One sort key: a dotted field path (`_id` is the id) and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The dotted path as the client wrote it.
    pub field: String,
    /// True for `"order": "desc"`.
    pub descending: bool,
    path: FieldPath,
}

impl SortKey {
    /// A validated sort key.
    pub fn new(field: &str, descending: bool) -> Result<SortKey> {
        Ok(SortKey {
            field: field.to_owned(),
            descending,
            path: parse_path(field)?,
        })
    }

    /// A key from a field and an order as clients write it (`"asc"`, the default, or
    /// `"desc"`), whatever carried them.
    pub fn ordered(field: &str, order: Option<&str>) -> Result<SortKey> {
        let descending = match order {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "order must be \"asc\" or \"desc\", not {other:?}"
                )));
            }
        };
        SortKey::new(field, descending)
    }

    /// This key's value in a document (`None` when the field is missing).
    pub fn value<'a>(&self, id: &'a str, data: &'a Map<String, Value>) -> Option<Cow<'a, Value>> {
        self.path.resolve(id, data)
    }

    /// True for the `_id` pseudo-field.
    pub fn is_id(&self) -> bool {
        self.path == FieldPath::Id
    }
}

/// Parses `sort`: an array of `{"field": "...", "order": "asc"|"desc"}`, order defaulting to asc.
pub fn parse_sort(v: &Value) -> Result<Vec<SortKey>> {
    let Value::Array(items) = v else {
        return Err(Error::invalid(format!(
            "sort must be an array of {{\"field\", \"order\"}} objects, not {}",
            type_name(v)
        )));
    };
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(Error::invalid(format!(
                "sort[{i}] must be an object like {{\"field\": \"age\", \"order\": \"desc\"}}, not {}",
                type_name(item)
            )));
        };
        if let Some(k) = obj.keys().find(|k| *k != "field" && *k != "order") {
            return Err(Error::invalid(format!(
                "sort[{i}] has an unknown key \"{k}\" (expected \"field\" and \"order\")"
            )));
        }
        let field = match obj.get("field") {
            Some(Value::String(f)) => f,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "sort[{i}].field must be a string, not {}",
                    type_name(other)
                )));
            }
            None => return Err(Error::invalid(format!("sort[{i}] needs a \"field\""))),
        };
        let order = match obj.get("order") {
            None => None,
            Some(Value::String(o)) if o == "asc" || o == "desc" => Some(o.as_str()),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "sort[{i}].order must be \"asc\" or \"desc\", not {other}"
                )));
            }
        };
        keys.push(SortKey::ordered(field, order)?);
    }
    Ok(keys)
}

/// Sort keys back in their JSON form (what [`parse_sort`] reads), for the storage nodes.
pub fn sort_json(keys: &[SortKey]) -> Value {
    Value::Array(
        keys.iter()
            .map(|k| {
                let order = if k.descending { "desc" } else { "asc" };
                serde_json::json!({"field": k.field, "order": order})
            })
            .collect(),
    )
}

/// The keys that can decide an order: ids are unique, so keys after an `_id` key never
/// matter, and a final ascending `_id` is the built-in tiebreak. Without keys the order is
/// plain id order. Gateway and storage node both normalize, so positions agree.
pub fn normalize_sort(mut keys: Vec<SortKey>) -> Vec<SortKey> {
    if let Some(i) = keys.iter().position(SortKey::is_id) {
        keys.truncate(i + 1);
    }
    if keys.last().is_some_and(|k| k.is_id() && !k.descending) {
        keys.pop();
    }
    keys
}

/// Orders two documents by `keys`, then by id in byte order so the order is total.
pub fn compare_docs(
    keys: &[SortKey],
    a: (&str, &Map<String, Value>),
    b: (&str, &Map<String, Value>),
) -> Ordering {
    for key in keys {
        let va = key.value(a.0, a.1);
        let vb = key.value(b.0, b.1);
        let o = compare_values(va.as_deref(), vb.as_deref());
        let o = if key.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.0.as_bytes().cmp(b.0.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::query::tests::doc;
    use serde_json::json;

    fn sorted(sort: Value, docs: Vec<(&str, Value)>) -> Vec<String> {
        let keys = parse_sort(&sort).expect("valid sort");
        let mut docs: Vec<(String, Map<String, Value>)> = docs
            .into_iter()
            .map(|(id, d)| (id.to_owned(), doc(d)))
            .collect();
        docs.sort_by(|a, b| compare_docs(&keys, (&a.0, &a.1), (&b.0, &b.1)));
        docs.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn parse_sort_accepts_fields_and_orders() {
        let keys = parse_sort(&json!([
            {"field": "age", "order": "desc"},
            {"field": "name"},
            {"field": "a.b", "order": "asc"},
            {"field": "_id", "order": "desc"}
        ]))
        .expect("valid");
        let got: Vec<_> = keys
            .iter()
            .map(|k| (k.field.as_str(), k.descending))
            .collect();
        assert_eq!(
            got,
            vec![
                ("age", true),
                ("name", false),
                ("a.b", false),
                ("_id", true)
            ]
        );
        assert_eq!(parse_sort(&json!([])).expect("valid"), vec![]);
    }

    #[test]
    fn parse_sort_rejects_malformed() {
        let cases: Vec<(Value, &str)> = vec![
            (json!(null), "sort must be an array"),
            (json!({"field": "a"}), "sort must be an array"),
            (json!("age"), "sort must be an array"),
            (json!(["age"]), "sort[0] must be an object"),
            (json!([{"order": "asc"}]), "sort[0] needs a \"field\""),
            (json!([{"field": 1}]), "sort[0].field must be a string"),
            (
                json!([{"field": "a", "order": "up"}]),
                "sort[0].order must be \"asc\" or \"desc\"",
            ),
            (
                json!([{"field": "a", "order": "DESC"}]),
                "sort[0].order must be",
            ),
            (
                json!([{"field": "a", "order": -1}]),
                "sort[0].order must be",
            ),
            (
                json!([{"field": "a", "dir": "asc"}]),
                "sort[0] has an unknown key \"dir\"",
            ),
            (json!([{"field": "a"}, {"field": ""}]), "empty field path"),
            (json!([{"field": "a..b"}]), "has an empty segment"),
        ];
        for (sort, want) in cases {
            let e = parse_sort(&sort).expect_err("should be rejected");
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains(want), "{sort}: got {:?}", e.message);
        }
    }

    #[test]
    fn sorts_by_type_order_with_missing_first() {
        let docs = vec![
            ("d1", json!({"v": "s"})),
            ("d2", json!({"v": 2})),
            ("d3", json!({})),
            ("d4", json!({"v": null})),
            ("d5", json!({"v": [1]})),
            ("d6", json!({"v": true})),
            ("d7", json!({"v": {"a": 1}})),
            ("d8", json!({"v": 10})),
        ];
        assert_eq!(
            sorted(json!([{"field": "v"}]), docs.clone()),
            ["d3", "d4", "d6", "d2", "d8", "d1", "d5", "d7"]
        );
        assert_eq!(
            sorted(json!([{"field": "v", "order": "desc"}]), docs),
            ["d7", "d5", "d1", "d8", "d2", "d6", "d4", "d3"]
        );
    }

    #[test]
    fn ties_are_broken_by_id_ascending_even_when_descending() {
        let docs = vec![
            ("c", json!({"age": 30})),
            ("a", json!({"age": 30})),
            ("B", json!({"age": 40})),
            ("b", json!({"age": 30})),
            ("e", json!({})),
            ("d", json!({})),
        ];
        assert_eq!(
            sorted(json!([{"field": "age", "order": "desc"}]), docs.clone()),
            ["B", "a", "b", "c", "d", "e"]
        );
        assert_eq!(
            sorted(json!([{"field": "age"}]), docs.clone()),
            ["d", "e", "a", "b", "c", "B"]
        );
        assert_eq!(sorted(json!([]), docs), ["B", "a", "b", "c", "d", "e"]);
    }

    #[test]
    fn multiple_keys_nested_paths_and_id() {
        let docs = vec![
            ("1", json!({"a": {"x": 1}, "b": "z"})),
            ("2", json!({"a": {"x": 1}, "b": "y"})),
            ("3", json!({"a": {"x": 0}, "b": "z"})),
            ("4", json!({"a": {"x": 1.0}, "b": "y"})),
        ];
        assert_eq!(
            sorted(
                json!([{"field": "a.x", "order": "desc"}, {"field": "b"}]),
                docs.clone()
            ),
            ["2", "4", "1", "3"]
        );
        assert_eq!(
            sorted(json!([{"field": "_id", "order": "desc"}]), docs),
            ["4", "3", "2", "1"]
        );
    }

    #[test]
    fn normalize_drops_keys_that_cannot_decide() {
        let norm = |v: Value| -> Vec<(String, bool)> {
            normalize_sort(parse_sort(&v).expect("valid"))
                .into_iter()
                .map(|k| (k.field, k.descending))
                .collect()
        };
        assert!(norm(json!([{"field": "_id"}])).is_empty());
        assert!(norm(json!([{"field": "_id"}, {"field": "a"}])).is_empty());
        assert_eq!(
            norm(json!([{"field": "a"}, {"field": "_id"}])),
            vec![("a".into(), false)]
        );
        assert_eq!(
            norm(json!([{"field": "_id", "order": "desc"}, {"field": "a"}])),
            vec![("_id".into(), true)]
        );
        assert_eq!(
            norm(json!([{"field": "a", "order": "desc"}, {"field": "b"}])),
            vec![("a".into(), true), ("b".into(), false)]
        );
    }

    #[test]
    fn numbers_sort_numerically() {
        let parse = |t: &str| serde_json::from_str::<Value>(t).expect("valid");
        let docs = vec![
            ("a", parse(r#"{"n": 18446744073709551615}"#)),
            ("b", parse(r#"{"n": 18446744073709551614}"#)),
            ("c", parse(r#"{"n": -9223372036854775808}"#)),
            ("d", parse(r#"{"n": 9}"#)),
            ("e", parse(r#"{"n": 10}"#)),
            ("f", parse(r#"{"n": 1e0}"#)),
            ("g", parse(r#"{"n": 1.0}"#)),
            ("h", parse(r#"{"n": -5}"#)),
        ];
        assert_eq!(
            sorted(json!([{"field": "n"}]), docs),
            ["c", "h", "f", "g", "d", "e", "b", "a"]
        );
    }
}
