//! Seeding (DESIGN.md "Actors"): a node whose store is new or untrusted serves nothing for
//! its shards until its DC's replicator has copied each of them from a peer DC. The copy is
//! fuzzy (pages read while the source keeps taking writes), so the source's watermarks and
//! log head are read *before* the copy starts and become this node's watermarks at the end:
//! replication then re-delivers everything after them, and merging is idempotent.
//!
//! Copied records go straight into `docs`, with no change-log entry: the rebuilt node's log
//! starts empty in a new epoch, and what the copy brought is already known to the peers.

use std::sync::atomic::Ordering;

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use aerolith_common::{Error, Result, pb};

use crate::apply::encode_position;
use crate::engine::Cf;
use crate::engine::db_err;
use crate::keys::{
    META_EPOCH, META_UNDECIDED, doc_key, meta_tomb_prefix, meta_unseeded, meta_watermark,
    shard_end, shard_start, split_doc_key,
};
use crate::store::Store;

/// Largest page a seed read returns.
const MAX_PAGE: u32 = 10_000;
/// Bytes of records one seed read returns at most (well within the RPC frame limit).
const MAX_PAGE_BYTES: u64 = 8 * 1024 * 1024;

impl Store {
    /// `unavailable` while the node waits to be seeded: it must not answer for data it
    /// may not hold.
    pub fn serving(&self) -> Result<()> {
        if self.undecided.load(Ordering::Acquire) {
            Err(Error::unavailable(format!(
                "this {} node has a new, empty store and waits for its DC's replicator to check whether a peer DC holds data of its shards (start it with --new-store genesis to serve it empty at once); its shards are served by their other owners",
                self.dc
            )))
        } else if self.lock_unseeded().is_empty() {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "this {} node is being rebuilt from a peer DC; its shards are served by their other owners",
                self.dc
            )))
        }
    }

    fn lock_unseeded(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<u16>> {
        self.unseeded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the node waits to be seeded, and for which shards.
    pub fn seed_status(&self) -> pb::SeedStatusResponse {
        let pending: Vec<u32> = self.lock_unseeded().iter().map(|s| u32::from(*s)).collect();
        pb::SeedStatusResponse {
            unseeded: !pending.is_empty(),
            pending,
            actor_epoch: self.actor_epoch(),
            undecided: self.undecided.load(Ordering::Acquire),
        }
    }

    /// Takes the replicator's decision for an undecided store (`--new-store auto`): seed it
    /// (a peer DC holds data of its shards, so this store replaces a lost one: a new actor
    /// epoch, and every shard waits for its copy) or serve it empty (the cluster is new).
    /// Deciding again is a no-op.
    pub fn seed_decide(&self, req: &pb::SeedDecideRequest) -> Result<()> {
        let mut unseeded = self.lock_unseeded();
        if !self.undecided.load(Ordering::Acquire) {
            return Ok(());
        }
        let meta = self.engine.cf(Cf::Meta)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(meta, META_UNDECIDED);
        let epoch = crate::store::renewed_epoch(self.actor_epoch());
        if req.seed {
            batch.put_cf(meta, META_EPOCH, epoch.to_be_bytes());
        } else {
            for shard in unseeded.iter() {
                batch.delete_cf(meta, meta_unseeded(*shard));
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.engine.db().write_opt(batch, &wo).map_err(db_err)?;
        if req.seed {
            self.set_actor_epoch(epoch);
            tracing::warn!(dc = %self.dc, epoch, "a peer DC holds data of this node's shards: this new store replaces a lost one and waits to be seeded from there");
        } else {
            unseeded.clear();
            tracing::info!(dc = %self.dc, "no peer DC holds data of this node's shards: the cluster is new, serving the empty store");
        }
        self.undecided.store(false, Ordering::Release);
        drop(unseeded);
        self.note_progress();
        Ok(())
    }

    /// A page of this (seeded) node's records of one shard, for a node being seeded.
    pub fn seed_read(&self, req: &pb::SeedReadRequest) -> Result<pb::SeedReadResponse> {
        self.serving()?;
        let shard = self.check_shard(req.shard)?;
        let limit = req.limit.clamp(1, MAX_PAGE) as usize;
        let max_bytes = if req.max_bytes == 0 {
            MAX_PAGE_BYTES
        } else {
            req.max_bytes.min(MAX_PAGE_BYTES)
        };
        let start = if req.after.is_empty() {
            shard_start(shard)
        } else {
            if !req.after.starts_with(&shard.to_be_bytes()) {
                return Err(Error::invalid("the seed cursor names another shard"));
            }
            // The first key after `after`.
            let mut k = req.after.clone();
            k.push(0);
            k
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(shard_end(shard));
        let mut out = pb::SeedReadResponse {
            done: true,
            ..Default::default()
        };
        if req.after.is_empty() {
            out.collections = self.list_collections();
        }
        let mut bytes = 0u64;
        for item in self.engine.db().iterator_cf_opt(
            self.engine.cf(Cf::Docs)?,
            ro,
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (key, value) = item.map_err(db_err)?;
            if out.records.len() >= limit || bytes >= max_bytes {
                out.done = false;
                break;
            }
            let Some((collection, id)) = split_doc_key(&key) else {
                return Err(Error::internal(format!("a malformed document key {key:?}")));
            };
            bytes += (key.len() + value.len()) as u64;
            out.records.push(pb::RangeRecord {
                collection: collection.to_string(),
                id: id.to_string(),
                record: value.to_vec(),
            });
            out.last = key.to_vec();
        }
        Ok(out)
    }

    fn check_seeding(&self, shard: u32) -> Result<u16> {
        let shard = self.check_shard(shard)?;
        if self.undecided.load(Ordering::Acquire) {
            return Err(Error::invalid(
                "the store has not been told yet whether it is to be seeded",
            ));
        }
        if !self.lock_unseeded().contains(&shard) {
            return Err(Error::invalid(format!(
                "shard {shard} is not waiting to be seeded"
            )));
        }
        Ok(shard)
    }

    /// Writes records copied from a peer into a shard being seeded.
    pub fn seed_write(&self, req: &pb::SeedWriteRequest) -> Result<()> {
        let shard = self.check_seeding(req.shard)?;
        for meta in &req.collections {
            self.apply_collection(meta)?;
        }
        let docs = self.engine.cf(Cf::Docs)?;
        // Copied tombstones are indexed at the new log's base, so they are collected by the
        // same rule as this node's own once the peers acknowledge that position.
        let st = self.lock_shard(shard);
        self.settle(&st)?;
        let mut batch = WriteBatch::default();
        if req.reset {
            // Whatever an untrusted store held for the shard goes; the copy replaces it.
            batch.delete_range_cf(docs, shard_start(shard), shard_end(shard));
            batch.delete_range_cf(
                self.engine.cf(Cf::Index)?,
                shard_start(shard),
                shard_end(shard),
            );
            let tombs = meta_tomb_prefix(shard);
            let mut tombs_end = tombs.clone();
            tombs_end.push(0xff);
            batch.delete_range_cf(self.engine.cf(Cf::Meta)?, tombs, tombs_end);
        }
        for r in &req.records {
            aerolith_common::name::validate_collection(&r.collection)?;
            aerolith_common::name::validate_doc_id(&r.id)?;
            let record = pb::DocRecord::decode(&*r.record)
                .map_err(|e| Error::invalid(format!("a copied record does not decode: {e}")))?;
            // A counter is never reused for different content: the copy must not already
            // carry this DC's current epoch (only a clock set back could make it so).
            if let Some(vv) = &record.vv
                && vv
                    .entries
                    .iter()
                    .any(|e| e.dc == self.dc && e.epoch >= self.actor_epoch())
            {
                return Err(Error::internal(format!(
                    "the copy of {}/{} names an epoch of {} at or above this node's ({}); the node takes a newer one at its next restart",
                    r.collection,
                    r.id,
                    self.dc,
                    self.actor_epoch()
                )));
            }
            let key = doc_key(shard, &r.collection, &r.id);
            // A copy overwrites the record as it is: the entries of the one it replaces go
            // (read only when the collection has indexes).
            if let Some(meta) = self.indexed_meta(&r.collection) {
                let old = if req.reset {
                    None
                } else {
                    crate::index_entries::decode_record(&key, self.engine.get(Cf::Docs, &key)?)?
                };
                self.index_change(&mut batch, shard, &meta, &r.id, old.as_ref(), Some(&record))?;
            }
            batch.put_cf(docs, key, &r.record);
            self.newest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note(&r.collection, &record);
            self.index_record(&mut batch, shard, st.seq, &r.collection, &r.id, &record)?;
        }
        self.engine.db().write(batch).map_err(db_err)?;
        drop(st);
        Ok(())
    }

    /// Ends a shard's copy: the source's positions as of the copy's start become this
    /// node's watermarks, and the shard serves again once every shard is seeded.
    pub fn seed_finish(&self, req: &pb::SeedFinishRequest) -> Result<()> {
        let shard = self.check_seeding(req.shard)?;
        let meta = self.engine.cf(Cf::Meta)?;
        let mut batch = WriteBatch::default();
        for w in &req.watermarks {
            aerolith_common::name::validate_dc(&w.origin_dc)?;
            let Some(p) = &w.position else { continue };
            if w.origin_dc == self.dc || p.shard != u32::from(shard) {
                continue;
            }
            batch.put_cf(
                meta,
                meta_watermark(shard, &w.origin_dc),
                encode_position(p),
            );
        }
        batch.delete_cf(meta, meta_unseeded(shard));
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut unseeded = self.lock_unseeded();
        self.engine.db().write_opt(batch, &wo).map_err(db_err)?;
        unseeded.remove(&shard);
        let left = unseeded.len();
        drop(unseeded);
        self.note_progress();
        if left == 0 {
            tracing::info!(dc = %self.dc, epoch = self.actor_epoch(), "every shard seeded from a peer DC; serving again");
        }
        Ok(())
    }
}
