//! Reading and trimming the per-shard change logs that feeds are served from.
//!
//! Every write appends one entry to its shard's log under the shard lock (see
//! `Store::commit`), so a shard's entries are gap-free from the oldest retained one (`first`)
//! to the head (`seq`). Readers name a position `(epoch, seq)`; an epoch other than the log's,
//! or a sequence number already trimmed, is `resume_token_expired`: a reader is never moved
//! silently past changes it did not see.

use std::time::Duration;

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use aerolith_common::name::validate_collection;
use aerolith_common::{Error, ErrorCode, Result, hlc, pb};

use crate::collections::visible;
use crate::engine::Cf;
use crate::engine::db_err;
use crate::keys::{change_key, change_seq, meta_log_first};
use crate::store::Store;

/// Most log entries one read examines (other collections' included) before answering.
const READ_BUDGET: usize = 20_000;
/// Most events one read returns.
const MAX_EVENTS: u32 = 10_000;

/// How much of each shard's change log a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Entries kept per shard (at least 1); older ones are trimmed in batches.
    pub count: u64,
    /// Entries older than this (by their write time) are trimmed.
    pub age: Duration,
    /// Entries kept per shard at most, even while a peer DC has not acknowledged them (a
    /// peer left behind becomes `needs_rebuild`).
    pub hard_cap: u64,
    /// How long a tombstone is kept at least after every peer acknowledged it.
    pub tombstone_grace: Duration,
    /// How long an idempotency key is remembered after its write.
    pub idempotency: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            count: 10_000,
            age: Duration::from_secs(24 * 3600),
            hard_cap: 1_000_000,
            tombstone_grace: Duration::from_secs(3600),
            idempotency: Duration::from_secs(24 * 3600),
        }
    }
}

impl Retention {
    /// Entries past `count` tolerated before a trim, so trims (range deletes) come in batches.
    pub(crate) fn slack(&self) -> u64 {
        (self.count / 16).max(1)
    }
}

fn expired(message: String) -> Error {
    Error::new(ErrorCode::ResumeTokenExpired, message)
}

fn position(shard: u16, epoch: u64, seq: u64) -> pb::ShardPosition {
    pb::ShardPosition {
        shard: u32::from(shard),
        epoch,
        seq,
    }
}

impl Store {
    /// The heads `(epoch, seq)` of the requested shards' logs.
    pub fn change_heads(&self, req: &pb::ChangeHeadsRequest) -> Result<pb::ChangeHeadsResponse> {
        let mut heads = Vec::with_capacity(req.shards.len());
        let mut oldest = Vec::with_capacity(req.shards.len());
        for s in &req.shards {
            let shard = self.check_shard(*s)?;
            let (epoch, seq) = self.log_head(shard);
            let first = self.lock_shard(shard).first;
            heads.push(position(shard, epoch, seq));
            oldest.push(position(shard, epoch, first.saturating_sub(1)));
        }
        Ok(pb::ChangeHeadsResponse { heads, oldest })
    }

    /// Reads one collection's changes after the given positions (see `ReadChangesRequest`);
    /// an empty collection reads every collection's (what a replicator ships).
    pub fn read_changes(&self, req: &pb::ReadChangesRequest) -> Result<pb::ReadChangesResponse> {
        let every_collection = req.collection.is_empty();
        if every_collection && req.follow {
            return Err(Error::invalid("follow needs a collection"));
        }
        if !every_collection {
            validate_collection(&req.collection)?;
        }
        let limit = req.limit.clamp(1, MAX_EVENTS) as usize;
        let max_bytes = if req.max_bytes == 0 {
            u64::MAX
        } else {
            req.max_bytes
        };
        let mut bytes = 0u64;
        // Changes of an earlier incarnation of the collection (deleted since) are not its
        // history any more.
        let meta = self.collection_meta(&req.collection);
        let live = meta.as_ref().filter(|m| !m.deleted);
        if req.follow && live.is_none_or(|m| m.incarnation != req.incarnation) {
            return Err(Error::not_found(format!(
                "collection {} was deleted",
                req.collection
            )));
        }
        let cf = self.engine.cf(Cf::Changes)?;
        let mut out = pb::ReadChangesResponse {
            incarnation: live.map_or(0, |m| m.incarnation),
            live: live.is_some(),
            ..Default::default()
        };
        let mut examined = 0usize;
        for from in &req.from {
            let shard = self.check_shard(from.shard)?;
            let (epoch, first, head) = {
                let first = self.lock_shard(shard).first;
                let (epoch, head) = self.log_head(shard);
                (epoch, first, head)
            };
            let after = if from.epoch == 0 {
                first - 1
            } else if from.epoch != epoch {
                return Err(expired(format!(
                    "shard {shard}'s change log was rebuilt since this token was issued"
                )));
            } else if from.seq > head {
                return Err(expired(format!(
                    "the token is ahead of shard {shard}'s change log"
                )));
            } else if from.seq + 1 < first {
                return Err(expired(format!(
                    "shard {shard}'s changes after this token are no longer retained"
                )));
            } else {
                from.seq
            };
            out.start.push(position(shard, epoch, after));
            let mut through = after;
            if out.events.len() < limit
                && examined < READ_BUDGET
                && bytes < max_bytes
                && after < head
            {
                let mut ro = ReadOptions::default();
                ro.set_iterate_upper_bound(change_key(shard, head + 1));
                let start = change_key(shard, after + 1);
                let iter = self.engine.db().iterator_cf_opt(
                    cf,
                    ro,
                    IteratorMode::From(&start, Direction::Forward),
                );
                for item in iter {
                    let (k, v) = item.map_err(db_err)?;
                    let seq =
                        change_seq(&k).ok_or_else(|| Error::internal("corrupt change-log key"))?;
                    examined += 1;
                    let event = pb::ChangeEvent::decode(&*v)
                        .map_err(|e| Error::internal(format!("corrupt change-log entry: {e}")))?;
                    let ours = every_collection || event.collection == req.collection;
                    // Settings entries are for replicators, which read every collection.
                    let settings = every_collection && event.collection_meta.is_some();
                    let current = settings
                        || ours
                            && event.record.as_ref().is_some_and(|r| {
                                if every_collection {
                                    visible(self.collection_meta(&event.collection).as_ref(), r)
                                } else {
                                    visible(meta.as_ref(), r)
                                }
                            });
                    if current {
                        bytes += v.len() as u64;
                        out.events.push(pb::ChangeRecord {
                            shard: u32::from(shard),
                            seq,
                            event: Some(event),
                        });
                    }
                    through = seq;
                    if out.events.len() >= limit || examined >= READ_BUDGET || bytes >= max_bytes {
                        break;
                    }
                }
            }
            // A trim racing with this read may have removed entries it was about to see.
            if after + 1 < self.lock_shard(shard).first {
                return Err(expired(format!(
                    "shard {shard}'s changes after this token are no longer retained"
                )));
            }
            out.through.push(position(shard, epoch, through));
        }
        if req.relay {
            let shards: Vec<u16> = out.through.iter().map(|p| p.shard as u16).collect();
            out.relayed = self.relay_marks(&shards)?;
        }
        Ok(out)
    }

    /// Adds to `batch` the removal of a shard's entries from `first` up to (not including)
    /// `new_first`, and the new oldest position.
    pub(crate) fn trim_into(
        &self,
        batch: &mut WriteBatch,
        shard: u16,
        first: u64,
        new_first: u64,
    ) -> Result<()> {
        batch.delete_range_cf(
            self.engine.cf(Cf::Changes)?,
            change_key(shard, first),
            change_key(shard, new_first),
        );
        batch.put_cf(
            self.engine.cf(Cf::Meta)?,
            meta_log_first(shard),
            new_first.to_be_bytes(),
        );
        Ok(())
    }

    /// Trims every shard's entries written before `cutoff_ms` (Unix milliseconds).
    pub fn trim_older_than(&self, cutoff_ms: u64) -> Result<()> {
        let cf = self.engine.cf(Cf::Changes)?;
        for shard in 0..self.shard_count() {
            let mut st = self.lock_shard(shard);
            self.settle(&st)?;
            let mut new_first = st.first;
            let start = change_key(shard, st.first);
            // Not past what a peer still needs, unless the hard cap says so.
            let needed = self.keep_from(shard, st.log_epoch, st.seq);
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(change_key(shard, (st.seq + 1).min(needed)));
            for item in self.engine.db().iterator_cf_opt(
                cf,
                ro,
                IteratorMode::From(&start, Direction::Forward),
            ) {
                let (_, v) = item.map_err(db_err)?;
                let event = pb::ChangeEvent::decode(&*v)
                    .map_err(|e| Error::internal(format!("corrupt change-log entry: {e}")))?;
                let written = event
                    .record
                    .as_ref()
                    .map_or(event.logged_at_ms, |r| hlc::wall_ms(r.hlc));
                if written >= cutoff_ms {
                    break;
                }
                new_first += 1;
            }
            if new_first > st.first {
                let mut batch = WriteBatch::default();
                self.trim_into(&mut batch, shard, st.first, new_first)?;
                self.engine
                    .db()
                    .write_opt(batch, &self.write_options())
                    .map_err(db_err)?;
                st.first = new_first;
            }
        }
        Ok(())
    }
}
