//! Reading a secondary index (issue 24): the documents whose entries lie within a filter's
//! bounds, and the entries of several shards merged in index order.
//!
//! Entries (`index_entries.rs`) are written in the same batch as the documents they
//! describe, so one RocksDB snapshot sees both alike; everything here reads through the
//! caller's snapshot, and the caller still checks each fetched document against the whole
//! filter.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rocksdb::{DB, DBRawIteratorWithThreadMode, ReadOptions, SnapshotWithThreadMode};

use aerolith_common::index_def::order;
use aerolith_common::query::KeyBounds;
use aerolith_common::query::index_key::{encoded_len, successor};
use aerolith_common::{Result, pb};

use crate::engine::{Cf, db_err};
use crate::index_entries::{ELEMENT, WHOLE, decode_record, index_prefix};
use crate::store::Store;

/// Read options over `snap`, ending at `upper` (exclusive) when given.
fn options(snap: &SnapshotWithThreadMode<'_, DB>, upper: Option<Vec<u8>>) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_snapshot(snap);
    if let Some(u) = upper {
        ro.set_iterate_upper_bound(u);
    }
    ro
}

/// `prefix | kind | bytes`.
fn key(prefix: &[u8], kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + bytes.len());
    k.extend_from_slice(prefix);
    k.push(kind);
    k.extend_from_slice(bytes);
    k
}

/// The document id at the end of an entry, after `def`'s field values (`None` for bytes
/// no entry has).
pub(crate) fn entry_id<'k>(def: &pb::IndexDef, entry: &'k [u8]) -> Option<&'k str> {
    let mut rest = entry;
    for f in &def.fields {
        rest = rest.get(encoded_len(rest, order(f))?..)?;
    }
    std::str::from_utf8(rest).ok()
}

/// The key ranges `[start, end)` of one shard's entries that `bounds` covers.
fn ranges(prefix: &[u8], bounds: &KeyBounds) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    match bounds {
        // Each value's encoding is a prefix of exactly the entries holding that value.
        KeyBounds::Points(points) => points
            .iter()
            .flat_map(|p| {
                [WHOLE, ELEMENT].map(|kind| {
                    let start = key(prefix, kind, p);
                    let end = successor(&start);
                    (start, end)
                })
            })
            .collect(),
        KeyBounds::Range { lo, hi } => {
            let end = match hi {
                Some(h) => Some(key(prefix, WHOLE, h)),
                None => successor(&key(prefix, WHOLE, &[])),
            };
            vec![(key(prefix, WHOLE, lo), end)]
        }
    }
}

impl Store {
    /// The record stored under `key` as `read` sees it.
    pub(crate) fn get_record(
        &self,
        key: &[u8],
        read: &ReadOptions,
    ) -> Result<Option<pb::DocRecord>> {
        let bytes = self
            .engine
            .db()
            .get_cf_opt(self.engine.cf(Cf::Docs)?, key, read)
            .map_err(db_err)?;
        decode_record(key, bytes)
    }

    /// The ids (with their shards) of every document of `shards` whose entries in `def`
    /// lie within `bounds`, ascending and each once.
    pub(crate) fn index_lookup(
        &self,
        snap: &SnapshotWithThreadMode<'_, DB>,
        shards: &[u16],
        collection: &str,
        def: &pb::IndexDef,
        bounds: &KeyBounds,
    ) -> Result<Vec<(String, u16)>> {
        let cf = self.engine.cf(Cf::Index)?;
        let mut ids = Vec::new();
        if bounds.is_empty() {
            return Ok(ids);
        }
        for &shard in shards {
            let prefix = index_prefix(shard, collection, def);
            for (start, end) in ranges(&prefix, bounds) {
                let mut it = self.engine.db().raw_iterator_cf_opt(cf, options(snap, end));
                it.seek(&start);
                while let Some(k) = it.key() {
                    if let Some(id) = k.get(prefix.len() + 1..).and_then(|e| entry_id(def, e)) {
                        ids.push((id.to_owned(), shard));
                    }
                    it.next();
                }
                it.status().map_err(db_err)?;
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

/// The `WHOLE` entries of one index over several shards, merged in index order (the
/// order of its fields, then of ids): a k-way merge of one iterator per shard.
pub(crate) struct OrderedEntries<'a> {
    /// Per shard: its number, the length of its entries' prefix, and the iterator.
    iters: Vec<(u16, usize, DBRawIteratorWithThreadMode<'a, DB>)>,
    /// The next entry of each iterator, by the entry bytes after the shard's prefix.
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl<'a> OrderedEntries<'a> {
    /// Positions one iterator per shard at the first entry whose bytes after the kind are
    /// at least `start` (strictly above it when `exclusive`), ending before `end`.
    pub(crate) fn new(
        store: &'a Store,
        snap: &SnapshotWithThreadMode<'a, DB>,
        shards: &[u16],
        collection: &str,
        def: &pb::IndexDef,
        (start, exclusive): (&[u8], bool),
        end: Option<&[u8]>,
    ) -> Result<OrderedEntries<'a>> {
        let cf = store.engine.cf(Cf::Index)?;
        let mut out = OrderedEntries {
            iters: Vec::with_capacity(shards.len()),
            heap: BinaryHeap::new(),
        };
        for &shard in shards {
            let prefix = key(&index_prefix(shard, collection, def), WHOLE, &[]);
            let upper = match end {
                Some(e) => Some([prefix.as_slice(), e].concat()),
                None => successor(&prefix),
            };
            let mut it = store
                .engine
                .db()
                .raw_iterator_cf_opt(cf, options(snap, upper));
            let first = [prefix.as_slice(), start].concat();
            it.seek(&first);
            if exclusive && it.key() == Some(first.as_slice()) {
                it.next();
            }
            it.status().map_err(db_err)?;
            let i = out.iters.len();
            if let Some(k) = it.key() {
                out.heap.push(Reverse((k[prefix.len()..].to_vec(), i)));
            }
            out.iters.push((shard, prefix.len(), it));
        }
        Ok(out)
    }

    /// The next entry in index order: its shard and its bytes after the kind (field
    /// values, then the id).
    pub(crate) fn next(&mut self) -> Result<Option<(u16, Vec<u8>)>> {
        let Some(Reverse((entry, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let (shard, prefix_len, it) = &mut self.iters[i];
        it.next();
        it.status().map_err(db_err)?;
        if let Some(k) = it.key() {
            self.heap.push(Reverse((k[*prefix_len..].to_vec(), i)));
        }
        Ok(Some((*shard, entry)))
    }
}
