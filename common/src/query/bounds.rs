//! What a filter demands of one indexed field, as ranges of index-key bytes
//! ([`index_key`](super::index_key)): the part of a query plan that depends on the query
//! language, so a storage node only seeks and scans.
//!
//! Only conditions every match must meet count (reached through conjunctions, never under
//! `$or` or `$not`); whatever else the filter says is checked on each fetched document, so
//! bounds may be looser than the filter but never tighter.

use serde_json::Value;

use super::filter::{Filter, Node, Pred, RangeOp};
use super::index_key::{Order, encode_value, string_prefix_range, successor};
use super::parse_path;

/// Index-key bytes that hold every document a filter can match, for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBounds {
    /// The field equals one of these values, or (an array) holds one as an element: the
    /// values' encodings, distinct and ascending. Empty: nothing can match.
    Points(Vec<Vec<u8>>),
    /// The field's whole value lies in `[lo, hi)` (`hi` `None`: no end). A missing field
    /// never matches a range, but may lie inside one; the filter's check removes it.
    Range {
        /// The first key bytes that can match.
        lo: Vec<u8>,
        /// The first bytes past every match.
        hi: Option<Vec<u8>>,
    },
}

impl KeyBounds {
    /// True when no value can match.
    pub fn is_empty(&self) -> bool {
        match self {
            KeyBounds::Points(p) => p.is_empty(),
            KeyBounds::Range { lo, hi } => hi.as_ref().is_some_and(|h| h <= lo),
        }
    }
}

impl Filter {
    /// The bounds the filter puts on `path` in an index field of direction `order`, or
    /// `None` when it puts none an index can use (then the field cannot narrow a scan).
    /// Equality and `$in` give points; ranges and `$prefix` one range, the tightest
    /// their conjunction allows.
    pub fn key_bounds(&self, path: &str, order: Order) -> Option<KeyBounds> {
        let path = parse_path(path).ok()?;
        let mut preds = Vec::new();
        required_preds(&self.root, &path, &mut preds);
        let encode = |v: &Value| {
            let mut out = Vec::new();
            encode_value(&mut out, Some(v), order);
            out
        };
        let points = |values: Vec<&Value>| {
            let mut p: Vec<Vec<u8>> = values.into_iter().map(encode).collect();
            p.sort();
            p.dedup();
            KeyBounds::Points(p)
        };
        // One equality is the narrowest; among `$in` lists the shortest.
        if let Some(x) = preds.iter().find_map(|p| match p {
            Pred::Eq(x) => Some(x),
            _ => None,
        }) {
            return Some(points(vec![x]));
        }
        if let Some(xs) = preds
            .iter()
            .filter_map(|p| match p {
                Pred::In(xs) => Some(xs),
                _ => None,
            })
            .min_by_key(|xs| xs.len())
        {
            return Some(points(xs.iter().collect()));
        }
        let mut lo: Option<Vec<u8>> = None;
        let mut hi: Option<Vec<u8>> = None;
        let mut any = false;
        for p in preds {
            let (l, h) = match p {
                Pred::Range(op, x) => range_of(*op, &encode(x), order),
                Pred::Prefix(s) => {
                    let (l, h) = string_prefix_range(s, order);
                    (Some(l), Some(h))
                }
                _ => continue,
            };
            any = true;
            if let Some(l) = l {
                lo = Some(lo.map_or(l.clone(), |cur| cur.max(l)));
            }
            if let Some(h) = h {
                hi = Some(hi.map_or(h.clone(), |cur| cur.min(h)));
            }
        }
        any.then(|| KeyBounds::Range {
            lo: lo.unwrap_or_default(),
            hi,
        })
    }
}

/// Collects the predicates on `path` that every match must satisfy.
fn required_preds<'a>(node: &'a Node, path: &super::FieldPath, out: &mut Vec<&'a Pred>) {
    match node {
        Node::And(nodes) => nodes.iter().for_each(|n| required_preds(n, path, out)),
        Node::Field { path: p, preds } if p == path => out.extend(preds),
        Node::Or(_) | Node::Not(_) | Node::Field { .. } => {}
    }
}

/// The byte bounds `[lo, hi)` of the values `op x` accepts, `x` encoded as `e` in `order`
/// (descending keys run from large values to small, so each bound changes ends).
fn range_of(op: RangeOp, e: &[u8], order: Order) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    // `successor(e)` is the first key past every key that starts with `e`: past `x`.
    let at = || Some(e.to_vec());
    let past = || successor(e);
    match (op, order) {
        (RangeOp::Gte, Order::Asc) | (RangeOp::Lte, Order::Desc) => (at(), None),
        (RangeOp::Gt, Order::Asc) | (RangeOp::Lt, Order::Desc) => {
            // Nothing lies past an all-0xFF key: an empty range.
            (
                Some(past().unwrap_or_else(|| vec![0xFF; e.len() + 1])),
                None,
            )
        }
        (RangeOp::Lt, Order::Asc) | (RangeOp::Gt, Order::Desc) => (None, at()),
        (RangeOp::Lte, Order::Asc) | (RangeOp::Gte, Order::Desc) => (None, past()),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Map, Value, json};

    use super::*;

    fn bounds(filter: Value, path: &str, order: Order) -> Option<KeyBounds> {
        Filter::parse(&filter)
            .expect("filter")
            .key_bounds(path, order)
    }

    fn enc(v: Option<&Value>, order: Order) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, v, order);
        out
    }

    /// Whether a document whose field holds `v` can be found inside `b` (by its whole
    /// value, or for points also by an element).
    fn found(b: &KeyBounds, v: Option<&Value>, order: Order) -> bool {
        let whole = enc(v, order);
        let starts = |k: &[u8], p: &[u8]| k.starts_with(p);
        match b {
            KeyBounds::Points(ps) => ps.iter().any(|p| {
                starts(&whole, p)
                    || matches!(v, Some(Value::Array(items))
                        if items.iter().any(|e| starts(&enc(Some(e), order), p)))
            }),
            KeyBounds::Range { lo, hi } => {
                whole.as_slice() >= lo.as_slice()
                    && hi.as_ref().is_none_or(|h| whole.as_slice() < h.as_slice())
            }
        }
    }

    #[test]
    fn which_conditions_give_bounds() {
        let a = Order::Asc;
        assert!(
            matches!(bounds(json!({"a": 1}), "a", a), Some(KeyBounds::Points(p)) if p.len() == 1)
        );
        assert!(
            matches!(bounds(json!({"a": {"$in": [1, 1.0, 2]}}), "a", a), Some(KeyBounds::Points(p)) if p.len() == 2)
        );
        assert!(matches!(
            bounds(json!({"a": {"$gt": 1}}), "a", a),
            Some(KeyBounds::Range { .. })
        ));
        assert!(matches!(
            bounds(json!({"$and": [{"a": {"$prefix": "x"}}, {"b": 1}]}), "a", a),
            Some(KeyBounds::Range { .. })
        ));
        for none in [
            json!({"b": 1}),
            json!({"$or": [{"a": 1}, {"a": 2}]}),
            json!({"$not": {"a": 1}}),
            json!({"a": {"$ne": 1}}),
            json!({"a": {"$nin": [1]}}),
            json!({"a": {"$exists": true}}),
            json!({"a": {"$regex": "x"}}),
            json!({"a.b": 1}),
        ] {
            assert_eq!(bounds(none.clone(), "a", a), None, "{none}");
        }
        assert!(bounds(json!({"a": {"$gt": 5, "$lt": 3}}), "a", a).is_some_and(|b| b.is_empty()));
        assert!(bounds(json!({"a": {"$in": []}}), "a", a).is_some_and(|b| b.is_empty()));
    }

    fn random_value(rng: &mut StdRng) -> Value {
        match rng.random_range(0..9) {
            0 => Value::Null,
            1 => json!(rng.random_bool(0.5)),
            2 => json!(rng.random_range(-5..5)),
            3 => json!(rng.random_range(-5..5) as f64 + 0.5),
            4 => json!(["a", "ab", "b", "ba", ""][rng.random_range(0..5)]),
            5 => json!([rng.random_range(0..3), rng.random_range(0..3)]),
            6 => json!({"k": rng.random_range(0..3)}),
            7 => json!([]),
            _ => json!(rng.random_range(0..3)),
        }
    }

    fn random_condition(rng: &mut StdRng) -> Value {
        let op = ["$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$prefix"][rng.random_range(0..7)];
        let operand = match op {
            "$in" => json!([random_value(rng), random_value(rng)]),
            "$prefix" => json!(["", "a", "b", "ab"][rng.random_range(0..4)]),
            _ => random_value(rng),
        };
        let mut m = Map::new();
        m.insert(op.to_owned(), operand);
        if rng.random_bool(0.4) {
            let other = ["$gt", "$lt", "$lte"][rng.random_range(0..3)];
            m.insert(other.to_owned(), random_value(rng));
        }
        Value::Object(m)
    }

    /// Bounds never lose a match: every document the filter matches lies inside them, in
    /// both directions, and bounds on other fields are not taken.
    #[test]
    fn random_filters_never_bound_out_a_match() {
        let mut rng = StdRng::seed_from_u64(0x000B_00D5);
        let mut pruned = 0;
        for _ in 0..20_000 {
            let cond = random_condition(&mut rng);
            let filter = Filter::parse(&json!({"f": cond})).expect("filter");
            let v = if rng.random_bool(0.1) {
                None
            } else {
                Some(random_value(&mut rng))
            };
            let mut doc = Map::new();
            if let Some(v) = &v {
                doc.insert("f".into(), v.clone());
            }
            let matches = filter.matches("id", &doc);
            for order in [Order::Asc, Order::Desc] {
                let b = filter.key_bounds("f", order).expect("f is bounded");
                let inside = found(&b, v.as_ref(), order);
                assert!(!matches || inside, "{cond} {v:?} {order:?} {b:?}");
                if !inside {
                    pruned += 1;
                }
            }
        }
        assert!(pruned > 10_000, "bounds pruned only {pruned}");
    }
}
