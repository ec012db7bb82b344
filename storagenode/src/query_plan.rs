//! How a node reaches the documents of a query (issue 24): a scan of the collection in id
//! order, or one of its secondary indexes.
//!
//! An index is a candidate only once the gateway lists it as built on every node of the DC
//! (`QueryRequest.usable`) and it is built here on every shard the query covers. Without
//! statistics the choice follows fixed rules, best first:
//! 1. equality or `$in` on an index's leading field: look the values up (few documents);
//! 2. a sort that is exactly an index's fields and directions: walk the index in order and
//!    stop at the page's end, narrowed by a range on the leading field if there is one;
//! 3. a range or `$prefix` on an index's leading field: look the range up;
//! 4. otherwise the scan.
//!
//! Whatever the choice, every fetched document is checked against the whole filter, and
//! the page is cut by the same rules as a scan's, so an index changes a query's cost only.

use aerolith_common::index_def::order;
use aerolith_common::query::{Filter, KeyBounds, SortKey};
use aerolith_common::{Result, pb};

use crate::index_defs::live;
use crate::store::Store;

/// The access path of one query on one node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Access {
    /// Every record within the filter's id range, in id order.
    Scan,
    /// The documents an index names within bounds on its leading field.
    Lookup {
        /// The index.
        def: pb::IndexDef,
        /// What the filter demands of its leading field.
        bounds: KeyBounds,
    },
    /// An index whose order is the query's sort, walked in order.
    Ordered {
        /// The index.
        def: pb::IndexDef,
        /// A range on its leading field (`None`: the whole index).
        range: Option<KeyBounds>,
    },
}

impl Access {
    /// The index used, if any (what `explain` names).
    pub(crate) fn index(&self) -> Option<&str> {
        match self {
            Access::Scan => None,
            Access::Lookup { def, .. } | Access::Ordered { def, .. } => Some(&def.name),
        }
    }
}

/// Whether walking `def` in order is walking the sort `keys` (normalised: no final
/// ascending `_id`, which index entries end with anyway).
fn sorts_as(def: &pb::IndexDef, keys: &[SortKey]) -> bool {
    !keys.is_empty()
        && def.fields.len() == keys.len()
        && def
            .fields
            .iter()
            .zip(keys)
            .all(|(f, k)| f.path == k.field && f.desc == k.descending)
}

/// Whether `def` is among `stamps`.
fn listed(stamps: &[pb::IndexStamp], def: &pb::IndexDef) -> bool {
    stamps.iter().any(|s| s.hlc == def.hlc && s.dc == def.dc)
}

/// The stamp of a definition.
pub(crate) fn stamp(def: &pb::IndexDef) -> pb::IndexStamp {
    pb::IndexStamp {
        hlc: def.hlc,
        dc: def.dc.clone(),
    }
}

impl Store {
    /// The live indexes of `meta` built here on every one of `shards` that `usable` does
    /// not list yet: what a gateway needs to learn that one is built DC-wide.
    pub(crate) fn newly_built(
        &self,
        meta: Option<&pb::CollectionMeta>,
        shards: &[u16],
        usable: &[pb::IndexStamp],
    ) -> Result<Vec<pb::IndexStamp>> {
        let mut out = Vec::new();
        if let Some(meta) = meta.filter(|m| !m.deleted) {
            for def in live(meta).filter(|d| !listed(usable, d)) {
                if self.ready_on(&meta.name, def, shards)? {
                    out.push(stamp(def));
                }
            }
        }
        Ok(out)
    }

    /// Chooses how to answer a query with `filter` and sort `keys` over `shards` of
    /// `meta`'s collection.
    pub(crate) fn choose_access(
        &self,
        meta: Option<&pb::CollectionMeta>,
        shards: &[u16],
        usable: &[pb::IndexStamp],
        filter: &Filter,
        keys: &[SortKey],
    ) -> Result<Access> {
        let Some(meta) = meta.filter(|m| !m.deleted) else {
            return Ok(Access::Scan);
        };
        let mut points: Option<(usize, &pb::IndexDef, KeyBounds)> = None;
        let mut ordered: Option<(&pb::IndexDef, Option<KeyBounds>)> = None;
        let mut range: Option<(&pb::IndexDef, KeyBounds)> = None;
        for def in live(meta) {
            let Some(first) = def.fields.first() else {
                continue;
            };
            let bounds = filter.key_bounds(&first.path, order(first));
            let sorted = ordered.is_none() && sorts_as(def, keys);
            let useful = sorted || bounds.is_some();
            if !useful || !listed(usable, def) || !self.ready_on(&meta.name, def, shards)? {
                continue;
            }
            match bounds {
                Some(KeyBounds::Points(p)) => {
                    if points.as_ref().is_none_or(|(n, _, _)| p.len() < *n) {
                        points = Some((p.len(), def, KeyBounds::Points(p)));
                    }
                    if sorted {
                        ordered = Some((def, None));
                    }
                }
                Some(r @ KeyBounds::Range { .. }) => {
                    if sorted {
                        ordered = Some((def, Some(r)));
                    } else if range.is_none() {
                        range = Some((def, r));
                    }
                }
                // Without bounds only the sort made the index useful.
                None => ordered = Some((def, None)),
            }
        }
        Ok(if let Some((_, def, bounds)) = points {
            Access::Lookup {
                def: def.clone(),
                bounds,
            }
        } else if let Some((def, range)) = ordered {
            Access::Ordered {
                def: def.clone(),
                range,
            }
        } else if let Some((def, bounds)) = range {
            Access::Lookup {
                def: def.clone(),
                bounds,
            }
        } else {
            Access::Scan
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(path: &str, desc: bool) -> pb::IndexField {
        pb::IndexField {
            path: path.into(),
            desc,
        }
    }

    #[test]
    fn the_sort_must_be_the_index_exactly() {
        let def = pb::IndexDef {
            name: "i".into(),
            fields: vec![field("a", false), field("b", true)],
            ..Default::default()
        };
        let keys = |k: &[(&str, bool)]| -> Vec<SortKey> {
            k.iter()
                .map(|(f, d)| SortKey::new(f, *d).expect("key"))
                .collect()
        };
        assert!(sorts_as(&def, &keys(&[("a", false), ("b", true)])));
        assert!(!sorts_as(&def, &keys(&[("a", false)])));
        assert!(!sorts_as(&def, &keys(&[("a", false), ("b", false)])));
        assert!(!sorts_as(
            &def,
            &keys(&[("a", false), ("b", true), ("c", false)])
        ));
        assert!(!sorts_as(&def, &[]));
    }
}

/// The planner against brute force on one node: random documents, random indexes, random
/// filters and sorts, paged; each answer must be what evaluating the query language's rules
/// over every document gives, and the plans must use the indexes.
#[cfg(test)]
mod answers {
    use std::time::{Duration, Instant};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Map, Value, json};

    use aerolith_common::query::{Filter, Position, SortKey, compare_docs, normalize_sort};
    use aerolith_common::{Result, pb};

    use crate::query::DEFAULT_SCAN_BUDGET;
    use crate::store::Store;

    const SHARDS: u16 = 4;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn value(rng: &mut StdRng) -> Value {
        match rng.random_range(0..12) {
            0 => Value::Null,
            1 => json!(rng.random_bool(0.5)),
            2..=4 => json!(rng.random_range(0..20)),
            5 => json!(rng.random_range(0..20) as f64 / 2.0),
            6 | 7 => json!(["a", "ab", "abc", "b", "ba", "c"][rng.random_range(0..6)]),
            8 => json!([rng.random_range(0..20), rng.random_range(0..20)]),
            9 => json!({"k": rng.random_range(0..3)}),
            10 => json!([]),
            _ => json!(rng.random_range(0..5)),
        }
    }

    fn document(rng: &mut StdRng) -> Value {
        let mut m = Map::new();
        for f in ["a", "b"] {
            if rng.random_bool(0.85) {
                m.insert(f.into(), value(rng));
            }
        }
        if rng.random_bool(0.7) {
            m.insert("n".into(), json!({"c": value(rng)}));
        }
        Value::Object(m)
    }

    fn condition(rng: &mut StdRng) -> Value {
        let op =
            ["$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$prefix", "$ne"][rng.random_range(0..8)];
        let operand = match op {
            "$in" => json!([value(rng), value(rng), value(rng)]),
            "$prefix" => json!(["a", "ab", "b", ""][rng.random_range(0..4)]),
            _ => value(rng),
        };
        json!({ op: operand })
    }

    fn filter(rng: &mut StdRng) -> Value {
        let field = ["a", "b", "n.c"][rng.random_range(0..3)];
        let mut m = Map::new();
        m.insert(field.into(), condition(rng));
        match rng.random_range(0..4) {
            0 => {
                let other = ["a", "b"][rng.random_range(0..2)];
                if other != field {
                    m.insert(other.into(), condition(rng));
                }
            }
            1 => {
                m.insert(
                    "$or".into(),
                    json!([{"a": value(rng)}, {"b": condition(rng)}]),
                );
            }
            _ => {}
        }
        Value::Object(m)
    }

    fn sort(rng: &mut StdRng) -> Vec<SortKey> {
        let key = |f: &str, d: bool| SortKey::new(f, d).expect("key");
        match rng.random_range(0..6) {
            0 => Vec::new(),
            1 => vec![key("a", false)],
            2 => vec![key("b", true)],
            3 => vec![key("a", false), key("b", false)],
            4 => vec![key("n.c", false)],
            _ => vec![key("b", false), key("_id", true)],
        }
    }

    fn put(s: &Store, i: usize, body: &Value) {
        s.put(
            &pb::PutRequest {
                shard: (i % SHARDS as usize) as u32,
                collection: "c".into(),
                id: format!("d{i:03}"),
                body: serde_json::to_vec(body).expect("json"),
                ..Default::default()
            },
            deadline(),
        )
        .expect("put");
    }

    fn index(s: &Store, name: &str, fields: &[(&str, bool)]) {
        s.put_index(&pb::PutIndexRequest {
            collection: "c".into(),
            name: name.into(),
            fields: fields
                .iter()
                .map(|(p, desc)| pb::IndexField {
                    path: (*p).into(),
                    desc: *desc,
                })
                .collect(),
            ..Default::default()
        })
        .expect("index");
    }

    /// The stamps of every index of collection `c`: all usable, as far as a gateway knows.
    fn every_index(s: &Store) -> Vec<pb::IndexStamp> {
        s.collection_meta("c")
            .map(|m| m.indexes.iter().map(super::stamp).collect())
            .unwrap_or_default()
    }

    /// Every page of a query: the ids in order, and the indexes the pages used.
    fn run(s: &Store, filter: &Value, keys: &[SortKey]) -> Result<(Vec<String>, Vec<String>)> {
        let sort = aerolith_common::query::sort_json(keys);
        let usable = every_index(s);
        let mut after = Vec::new();
        let (mut ids, mut used) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            let r = s.query(
                &pb::QueryRequest {
                    shards: (0..SHARDS as u32).collect(),
                    collection: "c".into(),
                    filter: serde_json::to_vec(filter).expect("json"),
                    sort: if keys.is_empty() {
                        Vec::new()
                    } else {
                        serde_json::to_vec(&sort).expect("json")
                    },
                    after: after.clone(),
                    limit: 7,
                    explain: true,
                    usable: usable.clone(),
                    ..Default::default()
                },
                deadline(),
                DEFAULT_SCAN_BUDGET,
            )?;
            assert!(r.hits.len() <= 7);
            ids.extend(r.hits.iter().map(|h| h.id.clone()));
            used.push(r.plan.map(|p| p.index).unwrap_or_default());
            if r.done {
                return Ok((ids, used));
            }
            // The gateway resumes after the last hit, or after what the node scanned.
            after = r.scanned_through;
        }
        panic!("no end to the pages of {filter}");
    }

    fn brute_force(docs: &[(String, Value)], filter: &Value, keys: &[SortKey]) -> Vec<String> {
        let f = Filter::parse(filter).expect("filter");
        let keys = normalize_sort(keys.to_vec());
        let mut hits: Vec<(&str, &Map<String, Value>)> = docs
            .iter()
            .filter_map(|(id, v)| v.as_object().map(|m| (id.as_str(), m)))
            .filter(|(id, m)| f.matches(id, m))
            .collect();
        hits.sort_by(|a, b| compare_docs(&keys, *a, *b));
        // Positions must be strictly increasing, as pages resume after them.
        for w in hits.windows(2) {
            let (p, q) = (
                Position::of(&keys, w[0].0, w[0].1),
                Position::of(&keys, w[1].0, w[1].1),
            );
            assert_eq!(p.compare(&q, &keys), std::cmp::Ordering::Less);
        }
        hits.into_iter().map(|(id, _)| id.to_owned()).collect()
    }

    #[test]
    fn indexed_queries_answer_what_brute_force_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = crate::store::test_store(dir.path(), "dc1", SHARDS);
        let mut rng = StdRng::seed_from_u64(0x1DE7_0001);
        let mut docs: Vec<(String, Value)> = Vec::new();
        for i in 0..300 {
            let d = document(&mut rng);
            put(&s, i, &d);
            docs.push((format!("d{i:03}"), d));
        }
        index(&s, "by_a", &[("a", false)]);
        index(&s, "by_b_desc", &[("b", true)]);
        index(&s, "by_a_b", &[("a", false), ("b", false)]);
        index(&s, "by_nc", &[("n.c", false)]);
        while s.build_indexes().expect("build") {}
        // Writes after the build: replacements, deletes and new documents.
        for _ in 0..100 {
            let i = rng.random_range(0..350);
            if rng.random_bool(0.2) && i < docs.len() {
                s.delete(
                    &pb::DeleteRequest {
                        shard: (i % SHARDS as usize) as u32,
                        collection: "c".into(),
                        id: format!("d{i:03}"),
                        ..Default::default()
                    },
                    deadline(),
                )
                .ok();
                docs.retain(|(id, _)| *id != format!("d{i:03}"));
            } else {
                let d = document(&mut rng);
                put(&s, i, &d);
                docs.retain(|(id, _)| *id != format!("d{i:03}"));
                docs.push((format!("d{i:03}"), d));
            }
        }
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut by_index = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..400 {
            let f = filter(&mut rng);
            let keys = sort(&mut rng);
            let (got, used) = run(&s, &f, &keys).expect("query");
            assert_eq!(
                got,
                brute_force(&docs, &f, &keys),
                "{f} sorted {keys:?}, plans {used:?}"
            );
            for u in used {
                *by_index.entry(u).or_default() += 1;
            }
        }
        // Every index and the scan were used, so the comparison covered each path.
        for name in ["", "by_a", "by_b_desc", "by_a_b", "by_nc"] {
            assert!(by_index.get(name).is_some_and(|n| *n > 5), "{by_index:?}");
        }
        let (extra, missing) = s.index_mismatches(1).expect("check");
        assert!(extra.is_empty() && missing.is_empty());
    }

    #[test]
    fn counts_and_plans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = crate::store::test_store(dir.path(), "dc1", SHARDS);
        for i in 0..200 {
            put(&s, i, &json!({"a": i % 10, "tags": [i % 3, "x"]}));
        }
        index(&s, "by_a", &[("a", false)]);
        let usable = every_index(&s);
        let ask = |f: Value, usable: Vec<pb::IndexStamp>| {
            s.query(
                &pb::QueryRequest {
                    shards: (0..SHARDS as u32).collect(),
                    collection: "c".into(),
                    filter: serde_json::to_vec(&f).expect("json"),
                    count_only: true,
                    explain: true,
                    usable,
                    ..Default::default()
                },
                deadline(),
                10,
            )
            .expect("count")
        };
        let count = |f: Value| ask(f, usable.clone());
        // Before the build the index is not used; counts ignore the scan budget.
        let before = count(json!({"a": 3}));
        assert_eq!(before.count, 20);
        assert_eq!(before.plan.as_ref().map(|p| p.index.as_str()), Some(""));
        assert_eq!(before.plan.map(|p| p.examined), Some(200));
        assert!(before.built.is_empty(), "not built yet");
        while s.build_indexes().expect("build") {}
        // Built here, but not yet known built on every node of the DC: not used, and
        // reported so the gateway learns of it.
        let unlisted = ask(json!({"a": 3}), Vec::new());
        assert_eq!(unlisted.plan.map(|p| p.index), Some(String::new()));
        assert_eq!(unlisted.built, usable);
        let after = count(json!({"a": 3}));
        assert!(after.built.is_empty(), "already listed: nothing to report");
        assert_eq!(after.count, 20);
        let plan = after.plan.expect("plan");
        assert_eq!((plan.index.as_str(), plan.examined), ("by_a", 20));
        assert_eq!(count(json!({"a": {"$in": [3, 4, 99]}})).count, 40);
        assert_eq!(count(json!({"a": {"$gte": 8}, "tags": 2})).count, 13);
        assert_eq!(count(json!({})).count, 200);
    }
}
