//! The entries a document's visible body puts into its collection's secondary indexes
//! (issue 24; DESIGN.md "Storage node": the `index` column family).
//!
//! Key: `shard u16 BE | collection | 0x00 | index id | kind | field values | id`, the index
//! id being its definition's stamp (`hlc u64 BE | dc | 0x00`), so a dropped index and one
//! re-created under its name never share entries. Field values use
//! [`aerolith_common::query::index_key`]: bytes sort as API.md's value order, so one range
//! of keys is one range of values, and a document id follows the values as the tiebreak
//! every sort ends with. Each document has one `WHOLE` entry per index (the fields' whole
//! values, a missing field sorting first) for sorts and ranges, and, when the leading field
//! holds an array, one `ELEMENT` entry per distinct element, because equality and `$in`
//! match an array by any of its elements (the query language's array rule).

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use rocksdb::WriteBatch;
use serde_json::{Map, Value};

use aerolith_common::index_def::order;
use aerolith_common::json::decode_stored;
use aerolith_common::query::index_key::encode_value;
use aerolith_common::query::lookup;
use aerolith_common::{Error, Result, pb};

use crate::collections::visible;
use crate::engine::Cf;
use crate::index_defs::live;
use crate::keys::doc_prefix;
use crate::store::Store;

/// The entry of a document's whole field values.
pub(crate) const WHOLE: u8 = 0;
/// An entry of one element of the array in an index's leading field.
pub(crate) const ELEMENT: u8 = 1;

/// `shard | collection | 0x00 | index id`: every entry of one index in one shard.
pub(crate) fn index_prefix(shard: u16, collection: &str, def: &pb::IndexDef) -> Vec<u8> {
    let mut k = doc_prefix(shard, collection);
    k.extend_from_slice(&def.hlc.to_be_bytes());
    k.extend_from_slice(def.dc.as_bytes());
    k.push(0);
    k
}

/// Every entry `body` (a live, visible document `id` of `shard`) puts into `defs`.
pub(crate) fn entries<'a>(
    shard: u16,
    collection: &str,
    id: &str,
    defs: impl IntoIterator<Item = &'a pb::IndexDef>,
    body: &Map<String, Value>,
) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for def in defs {
        let prefix = index_prefix(shard, collection, def);
        let values: Vec<_> = def
            .fields
            .iter()
            .map(|f| lookup(id, body, &f.path))
            .collect();
        let mut whole = prefix.clone();
        whole.push(WHOLE);
        whole_tail(&mut whole, def, id, &values);
        out.insert(whole);
        let (Some(first), Some(Some(leading))) = (def.fields.first(), values.first()) else {
            continue;
        };
        let Value::Array(items) = leading.as_ref() else {
            continue;
        };
        for item in items {
            let mut k = prefix.clone();
            k.push(ELEMENT);
            encode_value(&mut k, Some(item), order(first));
            for (f, v) in def.fields.iter().zip(&values).skip(1) {
                encode_value(&mut k, v.as_deref(), order(f));
            }
            k.extend_from_slice(id.as_bytes());
            // Equal elements (`1` and `1.0` too) encode alike and give one entry.
            out.insert(k);
        }
    }
    out
}

/// Appends a `WHOLE` entry's bytes after its kind: the fields' values, then the id.
fn whole_tail(
    out: &mut Vec<u8>,
    def: &pb::IndexDef,
    id: &str,
    values: &[Option<std::borrow::Cow<'_, Value>>],
) {
    for (f, v) in def.fields.iter().zip(values) {
        encode_value(out, v.as_deref(), order(f));
    }
    out.extend_from_slice(id.as_bytes());
}

/// The bytes after the kind of the `WHOLE` entry document `id` with `body` has in `def`,
/// what an ordered walk of the index meets it as.
pub(crate) fn whole_entry(def: &pb::IndexDef, id: &str, body: &Map<String, Value>) -> Vec<u8> {
    let values: Vec<_> = def
        .fields
        .iter()
        .map(|f| lookup(id, body, &f.path))
        .collect();
    let mut out = Vec::new();
    whole_tail(&mut out, def, id, &values);
    out
}

/// The entries of one record under `meta`'s indexes: none unless it is live and visible.
fn record_entries(
    shard: u16,
    id: &str,
    meta: &pb::CollectionMeta,
    rec: Option<&pb::DocRecord>,
) -> Result<BTreeSet<Vec<u8>>> {
    match rec {
        Some(r) if !r.tombstone && visible(Some(meta), r) => Ok(entries(
            shard,
            &meta.name,
            id,
            live(meta),
            &decode_stored(&r.body)?,
        )),
        _ => Ok(BTreeSet::new()),
    }
}

impl Store {
    /// A collection's live settings when it has indexes (cloned only then: a collection
    /// without indexes costs its writes one map lookup).
    pub(crate) fn indexed_meta(&self, collection: &str) -> Option<pb::CollectionMeta> {
        let cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(collection)
            .filter(|m| !m.deleted && live(m).next().is_some())
            .cloned()
    }

    /// Adds to `batch` what a write of `record` under `key` changes in its collection's
    /// indexes, against the record it replaces (the newest one, staged included, since the
    /// caller holds the shard's lock). Part of the write's own batch, so entries are
    /// exactly as durable as the write.
    pub(crate) fn index_delta(
        &self,
        batch: &mut WriteBatch,
        shard: u16,
        event: &pb::ChangeEvent,
        key: &[u8],
        record: &pb::DocRecord,
    ) -> Result<()> {
        let Some(meta) = self.indexed_meta(&event.collection) else {
            return Ok(());
        };
        let old = decode_record(key, self.latest(Cf::Docs, key)?)?;
        self.index_change(batch, shard, &meta, &event.id, old.as_ref(), Some(record))
    }

    /// Adds to `batch` the index entries `old` has and `new` has not (they go) and those
    /// `new` has and `old` has not (they come), under `meta`'s indexes.
    pub(crate) fn index_change(
        &self,
        batch: &mut WriteBatch,
        shard: u16,
        meta: &pb::CollectionMeta,
        id: &str,
        old: Option<&pb::DocRecord>,
        new: Option<&pb::DocRecord>,
    ) -> Result<()> {
        let before = record_entries(shard, id, meta, old)?;
        let after = record_entries(shard, id, meta, new)?;
        let cf = self.engine.cf(Cf::Index)?;
        for k in before.difference(&after) {
            batch.delete_cf(cf, k);
        }
        for k in after.difference(&before) {
            batch.put_cf(cf, k, []);
        }
        Ok(())
    }
}

/// A stored record's bytes decoded (`key` names it in the error).
pub(crate) fn decode_record(key: &[u8], bytes: Option<Vec<u8>>) -> Result<Option<pb::DocRecord>> {
    bytes
        .map(|b| pb::DocRecord::decode(&*b))
        .transpose()
        .map_err(|e| Error::internal(format!("corrupt record {key:?}: {e}")))
}

/// Sets of index keys.
type Keys = BTreeSet<Vec<u8>>;

/// A key and its value as an iterator yields them.
type Pair = (Box<[u8]>, Box<[u8]>);

#[cfg(test)]
impl Store {
    /// How many index entries the node holds.
    pub(crate) fn index_entry_count(&self) -> Result<usize> {
        let cf = self.engine.cf(Cf::Index)?;
        Ok(self
            .engine
            .db()
            .iterator_cf(cf, rocksdb::IteratorMode::Start)
            .count())
    }
}

impl Store {
    /// Every index entry of `shard` the index family holds that its documents do not call
    /// for, and every one they call for that it lacks, over the indexes built on the shard
    /// (a build under way lacks entries by design): both empty when the indexes are exact.
    /// One read of the shard's documents and entries; for checks, not the hot path.
    pub(crate) fn index_mismatches(&self, shard: u16) -> Result<(Keys, Keys)> {
        use crate::keys::{shard_end, shard_start, split_doc_key};
        let scan = |cf: Cf| -> Result<Vec<Pair>> {
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_iterate_upper_bound(shard_end(shard));
            self.engine
                .db()
                .iterator_cf_opt(
                    self.engine.cf(cf)?,
                    ro,
                    rocksdb::IteratorMode::From(&shard_start(shard), rocksdb::Direction::Forward),
                )
                .map(|i| i.map_err(crate::engine::db_err))
                .collect()
        };
        // Per collection with indexes, once: the definitions built on the shard (compared)
        // and the prefixes of those still building (whose entries are lacking by design).
        // Every other entry is compared (a leftover of a deleted collection would be extra).
        let mut built: HashMap<String, pb::CollectionMeta> = HashMap::new();
        let mut building = Vec::new();
        for mut meta in self.list_collections().into_iter().filter(|m| !m.deleted) {
            let mut defs = Vec::new();
            for def in live(&meta) {
                if self.ready_on(&meta.name, def, &[shard])? {
                    defs.push(def.clone());
                } else {
                    building.push(index_prefix(shard, &meta.name, def));
                }
            }
            if !defs.is_empty() {
                meta.indexes = defs;
                built.insert(meta.name.clone(), meta);
            }
        }
        let mut wanted = BTreeSet::new();
        for (key, value) in scan(Cf::Docs)? {
            let Some((collection, id)) = split_doc_key(&key) else {
                continue;
            };
            let Some(meta) = built.get(collection) else {
                continue;
            };
            let rec = decode_record(&key, Some(value.to_vec()))?;
            wanted.extend(record_entries(shard, id, meta, rec.as_ref())?);
        }
        let held: BTreeSet<Vec<u8>> = scan(Cf::Index)?
            .into_iter()
            .map(|(k, _)| k.to_vec())
            .filter(|k| !building.iter().any(|p| k.starts_with(p)))
            .collect();
        Ok((
            held.difference(&wanted).cloned().collect(),
            wanted.difference(&held).cloned().collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    /// Local writes keep every index exact: puts, replacements that change, add and remove
    /// indexed values and arrays, patches, deletes and re-creates, and the collection's
    /// deletion and rebirth.
    #[test]
    fn local_writes_keep_entries_exact() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path(), "dc1", 2);
        let deadline = || Instant::now() + Duration::from_secs(30);
        let field = |path: &str, desc| pb::IndexField {
            path: path.into(),
            desc,
        };
        for (name, fields) in [
            ("by_tags", vec![field("tags", false), field("n", true)]),
            ("by_city", vec![field("address.city", false)]),
        ] {
            s.put_index(&pb::PutIndexRequest {
                collection: "c".into(),
                name: name.into(),
                fields,
                ..Default::default()
            })
            .unwrap();
        }
        let put = |id: &str, body: Value| {
            s.put(
                &pb::PutRequest {
                    shard: 1,
                    collection: "c".into(),
                    id: id.into(),
                    body: serde_json::to_vec(&body).unwrap(),
                    ..Default::default()
                },
                deadline(),
            )
            .unwrap();
        };
        let exact = |when: &str| {
            let (extra, missing) = s.index_mismatches(1).unwrap();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "{when}: extra {extra:?}, missing {missing:?}"
            );
        };
        put(
            "a",
            json!({"tags": ["x", "y", "x"], "n": 1, "address": {"city": "Oslo"}}),
        );
        put("b", json!({"tags": "x", "n": 2.0}));
        put("c", json!({}));
        exact("after creates");
        // a: 1 whole + 2 distinct elements, x 1 city; b: 1 + 1; c: 1 + 1 (missing fields).
        assert_eq!(s.index_entry_count().unwrap(), 8);
        put("a", json!({"tags": ["y", "z"], "n": 1}));
        put("b", json!({"n": 3}));
        exact("after replacements");
        s.patch(
            &pb::PatchRequest {
                shard: 1,
                collection: "c".into(),
                id: "c".into(),
                kind: pb::PatchKind::Merge as i32,
                patch: br#"{"address": {"city": "Lima"}}"#.to_vec(),
                ..Default::default()
            },
            deadline(),
        )
        .unwrap();
        s.delete(
            &pb::DeleteRequest {
                shard: 1,
                collection: "c".into(),
                id: "b".into(),
                ..Default::default()
            },
            deadline(),
        )
        .unwrap();
        exact("after a patch and a delete");
        put("b", json!({"tags": [1, 1.0], "n": null}));
        exact("after a re-create");
        s.delete_collection(&pb::DeleteCollectionRequest {
            name: "c".into(),
            hlc: 0,
        })
        .unwrap();
        exact("after the collection's deletion");
        put("z", json!({"tags": ["q"]}));
        exact("in the next incarnation, which has no indexes");
        let held = s.collection_meta("c").unwrap();
        assert!(held.indexes.is_empty(), "{held:?}");
    }

    fn def(paths: &[(&str, bool)]) -> pb::IndexDef {
        pb::IndexDef {
            name: "i".into(),
            fields: paths
                .iter()
                .map(|(p, desc)| pb::IndexField {
                    path: (*p).into(),
                    desc: *desc,
                })
                .collect(),
            hlc: 7,
            dc: "dc1".into(),
            dropped: false,
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn whole_entries_sort_as_the_values_then_the_id() {
        let d = def(&[("age", false)]);
        let key = |id: &str, v: Value| {
            entries(1, "c", id, [&d], &body(v))
                .into_iter()
                .next()
                .unwrap_or_default()
        };
        let missing = key("z", json!({}));
        let null = key("a", json!({"age": null}));
        let ten = key("b", json!({"age": 10}));
        let ten_again = key("c", json!({"age": 10.0}));
        let word = key("a", json!({"age": "x"}));
        assert!(missing < null && null < ten && ten < ten_again && ten_again < word);
        assert!(ten.starts_with(&index_prefix(1, "c", &d)));
    }

    #[test]
    fn a_leading_array_adds_one_entry_per_distinct_element() {
        let d = def(&[("tags", false), ("n", true)]);
        let got = entries(
            0,
            "c",
            "x",
            [&d],
            &body(json!({"tags": [1, 1.0, "a"], "n": 2})),
        );
        let kinds: Vec<u8> = got
            .iter()
            .map(|k| k[index_prefix(0, "c", &d).len()])
            .collect();
        assert_eq!(kinds, vec![WHOLE, ELEMENT, ELEMENT], "{got:?}");
        let no_array = entries(0, "c", "x", [&d], &body(json!({"tags": 1, "n": 2})));
        assert_eq!(no_array.len(), 1);
    }

    #[test]
    fn indexes_do_not_share_entries() {
        let a = def(&[("n", false)]);
        let b = pb::IndexDef {
            hlc: 8,
            ..a.clone()
        };
        let got = entries(0, "c", "x", [&a, &b], &body(json!({"n": 1})));
        assert_eq!(got.len(), 2);
    }
}
