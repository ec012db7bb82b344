//! Per-shard content digests: two DCs whose digests of a shard match hold byte-identical
//! records for it (tombstones included), which is what replication promises once quiet.
//! Anti-entropy narrows a difference down with digests of hash ranges of a shard, then
//! reads the records of the ranges that differ.

use std::time::Instant;

use ring::digest::{Context, SHA256};
use rocksdb::{Direction, IteratorMode, ReadOptions};

use aerolith_common::shard::stable_hash;
use aerolith_common::{Error, Result, pb};

use crate::engine::Cf;
use crate::engine::db_err;
use crate::store::Store;

/// Most ranges a shard may be split into.
pub const MAX_RANGES: u32 = 4096;

/// The hash range of a record's store key.
fn range_of(key: &[u8], ranges: u32) -> u32 {
    (stable_hash(key) % u64::from(ranges.max(1))) as u32
}

/// Feeds one record into a digest; length prefixes keep (key, value) boundaries
/// unambiguous.
fn feed(ctx: &mut Context, key: &[u8], value: &[u8]) {
    ctx.update(&(key.len() as u64).to_be_bytes());
    ctx.update(key);
    ctx.update(&(value.len() as u64).to_be_bytes());
    ctx.update(value);
}

fn check_ranges(ranges: u32) -> Result<u32> {
    if ranges > MAX_RANGES {
        return Err(Error::invalid(format!(
            "at most {MAX_RANGES} ranges a shard, not {ranges}"
        )));
    }
    Ok(ranges)
}

impl Store {
    /// Digests of the requested shards (every shard when none are named).
    pub fn digest(&self, req: &pb::DigestRequest, deadline: Instant) -> Result<pb::DigestResponse> {
        let ranges = check_ranges(req.ranges)?;
        let shards: Vec<u16> = if req.shards.is_empty() {
            (0..self.shard_count()).collect()
        } else {
            req.shards
                .iter()
                .map(|s| self.check_shard(*s))
                .collect::<Result<_>>()?
        };
        let mut out = Vec::with_capacity(shards.len());
        for shard in shards {
            let mut d = self.shard_digest(shard, ranges, deadline)?;
            if req.check_indexes {
                let (extra, missing) = self.index_mismatches(shard)?;
                d.index_mismatches = (extra.len() + missing.len()) as u64;
            }
            out.push(d);
        }
        Ok(pb::DigestResponse { shards: out })
    }

    /// Calls `each(key, value)` for every record of `shard`, in key order, until the
    /// deadline.
    fn scan_shard(
        &self,
        shard: u16,
        deadline: Instant,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> Result<u64> {
        let start = shard.to_be_bytes();
        let mut ro = ReadOptions::default();
        if let Some(next) = shard.checked_add(1) {
            ro.set_iterate_upper_bound(next.to_be_bytes().to_vec());
        }
        let iter = self.engine.db().iterator_cf_opt(
            self.engine.cf(Cf::Docs)?,
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut records = 0u64;
        for item in iter {
            let (key, value) = item.map_err(db_err)?;
            if !key.starts_with(&start) {
                break;
            }
            each(&key, &value);
            records += 1;
            if records.is_multiple_of(4096) && Instant::now() >= deadline {
                return Err(Error::deadline("the shard scan did not finish in time"));
            }
        }
        Ok(records)
    }

    fn shard_digest(&self, shard: u16, ranges: u32, deadline: Instant) -> Result<pb::ShardDigest> {
        let mut whole = Context::new(&SHA256);
        let mut parts: Vec<Context> = (0..ranges).map(|_| Context::new(&SHA256)).collect();
        let records = self.scan_shard(shard, deadline, |key, value| {
            feed(&mut whole, key, value);
            if let Some(part) = parts.get_mut(range_of(key, ranges) as usize) {
                feed(part, key, value);
            }
        })?;
        Ok(pb::ShardDigest {
            shard: u32::from(shard),
            records,
            digest: whole.finish().as_ref().to_vec(),
            range_digests: parts
                .into_iter()
                .map(|c| c.finish().as_ref().to_vec())
                .collect(),
            index_mismatches: 0,
        })
    }

    /// Every record of some hash ranges of a shard, as stored (one scan of the shard).
    pub fn range(&self, req: &pb::RangeRequest, deadline: Instant) -> Result<pb::RangeResponse> {
        let shard = self.check_shard(req.shard)?;
        let ranges = check_ranges(req.ranges)?.max(1);
        let wanted: std::collections::HashSet<u32> = if req.range_list.is_empty() {
            [req.range].into()
        } else {
            req.range_list.iter().copied().collect()
        };
        if let Some(r) = wanted.iter().find(|r| **r >= ranges) {
            return Err(Error::invalid(format!(
                "range {r} of {ranges} does not exist"
            )));
        }
        let mut records = Vec::new();
        let mut bad = None;
        self.scan_shard(shard, deadline, |key, value| {
            if !wanted.contains(&range_of(key, ranges)) {
                return;
            }
            match crate::keys::split_doc_key(key) {
                Some((collection, id)) => records.push(pb::RangeRecord {
                    collection: collection.to_string(),
                    id: id.to_string(),
                    record: value.to_vec(),
                }),
                None => bad = Some(key.to_vec()),
            }
        })?;
        if let Some(key) = bad {
            return Err(Error::internal(format!("a malformed document key {key:?}")));
        }
        Ok(pb::RangeResponse { records })
    }
}
