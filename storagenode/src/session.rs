//! Session marks: where a node stands in each DC's change log of a shard, so a session read
//! (or a write concern `all`) can wait until this node holds what the session has seen.

use std::collections::BTreeSet;
use std::time::Instant;

use aerolith_common::shard::shard_of;
use aerolith_common::{Error, Result, pb};

use crate::store::{ShardState, Store};

impl Store {
    /// The mark of this node's own log of `shard` as it stands now: past every write a
    /// read before it can have seen (staged ones included, which are durable soon).
    pub fn head_mark(&self, shard: u16) -> pb::SessionMark {
        let (epoch, seq) = self.heads.assigned(shard);
        pb::SessionMark {
            shard: u32::from(shard),
            dc: self.dc.clone(),
            epoch,
            seq,
        }
    }

    /// The mark of a write just committed under the shard's lock `st`.
    pub(crate) fn written_mark(&self, shard: u16, st: &ShardState) -> pb::SessionMark {
        pb::SessionMark {
            shard: u32::from(shard),
            dc: self.dc.clone(),
            epoch: st.log_epoch,
            seq: st.seq,
        }
    }

    /// Marks of the log heads of the shards that hold `ids` of `collection`, read after the
    /// documents were: a DC that covers them holds at least what the read returned.
    pub fn marks_of<'a>(
        &self,
        collection: &str,
        ids: impl Iterator<Item = &'a str>,
    ) -> Vec<pb::SessionMark> {
        let shards: BTreeSet<u16> = ids
            .map(|id| shard_of(collection, id, self.shard_count()))
            .collect();
        shards.into_iter().map(|s| self.head_mark(s)).collect()
    }

    /// Whether this node holds everything up to `mark`: its own log reached it, or it has
    /// applied the marked DC's log past it, directly or through a DC that forwarded it
    /// (`crate::relay`). Positions order by (epoch, seq), and a later
    /// epoch is higher: a log reset since the mark (its unsynced tail lost under relaxed
    /// durability) covers the mark, as nothing more of it can arrive.
    pub fn covers(&self, mark: &pb::SessionMark) -> Result<bool> {
        let shard = self.check_shard(mark.shard)?;
        if mark.dc == self.dc {
            return Ok(self.log_head(shard) >= (mark.epoch, mark.seq));
        }
        let at = (mark.epoch, mark.seq);
        if self
            .watermark(shard, &mark.dc)?
            .is_some_and(|w| (w.epoch, w.seq) >= at)
        {
            return Ok(true);
        }
        self.relay_covers(shard, &mark.dc, at)
    }

    fn covers_all(&self, marks: &[pb::SessionMark]) -> Result<bool> {
        for m in marks {
            if !self.covers(m)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Waits until `store` covers every mark, re-checking whenever a log or a watermark moves;
/// `deadline_exceeded` once `until` passes first.
pub async fn wait_covered(
    store: &std::sync::Arc<Store>,
    marks: &[pb::SessionMark],
    until: Instant,
) -> Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut commits = store.watch_progress();
    loop {
        commits.borrow_and_update();
        let s = store.clone();
        let m = marks.to_vec();
        let covered = tokio::task::spawn_blocking(move || s.covers_all(&m))
            .await
            .map_err(|e| Error::internal(format!("storage task failed: {e}")))??;
        if covered {
            return Ok(());
        }
        if tokio::time::timeout_at(until.into(), commits.changed())
            .await
            .is_err()
        {
            return Err(Error::deadline(
                "this DC has not yet applied the writes the session has seen",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store;

    fn mark(dc: &str, epoch: u64, seq: u64) -> pb::SessionMark {
        pb::SessionMark {
            shard: 0,
            dc: dc.into(),
            epoch,
            seq,
        }
    }

    #[test]
    fn own_log_and_watermarks_cover_marks() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path(), "dc1", 1);
        let head = store.head_mark(0);
        assert!(store.covers(&head).unwrap());
        assert!(
            !store
                .covers(&mark("dc1", head.epoch, head.seq + 1))
                .unwrap()
        );
        // A later epoch than the node's log is not covered; an earlier one is.
        assert!(!store.covers(&mark("dc1", head.epoch + 1, 0)).unwrap());
        assert!(store.covers(&mark("dc1", head.epoch - 1, 99)).unwrap());
        // Nothing applied from dc2 yet.
        assert!(!store.covers(&mark("dc2", 1, 1)).unwrap());
        assert!(store.covers(&mark("dc3", 0, 0)).is_ok());
        assert!(
            store
                .covers(&pb::SessionMark {
                    shard: 7,
                    ..mark("dc2", 1, 1)
                })
                .is_err()
        );
    }
}
