//! Building an index over the documents a collection already holds, online (issue 24).
//!
//! Writes keep every defined index's entries from the moment it is defined
//! (`index_entries.rs`); the build adds the entries of the documents written before. It
//! works shard by shard in chunks: each chunk takes the shard's lock, waits for what is
//! staged there to be durable, indexes up to [`CHUNK`] documents after the shard's cursor and
//! writes their entries together with the new cursor, then lets writes go on. A chunk and
//! a write of the same document are ordered by the lock, and each writes the same entries,
//! so nothing is lost or doubled whichever comes first; the cursor in the same batch makes
//! a restart resume where the build stopped. An index is ready on a node once every shard
//! of it is done.

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use aerolith_common::json::decode_stored;
use aerolith_common::{Error, Result, pb};

use crate::collections::visible;
use crate::engine::{Cf, db_err};
use crate::index_defs::live;
use crate::index_entries::{entries, index_prefix};
use crate::keys::{doc_key, doc_prefix, doc_prefix_end, split_doc_key};
use crate::store::Store;

/// Documents indexed per chunk, under one hold of a shard's lock.
pub(crate) const CHUNK: usize = 1024;

/// Meta key prefix of the build cursors: `idxb/ | collection | 0x00 | index id`.
fn cursor_prefix(collection: &str, def: &pb::IndexDef) -> Vec<u8> {
    let mut k = b"idxb/".to_vec();
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k.extend_from_slice(&def.hlc.to_be_bytes());
    k.extend_from_slice(def.dc.as_bytes());
    k.push(0);
    k
}

/// Meta key of one shard's build cursor of an index.
fn cursor_key(collection: &str, def: &pb::IndexDef, shard: u16) -> Vec<u8> {
    let mut k = cursor_prefix(collection, def);
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Where one shard's build of an index stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// Nothing indexed yet.
    Start,
    /// Every document up to this id (inclusive) is indexed.
    After(String),
    /// Every document is.
    Done,
}

impl Cursor {
    fn decode(bytes: Option<Vec<u8>>) -> Cursor {
        match bytes.as_deref() {
            None => Cursor::Start,
            Some([1]) => Cursor::Done,
            Some([0, id @ ..]) => Cursor::After(String::from_utf8_lossy(id).into_owned()),
            // Only this module writes cursors; anything else starts over (entries are idempotent).
            Some(_) => Cursor::Start,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            // An empty id sorts before every document: the same place as `Start`.
            Cursor::Start => vec![0],
            Cursor::After(id) => {
                let mut v = vec![0];
                v.extend_from_slice(id.as_bytes());
                v
            }
            Cursor::Done => vec![1],
        }
    }
}

/// A node's progress on one index: shards done of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProgress {
    /// Shards whose documents are all indexed.
    pub done: u16,
    /// The node's shards.
    pub of: u16,
}

impl BuildProgress {
    /// Whether the index is ready on this node.
    pub fn ready(self) -> bool {
        self.done == self.of
    }
}

impl Store {
    fn cursor(&self, collection: &str, def: &pb::IndexDef, shard: u16) -> Result<Cursor> {
        Ok(Cursor::decode(
            self.engine
                .get(Cf::Meta, &cursor_key(collection, def, shard))?,
        ))
    }

    /// How far this node's build of `def` has come.
    pub fn build_progress(&self, collection: &str, def: &pb::IndexDef) -> Result<BuildProgress> {
        let of = self.shard_count();
        let mut done = 0;
        for shard in 0..of {
            if self.cursor(collection, def, shard)? == Cursor::Done {
                done += 1;
            }
        }
        Ok(BuildProgress { done, of })
    }

    /// Whether `def` is built on every one of `shards`, so a query over them may use it.
    pub(crate) fn ready_on(
        &self,
        collection: &str,
        def: &pb::IndexDef,
        shards: &[u16],
    ) -> Result<bool> {
        for shard in shards {
            if self.cursor(collection, def, *shard)? != Cursor::Done {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every live index of a collection with this node's progress on it (none when the
    /// node does not hold the collection live).
    pub fn index_states(&self, collection: &str) -> Result<pb::IndexStatesResponse> {
        let mut states = Vec::new();
        if let Some(meta) = self.collection_meta(collection).filter(|m| !m.deleted) {
            for def in live(&meta) {
                let p = self.build_progress(collection, def)?;
                states.push(pb::IndexState {
                    def: Some(def.clone()),
                    shards_done: u32::from(p.done),
                    shards: u32::from(p.of),
                });
            }
        }
        Ok(pb::IndexStatesResponse { states })
    }

    /// One chunk of work on every index still building: returns whether any is left. Called
    /// by the node's builder task, over and over while this is true.
    pub fn build_indexes(&self) -> Result<bool> {
        let mut left = false;
        for meta in self.list_collections() {
            if meta.deleted {
                continue;
            }
            for def in live(&meta) {
                for shard in 0..self.shard_count() {
                    if let Some(Cursor::After(_)) = self.build_chunk(&meta.name, def, shard)? {
                        left = true;
                    }
                }
            }
        }
        Ok(left)
    }

    /// Removes the entries and build cursors of indexes that are no longer live (dropped,
    /// or gone with their collection's incarnation): one range delete per such index and
    /// shard, found by seeking from one index's entries to the next. Each shard is swept
    /// under its lock, so no index can be defined (that takes every shard's lock) while
    /// its range is judged. Returns how many ranges went.
    pub fn collect_dropped_indexes(&self) -> Result<usize> {
        let index = self.engine.cf(Cf::Index)?;
        let meta_cf = self.engine.cf(Cf::Meta)?;
        let mut dropped = 0;
        for shard in 0..self.shard_count() {
            let st = self.lock_shard(shard);
            self.settle(&st)?;
            let mut batch = WriteBatch::default();
            let mut from = shard.to_be_bytes().to_vec();
            let end = crate::keys::shard_end(shard);
            loop {
                let mut ro = ReadOptions::default();
                ro.set_iterate_upper_bound(end.clone());
                let mut iter = self.engine.db().iterator_cf_opt(
                    index,
                    ro,
                    IteratorMode::From(&from, Direction::Forward),
                );
                let Some(item) = iter.next() else { break };
                let (key, _) = item.map_err(db_err)?;
                let Some((collection, prefix)) = entry_index(&key) else {
                    // Not an entry this module wrote: leave it, step past it.
                    from = key.to_vec();
                    from.push(0);
                    continue;
                };
                let next = prefix_end(&prefix);
                let wanted = self.collection_meta(&collection).is_some_and(|m| {
                    !m.deleted && live(&m).any(|d| index_prefix(shard, &collection, d) == prefix)
                });
                if !wanted {
                    batch.delete_range_cf(index, &prefix, &next);
                    dropped += 1;
                }
                from = next;
            }
            if !batch.is_empty() {
                self.engine
                    .db()
                    .write_opt(batch, &self.write_options())
                    .map_err(db_err)?;
            }
            drop(st);
        }
        // Build cursors of indexes no collection holds live any more.
        let mut batch = WriteBatch::default();
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(b"idxb0".to_vec());
        for item in self.engine.db().iterator_cf_opt(
            meta_cf,
            ro,
            IteratorMode::From(b"idxb/", Direction::Forward),
        ) {
            let (key, _) = item.map_err(db_err)?;
            let rest = &key[b"idxb/".len()..];
            let Some(at) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let collection = String::from_utf8_lossy(&rest[..at]).into_owned();
            let live_cursor = self.collection_meta(&collection).is_some_and(|m| {
                !m.deleted && live(&m).any(|d| key.starts_with(&cursor_prefix(&collection, d)))
            });
            if !live_cursor {
                batch.delete_cf(meta_cf, &key);
            }
        }
        if !batch.is_empty() {
            self.engine
                .db()
                .write_opt(batch, &self.write_options())
                .map_err(db_err)?;
        }
        Ok(dropped)
    }

    /// Indexes the next [`CHUNK`] documents of `shard` for `def`, if it still is a live
    /// index of the collection and the shard is not waiting to be seeded; the cursor after
    /// (`None` when nothing could be done now).
    fn build_chunk(
        &self,
        collection: &str,
        def: &pb::IndexDef,
        shard: u16,
    ) -> Result<Option<Cursor>> {
        let cursor = self.cursor(collection, def, shard)?;
        if cursor == Cursor::Done
            || self
                .unseeded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&shard)
        {
            return Ok(None);
        }
        let st = self.lock_shard(shard);
        self.settle(&st)?;
        // Under the lock: the definition may have gone meanwhile (a drop, a deletion).
        let Some(meta) = self
            .collection_meta(collection)
            .filter(|m| !m.deleted && live(m).any(|d| d == def))
        else {
            return Ok(None);
        };
        let start = match &cursor {
            Cursor::After(id) => {
                let mut k = doc_key(shard, collection, id);
                k.push(0);
                k
            }
            _ => doc_prefix(shard, collection),
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(doc_prefix_end(shard, collection));
        let docs = self.engine.cf(Cf::Docs)?;
        let index = self.engine.cf(Cf::Index)?;
        let mut batch = WriteBatch::default();
        let mut last = None;
        let mut seen = 0;
        for item in self
            .engine
            .db()
            .iterator_cf_opt(docs, ro, IteratorMode::From(&start, Direction::Forward))
            .take(CHUNK)
        {
            let (key, value) = item.map_err(db_err)?;
            seen += 1;
            let Some((_, id)) = split_doc_key(&key) else {
                continue;
            };
            let rec = pb::DocRecord::decode(&*value)
                .map_err(|e| Error::internal(format!("corrupt record {key:?}: {e}")))?;
            if !rec.tombstone && visible(Some(&meta), &rec) {
                for k in entries(shard, collection, id, [def], &decode_stored(&rec.body)?) {
                    batch.put_cf(index, k, []);
                }
            }
            last = Some(id.to_string());
        }
        let next = match last {
            Some(id) if seen == CHUNK => Cursor::After(id),
            _ => Cursor::Done,
        };
        batch.put_cf(
            self.engine.cf(Cf::Meta)?,
            cursor_key(collection, def, shard),
            next.encode(),
        );
        self.engine
            .db()
            .write_opt(batch, &self.write_options())
            .map_err(db_err)?;
        drop(st);
        Ok(Some(next))
    }
}

/// The index an entry key belongs to: its collection and its prefix (`shard | collection |
/// 0x00 | hlc | dc | 0x00`), if the key has that shape.
fn entry_index(key: &[u8]) -> Option<(String, Vec<u8>)> {
    let rest = key.get(2..)?;
    let at = rest.iter().position(|b| *b == 0)?;
    let collection = std::str::from_utf8(&rest[..at]).ok()?.to_string();
    let after_hlc = 2 + at + 1 + 8;
    let dc_len = key.get(after_hlc..)?.iter().position(|b| *b == 0)?;
    Some((collection, key[..after_hlc + dc_len + 1].to_vec()))
}

/// The first key past every key that starts with `prefix` (which ends in 0x00).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    #[test]
    fn cursors_round_trip() {
        for c in [Cursor::After("x:1".into()), Cursor::Done] {
            assert_eq!(Cursor::decode(Some(c.encode())), c);
        }
        assert_eq!(Cursor::decode(None), Cursor::Start);
    }

    /// A build stopped by a restart resumes from its cursor, not from the start, and ends
    /// exact.
    #[test]
    fn a_build_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let def = {
            let s = crate::store::test_store(dir.path(), "dc1", 2);
            for i in 0..CHUNK * 2 + 5 {
                s.put(
                    &pb::PutRequest {
                        shard: 1,
                        collection: "c".into(),
                        id: format!("d{i:05}"),
                        body: serde_json::to_vec(&json!({"n": i})).unwrap(),
                        ..Default::default()
                    },
                    Instant::now() + Duration::from_secs(30),
                )
                .unwrap();
            }
            let mut meta = s
                .put_index(&pb::PutIndexRequest {
                    collection: "c".into(),
                    name: "by_n".into(),
                    fields: vec![pb::IndexField {
                        path: "n".into(),
                        desc: false,
                    }],
                    ..Default::default()
                })
                .unwrap()
                .meta
                .unwrap();
            let def = meta.indexes.remove(0);
            assert!(s.build_indexes().unwrap(), "one chunk, more to do");
            assert_eq!(
                s.cursor("c", &def, 1).unwrap(),
                Cursor::After(format!("d{:05}", CHUNK - 1))
            );
            s.close().unwrap();
            def
        };
        let s = crate::store::test_store(dir.path(), "dc1", 2);
        assert_eq!(
            s.cursor("c", &def, 1).unwrap(),
            Cursor::After(format!("d{:05}", CHUNK - 1)),
            "the cursor survived the restart"
        );
        let mut chunks = 0;
        while s.build_indexes().unwrap() {
            chunks += 1;
        }
        assert_eq!(chunks, 1, "only the rest was built");
        assert!(s.build_progress("c", &def).unwrap().ready());
        let (extra, missing) = s.index_mismatches(1).unwrap();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{extra:?} {missing:?}"
        );
    }

    /// An index defined over documents written before it is built in chunks, also while
    /// writes go on between chunks, and ends exact and ready.
    #[test]
    fn a_build_indexes_what_was_there_and_keeps_up_with_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::test_store(dir.path(), "dc1", 2);
        let deadline = || Instant::now() + Duration::from_secs(30);
        let put = |id: String, n: usize| {
            s.put(
                &pb::PutRequest {
                    shard: 1,
                    collection: "c".into(),
                    id,
                    body: serde_json::to_vec(&json!({"n": n % 7, "tags": [n % 3, "t"]})).unwrap(),
                    ..Default::default()
                },
                deadline(),
            )
            .unwrap();
        };
        let before = CHUNK * 2 + 10;
        for i in 0..before {
            put(format!("d{i:05}"), i);
        }
        let resp = s
            .put_index(&pb::PutIndexRequest {
                collection: "c".into(),
                name: "by_n".into(),
                fields: vec![pb::IndexField {
                    path: "tags".into(),
                    desc: false,
                }],
                ..Default::default()
            })
            .unwrap();
        let def = resp.meta.unwrap().indexes.remove(0);
        assert!(!s.build_progress("c", &def).unwrap().ready());
        let mut rounds = 0;
        while s.build_indexes().unwrap() {
            // Writes between chunks: new documents, and rewrites of ones built and not yet.
            put(format!("e{rounds:05}"), rounds);
            put(format!("d{:05}", rounds * 700), rounds + 1);
            rounds += 1;
            assert!(rounds < 100, "the build ends");
        }
        assert!(rounds >= 2, "built in chunks ({rounds})");
        assert_eq!(
            s.build_progress("c", &def).unwrap(),
            BuildProgress { done: 2, of: 2 }
        );
        let (extra, missing) = s.index_mismatches(1).unwrap();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{extra:?} {missing:?}"
        );

        // Dropped: its entries and cursors go with the next collection pass, and only them.
        assert_eq!(
            s.collect_dropped_indexes().unwrap(),
            0,
            "a live index stays"
        );
        assert!(s.index_entry_count().unwrap() > 0);
        s.drop_index(&pb::DropIndexRequest {
            collection: "c".into(),
            name: "by_n".into(),
            hlc: 0,
        })
        .unwrap();
        assert!(s.collect_dropped_indexes().unwrap() >= 1);
        assert_eq!(s.index_entry_count().unwrap(), 0);
        assert_eq!(s.build_progress("c", &def).unwrap().done, 0, "cursors gone");
    }
}
