//! What the peer DCs acknowledged of this node's change logs, as the DC's replicator reports
//! it, and the two rules decided against it (DESIGN.md "Log trimming", "Tombstones"):
//! - a shard's log keeps what some peer has not acknowledged yet (up to a hard cap);
//! - a tombstone logged at position p may be collected once every peer acknowledged p *and*
//!   this node has applied the peer's log up to where it stood after that acknowledgement,
//!   so every write of the peer concurrent with the delete has been merged against it here.

use std::collections::HashMap;

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use aerolith_common::version::VersionVector;
use aerolith_common::{Error, Result, hlc, pb};

use crate::engine::{Cf, Engine, db_err};
use crate::keys::{
    META_PEER_ACKS, doc_key, meta_counter_floor, meta_tomb, meta_tomb_before, meta_tomb_prefix,
};
use crate::store::Store;

/// Tombstone index entries one pass examines per shard at most.
const MAX_PER_PASS: usize = 4096;

/// One peer's acknowledgement of one shard: `(epoch, seq)` of this node's log, and the
/// peer's own log head read after it.
type Pair = ((u64, u64), (u64, u64));

/// The acknowledgements in force, and the tombstone floors derived from them.
#[derive(Debug, Default)]
pub(crate) struct AckState {
    /// `None` until the replicator first reported (persisted, so only a brand-new store
    /// waits for it): no tombstone is collected, and logs trim by retention alone.
    peers: Option<Vec<String>>,
    /// (shard, peer) → acknowledged position of this node's log.
    acked: HashMap<(u16, String), (u64, u64)>,
    /// (shard, peer) → an acknowledgement waiting for this node's watermark of the peer to
    /// reach the peer's head.
    pending: HashMap<(u16, String), Pair>,
    /// (shard, peer) → position up to which tombstones may be collected.
    floor: HashMap<(u16, String), (u64, u64)>,
}

fn pos(p: Option<&pb::ShardPosition>) -> (u64, u64) {
    p.map_or((0, 0), |p| (p.epoch, p.seq))
}

impl AckState {
    /// The acknowledgements persisted by the last report (the floors start empty).
    pub(crate) fn load(engine: &Engine) -> Result<AckState> {
        let Some(bytes) = engine.get(Cf::Meta, META_PEER_ACKS)? else {
            return Ok(AckState::default());
        };
        let req = pb::PeerAcksRequest::decode(&*bytes)
            .map_err(|e| Error::internal(format!("corrupt peer acknowledgements: {e}")))?;
        let mut st = AckState {
            peers: Some(req.peers.clone()),
            ..AckState::default()
        };
        for a in &req.acks {
            if let Some(p) = &a.acked
                && let Ok(shard) = u16::try_from(p.shard)
            {
                st.acked
                    .insert((shard, a.peer_dc.clone()), (p.epoch, p.seq));
            }
        }
        Ok(st)
    }

    /// The first sequence number of `shard`'s log (in `epoch`) some peer still needs:
    /// `None` when no peer is known to need anything (a single DC, or no report yet).
    pub(crate) fn needed_from(&self, shard: u16, epoch: u64) -> Option<u64> {
        let peers = match &self.peers {
            Some(p) if !p.is_empty() => p,
            _ => return None,
        };
        peers
            .iter()
            .map(|peer| match self.acked.get(&(shard, peer.clone())) {
                Some(&(e, seq)) if e == epoch => seq + 1,
                _ => 0,
            })
            .min()
    }

    /// The last sequence number of `shard`'s log (in `epoch`) whose tombstones every peer
    /// rule allows collecting; `None`: none yet.
    fn tomb_floor(&self, shard: u16, epoch: u64, head: u64) -> Option<u64> {
        let peers = self.peers.as_ref()?;
        if peers.is_empty() {
            return Some(head);
        }
        peers
            .iter()
            .map(|peer| match self.floor.get(&(shard, peer.clone())) {
                Some(&(e, seq)) if e == epoch => Some(seq),
                _ => None,
            })
            .min()
            .flatten()
    }
}

impl Store {
    /// Takes the replicator's report of what each peer acknowledged.
    pub fn peer_acks(&self, req: &pb::PeerAcksRequest) -> Result<pb::PeerAcksResponse> {
        // Our own watermarks of each peer's log, read before taking the acks lock.
        let mut applied = HashMap::new();
        for a in &req.acks {
            if let Some(p) = &a.acked {
                let shard = self.check_shard(p.shard)?;
                let w = self.watermark(shard, &a.peer_dc)?;
                applied.insert((shard, a.peer_dc.clone()), pos(w.as_ref()));
            }
        }
        let mut st = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        st.peers = Some(req.peers.clone());
        for a in &req.acks {
            let Some(p) = &a.acked else { continue };
            let key = (self.check_shard(p.shard)?, a.peer_dc.clone());
            let acked = (p.epoch, p.seq);
            st.acked.insert(key.clone(), acked);
            let here = applied.get(&key).copied().unwrap_or((0, 0));
            let covered = |head: (u64, u64)| head.1 == 0 || (here.0 == head.0 && here.1 >= head.1);
            let reported = a.peer_head.as_ref().map(|h| (h.epoch, h.seq));
            if let Some(&(was, head)) = st.pending.get(&key) {
                if covered(head) {
                    st.floor.insert(key.clone(), was);
                    st.pending.remove(&key);
                } else if reported.is_some_and(|r| r.0 != head.0) {
                    // The peer's log moved to a new epoch (an unclean restart, a rebuild):
                    // the old head can no longer be reached; wait for the new one instead.
                    st.pending.remove(&key);
                }
            }
            // A peer whose head could not be read gives no floor this time.
            if !st.pending.contains_key(&key)
                && let Some(head) = reported
            {
                if covered(head) {
                    st.floor.insert(key.clone(), acked);
                } else {
                    st.pending.insert(key, (acked, head));
                }
            }
        }
        drop(st);
        self.engine
            .db()
            .put_cf(
                self.engine.cf(Cf::Meta)?,
                META_PEER_ACKS,
                req.encode_to_vec(),
            )
            .map_err(db_err)?;
        Ok(pb::PeerAcksResponse {})
    }

    /// The first sequence number of `shard`'s log that a peer still needs (see
    /// [`AckState::needed_from`]).
    pub(crate) fn needed_from(&self, shard: u16, epoch: u64) -> Option<u64> {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .needed_from(shard, epoch)
    }

    /// The first sequence number of `shard`'s log (`epoch`, head `head`) that trimming must
    /// keep for the peers: what one has not acknowledged, but no more than the hard cap
    /// (`u64::MAX`: nothing is kept for them).
    pub(crate) fn keep_from(&self, shard: u16, epoch: u64, head: u64) -> u64 {
        self.needed_from(shard, epoch)
            .unwrap_or(u64::MAX)
            .max((head + 1).saturating_sub(self.retention().hard_cap))
    }

    /// Adds to `batch` the tombstone index entry of a record logged at `seq`, if it is one.
    pub(crate) fn index_tombstone(
        &self,
        batch: &mut WriteBatch,
        shard: u16,
        seq: u64,
        event: &pb::ChangeEvent,
    ) -> Result<()> {
        match &event.record {
            Some(r) => self.index_record(batch, shard, seq, &event.collection, &event.id, r),
            None => Ok(()),
        }
    }

    /// Adds to `batch` the tombstone index entry of `record` at `seq`, if it is a tombstone.
    pub(crate) fn index_record(
        &self,
        batch: &mut WriteBatch,
        shard: u16,
        seq: u64,
        collection: &str,
        id: &str,
        record: &pb::DocRecord,
    ) -> Result<()> {
        if record.tombstone && record.siblings.is_empty() {
            let entry = pb::RangeRecord {
                collection: collection.to_string(),
                id: id.to_string(),
                record: record.hlc.to_be_bytes().to_vec(),
            };
            batch.put_cf(
                self.engine.cf(Cf::Meta)?,
                meta_tomb(shard, seq, collection, id),
                entry.encode_to_vec(),
            );
        }
        Ok(())
    }

    /// Removes the tombstones every peer rule allows and older than `grace_ms` (at
    /// `now_ms`); returns how many records went.
    pub fn collect_tombstones(&self, now_ms: u64, grace_ms: u64) -> Result<u64> {
        let meta = self.engine.cf(Cf::Meta)?;
        let docs = self.engine.cf(Cf::Docs)?;
        let mut collected = 0;
        let actor = self.actor();
        for shard in 0..self.shard_count() {
            let mut st = self.lock_shard(shard);
            self.settle(&st)?;
            let floor = self
                .acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .tomb_floor(shard, st.log_epoch, st.seq);
            let Some(floor) = floor else { continue };
            let prefix = meta_tomb_prefix(shard);
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(meta_tomb_before(shard, floor.saturating_add(1)));
            let mut batch = WriteBatch::default();
            // This actor's counters on the records that go: later writes count past them.
            let mut floor = st.counter_floor;
            for item in self
                .engine
                .db()
                .iterator_cf_opt(meta, ro, IteratorMode::From(&prefix, Direction::Forward))
                // The shard's writes wait on its lock: a large backlog goes over several passes.
                .take(MAX_PER_PASS)
            {
                let (k, v) = item.map_err(db_err)?;
                if !k.starts_with(&prefix) {
                    break;
                }
                let entry = pb::RangeRecord::decode(&*v)
                    .map_err(|e| Error::internal(format!("corrupt tombstone index: {e}")))?;
                let stamp = <[u8; 8]>::try_from(entry.record.as_slice())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                if hlc::wall_ms(stamp).saturating_add(grace_ms) > now_ms {
                    break;
                }
                // Only the very tombstone that was logged there: a later write (or a later
                // delete, with its own entry and its own acknowledgements) keeps the record.
                let current = self.read_record(shard, &entry.collection, &entry.id)?;
                if let Some(r) =
                    current.filter(|r| r.tombstone && r.hlc == stamp && r.siblings.is_empty())
                {
                    floor = floor.max(VersionVector::from_proto(r.vv.as_ref()).get(&actor));
                    batch.delete_cf(docs, doc_key(shard, &entry.collection, &entry.id));
                    collected += 1;
                }
                batch.delete_cf(meta, &k);
            }
            if floor > st.counter_floor {
                batch.put_cf(meta, meta_counter_floor(shard), floor.to_be_bytes());
            }
            if !batch.is_empty() {
                // The floor goes in the same batch as the deletions it accounts for: a crash
                // keeps both or neither.
                self.engine.db().write(batch).map_err(db_err)?;
                st.counter_floor = floor;
            }
        }
        metrics::counter!("aerolith_tombstone_passes_total").increment(1);
        if collected > 0 {
            metrics::counter!("aerolith_tombstones_collected_total").increment(collected);
            tracing::debug!(collected, "tombstones collected");
        }
        Ok(collected)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn position(shard: u32, epoch: u64, seq: u64) -> Option<pb::ShardPosition> {
        Some(pb::ShardPosition { shard, epoch, seq })
    }

    /// A store of dc1 holding one deleted document in shard 1 (logged at seq 2).
    fn with_tombstone(dir: &std::path::Path) -> Store {
        let s = crate::store::test_store(dir, "dc1", 4);
        s.put_collection(&pb::PutCollectionRequest {
            name: "c".into(),
            strategy: pb::ConflictStrategy::Lww as i32,
            explicit: true,
            settings_hlc: 1_000,
            after_delete_hlc: 0,
        })
        .unwrap();
        let body = serde_json::to_vec(&serde_json::json!({"v": 1})).unwrap();
        s.put(
            &pb::PutRequest {
                after_delete_hlc: 0,
                shard: 1,
                collection: "c".into(),
                id: "x".into(),
                body,
                precondition: None,
                session: Vec::new(),
                idempotency: None,
            },
            deadline(),
        )
        .unwrap();
        s.delete(
            &pb::DeleteRequest {
                after_delete_hlc: 0,
                shard: 1,
                collection: "c".into(),
                id: "x".into(),
                precondition: None,
                session: Vec::new(),
                idempotency: None,
            },
            deadline(),
        )
        .unwrap();
        s
    }

    fn report(s: &Store, acked: u64, peer_head: Option<pb::ShardPosition>) {
        let epoch = s.log_head(1).0;
        s.peer_acks(&pb::PeerAcksRequest {
            peers: vec!["dc2".into()],
            acks: vec![pb::PeerAck {
                peer_dc: "dc2".into(),
                acked: position(1, epoch, acked),
                peer_head,
            }],
        })
        .unwrap();
    }

    fn held(s: &Store) -> bool {
        s.read_record(1, "c", "x").unwrap().is_some()
    }

    #[test]
    fn a_tombstone_waits_for_the_acknowledgement_and_for_the_peers_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_tombstone(dir.path());
        let (epoch, head) = s.log_head(1);
        let now = aerolith_common::time::now_ms() + 1;
        // No report yet: nothing is collected.
        assert_eq!(s.collect_tombstones(now, 0).unwrap(), 0);
        // The peer acknowledged only the put.
        report(&s, head - 1, position(1, 9, 0));
        assert_eq!(s.collect_tombstones(now, 0).unwrap(), 0);
        assert!(held(&s));
        // The peer acknowledged the delete, but its log stood at seq 5 then, and this node
        // has applied none of it: a write of the peer may still race the delete.
        report(&s, head, position(1, 9, 5));
        assert_eq!(s.collect_tombstones(now, 0).unwrap(), 0);
        assert!(held(&s));
        // Later reports do not replace the waiting one.
        report(&s, head, position(1, 9, 50));
        // Once this node has applied the peer's log to seq 5, the first acknowledgement
        // counts, and after the grace period the tombstone goes.
        s.engine
            .db()
            .put_cf(
                s.engine.cf(Cf::Meta).unwrap(),
                crate::keys::meta_watermark(1, "dc2"),
                [9u64.to_be_bytes(), 5u64.to_be_bytes()].concat(),
            )
            .unwrap();
        report(&s, head, position(1, 9, 50));
        assert_eq!(s.collect_tombstones(now, 3_600_000).unwrap(), 0, "grace");
        assert_eq!(s.collect_tombstones(now, 0).unwrap(), 1);
        assert!(!held(&s));
        assert_eq!(s.log_head(1), (epoch, head));
    }

    #[test]
    fn logs_keep_what_a_peer_has_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_tombstone(dir.path());
        let epoch = s.log_head(1).0;
        assert_eq!(
            s.needed_from(1, epoch),
            None,
            "unknown peers hold nothing back"
        );
        report(&s, 1, None);
        assert_eq!(s.needed_from(1, epoch), Some(2));
        assert_eq!(
            s.needed_from(1, epoch + 1),
            Some(0),
            "another epoch: all of it"
        );
        s.peer_acks(&pb::PeerAcksRequest::default()).unwrap();
        assert_eq!(s.needed_from(1, epoch), None, "a single DC");
        // The report survives a restart.
        report(&s, 1, None);
        drop(s);
        let s = crate::store::test_store(dir.path(), "dc1", 4);
        assert_eq!(s.needed_from(1, epoch), Some(2));
    }
}
