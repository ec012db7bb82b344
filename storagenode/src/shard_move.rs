//! Moving a shard between the nodes of a DC (issue 25), the storage side. The DC's
//! replicator fences the shard on its owner (a map marking it `moving`: the owner takes no
//! writes of it, see `ownership.rs`), then copies it: the owner exports everything it holds
//! of the shard from one RocksDB snapshot, and the new owner imports it byte for byte, so
//! the shard's change log (its epoch and sequence numbers), counters, watermarks of peer
//! DCs' logs, tombstone index, idempotency records and index entries arrive as they were:
//! feed tokens, session marks, shipping checkpoints and peer watermarks of the shard all
//! carry over. Then the map gives the shard to the new owner, and the old copy is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use aerolith_common::{Error, Result, pb};

use crate::engine::{Cf, db_err};
use crate::keys::{
    META_IDEM_EXPIRY_PREFIX, META_IDEM_PREFIX, meta_counter_floor, meta_log_epoch, meta_log_first,
    meta_seq, meta_tomb_prefix, meta_watermark_prefix, shard_end, shard_start, split_doc_key,
};
use crate::store::Store;

/// Bytes one export page holds at most (well within the RPC frame limit).
const MAX_PAGE_BYTES: u64 = 8 * 1024 * 1024;

/// The column families in an export's numbering.
const CFS: [Cf; 4] = [Cf::Docs, Cf::Changes, Cf::Index, Cf::Meta];

/// Exports being read, by shard: one snapshot's entries, read page by page.
#[derive(Default)]
pub(crate) struct Exports(Mutex<HashMap<u16, Arc<Vec<pb::RawEntry>>>>);

impl Exports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Arc<Vec<pb::RawEntry>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The meta key prefix of index build cursors (`index_build.rs`), whose keys end with the
/// shard.
const BUILD_CURSOR_PREFIX: &[u8] = b"idxb/";

/// The meta ranges that hold a shard's keys: `(start, end)` pairs of whole prefixes.
fn meta_ranges(shard: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
    let prefixed = |p: Vec<u8>| {
        let mut end = p.clone();
        end.push(0xff);
        (p, end)
    };
    let mut idem = META_IDEM_PREFIX.to_vec();
    idem.extend_from_slice(&shard.to_be_bytes());
    let mut wm = meta_watermark_prefix();
    wm.extend_from_slice(&shard.to_be_bytes());
    vec![
        prefixed(meta_tomb_prefix(shard)),
        prefixed(wm),
        prefixed(idem),
    ]
}

/// The single meta keys of a shard.
fn meta_keys(shard: u16) -> [Vec<u8>; 4] {
    [
        meta_seq(shard),
        meta_log_epoch(shard),
        meta_log_first(shard),
        meta_counter_floor(shard),
    ]
}

/// Whether a meta key under a prefix shared by every shard belongs to `shard`: an
/// idempotency expiry entry (`idemx/ | expires u64 | shard | ...`) or an index build cursor
/// (`idxb/ | ... | shard`).
fn shared_meta_of(key: &[u8], shard: u16) -> bool {
    let s = shard.to_be_bytes();
    if let Some(rest) = key.strip_prefix(META_IDEM_EXPIRY_PREFIX) {
        rest.get(8..10) == Some(&s[..])
    } else if key.starts_with(BUILD_CURSOR_PREFIX) {
        key.ends_with(&s)
    } else {
        false
    }
}

impl Store {
    /// A page of everything this node holds of `req.shard`, which it owns and is moving
    /// (so no write changes it while it is read).
    pub fn shard_export(&self, req: &pb::ShardExportRequest) -> Result<pb::ShardExportResponse> {
        let shard = self.check_shard(req.shard)?;
        if !self.fenced(shard) {
            return Err(Error::invalid(format!(
                "shard {shard} is not being moved from this node; only a fenced shard is exported"
            )));
        }
        let entries = if req.offset == 0 {
            let all = Arc::new(self.snapshot_of(shard)?);
            self.exports.lock().insert(shard, all.clone());
            all
        } else {
            self.exports.lock().get(&shard).cloned().ok_or_else(|| {
                Error::invalid(format!(
                    "no export of shard {shard} is being read; start again at offset 0"
                ))
            })?
        };
        let max = match req.max_bytes {
            0 => MAX_PAGE_BYTES,
            n => n.min(MAX_PAGE_BYTES),
        };
        let start = usize::try_from(req.offset)
            .unwrap_or(usize::MAX)
            .min(entries.len());
        let (mut end, mut bytes) = (start, 0u64);
        while end < entries.len() && (end == start || bytes < max) {
            bytes += (entries[end].key.len() + entries[end].value.len()) as u64;
            end += 1;
        }
        let done = end == entries.len();
        if done {
            self.exports.lock().remove(&shard);
        }
        Ok(pb::ShardExportResponse {
            entries: entries[start..end].to_vec(),
            next: end as u64,
            done,
            total: entries.len() as u64,
        })
    }

    /// Every key of `shard`, from one snapshot.
    fn snapshot_of(&self, shard: u16) -> Result<Vec<pb::RawEntry>> {
        let db = self.engine.db();
        let snap = db.snapshot();
        let mut out = Vec::new();
        let mut scan = |cf_no: u32, start: &[u8], end: &[u8], keep: &dyn Fn(&[u8]) -> bool| {
            let mut ro = ReadOptions::default();
            ro.set_snapshot(&snap);
            ro.set_iterate_upper_bound(end.to_vec());
            let cf = self.engine.cf(CFS[cf_no as usize])?;
            for item in db.iterator_cf_opt(cf, ro, IteratorMode::From(start, Direction::Forward)) {
                let (key, value) = item.map_err(db_err)?;
                if keep(&key) {
                    out.push(pb::RawEntry {
                        cf: cf_no,
                        key: key.to_vec(),
                        value: value.to_vec(),
                    });
                }
            }
            Ok::<(), Error>(())
        };
        let all = |_: &[u8]| true;
        let (first, past) = (shard_start(shard), shard_end(shard));
        for cf_no in 0..3 {
            scan(cf_no, &first, &past, &all)?;
        }
        for (start, end) in meta_ranges(shard) {
            scan(3, &start, &end, &all)?;
        }
        let shared = |k: &[u8]| shared_meta_of(k, shard);
        for prefix in [META_IDEM_EXPIRY_PREFIX, BUILD_CURSOR_PREFIX] {
            let mut end = prefix.to_vec();
            end.push(0xff);
            scan(3, prefix, &end, &shared)?;
        }
        let meta = self.engine.cf(Cf::Meta)?;
        for key in meta_keys(shard) {
            let mut ro = ReadOptions::default();
            ro.set_snapshot(&snap);
            if let Some(value) = db.get_cf_opt(meta, &key, &ro).map_err(db_err)? {
                out.push(pb::RawEntry { cf: 3, key, value });
            }
        }
        Ok(out)
    }

    /// Writes a page of another node's export of a shard this node does not own.
    pub fn shard_import(&self, req: &pb::ShardImportRequest) -> Result<()> {
        let shard = self.check_shard(req.shard)?;
        if self.map_epoch() == 0 || self.owns(shard) {
            return Err(Error::invalid(format!(
                "shard {shard} is served here (or this node has no shard map yet): an import never overwrites a served shard"
            )));
        }
        let st = self.lock_shard(shard);
        self.settle(&st)?;
        let mut batch = WriteBatch::default();
        if req.reset {
            self.clear_shard(&mut batch, shard)?;
        }
        let mut newest = Vec::new();
        for e in &req.entries {
            let cf = *CFS
                .get(e.cf as usize)
                .ok_or_else(|| Error::invalid(format!("column family {} is unknown", e.cf)))?;
            if cf != Cf::Meta && !e.key.starts_with(&shard.to_be_bytes()) {
                return Err(Error::invalid("an imported key belongs to another shard"));
            }
            if cf == Cf::Docs {
                let rec = pb::DocRecord::decode(e.value.as_slice())
                    .map_err(|err| Error::invalid(format!("an imported record: {err}")))?;
                if let Some((collection, _)) = split_doc_key(&e.key) {
                    newest.push((collection.to_string(), rec));
                }
            }
            batch.put_cf(self.engine.cf(cf)?, &e.key, &e.value);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.engine.db().write_opt(batch, &wo).map_err(db_err)?;
        {
            let mut n = self.newest.lock().unwrap_or_else(|p| p.into_inner());
            for (collection, rec) in &newest {
                n.note(collection, rec);
                self.hlc.observe(crate::newest::written_hlc(rec));
            }
        }
        drop(st);
        if req.finish {
            self.reload_shard(shard)?;
            tracing::info!(dc = %self.dc, shard, "a moved shard was imported");
        }
        Ok(())
    }

    /// Drops everything this node holds of a shard it no longer owns.
    pub fn shard_drop(&self, req: &pb::ShardDropRequest) -> Result<()> {
        let shard = self.check_shard(req.shard)?;
        if self.map_epoch() == 0 || self.owns(shard) {
            return Err(Error::invalid(format!(
                "shard {shard} is served here (or this node has no shard map yet); only a shard moved away is dropped"
            )));
        }
        self.exports.lock().remove(&shard);
        let st = self.lock_shard(shard);
        self.settle(&st)?;
        let mut batch = WriteBatch::default();
        self.clear_shard(&mut batch, shard)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.engine.db().write_opt(batch, &wo).map_err(db_err)?;
        drop(st);
        tracing::info!(dc = %self.dc, shard, "the copy of a shard moved away was dropped");
        Ok(())
    }

    /// Adds to `batch` the deletion of every key of `shard`.
    fn clear_shard(&self, batch: &mut WriteBatch, shard: u16) -> Result<()> {
        let (first, past) = (shard_start(shard), shard_end(shard));
        for cf in [Cf::Docs, Cf::Changes, Cf::Index] {
            batch.delete_range_cf(self.engine.cf(cf)?, &first, &past);
        }
        let meta = self.engine.cf(Cf::Meta)?;
        for (start, end) in meta_ranges(shard) {
            batch.delete_range_cf(meta, start, end);
        }
        for key in meta_keys(shard) {
            batch.delete_cf(meta, key);
        }
        for prefix in [META_IDEM_EXPIRY_PREFIX, BUILD_CURSOR_PREFIX] {
            let mut end = prefix.to_vec();
            end.push(0xff);
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(end);
            let iter = self.engine.db().iterator_cf_opt(
                meta,
                ro,
                IteratorMode::From(prefix, Direction::Forward),
            );
            for item in iter {
                let (key, _) = item.map_err(db_err)?;
                if shared_meta_of(&key, shard) {
                    batch.delete_cf(meta, key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// DC dc1's map at `epoch`: every shard n1's but `shard`, which is `owner`'s, moving or
    /// not.
    fn map(epoch: u64, shard: u16, owner: u32, moving: bool) -> pb::SetShardMapRequest {
        pb::SetShardMapRequest {
            map: Some(pb::ShardMap {
                dc: "dc1".into(),
                epoch,
                nodes: vec!["n1".into(), "n2".into()],
                owners: (0..4u16)
                    .map(|s| if s == shard { owner } else { 0 })
                    .collect(),
                moving: if moving {
                    vec![u32::from(shard)]
                } else {
                    vec![]
                },
                ..Default::default()
            }),
        }
    }

    fn put(id: &str, i: usize) -> pb::PutRequest {
        pb::PutRequest {
            shard: u32::from(aerolith_common::shard::shard_of("c", id, 4)),
            collection: "c".into(),
            id: id.into(),
            body: format!("{{\"i\":{i}}}").into_bytes(),
            idempotency: Some(pb::Idempotency {
                key: format!("k-{id}"),
                fingerprint: vec![1],
                scope: id.into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_moved_shard_arrives_byte_for_byte_with_its_log_head_and_is_dropped_behind() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = crate::store::test_store_of(da.path(), "dc1", "n1", 4);
        let b = crate::store::test_store_of(db.path(), "dc1", "n2", 4);
        let far = Instant::now() + Duration::from_secs(10);
        let shard = 2u16;
        for s in [&a, &b] {
            s.set_shard_map(&map(1, shard, 0, false)).unwrap();
        }
        let ids: Vec<String> = (0..400)
            .map(|i| format!("d{i}"))
            .filter(|id| aerolith_common::shard::shard_of("c", id, 4) == shard)
            .collect();
        for (i, id) in ids.iter().enumerate() {
            a.put(&put(id, i), far).unwrap();
        }
        // Not fenced: no export. Fenced: writes refused, the export taken in small pages.
        assert!(
            a.shard_export(&pb::ShardExportRequest {
                shard: 2,
                ..Default::default()
            })
            .is_err()
        );
        a.set_shard_map(&map(2, shard, 0, true)).unwrap();
        let e = a.put(&put(&ids[0], 9), far).unwrap_err();
        assert_eq!(e.code, aerolith_common::ErrorCode::NotOwner, "{e}");
        let (mut offset, mut first) = (0, true);
        loop {
            let req = pb::ShardExportRequest {
                shard: 2,
                offset,
                max_bytes: 4096,
            };
            let page = a.shard_export(&req).unwrap();
            b.shard_import(&pb::ShardImportRequest {
                shard: 2,
                reset: first,
                entries: page.entries,
                finish: page.done,
            })
            .unwrap();
            first = false;
            offset = page.next;
            if page.done {
                break;
            }
        }
        assert_eq!(
            a.log_head(shard),
            b.log_head(shard),
            "the log moved with its epoch and head"
        );
        // The flip: B serves the shard as A did, idempotency keys included; A drops its copy.
        for s in [&b, &a] {
            s.set_shard_map(&map(3, shard, 1, false)).unwrap();
        }
        let digest = |s: &Store| {
            let req = pb::DigestRequest {
                shards: vec![2],
                ..Default::default()
            };
            s.digest(&req, far).unwrap().shards
        };
        let on_b = digest(&b);
        assert_eq!(on_b[0].records, ids.len() as u64);
        assert_eq!(on_b, digest(&a), "the same records, byte for byte");
        let replay = b.put(&put(&ids[3], 3), far).unwrap();
        assert!(
            replay.replayed,
            "the idempotency record moved with the shard"
        );
        assert!(
            b.shard_import(&pb::ShardImportRequest {
                shard: 2,
                ..Default::default()
            })
            .is_err(),
            "a served shard is never overwritten"
        );
        a.shard_drop(&pb::ShardDropRequest { shard: 2 }).unwrap();
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(shard_end(shard));
        let left = a
            .engine
            .db()
            .iterator_cf_opt(
                a.engine.cf(Cf::Docs).unwrap(),
                ro,
                IteratorMode::From(&shard_start(shard), Direction::Forward),
            )
            .count();
        assert_eq!(left, 0, "the old copy is gone");
    }

    #[test]
    fn shared_meta_keys_are_told_apart_by_shard() {
        let mut idemx = META_IDEM_EXPIRY_PREFIX.to_vec();
        idemx.extend_from_slice(&77u64.to_be_bytes());
        idemx.extend_from_slice(&5u16.to_be_bytes());
        idemx.extend_from_slice(b"c\0x\0k");
        assert!(shared_meta_of(&idemx, 5));
        assert!(!shared_meta_of(&idemx, 6));
        let mut cursor = BUILD_CURSOR_PREFIX.to_vec();
        cursor.extend_from_slice(b"c\0stamp\0");
        cursor.extend_from_slice(&6u16.to_be_bytes());
        assert!(shared_meta_of(&cursor, 6));
        assert!(!shared_meta_of(&cursor, 5));
        assert!(!shared_meta_of(b"seq/\0\x05", 5));
    }
}
