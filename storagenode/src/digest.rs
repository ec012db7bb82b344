//! Per-shard content digests: two DCs whose digests of a shard match hold byte-identical
//! records for it (tombstones included), which is what replication promises once quiet.

use std::time::Instant;

use ring::digest::{Context, SHA256};
use rocksdb::{Direction, IteratorMode, ReadOptions};

use aerolith_common::{Error, Result, pb};

use crate::engine::db_err;
use crate::keys::CF_DOCS;
use crate::store::Store;

impl Store {
    /// Digests of the requested shards (every shard when none are named).
    pub fn digest(&self, req: &pb::DigestRequest, deadline: Instant) -> Result<pb::DigestResponse> {
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
            out.push(self.shard_digest(shard, deadline)?);
        }
        Ok(pb::DigestResponse { shards: out })
    }

    fn shard_digest(&self, shard: u16, deadline: Instant) -> Result<pb::ShardDigest> {
        let mut ctx = Context::new(&SHA256);
        let mut records = 0u64;
        let start = shard.to_be_bytes();
        let mut ro = ReadOptions::default();
        if let Some(next) = shard.checked_add(1) {
            ro.set_iterate_upper_bound(next.to_be_bytes().to_vec());
        }
        let iter = self.engine.db().iterator_cf_opt(
            self.engine.cf(CF_DOCS)?,
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(db_err)?;
            if !key.starts_with(&start) {
                break;
            }
            // Length prefixes keep (key, value) boundaries unambiguous.
            ctx.update(&(key.len() as u64).to_be_bytes());
            ctx.update(&key);
            ctx.update(&(value.len() as u64).to_be_bytes());
            ctx.update(&value);
            records += 1;
            if records.is_multiple_of(4096) && Instant::now() >= deadline {
                return Err(Error::deadline("the digest did not finish in time"));
            }
        }
        Ok(pb::ShardDigest {
            shard: u32::from(shard),
            records,
            digest: ctx.finish().as_ref().to_vec(),
        })
    }
}
