//! A collection's records over several shards in id order: a k-way merge of one RocksDB
//! iterator per shard. Listing and queries both read through it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use prost::Message;
use rocksdb::{DB, DBRawIteratorWithThreadMode, ReadOptions};

use aerolith_common::{Error, Result, pb};

use crate::engine::Cf;
use crate::engine::db_err;
use crate::keys::{doc_key, doc_prefix, doc_prefix_end};
use crate::store::Store;

/// Where a scan begins.
pub(crate) enum Start<'s> {
    /// At the first id.
    First,
    /// At this id, included.
    At(&'s str),
    /// Just after this id.
    After(&'s str),
}

impl Start<'_> {
    /// Whether `id` is at or past where the scan begins.
    pub(crate) fn admits(&self, id: &str) -> bool {
        match self {
            Start::First => true,
            Start::At(s) => id.as_bytes() >= s.as_bytes(),
            Start::After(s) => id.as_bytes() > s.as_bytes(),
        }
    }
}

/// An id-ordered scan over some shards of one collection.
pub(crate) struct MergedScan<'a> {
    collection: String,
    iters: Vec<(usize, DBRawIteratorWithThreadMode<'a, DB>)>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl<'a> MergedScan<'a> {
    /// Positions one iterator per shard at `start`.
    pub(crate) fn new(
        store: &'a Store,
        shards: &[u32],
        collection: &str,
        start: Start<'_>,
    ) -> Result<MergedScan<'a>> {
        let docs_cf = store.engine.cf(Cf::Docs)?;
        let mut scan = MergedScan {
            collection: collection.to_owned(),
            iters: Vec::with_capacity(shards.len()),
            heap: BinaryHeap::new(),
        };
        for s in shards {
            let shard = store.check_shard(*s)?;
            let prefix = doc_prefix(shard, collection);
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(doc_prefix_end(shard, collection));
            let mut it = store.engine.db().raw_iterator_cf_opt(docs_cf, ro);
            match start {
                Start::First => it.seek(&prefix),
                Start::At(id) => it.seek(doc_key(shard, collection, id)),
                Start::After(id) => {
                    let key = doc_key(shard, collection, id);
                    it.seek(&key);
                    if it.key() == Some(key.as_slice()) {
                        it.next();
                    }
                }
            }
            it.status().map_err(db_err)?;
            let idx = scan.iters.len();
            if let Some(k) = it.key() {
                scan.heap.push(Reverse((k[prefix.len()..].to_vec(), idx)));
            }
            scan.iters.push((prefix.len(), it));
        }
        Ok(scan)
    }

    /// The id the next call to [`MergedScan::next`] returns, if any.
    pub(crate) fn peek_id(&self) -> Option<&[u8]> {
        self.heap.peek().map(|Reverse((id, _))| id.as_slice())
    }

    /// The next record (tombstones included) and its id.
    pub(crate) fn next(&mut self) -> Result<Option<(String, pb::DocRecord)>> {
        let Some(Reverse((id, idx))) = self.heap.pop() else {
            return Ok(None);
        };
        let (plen, it) = &mut self.iters[idx];
        let value = it.value().map(<[u8]>::to_vec).unwrap_or_default();
        it.next();
        it.status().map_err(db_err)?;
        if let Some(k) = it.key() {
            self.heap.push(Reverse((k[*plen..].to_vec(), idx)));
        }
        let rec = pb::DocRecord::decode(&*value)
            .map_err(|e| Error::internal(format!("corrupt record in {}: {e}", self.collection)))?;
        let id = String::from_utf8(id).map_err(|e| Error::internal(format!("corrupt key: {e}")))?;
        Ok(Some((id, rec)))
    }
}
