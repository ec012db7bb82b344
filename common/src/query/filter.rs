//! Parsing a query filter into a validated tree, and evaluating it against documents.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use super::order::{compare_values, values_equal};
use super::{FieldPath, parse_path};
use crate::error::{Error, Result};
use crate::json::type_name;

/// Compiled-program budget for `$regex`: generous for real patterns, small enough that a
/// hostile one (`a{1000}{1000}`) is rejected at parse time instead of eating memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A parsed, validated filter; build it once per query and test every document with it.
#[derive(Debug, Clone)]
pub struct Filter {
    pub(super) root: Node,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Field { path: FieldPath, preds: Vec<Pred> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl RangeOp {
    fn accepts(self, o: Ordering) -> bool {
        match self {
            RangeOp::Gt => o == Ordering::Greater,
            RangeOp::Gte => o != Ordering::Less,
            RangeOp::Lt => o == Ordering::Less,
            RangeOp::Lte => o != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Pred {
    Eq(Value),
    Ne(Value),
    Range(RangeOp, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Prefix(String),
    Regex(Regex),
    Not(Vec<Pred>),
}

const FIELD_OPERATORS: [&str; 12] = [
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$prefix", "$regex",
    "$not",
];

impl Filter {
    /// Parses and validates a filter; it must be a JSON object, and `{}` matches everything.
    pub fn parse(v: &Value) -> Result<Filter> {
        match v {
            Value::Object(map) => Ok(Filter {
                root: parse_filter_object(map)?,
            }),
            other => Err(Error::invalid(format!(
                "a filter must be a JSON object, not {}",
                type_name(other)
            ))),
        }
    }

    /// A filter that matches every document (the same as parsing `{}`).
    pub fn match_all() -> Filter {
        Filter {
            root: Node::And(Vec::new()),
        }
    }

    /// Whether the document with this id and body satisfies the filter.
    pub fn matches(&self, id: &str, data: &Map<String, Value>) -> bool {
        self.root.eval(id, data)
    }

    /// The smallest id a matching document can have (and whether that id itself can match),
    /// from `_id` conditions that every match must meet, so a scan can seek past the rest.
    pub fn id_lower_bound(&self) -> Option<(String, bool)> {
        let mut best: Option<(&str, bool)> = None;
        self.root.for_each_required_id_pred(&mut |p| {
            if let Some(b) = p.id_lower_bound() {
                best = Some(match best {
                    Some(cur) => tighter(cur, b, Ordering::Greater),
                    None => b,
                });
            }
        });
        best.map(|(s, inclusive)| (s.to_owned(), inclusive))
    }

    /// The largest id a matching document can have (and whether that id itself can match),
    /// so a scan in id order can stop early.
    pub fn id_upper_bound(&self) -> Option<(String, bool)> {
        let mut best: Option<(&str, bool)> = None;
        self.root.for_each_required_id_pred(&mut |p| {
            if let Some(b) = p.id_upper_bound() {
                best = Some(match best {
                    Some(cur) => tighter(cur, b, Ordering::Less),
                    None => b,
                });
            }
        });
        best.map(|(s, inclusive)| (s.to_owned(), inclusive))
    }
}

/// Picks the more restrictive of two bounds; `toward` is the direction that restricts more.
fn tighter<'a>(a: (&'a str, bool), b: (&'a str, bool), toward: Ordering) -> (&'a str, bool) {
    match a.0.as_bytes().cmp(b.0.as_bytes()) {
        o if o == toward => a,
        Ordering::Equal => (a.0, a.1 && b.1),
        _ => b,
    }
}

fn parse_filter_object(map: &Map<String, Value>) -> Result<Node> {
    let mut clauses = Vec::with_capacity(map.len());
    for (key, value) in map {
        if key.starts_with('$') {
            clauses.push(parse_logical(key, value)?);
        } else {
            let path = parse_path(key)?;
            let preds = parse_field_value(key, value)?;
            clauses.push(Node::Field { path, preds });
        }
    }
    Ok(Node::And(clauses))
}

fn parse_logical(op: &str, value: &Value) -> Result<Node> {
    match op {
        "$and" | "$or" => {
            let items = match value {
                Value::Array(items) if !items.is_empty() => items,
                _ => {
                    return Err(Error::invalid(format!(
                        "{op} needs a non-empty array of filter objects"
                    )));
                }
            };
            let mut nodes = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(m) => nodes.push(parse_filter_object(m)?),
                    other => {
                        return Err(Error::invalid(format!(
                            "{op}[{i}] must be a filter object, not {}",
                            type_name(other)
                        )));
                    }
                }
            }
            Ok(if op == "$and" {
                Node::And(nodes)
            } else {
                Node::Or(nodes)
            })
        }
        "$not" => match value {
            Value::Object(m) => Ok(Node::Not(Box::new(parse_filter_object(m)?))),
            other => Err(Error::invalid(format!(
                "$not needs a filter object, not {}",
                type_name(other)
            ))),
        },
        _ if FIELD_OPERATORS.contains(&op) => Err(Error::invalid(format!(
            "operator \"{op}\" applies to a field: write {{\"<field>\": {{\"{op}\": …}}}}"
        ))),
        _ => Err(Error::invalid(format!(
            "unknown operator \"{op}\" at the filter level"
        ))),
    }
}

/// A field's value: an operator object when its keys all start with `$`, otherwise a value
/// to compare for equality (including an object without `$` keys, or `{}`).
fn parse_field_value(path: &str, value: &Value) -> Result<Vec<Pred>> {
    match value {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
            if let Some(k) = ops.keys().find(|k| !k.starts_with('$')) {
                return Err(Error::invalid(format!(
                    "the object at \"{path}\" mixes operators and field names (\"{k}\"); \
                     use {{\"$eq\": {{…}}}} to match an object with $-prefixed keys"
                )));
            }
            parse_operators(path, ops)
        }
        _ => Ok(vec![Pred::Eq(value.clone())]),
    }
}

fn parse_operators(path: &str, ops: &Map<String, Value>) -> Result<Vec<Pred>> {
    let mut preds = Vec::with_capacity(ops.len());
    for (op, operand) in ops {
        let pred = match op.as_str() {
            "$eq" => Pred::Eq(operand.clone()),
            "$ne" => Pred::Ne(operand.clone()),
            "$gt" => Pred::Range(RangeOp::Gt, operand.clone()),
            "$gte" => Pred::Range(RangeOp::Gte, operand.clone()),
            "$lt" => Pred::Range(RangeOp::Lt, operand.clone()),
            "$lte" => Pred::Range(RangeOp::Lte, operand.clone()),
            "$in" | "$nin" => {
                let Value::Array(items) = operand else {
                    return Err(Error::invalid(format!(
                        "{op} at \"{path}\" needs an array, not {}",
                        type_name(operand)
                    )));
                };
                if op == "$in" {
                    Pred::In(items.clone())
                } else {
                    Pred::Nin(items.clone())
                }
            }
            "$exists" => match operand {
                Value::Bool(b) => Pred::Exists(*b),
                other => {
                    return Err(Error::invalid(format!(
                        "$exists at \"{path}\" needs a boolean, not {}",
                        type_name(other)
                    )));
                }
            },
            "$prefix" => match operand {
                Value::String(s) => Pred::Prefix(s.clone()),
                other => {
                    return Err(Error::invalid(format!(
                        "$prefix at \"{path}\" needs a string, not {}",
                        type_name(other)
                    )));
                }
            },
            "$regex" => match operand {
                Value::String(pattern) => Pred::Regex(
                    RegexBuilder::new(pattern)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| {
                            Error::invalid(format!("invalid $regex pattern at \"{path}\": {e}"))
                        })?,
                ),
                other => {
                    return Err(Error::invalid(format!(
                        "$regex at \"{path}\" needs a string pattern, not {}",
                        type_name(other)
                    )));
                }
            },
            "$not" => match operand {
                Value::Object(inner)
                    if !inner.is_empty() && inner.keys().all(|k| k.starts_with('$')) =>
                {
                    Pred::Not(parse_operators(path, inner)?)
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "$not at \"{path}\" needs a non-empty object of operators, \
                         like {{\"$not\": {{\"$gt\": 5}}}}"
                    )));
                }
            },
            "$and" | "$or" => {
                return Err(Error::invalid(format!(
                    "{op} is not a field operator (at \"{path}\"); use it at the filter level"
                )));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unknown operator \"{op}\" at \"{path}\""
                )));
            }
        };
        preds.push(pred);
    }
    Ok(preds)
}

impl Node {
    fn eval(&self, id: &str, data: &Map<String, Value>) -> bool {
        match self {
            Node::And(nodes) => nodes.iter().all(|n| n.eval(id, data)),
            Node::Or(nodes) => nodes.iter().any(|n| n.eval(id, data)),
            Node::Not(node) => !node.eval(id, data),
            Node::Field { path, preds } => {
                let value = path.resolve(id, data);
                let value = value.as_deref();
                preds.iter().all(|p| p.test(value))
            }
        }
    }

    /// Visits the `_id` predicates that every matching document must satisfy: those reached
    /// only through conjunctions, never under `$or` or `$not`.
    fn for_each_required_id_pred<'a>(&'a self, f: &mut impl FnMut(&'a Pred)) {
        match self {
            Node::And(nodes) => {
                for n in nodes {
                    n.for_each_required_id_pred(f);
                }
            }
            Node::Field {
                path: FieldPath::Id,
                preds,
            } => preds.iter().for_each(f),
            Node::Or(_) | Node::Not(_) | Node::Field { .. } => {}
        }
    }
}

impl Pred {
    fn test(&self, value: Option<&Value>) -> bool {
        match self {
            Pred::Eq(x) => value.is_some_and(|v| equals_or_contains(v, x)),
            Pred::Ne(x) => !value.is_some_and(|v| equals_or_contains(v, x)),
            Pred::Range(op, x) => {
                value.is_some_and(|v| op.accepts(compare_values(Some(v), Some(x))))
            }
            Pred::In(xs) => value.is_some_and(|v| xs.iter().any(|x| equals_or_contains(v, x))),
            Pred::Nin(xs) => !value.is_some_and(|v| xs.iter().any(|x| equals_or_contains(v, x))),
            Pred::Exists(want) => value.is_some() == *want,
            Pred::Prefix(p) => matches!(value, Some(Value::String(s)) if s.starts_with(p.as_str())),
            Pred::Regex(r) => matches!(value, Some(Value::String(s)) if r.is_match(s)),
            Pred::Not(preds) => !preds.iter().all(|p| p.test(value)),
        }
    }

    fn id_lower_bound(&self) -> Option<(&str, bool)> {
        match self {
            Pred::Eq(Value::String(s)) | Pred::Range(RangeOp::Gte, Value::String(s)) => {
                Some((s, true))
            }
            Pred::Range(RangeOp::Gt, Value::String(s)) => Some((s, false)),
            Pred::In(xs) => string_items(xs)
                .min_by(|a, b| a.as_bytes().cmp(b.as_bytes()))
                .map(|s| (s, true)),
            _ => None,
        }
    }

    fn id_upper_bound(&self) -> Option<(&str, bool)> {
        match self {
            Pred::Eq(Value::String(s)) | Pred::Range(RangeOp::Lte, Value::String(s)) => {
                Some((s, true))
            }
            Pred::Range(RangeOp::Lt, Value::String(s)) => Some((s, false)),
            Pred::In(xs) => string_items(xs)
                .max_by(|a, b| a.as_bytes().cmp(b.as_bytes()))
                .map(|s| (s, true)),
            _ => None,
        }
    }
}

/// The string members of an `$in` list: the only ones that can equal an id.
fn string_items(xs: &[Value]) -> impl Iterator<Item = &str> {
    xs.iter().filter_map(Value::as_str)
}

/// MongoDB's equality: the whole value equals, or the value is an array with an equal element.
fn equals_or_contains(value: &Value, x: &Value) -> bool {
    values_equal(value, x)
        || matches!(value, Value::Array(items) if items.iter().any(|e| values_equal(e, x)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::query::tests::doc;
    use serde_json::json;

    fn parse_json(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn matches(filter: Value, data: Value) -> bool {
        matches_id(filter, "doc1", data)
    }

    fn matches_id(filter: Value, id: &str, data: Value) -> bool {
        Filter::parse(&filter)
            .expect("valid filter")
            .matches(id, &doc(data))
    }

    fn parse_err(filter: Value) -> String {
        let e = Filter::parse(&filter).expect_err("filter should be rejected");
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
        e.message
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(matches(json!({}), json!({})));
        assert!(matches(json!({}), json!({"a": 1})));
        assert!(Filter::match_all().matches("x", &Map::new()));
    }

    #[test]
    fn implicit_equality() {
        let d = json!({"status": "active", "n": 1, "o": {"a": 1, "b": [1, 2]}, "z": null});
        assert!(matches(json!({"status": "active"}), d.clone()));
        assert!(!matches(json!({"status": "inactive"}), d.clone()));
        assert!(matches(json!({"n": 1}), d.clone()));
        assert!(matches(json!({"n": parse_json("1.0")}), d.clone()));
        assert!(matches(json!({"n": parse_json("1e0")}), d.clone()));
        assert!(!matches(json!({"n": "1"}), d.clone()));
        assert!(matches(json!({"o": {"b": [1, 2], "a": 1}}), d.clone()));
        assert!(!matches(json!({"o": {"a": 1}}), d.clone()));
        assert!(matches(json!({"z": null}), d.clone()));
        assert!(matches(json!({"status": "active", "n": 1}), d.clone()));
        assert!(!matches(json!({"status": "active", "n": 2}), d));
    }

    #[test]
    fn empty_object_value_is_equality_with_empty_object() {
        assert!(matches(json!({"o": {}}), json!({"o": {}})));
        assert!(!matches(json!({"o": {}}), json!({"o": {"a": 1}})));
        assert!(!matches(json!({"o": {}}), json!({})));
    }

    #[test]
    fn eq_and_ne() {
        let d = json!({"a": 5, "s": "x"});
        assert!(matches(json!({"a": {"$eq": 5}}), d.clone()));
        assert!(matches(
            json!({"a": {"$eq": parse_json("5.00")}}),
            d.clone()
        ));
        assert!(!matches(json!({"a": {"$eq": 6}}), d.clone()));
        assert!(matches(json!({"a": {"$ne": 6}}), d.clone()));
        assert!(!matches(json!({"a": {"$ne": 5}}), d.clone()));
        assert!(matches(json!({"a": {"$ne": "5"}}), d.clone()));
        assert!(matches(json!({"s": {"$eq": "x"}}), d));
        // $eq takes its operand literally, so it can match objects with $-keys.
        assert!(matches(
            json!({"o": {"$eq": {"$x": 1}}}),
            json!({"o": {"$x": 1}})
        ));
    }

    #[test]
    fn range_operators_follow_the_total_type_order() {
        let d = json!({"age": 30, "name": "m", "t": true, "arr": [1, 5], "o": {"k": 2}, "z": null});
        assert!(matches(json!({"age": {"$gt": 29}}), d.clone()));
        assert!(!matches(json!({"age": {"$gt": 30}}), d.clone()));
        assert!(matches(json!({"age": {"$gte": 30}}), d.clone()));
        assert!(matches(
            json!({"age": {"$gte": parse_json("30.0")}}),
            d.clone()
        ));
        assert!(!matches(
            json!({"age": {"$gte": parse_json("30.5")}}),
            d.clone()
        ));
        assert!(matches(json!({"age": {"$lt": 31}}), d.clone()));
        assert!(!matches(json!({"age": {"$lt": 30}}), d.clone()));
        assert!(matches(json!({"age": {"$lte": 30}}), d.clone()));
        assert!(matches(json!({"age": {"$gt": 18, "$lt": 65}}), d.clone()));
        assert!(!matches(json!({"age": {"$gt": 18, "$lt": 20}}), d.clone()));
        // Across types the type order decides: null < bool < number < string < array < object.
        assert!(!matches(json!({"age": {"$gt": "a"}}), d.clone()));
        assert!(matches(json!({"age": {"$lt": "a"}}), d.clone()));
        assert!(matches(json!({"name": {"$gt": 5}}), d.clone()));
        assert!(!matches(json!({"name": {"$lt": 5}}), d.clone()));
        assert!(matches(json!({"age": {"$gt": null}}), d.clone()));
        assert!(matches(json!({"age": {"$gt": true}}), d.clone()));
        assert!(matches(json!({"o": {"$gt": [9]}}), d.clone()));
        // A missing field matches no range operator, though it sorts first.
        assert!(!matches(json!({"missing": {"$lt": null}}), d.clone()));
        assert!(!matches(json!({"missing": {"$gte": null}}), d.clone()));
        assert!(matches(json!({"name": {"$gt": "a"}}), d.clone()));
        assert!(!matches(json!({"name": {"$gt": "n"}}), d.clone()));
        assert!(matches(
            json!({"name": {"$gte": "m", "$lt": "n"}}),
            d.clone()
        ));
        assert!(matches(json!({"t": {"$gt": false}}), d.clone()));
        assert!(matches(json!({"z": {"$gte": null}}), d.clone()));
        assert!(!matches(json!({"z": {"$gt": null}}), d.clone()));
        // Arrays and objects compare as whole values.
        assert!(matches(json!({"arr": {"$gt": [1, 4]}}), d.clone()));
        assert!(matches(json!({"arr": {"$gt": 3}}), d.clone()));
        assert!(!matches(json!({"arr": {"$lt": 3}}), d.clone()));
        assert!(matches(json!({"arr": {"$lt": [2]}}), d.clone()));
        assert!(matches(json!({"o": {"$gt": {"k": 1}}}), d.clone()));
        assert!(!matches(json!({"o": {"$gt": {"k": 3}}}), d));
    }

    #[test]
    fn range_on_big_integers_is_exact() {
        let d = doc(parse_json(
            r#"{"u": 18446744073709551615, "i": -9223372036854775808}"#,
        ));
        let f = |text: &str| Filter::parse(&parse_json(text)).expect("valid");
        assert!(f(r#"{"u": {"$gt": 18446744073709551614}}"#).matches("x", &d));
        assert!(!f(r#"{"u": {"$gt": 18446744073709551615}}"#).matches("x", &d));
        assert!(f(r#"{"u": 18446744073709551615}"#).matches("x", &d));
        assert!(!f(r#"{"u": 18446744073709551614}"#).matches("x", &d));
        assert!(f(r#"{"i": {"$lt": -9223372036854775807}}"#).matches("x", &d));
        assert!(f(r#"{"i": -9223372036854775808}"#).matches("x", &d));
        assert!(f(r#"{"i": {"$lt": 0, "$gte": -9.3e18}}"#).matches("x", &d));
    }

    #[test]
    fn in_and_nin() {
        let d = json!({"city": "Oslo", "n": 2});
        assert!(matches(
            json!({"city": {"$in": ["Oslo", "Lima"]}}),
            d.clone()
        ));
        assert!(!matches(json!({"city": {"$in": ["Rome"]}}), d.clone()));
        assert!(!matches(json!({"city": {"$in": []}}), d.clone()));
        assert!(matches(
            json!({"n": {"$in": [parse_json("2.0")]}}),
            d.clone()
        ));
        assert!(matches(json!({"city": {"$nin": ["Rome"]}}), d.clone()));
        assert!(!matches(
            json!({"city": {"$nin": ["Oslo", "Rome"]}}),
            d.clone()
        ));
        assert!(matches(json!({"city": {"$nin": []}}), d));
    }

    #[test]
    fn exists() {
        let d = json!({"a": null, "b": {"c": 0}});
        assert!(matches(json!({"a": {"$exists": true}}), d.clone()));
        assert!(!matches(json!({"a": {"$exists": false}}), d.clone()));
        assert!(matches(json!({"x": {"$exists": false}}), d.clone()));
        assert!(!matches(json!({"x": {"$exists": true}}), d.clone()));
        assert!(matches(json!({"b.c": {"$exists": true}}), d.clone()));
        assert!(matches(json!({"b.d": {"$exists": false}}), d));
    }

    #[test]
    fn prefix_and_regex_only_match_strings() {
        let d = json!({"name": "Alice", "n": 123, "tags": ["Alpha"], "o": {"Al": 1}});
        assert!(matches(json!({"name": {"$prefix": "Al"}}), d.clone()));
        assert!(matches(json!({"name": {"$prefix": ""}}), d.clone()));
        assert!(!matches(json!({"name": {"$prefix": "al"}}), d.clone()));
        assert!(!matches(json!({"n": {"$prefix": "1"}}), d.clone()));
        assert!(!matches(json!({"tags": {"$prefix": "Al"}}), d.clone()));
        assert!(!matches(json!({"missing": {"$prefix": ""}}), d.clone()));
        assert!(matches(json!({"name": {"$regex": "^A.*e$"}}), d.clone()));
        assert!(matches(json!({"name": {"$regex": "lic"}}), d.clone()));
        assert!(!matches(json!({"name": {"$regex": "^lic"}}), d.clone()));
        assert!(matches(
            json!({"name": {"$regex": "(?i)^alice$"}}),
            d.clone()
        ));
        assert!(!matches(json!({"n": {"$regex": "1"}}), d.clone()));
        assert!(!matches(json!({"tags": {"$regex": "A"}}), d.clone()));
        assert!(!matches(json!({"o": {"$regex": "A"}}), d.clone()));
        assert!(!matches(json!({"missing": {"$regex": ""}}), d));
    }

    #[test]
    fn missing_field_matches_only_exists_false_ne_nin_and_negations() {
        let d = json!({"present": 1});
        let yes = [
            json!({"m": {"$exists": false}}),
            json!({"m": {"$ne": 1}}),
            json!({"m": {"$ne": null}}),
            json!({"m": {"$nin": [1, null]}}),
            json!({"m": {"$not": {"$gt": 5}}}),
            json!({"m": {"$not": {"$eq": null}}}),
            json!({"$not": {"m": 1}}),
        ];
        let no = [
            json!({"m": null}),
            json!({"m": {"$eq": null}}),
            json!({"m": {"$exists": true}}),
            json!({"m": {"$gt": 0}}),
            json!({"m": {"$gte": null}}),
            json!({"m": {"$lt": 0}}),
            json!({"m": {"$lte": "z"}}),
            json!({"m": {"$in": [null, 1]}}),
            json!({"m": {"$prefix": ""}}),
            json!({"m": {"$regex": ".*"}}),
            json!({"m": {"$not": {"$exists": false}}}),
            json!({"m.n": null}),
        ];
        for f in yes {
            assert!(matches(f.clone(), d.clone()), "{f} should match");
        }
        for f in no {
            assert!(!matches(f.clone(), d.clone()), "{f} should not match");
        }
    }

    #[test]
    fn array_fields_follow_mongodb_element_rules() {
        let d = json!({"tags": ["a", "b"], "nested": [["x"], "y"], "nums": [1, 10]});
        assert!(matches(json!({"tags": "a"}), d.clone()));
        assert!(matches(json!({"tags": {"$eq": "b"}}), d.clone()));
        assert!(!matches(json!({"tags": "c"}), d.clone()));
        assert!(matches(json!({"tags": ["a", "b"]}), d.clone()));
        assert!(!matches(json!({"tags": ["b", "a"]}), d.clone()));
        assert!(!matches(json!({"tags": ["a"]}), d.clone()));
        assert!(matches(json!({"nested": ["x"]}), d.clone()));
        assert!(!matches(json!({"tags": {"$ne": "a"}}), d.clone()));
        assert!(!matches(json!({"tags": {"$ne": ["a", "b"]}}), d.clone()));
        assert!(matches(json!({"tags": {"$ne": "c"}}), d.clone()));
        assert!(matches(json!({"tags": {"$in": ["c", "b"]}}), d.clone()));
        assert!(matches(json!({"tags": {"$in": [["a", "b"]]}}), d.clone()));
        assert!(!matches(json!({"tags": {"$in": ["c"]}}), d.clone()));
        assert!(!matches(json!({"tags": {"$nin": ["a"]}}), d.clone()));
        assert!(matches(json!({"tags": {"$nin": ["c"]}}), d.clone()));
        // Range operators look at the whole array, not its elements: an array sorts after
        // every number, so `$lt` a number never matches it.
        assert!(!matches(json!({"nums": {"$lt": 5}}), d.clone()));
        assert!(matches(json!({"nums": {"$gt": [1, 9]}}), d.clone()));
        // Equality only looks one level into arrays.
        assert!(!matches(json!({"nested": "x"}), d));
    }

    #[test]
    fn dotted_paths_reach_into_objects_but_not_arrays() {
        let d =
            json!({"address": {"city": "Oslo", "geo": {"lat": 59}}, "list": [{"a": 1}], "s": "x"});
        assert!(matches(json!({"address.city": "Oslo"}), d.clone()));
        assert!(matches(json!({"address.geo.lat": {"$gt": 50}}), d.clone()));
        assert!(matches(
            json!({"address": {"city": "Oslo", "geo": {"lat": 59}}}),
            d.clone()
        ));
        assert!(!matches(
            json!({"address.zip": {"$exists": true}}),
            d.clone()
        ));
        assert!(matches(json!({"list.a": {"$exists": false}}), d.clone()));
        assert!(matches(json!({"list.0.a": {"$exists": false}}), d.clone()));
        assert!(matches(json!({"s.length": {"$exists": false}}), d));
    }

    #[test]
    fn id_pseudo_field() {
        let d = json!({"_id": "shadow", "v": 1});
        assert!(matches_id(json!({"_id": "k5"}), "k5", d.clone()));
        assert!(!matches_id(json!({"_id": "shadow"}), "k5", d.clone()));
        assert!(matches_id(json!({"_id": {"$gt": "k1"}}), "k5", d.clone()));
        assert!(!matches_id(json!({"_id": {"$gt": "k5"}}), "k5", d.clone()));
        assert!(matches_id(
            json!({"_id": {"$prefix": "k"}}),
            "k5",
            d.clone()
        ));
        assert!(matches_id(
            json!({"_id": {"$regex": "^k[0-9]$"}}),
            "k5",
            d.clone()
        ));
        assert!(matches_id(
            json!({"_id": {"$in": ["k4", "k5"]}}),
            "k5",
            d.clone()
        ));
        assert!(matches_id(
            json!({"_id": {"$exists": true}}),
            "k5",
            d.clone()
        ));
        // The id is a string, so it is above every number and below every array.
        assert!(matches_id(json!({"_id": {"$gt": 5}}), "5", d.clone()));
        assert!(!matches_id(json!({"_id": 5}), "5", d.clone()));
        assert!(!matches_id(json!({"_id": {"$gt": []}}), "5", d.clone()));
        assert!(!matches_id(json!({"_id.x": {"$exists": true}}), "k5", d));
    }

    #[test]
    fn logical_operators() {
        let d = json!({"a": 1, "b": 2});
        assert!(matches(json!({"$and": [{"a": 1}, {"b": 2}]}), d.clone()));
        assert!(!matches(json!({"$and": [{"a": 1}, {"b": 3}]}), d.clone()));
        assert!(matches(json!({"$or": [{"a": 9}, {"b": 2}]}), d.clone()));
        assert!(!matches(json!({"$or": [{"a": 9}, {"b": 9}]}), d.clone()));
        assert!(matches(json!({"$not": {"a": 9}}), d.clone()));
        assert!(!matches(json!({"$not": {"a": 1}}), d.clone()));
        assert!(!matches(json!({"$not": {}}), d.clone()));
        assert!(matches(json!({"$or": [{}]}), d.clone()));
        // Nested inside each other and mixed with fields.
        assert!(matches(
            json!({"a": 1, "$or": [{"$and": [{"b": 2}, {"$not": {"a": 2}}]}, {"c": 1}]}),
            d.clone()
        ));
        assert!(!matches(
            json!({"a": 1, "$or": [{"$and": [{"b": 2}, {"$not": {"a": 1}}]}, {"c": 1}]}),
            d.clone()
        ));
        // A multi-key $not negates the conjunction.
        assert!(matches(json!({"$not": {"a": 1, "b": 3}}), d.clone()));
        // Field-level $not.
        assert!(matches(json!({"a": {"$not": {"$gt": 5}}}), d.clone()));
        assert!(!matches(json!({"a": {"$not": {"$lt": 5}}}), d.clone()));
        assert!(matches(
            json!({"a": {"$not": {"$gt": 0, "$lt": 1}}}),
            d.clone()
        ));
        assert!(!matches(
            json!({"a": {"$not": {"$not": {"$eq": 2}}}}),
            d.clone()
        ));
        assert!(matches(json!({"a": {"$gte": 1, "$not": {"$eq": 2}}}), d));
    }

    #[test]
    fn id_lower_bound_from_conjunctive_id_conditions() {
        let lb = |f: Value| Filter::parse(&f).expect("valid").id_lower_bound();
        let ub = |f: Value| Filter::parse(&f).expect("valid").id_upper_bound();
        let b = |s: &str, inc: bool| Some((s.to_owned(), inc));
        assert_eq!(lb(json!({})), None);
        assert_eq!(lb(json!({"a": 1})), None);
        assert_eq!(lb(json!({"_id": {"$gt": "k"}})), b("k", false));
        assert_eq!(lb(json!({"_id": {"$gte": "k"}})), b("k", true));
        assert_eq!(lb(json!({"_id": "k"})), b("k", true));
        assert_eq!(lb(json!({"_id": {"$eq": "k"}})), b("k", true));
        assert_eq!(lb(json!({"_id": {"$in": ["q", "c", 5]}})), b("c", true));
        assert_eq!(lb(json!({"_id": {"$in": [5]}})), None);
        assert_eq!(lb(json!({"_id": {"$gt": 5}})), None);
        assert_eq!(lb(json!({"_id": {"$lt": "k"}})), None);
        assert_eq!(lb(json!({"_id": {"$gte": "a", "$gt": "b"}})), b("b", false));
        assert_eq!(lb(json!({"_id": {"$gte": "b", "$gt": "b"}})), b("b", false));
        assert_eq!(lb(json!({"_id": {"$gte": "c", "$gt": "b"}})), b("c", true));
        assert_eq!(
            lb(
                json!({"a": 1, "$and": [{"_id": {"$gt": "m"}}, {"$and": [{"_id": {"$gte": "p"}}]}]})
            ),
            b("p", true)
        );
        assert_eq!(lb(json!({"$or": [{"_id": {"$gt": "m"}}]})), None);
        assert_eq!(lb(json!({"$not": {"_id": {"$lt": "m"}}})), None);
        assert_eq!(lb(json!({"_id": {"$not": {"$lt": "m"}}})), None);

        assert_eq!(ub(json!({"_id": {"$lt": "k"}})), b("k", false));
        assert_eq!(ub(json!({"_id": {"$lte": "k", "$lt": "k"}})), b("k", false));
        assert_eq!(ub(json!({"_id": {"$lte": "k", "$lt": "z"}})), b("k", true));
        assert_eq!(ub(json!({"_id": {"$in": ["q", "c"]}})), b("q", true));
        assert_eq!(ub(json!({"_id": {"$gt": "k"}})), None);
    }

    #[test]
    fn id_bounds_never_exclude_a_match() {
        let filters = [
            json!({"_id": {"$gt": "b"}}),
            json!({"_id": {"$gte": "b", "$lt": "d"}}),
            json!({"_id": {"$in": ["c", "a"]}, "$and": [{"_id": {"$gte": "b"}}]}),
            json!({"_id": "c"}),
        ];
        let ids = ["a", "b", "ba", "c", "d", "e"];
        for f in filters {
            let filter = Filter::parse(&f).expect("valid");
            let lb = filter.id_lower_bound();
            let ub = filter.id_upper_bound();
            for id in ids {
                if filter.matches(id, &Map::new()) {
                    if let Some((s, inc)) = &lb {
                        assert!(id > s.as_str() || (*inc && id == s), "{f} {id}");
                    }
                    if let Some((s, inc)) = &ub {
                        assert!(id < s.as_str() || (*inc && id == s), "{f} {id}");
                    }
                }
            }
        }
    }

    #[test]
    fn malformed_filters_are_invalid_argument() {
        let cases: Vec<(Value, &str)> = vec![
            (json!(null), "a filter must be a JSON object, not null"),
            (json!([]), "a filter must be a JSON object, not an array"),
            (json!("a"), "a filter must be a JSON object, not a string"),
            (
                json!({"age": {"$foo": 1}}),
                "unknown operator \"$foo\" at \"age\"",
            ),
            (
                json!({"$foo": 1}),
                "unknown operator \"$foo\" at the filter level",
            ),
            (json!({"$gt": 1}), "operator \"$gt\" applies to a field"),
            (json!({"a": {"$in": 1}}), "$in at \"a\" needs an array"),
            (json!({"a": {"$nin": "x"}}), "$nin at \"a\" needs an array"),
            (
                json!({"a": {"$exists": 1}}),
                "$exists at \"a\" needs a boolean",
            ),
            (
                json!({"a": {"$prefix": 1}}),
                "$prefix at \"a\" needs a string",
            ),
            (
                json!({"a": {"$regex": 1}}),
                "$regex at \"a\" needs a string pattern",
            ),
            (
                json!({"a": {"$regex": "("}}),
                "invalid $regex pattern at \"a\"",
            ),
            (
                json!({"a": {"$regex": "a{1000}{1000}"}}),
                "invalid $regex pattern at \"a\"",
            ),
            (json!({"$and": []}), "$and needs a non-empty array"),
            (json!({"$or": []}), "$or needs a non-empty array"),
            (json!({"$and": {}}), "$and needs a non-empty array"),
            (json!({"$or": [1]}), "$or[0] must be a filter object"),
            (
                json!({"$and": [{}, "x"]}),
                "$and[1] must be a filter object",
            ),
            (json!({"$not": []}), "$not needs a filter object"),
            (json!({"$not": 1}), "$not needs a filter object"),
            (
                json!({"a": {"$not": 5}}),
                "$not at \"a\" needs a non-empty object",
            ),
            (
                json!({"a": {"$not": {}}}),
                "$not at \"a\" needs a non-empty object",
            ),
            (
                json!({"a": {"$not": {"b": 1}}}),
                "$not at \"a\" needs a non-empty object",
            ),
            (json!({"a": {"$and": [{}]}}), "$and is not a field operator"),
            (
                json!({"a": {"$gt": 1, "b": 2}}),
                "mixes operators and field names",
            ),
            (json!({"": 1}), "empty field path"),
            (
                json!({"a..b": 1}),
                "field path \"a..b\" has an empty segment",
            ),
            (json!({".a": 1}), "has an empty segment"),
            (json!({"a.": 1}), "has an empty segment"),
            // Errors deep inside nesting still surface.
            (
                json!({"$or": [{"$not": {"x": {"$bad": 1}}}]}),
                "unknown operator \"$bad\" at \"x\"",
            ),
            (
                json!({"a": {"$not": {"$in": 3}}}),
                "$in at \"a\" needs an array",
            ),
        ];
        for (filter, want) in cases {
            let msg = parse_err(filter.clone());
            assert!(msg.contains(want), "{filter}: got {msg:?}, want {want:?}");
        }
    }
}
