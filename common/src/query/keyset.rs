//! Keyset positions: where a document stands in a query's order, so that a page can resume
//! strictly after the last document it returned, however the data changed meanwhile.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::order::compare_values;
use super::sort::SortKey;
use crate::error::{Error, Result};
use crate::json::parse_value;

/// Deepest position encoding accepted: a 64-deep sort value inside the two wrapping arrays.
const MAX_DEPTH: usize = 70;

/// A document's place in a query order: its sort values (`None` when the field is missing,
/// which sorts before null) and its id, the final tiebreak.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// One value per sort key.
    pub values: Vec<Option<Value>>,
    /// The document id.
    pub id: String,
}

impl Position {
    /// The position of a document under `keys`.
    pub fn of(keys: &[SortKey], id: &str, data: &Map<String, Value>) -> Position {
        Position {
            values: keys
                .iter()
                .map(|k| k.value(id, data).map(|v| v.into_owned()))
                .collect(),
            id: id.to_owned(),
        }
    }

    /// The position of an id in id order (no sort keys).
    pub fn of_id(id: &str) -> Position {
        Position {
            values: Vec::new(),
            id: id.to_owned(),
        }
    }

    /// Orders two positions under `keys` (ascending or descending per key), then by id bytes.
    pub fn compare(&self, other: &Position, keys: &[SortKey]) -> Ordering {
        for ((key, a), b) in keys.iter().zip(&self.values).zip(&other.values) {
            let o = compare_values(a.as_ref(), b.as_ref());
            let o = if key.descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.id.as_bytes().cmp(other.id.as_bytes())
    }

    /// Encodes as JSON `["<id>", [v1], [], …]`: a present value wrapped in a one-element
    /// array, a missing one as an empty array, so missing and null stay distinct.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut items = Vec::with_capacity(self.values.len() + 1);
        items.push(Value::String(self.id.clone()));
        items.extend(
            self.values
                .iter()
                .map(|v| Value::Array(v.iter().cloned().collect())),
        );
        // Serializing a `Value` cannot fail: its map keys are strings.
        serde_json::to_vec(&Value::Array(items)).unwrap_or_default()
    }

    /// Decodes [`Position::to_bytes`], checking it has one value per sort key.
    pub fn from_bytes(bytes: &[u8], keys: usize) -> Result<Position> {
        let bad = |why: &str| Error::invalid(format!("malformed position: {why}"));
        let Value::Array(items) = parse_value(bytes, MAX_DEPTH)? else {
            return Err(bad("not an array"));
        };
        let mut items = items.into_iter();
        let Some(Value::String(id)) = items.next() else {
            return Err(bad("no id"));
        };
        let mut values = Vec::with_capacity(keys);
        for item in items {
            match item {
                Value::Array(mut v) if v.len() <= 1 => values.push(v.pop()),
                _ => return Err(bad("a sort value is not wrapped")),
            }
        }
        if values.len() != keys {
            return Err(Error::invalid(format!(
                "the cursor belongs to a query with {} sort keys, not {keys}",
                values.len()
            )));
        }
        Ok(Position { values, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_sort;
    use crate::query::tests::doc;
    use serde_json::json;

    #[test]
    fn round_trips_and_keeps_missing_apart_from_null() {
        let keys =
            parse_sort(&json!([{"field": "a"}, {"field": "b.c", "order": "desc"}, {"field": "z"}]))
                .expect("valid");
        let d = doc(json!({"a": null, "b": {"c": [1, {"x": "y"}]}}));
        let p = Position::of(&keys, "id-1", &d);
        assert_eq!(
            p.values,
            vec![Some(Value::Null), Some(json!([1, {"x": "y"}])), None]
        );
        let back = Position::from_bytes(&p.to_bytes(), 3).expect("decodes");
        assert_eq!(back, p);
        assert!(Position::from_bytes(&p.to_bytes(), 2).is_err());
        for bad in [
            &b"{}"[..],
            b"[]",
            b"[1]",
            b"[\"x\", 5]",
            b"[\"x\", [1, 2]]",
            b"nope",
        ] {
            assert!(
                Position::from_bytes(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn compares_like_compare_docs() {
        let keys =
            parse_sort(&json!([{"field": "n", "order": "desc"}, {"field": "s"}])).expect("valid");
        let docs = [
            ("a", json!({"n": 2, "s": "x"})),
            ("b", json!({"n": 2})),
            ("c", json!({"n": 2.0, "s": "x"})),
            ("d", json!({"s": null})),
            ("e", json!({"n": "str"})),
        ];
        for (ia, a) in &docs {
            for (ib, b) in &docs {
                let (a, b) = (doc(a.clone()), doc(b.clone()));
                assert_eq!(
                    Position::of(&keys, ia, &a).compare(&Position::of(&keys, ib, &b), &keys),
                    crate::query::compare_docs(&keys, (ia, &a), (ib, &b)),
                    "{ia} vs {ib}"
                );
            }
        }
    }
}
