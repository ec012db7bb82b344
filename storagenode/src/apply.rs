//! Applying versions shipped from other DCs (DESIGN.md "Versions, conflicts and replication"):
//! the shipped record is merged into the local one by the collection's strategy, and the
//! applied watermark of its origin's change log moves in the same atomic write, so a restart
//! never loses or double-counts an apply.

use std::collections::BTreeMap;
use std::time::Instant;

use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::collections::visible;
use crate::engine::Cf;
use crate::merge::merge;
use aerolith_common::name::{validate_collection, validate_dc, validate_doc_id};
use aerolith_common::{Error, Result, pb};

use crate::group::{Staged, Ticket};
use crate::keys::{meta_watermark, meta_watermark_prefix};
use crate::store::{ShardState, Store};

/// Threads a shipment's changes are staged on at most (each a few shards' changes in
/// order): merging and encoding are CPU work that the cores can share.
const APPLY_LANES: usize = 4;

/// A position as a watermark value: `epoch u64 BE | seq u64 BE`.
pub(crate) fn encode_position(p: &pb::ShardPosition) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&p.epoch.to_be_bytes());
    v.extend_from_slice(&p.seq.to_be_bytes());
    v
}

fn decode_position(shard: u16, bytes: &[u8]) -> Option<pb::ShardPosition> {
    let epoch = u64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some(pb::ShardPosition {
        shard: u32::from(shard),
        epoch,
        seq,
    })
}

impl Store {
    /// The durable applied watermark of `origin_dc`'s log of `shard`, if anything was
    /// applied.
    pub fn watermark(&self, shard: u16, origin_dc: &str) -> Result<Option<pb::ShardPosition>> {
        Ok(self
            .engine
            .get(Cf::Meta, &meta_watermark(shard, origin_dc))?
            .and_then(|b| decode_position(shard, &b)))
    }

    /// [`Store::watermark`] for a writer under the shard's lock, staged moves included.
    fn latest_watermark(&self, shard: u16, origin_dc: &str) -> Result<Option<pb::ShardPosition>> {
        Ok(self
            .latest(Cf::Meta, &meta_watermark(shard, origin_dc))?
            .and_then(|b| decode_position(shard, &b)))
    }

    /// Adds to `batch` the move of `origin_dc`'s watermark of `shard` to `position`, unless
    /// it already stands past it: a late retry of an old shipment must not move it back.
    /// Called under the shard's lock.
    fn watermark_into(
        &self,
        staged: &mut Staged,
        shard: u16,
        origin_dc: &str,
        position: &pb::ShardPosition,
    ) -> Result<()> {
        let behind = self
            .latest_watermark(shard, origin_dc)?
            .is_some_and(|w| (position.epoch, position.seq) < (w.epoch, w.seq));
        if !behind {
            let key = meta_watermark(shard, origin_dc);
            let value = encode_position(position);
            staged.track(Cf::Meta, &key, &value);
            staged.batch.put_cf(self.engine.cf(Cf::Meta)?, key, value);
        }
        Ok(())
    }

    /// Merges a shipped version into the local record and moves the watermark.
    pub fn apply(&self, req: &pb::ApplyRequest, deadline: Instant) -> Result<pb::ApplyResponse> {
        let (answer, ticket) = self.stage_apply(req, deadline)?;
        self.group.wait(ticket, self)?;
        Ok(answer)
    }

    /// [`Store::apply`] staged, not yet durable: the answer and the ticket to wait for
    /// before it may be given.
    fn stage_apply(
        &self,
        req: &pb::ApplyRequest,
        deadline: Instant,
    ) -> Result<(pb::ApplyResponse, Ticket)> {
        validate_dc(&req.origin_dc)?;
        if req.origin_dc == self.dc {
            return Err(Error::invalid("a DC does not apply its own changes"));
        }
        let shard = self.check_shard(req.shard)?;
        // A repair (anti-entropy) merges a record read from the origin's store: it is no
        // point of the origin's log, so no watermark moves.
        let position = match (req.repair, req.position.as_ref()) {
            (true, _) => None,
            (false, Some(p)) => Some(p),
            (false, None) => return Err(Error::invalid("apply needs the origin position")),
        };
        let Some(remote) = req.record.as_ref() else {
            let Some(position) = position else {
                return Err(Error::invalid("a repair needs a record"));
            };
            // A change this DC already knows, or a collection's settings (which the
            // replicator merged into every node first): only the watermark moves past it.
            let mut st = self.lock_shard_by(shard, deadline)?;
            // Not synced on its own: every replicated write comes back to its origin as
            // such a marker, and an fsync each doubled the origin's syncs per write. It
            // rides in the next synced group. Losing it (only a power loss can: the OS has
            // it) moves the watermark back, which the origin's next change moves forward
            // again; no data is lost.
            let mut staged = Staged::unsynced(WriteBatch::default());
            self.watermark_into(&mut staged, shard, &req.origin_dc, position)?;
            let ticket = self.stage(&mut st, staged)?;
            return Ok((pb::ApplyResponse::default(), ticket));
        };
        validate_collection(&req.collection)?;
        validate_doc_id(&req.id)?;
        if !req.source_dc.is_empty() {
            validate_dc(&req.source_dc)?;
        }
        // The HLC advances on every timestamp it receives (DESIGN.md "HLC").
        self.observe_remote(remote.hlc, &req.origin_dc);
        // Settings first, and outside the shard lock: they log in their own shard.
        if let Some(settings) = &req.collection_meta {
            if settings.name != req.collection {
                return Err(Error::invalid("collection_meta names another collection"));
            }
            self.apply_collection(settings)?;
        }
        let mut st = self.lock_shard_by(shard, deadline)?;
        let answer = self.merge_shipped(&mut st, shard, req, remote, position)?;
        Ok((answer, st.last_ticket))
    }

    /// The part of [`Store::stage_apply`] under the shard's lock `st`.
    fn merge_shipped(
        &self,
        st: &mut ShardState,
        shard: u16,
        req: &pb::ApplyRequest,
        remote: &pb::DocRecord,
        position: Option<&pb::ShardPosition>,
    ) -> Result<pb::ApplyResponse> {
        if let Some(p) = position
            && self
                .latest_watermark(shard, &req.origin_dc)?
                .is_some_and(|w| w.epoch == p.epoch && p.seq <= w.seq)
        {
            // Already applied: a re-delivery after a restart, or a change a seed copy
            // covered. Merging it again could only repeat what is here, or, after a
            // tombstone was collected, bring the document back.
            return Ok(pb::ApplyResponse {
                changed: false,
                record: self.latest_record(shard, &req.collection, &req.id)?,
                conflict: String::new(),
            });
        }
        let meta = self.collection_meta(&req.collection).ok_or_else(|| {
            Error::unavailable(format!(
                "collection {} is not known here yet (its settings replicate first)",
                req.collection
            ))
        })?;
        let mut staged = Staged::new(WriteBatch::default());
        if let Some(position) = position {
            self.watermark_into(&mut staged, shard, &req.origin_dc, position)?;
        }
        // The write's idempotency record, so a retry here answers as the write did.
        if let Some(idem) = &req.idempotency {
            self.idem_into(&mut staged, shard, &req.collection, idem)?;
        }
        // Changes older than the collection's latest deletion are dropped everywhere; a
        // newer one lands after it, in a collection that lives again if need be.
        let stale = !visible(Some(&meta), remote);
        let meta = if meta.deleted && !stale {
            self.revive(&meta)?
        } else {
            meta
        };
        let current = self.latest_record(shard, &req.collection, &req.id)?;
        let strategy = pb::ConflictStrategy::try_from(meta.strategy)
            .map_err(|_| Error::internal(format!("unknown strategy {}", meta.strategy)))?;
        let merged = if stale {
            None
        } else {
            Some(merge(current.as_ref(), remote, strategy)?)
        };
        let conflict = merged
            .as_ref()
            .and_then(|m| m.conflict.as_ref())
            .map(|c| c.strategy)
            .unwrap_or_default();
        if !conflict.is_empty() {
            metrics::counter!("aerolith_conflicts_total", "strategy" => conflict).increment(1);
        }
        match merged {
            Some(m) if m.changed => {
                // A merge that kept something the shipped record lacked (a concurrent version,
                // a tombstone the sender already collected) is news for the sender too.
                let echo = m.record != *remote;
                let event = pb::ChangeEvent {
                    collection: req.collection.clone(),
                    id: req.id.clone(),
                    record: Some(m.record),
                    applied_from: req.origin_dc.clone(),
                    source_dc: if req.source_dc.is_empty() {
                        req.origin_dc.clone()
                    } else {
                        req.source_dc.clone()
                    },
                    collection_meta: None,
                    logged_at_ms: 0,
                    echo,
                    idempotency: req.idempotency.clone(),
                };
                self.stage_change(st, shard, &event, staged)?;
                Ok(pb::ApplyResponse {
                    changed: true,
                    record: event.record,
                    conflict: conflict.to_string(),
                })
            }
            other => {
                self.stage(st, staged)?;
                Ok(pb::ApplyResponse {
                    changed: false,
                    record: other.map(|m| m.record).or(current),
                    conflict: conflict.to_string(),
                })
            }
        }
    }

    /// Applies a shipment as one commit group: each shard's changes are staged in
    /// shipment order (different shards side by side), then the whole shipment is waited
    /// for once, so it costs one WAL sync however many changes it holds. A shard's changes
    /// stop at its first error (a later change of the shard must not move the watermark
    /// past one that failed); the shipment then fails and is sent again, which applies
    /// nothing twice.
    pub fn apply_batch(
        &self,
        reqs: &[pb::ApplyRequest],
        deadline: Instant,
    ) -> Result<Vec<pb::ApplyResponse>> {
        let mut by_shard: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in reqs.iter().enumerate() {
            by_shard.entry(r.shard).or_default().push(i);
        }
        // Each lane: some shards' changes, each shard's in shipment order.
        let mut lanes: Vec<Vec<Vec<usize>>> =
            vec![Vec::new(); by_shard.len().clamp(1, APPLY_LANES)];
        let count = lanes.len();
        for (k, changes) in by_shard.into_values().enumerate() {
            lanes[k % count].push(changes);
        }
        type Lane = (Result<Vec<(usize, pb::ApplyResponse)>>, Ticket);
        let stage_lane = |lane: &Vec<Vec<usize>>| -> Lane {
            let mut answers = Vec::new();
            let mut last = 0;
            let mut failure = None;
            for shard in lane {
                for &i in shard {
                    match self.stage_apply(&reqs[i], deadline) {
                        Ok((answer, ticket)) => {
                            answers.push((i, answer));
                            last = last.max(ticket);
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                            break;
                        }
                    }
                }
            }
            match failure {
                Some(e) => (Err(e), last),
                None => (Ok(answers), last),
            }
        };
        let outcomes: Vec<Lane> = if count == 1 {
            lanes.iter().map(stage_lane).collect()
        } else {
            std::thread::scope(|scope| {
                let running: Vec<_> = lanes
                    .iter()
                    .map(|lane| scope.spawn(move || stage_lane(lane)))
                    .collect();
                running
                    .into_iter()
                    .map(|lane| {
                        lane.join()
                            .unwrap_or_else(|_| (Err(Error::internal("an apply lane panicked")), 0))
                    })
                    .collect()
            })
        };
        // Whatever was staged becomes durable before the answer, failed shipment or not.
        let last = outcomes.iter().map(|(_, t)| *t).max().unwrap_or(0);
        self.group.wait(last, self)?;
        let mut answers = Vec::with_capacity(reqs.len());
        for (outcome, _) in outcomes {
            answers.extend(outcome?);
        }
        answers.sort_unstable_by_key(|(i, _)| *i);
        Ok(answers.into_iter().map(|(_, answer)| answer).collect())
    }

    /// Every applied watermark of the given shards (all shards when empty).
    pub fn watermarks(&self, req: &pb::WatermarksRequest) -> Result<pb::WatermarksResponse> {
        let wanted: Vec<u16> = req
            .shards
            .iter()
            .map(|s| self.check_shard(*s))
            .collect::<Result<_>>()?;
        let prefix = meta_watermark_prefix();
        let mut watermarks = Vec::new();
        let iter = self.engine.db().iterator_cf(
            self.engine.cf(Cf::Meta)?,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(crate::engine::db_err)?;
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let (Some(shard), Some(dc)) = (
                rest.get(0..2)
                    .and_then(|b| <[u8; 2]>::try_from(b).ok())
                    .map(u16::from_be_bytes),
                rest.get(2..).and_then(|b| std::str::from_utf8(b).ok()),
            ) else {
                continue;
            };
            if !wanted.is_empty() && !wanted.contains(&shard) {
                continue;
            }
            if let Some(position) = decode_position(shard, &value) {
                watermarks.push(pb::Watermark {
                    origin_dc: dc.to_string(),
                    position: Some(position),
                });
            }
        }
        Ok(pb::WatermarksResponse { watermarks })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    const SHARDS: u16 = 4;

    fn store(dir: &std::path::Path, dc: &str) -> Store {
        crate::store::test_store(&dir.join(dc), dc, SHARDS)
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    /// The same collection settings in both DCs, as settings replication will leave them.
    fn collection(s: &Store, strategy: pb::ConflictStrategy) {
        s.put_collection(&pb::PutCollectionRequest {
            name: "c".into(),
            strategy: strategy as i32,
            explicit: true,
            settings_hlc: 1_000,
            after_delete_hlc: 0,
        })
        .expect("collection");
    }

    fn put(s: &Store, id: &str, body: serde_json::Value) {
        s.put(
            &pb::PutRequest {
                after_delete_hlc: 0,
                shard: 1,
                collection: "c".into(),
                id: id.into(),
                body: serde_json::to_vec(&body).unwrap(),
                precondition: None,
                session: Vec::new(),
                idempotency: None,
            },
            deadline(),
        )
        .expect("put");
    }

    /// Every change of collection `c` in `s`'s log of shard 1.
    fn log(s: &Store) -> pb::ReadChangesResponse {
        s.read_changes(&pb::ReadChangesRequest {
            collection: "c".into(),
            from: vec![pb::ShardPosition {
                shard: 1,
                epoch: 0,
                seq: 0,
            }],
            limit: 100,
            max_bytes: 1 << 20,
            ..Default::default()
        })
        .expect("read changes")
    }

    /// Ships every change of `from`'s shard 1 to `to`; the responses' `changed` flags.
    fn ship(from: &Store, to: &Store) -> Vec<bool> {
        let log = log(from);
        let epoch = log.start.first().map(|p| p.epoch).unwrap_or_default();
        log.events
            .iter()
            .map(|e| {
                let ev = e.event.as_ref().unwrap();
                to.apply(
                    &pb::ApplyRequest {
                        shard: e.shard,
                        collection: ev.collection.clone(),
                        id: ev.id.clone(),
                        record: ev.record.clone(),
                        origin_dc: from.dc.clone(),
                        position: Some(pb::ShardPosition {
                            shard: e.shard,
                            epoch,
                            seq: e.seq,
                        }),
                        collection_meta: from.collection_meta(&ev.collection),
                        source_dc: String::new(),
                        sender_wall_ms: 0,
                        repair: false,
                        idempotency: None,
                    },
                    deadline(),
                )
                .expect("apply")
                .changed
            })
            .collect()
    }

    fn record(s: &Store, id: &str) -> pb::DocRecord {
        s.read_record(1, "c", id).unwrap().expect("a record")
    }

    /// A relay mark names a log head that holds every change behind its watermark, also
    /// while the group that moved the watermark is written but not yet published.
    #[test]
    fn a_relay_mark_covers_a_group_written_but_not_yet_published() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        // The very same settings on dc2 first (its own creation could differ in its
        // creation time, and the join would then commit a settings group of its own): the
        // hold must catch the apply's own group.
        dc2.apply_collection(&dc1.collection_meta("c").unwrap())
            .unwrap();
        put(&dc1, "x", serde_json::json!({"v": 1}));
        let (reached_tx, reached) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        *dc2.group.hold.lock().unwrap() = Some((reached_tx, release_rx));
        let (w, marks, published, applied) = std::thread::scope(|s| {
            let applying = s.spawn(|| ship(&dc1, &dc2));
            reached.recv().unwrap();
            // dc2's apply of x is in RocksDB (its watermark is visible), not yet published.
            let w = dc2.watermark(1, "dc1").unwrap();
            let marks = dc2.relay_marks(&[1]).unwrap();
            let published = dc2.log_head(1).1;
            release.send(()).unwrap();
            (w, marks, published, applying.join().unwrap())
        });
        assert_eq!(applied, vec![true]);
        let mark = marks.iter().find(|m| m.origin_dc == "dc1").unwrap();
        assert_eq!(mark.applied, Some(w.expect("the watermark moved")));
        let via = mark.via_head.unwrap();
        assert!(
            via.seq > published,
            "the mark names head {} while the applied change is past the published {published}",
            via.seq
        );
        // Published now: the head the mark named is the change's own position.
        let (_, head) = dc2.log_head(1);
        let marks = dc2.relay_marks(&[1]).unwrap();
        assert_eq!(marks[0].via_head.unwrap().seq, head);
    }

    #[test]
    fn concurrent_writes_converge_under_every_strategy() {
        for (strategy, want) in [
            (pb::ConflictStrategy::Lww, json!({"b": 2})),
            (pb::ConflictStrategy::Siblings, json!({"b": 2})),
            (pb::ConflictStrategy::FieldMerge, json!({"a": 1, "b": 2})),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
            collection(&dc1, strategy);
            collection(&dc2, strategy);
            put(&dc1, "x", json!({"a": 1}));
            put(&dc2, "x", json!({"b": 2}));
            assert_eq!(ship(&dc1, &dc2), vec![true], "{strategy:?}");
            // dc2's log holds its own write and its merge of dc1's: the second is what dc1
            // now holds already.
            assert_eq!(ship(&dc2, &dc1), vec![true, false], "{strategy:?}");
            // Both hold the same bytes now; shipping again changes nothing.
            let (r1, r2) = (record(&dc1, "x"), record(&dc2, "x"));
            assert_eq!(r1, r2, "{strategy:?}");
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&r1.body).unwrap(),
                want,
                "{strategy:?}"
            );
            assert_eq!(
                r1.siblings.len(),
                if strategy == pb::ConflictStrategy::Siblings {
                    2
                } else {
                    0
                }
            );
            if strategy == pb::ConflictStrategy::Siblings {
                // `data` is the LWW pick; `conflicts` holds the other version only.
                let doc = aerolith_common::document::Document::from_record("c", "x", &r1)
                    .unwrap()
                    .expect("live");
                let conflicts = doc.conflicts.expect("conflicts");
                assert_eq!(conflicts.len(), 1);
                assert_eq!(
                    serde_json::Value::Object(conflicts[0].data.object().unwrap()),
                    json!({"a": 1})
                );
                assert_eq!(doc.version, "dc1@1:1.dc2@1:1", "the join");
            }
            assert!(ship(&dc1, &dc2).iter().all(|c| !c), "{strategy:?}");
            assert!(ship(&dc2, &dc1).iter().all(|c| !c), "{strategy:?}");
            // The watermark names the last applied position of the origin's log.
            let wm = dc1.watermark(1, "dc2").unwrap().expect("a watermark");
            assert_eq!(wm.seq, 2, "{strategy:?}");
            let listed = dc1
                .watermarks(&pb::WatermarksRequest { shards: vec![1] })
                .unwrap();
            assert_eq!(listed.watermarks.len(), 1);
            assert_eq!(listed.watermarks[0].origin_dc, "dc2");
        }
    }

    /// The echo rule: a merge that kept something the shipped record lacked is logged as news
    /// for its sender too; a plain replacement is not.
    #[test]
    fn a_merge_that_kept_more_than_was_shipped_is_an_echo() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        collection(&dc2, pb::ConflictStrategy::Lww);
        put(&dc1, "plain", json!({"a": 1}));
        put(&dc2, "both", json!({"b": 2}));
        put(&dc1, "both", json!({"a": 1}));
        assert_eq!(ship(&dc1, &dc2), vec![true, true]);
        let echoes: Vec<(String, bool)> = log(&dc2)
            .events
            .iter()
            .filter_map(|e| e.event.as_ref())
            .filter(|e| !e.applied_from.is_empty())
            .map(|e| (e.id.clone(), e.echo))
            .collect();
        assert_eq!(
            echoes,
            vec![("plain".to_string(), false), ("both".to_string(), true)]
        );
    }

    #[test]
    fn applied_changes_record_their_sender_and_source_and_known_ones_move_only_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        put(&dc1, "x", json!({"a": 1}));
        let position = |seq| {
            Some(pb::ShardPosition {
                shard: 1,
                epoch: 1,
                seq,
            })
        };
        // dc1 forwards a change that dc3 wrote.
        let forwarded = pb::ApplyRequest {
            shard: 1,
            collection: "c".into(),
            id: "x".into(),
            record: Some(record(&dc1, "x")),
            origin_dc: "dc1".into(),
            position: position(1),
            collection_meta: dc1.collection_meta("c"),
            source_dc: "dc3".into(),
            sender_wall_ms: 0,
            repair: false,
            idempotency: None,
        };
        assert!(dc2.apply(&forwarded, deadline()).unwrap().changed);
        let log = log(&dc2);
        let ev = log.events[0].event.as_ref().unwrap();
        assert_eq!(
            (ev.applied_from.as_str(), ev.source_dc.as_str()),
            ("dc1", "dc3")
        );

        // A change dc2 already knows: no record, the watermark moves, nothing is logged.
        let known = pb::ApplyRequest {
            record: None,
            position: position(7),
            collection_meta: None,
            ..forwarded
        };
        let head = || {
            dc2.change_heads(&pb::ChangeHeadsRequest { shards: vec![1] })
                .unwrap()
                .heads[0]
                .seq
        };
        let before = head();
        let answer = dc2.apply(&known, deadline()).unwrap();
        assert!(!answer.changed);
        assert_eq!(dc2.watermark(1, "dc1").unwrap().unwrap().seq, 7);
        // A late retry of an older shipment does not move it back.
        let late = pb::ApplyRequest {
            position: position(3),
            ..known.clone()
        };
        dc2.apply(&late, deadline()).unwrap();
        assert_eq!(dc2.watermark(1, "dc1").unwrap().unwrap().seq, 7);
        assert_eq!(head(), before, "nothing logged for a known change");
    }

    #[test]
    fn collection_settings_are_logged_for_replicators_only() {
        let dir = tempfile::tempdir().unwrap();
        let dc1 = store(dir.path(), "dc1");
        collection(&dc1, pb::ConflictStrategy::Siblings);
        dc1.delete_collection(&pb::DeleteCollectionRequest {
            name: "c".into(),
            hlc: 0,
        })
        .unwrap();
        let read = |collection: &str| {
            let from = (0..SHARDS)
                .map(|shard| pb::ShardPosition {
                    shard: u32::from(shard),
                    epoch: 0,
                    seq: 0,
                })
                .collect();
            dc1.read_changes(&pb::ReadChangesRequest {
                collection: collection.into(),
                from,
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .events
        };
        let settings: Vec<pb::CollectionMeta> = read("")
            .into_iter()
            .filter_map(|e| e.event?.collection_meta)
            .collect();
        assert_eq!(settings.len(), 2, "{settings:?}");
        assert_eq!(settings[0].strategy, pb::ConflictStrategy::Siblings as i32);
        assert!(!settings[0].deleted && settings[1].deleted);
        assert!(
            read("c").is_empty(),
            "a collection's feed has no settings entries"
        );
        // Age trimming dates settings entries by when they were logged.
        let now = aerolith_common::time::now_ms();
        dc1.trim_older_than(now - 60_000).unwrap();
        assert_eq!(read("").len(), 2, "recent settings entries are kept");
        dc1.trim_older_than(now + 60_000).unwrap();
        assert!(read("").is_empty(), "old ones go");
    }

    #[test]
    fn a_node_whose_clock_is_off_from_its_peers_takes_no_writes_until_they_agree() {
        use aerolith_common::hlc::{DEFAULT_MAX_OFFSET_MS, pack};
        use aerolith_common::time::now_ms;
        let dir = tempfile::tempdir().unwrap();
        let (dc1, mut dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        put(&dc1, "x", json!({"a": 1}));
        let write = |dc2: &Store| {
            dc2.put(
                &pb::PutRequest {
                    after_delete_hlc: 0,
                    shard: 1,
                    collection: "c".into(),
                    id: "y".into(),
                    body: b"{}".to_vec(),
                    precondition: None,
                    session: Vec::new(),
                    idempotency: None,
                },
                deadline(),
            )
        };
        // A record stamped 1.5 s ahead is applied and counted, but an HLC may carry times
        // it only observed elsewhere: it does not stop writes by itself.
        let mut ahead = record(&dc1, "x");
        ahead.hlc = pack(now_ms() + DEFAULT_MAX_OFFSET_MS + 1_000, 0);
        let req = pb::ApplyRequest {
            shard: 1,
            collection: "c".into(),
            id: "x".into(),
            record: Some(ahead),
            origin_dc: "dc1".into(),
            position: Some(pb::ShardPosition {
                shard: 1,
                epoch: 1,
                seq: 1,
            }),
            collection_meta: dc1.collection_meta("c"),
            source_dc: String::new(),
            sender_wall_ms: 0,
            repair: false,
            idempotency: None,
        };
        assert!(dc2.apply(&req, deadline()).unwrap().changed);
        write(&dc2).expect("writes go on");
        // dc1's wall clock, sampled on a shipment, is 1.5 s ahead: dc2 (whose only peer it
        // is) stops taking writes and says why.
        let now = now_ms();
        dc2.sample_peer_clock("dc1", now + 1_500, now);
        write(&dc2).expect("one sample is not enough to judge a clock");
        for _ in 0..2 {
            dc2.sample_peer_clock("dc1", now + 1_500, now);
        }
        let err = write(&dc2).unwrap_err();
        assert_eq!(err.code, aerolith_common::ErrorCode::Unavailable);
        assert!(err.message.contains("max_offset"), "{}", err.message);
        assert!(err.message.contains("dc1 +1500 ms"), "{}", err.message);
        // Once dc1's clock agrees again (its old samples expire), writes resume.
        dc2.clocks = crate::clock::PeerClocks::with_ttl(Duration::from_millis(30));
        for _ in 0..3 {
            dc2.sample_peer_clock("dc1", now + 1_500, now);
        }
        assert!(write(&dc2).is_err());
        std::thread::sleep(Duration::from_millis(40));
        let now = now_ms();
        dc2.sample_peer_clock("dc1", now + 20, now);
        write(&dc2).expect("writes resume");
    }

    #[test]
    fn digests_match_exactly_when_records_do() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        collection(&dc2, pb::ConflictStrategy::Lww);
        let digest = |s: &Store| s.digest(&pb::DigestRequest::default(), deadline()).unwrap();
        assert_eq!(digest(&dc1), digest(&dc2), "empty stores");
        assert_eq!(digest(&dc1).shards.len(), SHARDS as usize);
        put(&dc1, "x", json!({"a": 1}));
        assert_ne!(digest(&dc1), digest(&dc2));
        ship(&dc1, &dc2);
        assert_eq!(digest(&dc1), digest(&dc2));
        let shard1 = &digest(&dc1).shards[1];
        assert_eq!((shard1.shard, shard1.records), (1, 1));
        assert_eq!(digest(&dc1).shards[0].records, 0);
        let err = dc1
            .digest(
                &pb::DigestRequest {
                    shards: vec![99],
                    ranges: 0,
                    check_indexes: false,
                },
                deadline(),
            )
            .unwrap_err();
        assert_eq!(err.code, aerolith_common::ErrorCode::InvalidArgument);
    }

    #[test]
    fn an_empty_collection_reads_every_collections_changes() {
        let dir = tempfile::tempdir().unwrap();
        let dc1 = store(dir.path(), "dc1");
        for (collection, id) in [("a", "x"), ("b", "y"), ("a", "z")] {
            dc1.put(
                &pb::PutRequest {
                    after_delete_hlc: 0,
                    shard: 1,
                    collection: collection.into(),
                    id: id.into(),
                    body: b"{}".to_vec(),
                    precondition: None,
                    session: Vec::new(),
                    idempotency: None,
                },
                deadline(),
            )
            .unwrap();
        }
        let read = |collection: &str| {
            dc1.read_changes(&pb::ReadChangesRequest {
                collection: collection.into(),
                from: vec![pb::ShardPosition {
                    shard: 1,
                    epoch: 0,
                    seq: 0,
                }],
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .events
            .iter()
            .map(|e| e.event.as_ref().unwrap().id.clone())
            .collect::<Vec<_>>()
        };
        assert_eq!(read(""), vec!["x", "y", "z"]);
        assert_eq!(read("a"), vec!["x", "z"]);
    }

    #[test]
    fn applies_need_the_collection_and_refuse_own_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        put(&dc1, "x", json!({"a": 1}));
        let req = pb::ApplyRequest {
            shard: 1,
            collection: "c".into(),
            id: "x".into(),
            record: Some(record(&dc1, "x")),
            origin_dc: "dc1".into(),
            position: Some(pb::ShardPosition {
                shard: 1,
                epoch: 1,
                seq: 1,
            }),
            collection_meta: None,
            source_dc: String::new(),
            sender_wall_ms: 0,
            repair: false,
            idempotency: None,
        };
        let e = dc2.apply(&req, deadline()).unwrap_err();
        assert_eq!(e.code, aerolith_common::ErrorCode::Unavailable, "{e}");
        assert!(dc2.watermark(1, "dc1").unwrap().is_none(), "nothing moved");
        let e = dc1.apply(&req, deadline()).unwrap_err();
        assert_eq!(e.code, aerolith_common::ErrorCode::InvalidArgument, "{e}");
        // With the origin's settings, the collection is created and the change applied.
        let with_settings = pb::ApplyRequest {
            collection_meta: dc1.collection_meta("c"),
            ..req
        };
        assert!(dc2.apply(&with_settings, deadline()).unwrap().changed);
        assert_eq!(record(&dc2, "x"), record(&dc1, "x"));
        assert_eq!(dc2.collection_meta("c"), dc1.collection_meta("c"));
    }

    #[test]
    fn a_replicated_collection_delete_removes_the_documents() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        put(&dc1, "x", json!({"a": 1}));
        ship(&dc1, &dc2);
        assert!(dc2.read_record(1, "c", "x").unwrap().is_some());
        let (old_record, old_meta) = (record(&dc1, "x"), dc1.collection_meta("c"));
        let gone = dc1
            .delete_collection(&pb::DeleteCollectionRequest {
                name: "c".into(),
                hlc: 0,
            })
            .unwrap();
        let (held, changed) = dc2.apply_collection(&gone).unwrap();
        assert!(changed && held.deleted);
        assert!(dc2.read_record(1, "c", "x").unwrap().is_none());
        // Applying it again changes nothing; a stale change of the old incarnation is dropped.
        assert!(!dc2.apply_collection(&gone).unwrap().1);
        let stale = pb::ApplyRequest {
            shard: 1,
            collection: "c".into(),
            id: "x".into(),
            record: Some(old_record),
            origin_dc: "dc1".into(),
            position: Some(pb::ShardPosition {
                shard: 1,
                epoch: 1,
                seq: 1,
            }),
            collection_meta: old_meta,
            source_dc: String::new(),
            sender_wall_ms: 0,
            repair: false,
            idempotency: None,
        };
        assert!(!dc2.apply(&stale, deadline()).unwrap().changed);
        assert!(dc2.read_record(1, "c", "x").unwrap().is_none());
        assert!(dc2.collection_meta("c").is_some_and(|m| m.deleted));
    }

    /// A collection deletion is ordered against writes by HLC: arriving after a write that
    /// is newer, it removes only the older documents, and the collection lives again with
    /// the same settings wherever the deletion and the newer write meet, in either order.
    #[test]
    fn a_deletion_removes_only_what_was_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Siblings);
        put(&dc1, "old", json!({"a": 1}));
        ship(&dc1, &dc2);
        // dc2 deletes the collection; dc1 writes before the deletion reaches it.
        let deletion = dc2
            .delete_collection(&pb::DeleteCollectionRequest {
                name: "c".into(),
                hlc: 0,
            })
            .unwrap();
        assert!(dc2.read_record(1, "c", "old").unwrap().is_none());
        dc1.hlc.observe(deletion.deleted_hlc);
        put(&dc1, "new", json!({"b": 2}));
        // The deletion reaches dc1: the newer write stays, the collection lives again.
        let (held, changed) = dc1.apply_collection(&deletion).unwrap();
        assert!(changed && !held.deleted, "{held:?}");
        assert_eq!(held.incarnation, deletion.deleted_hlc);
        assert!(dc1.read_record(1, "c", "old").unwrap().is_none());
        assert_eq!(record(&dc1, "new").body, br#"{"b":2}"#);
        // The newer write reaches dc2, which had taken the deletion: the same result.
        ship(&dc1, &dc2);
        assert_eq!(record(&dc2, "new"), record(&dc1, "new"));
        assert!(dc2.read_record(1, "c", "old").unwrap().is_none());
        assert_eq!(dc2.collection_meta("c"), Some(held.clone()));
        // Settings that met in either order join to the same, also with the deletion again.
        assert!(!dc2.apply_collection(&deletion).unwrap().1);
        assert!(
            !dc1.apply_collection(&dc2.collection_meta("c").unwrap())
                .unwrap()
                .1
        );
    }

    /// A shipment across shards is applied lane by lane: every change lands, answers come
    /// back in shipment order, and a change that fails stops the later changes of its
    /// shard (whose watermark stays before it) while other shards go on.
    #[test]
    fn a_shipment_applies_shards_side_by_side_and_stops_a_shard_at_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (dc1, dc2) = (store(dir.path(), "dc1"), store(dir.path(), "dc2"));
        collection(&dc1, pb::ConflictStrategy::Lww);
        for shard in 0..SHARDS {
            for k in 0..3 {
                dc1.put(
                    &pb::PutRequest {
                        shard: u32::from(shard),
                        collection: "c".into(),
                        id: format!("s{shard}k{k}"),
                        body: br#"{"v":1}"#.to_vec(),
                        ..Default::default()
                    },
                    deadline(),
                )
                .unwrap();
            }
        }
        let log = dc1
            .read_changes(&pb::ReadChangesRequest {
                collection: "c".into(),
                from: (0..SHARDS)
                    .map(|shard| pb::ShardPosition {
                        shard: u32::from(shard),
                        epoch: 0,
                        seq: 0,
                    })
                    .collect(),
                limit: 100,
                max_bytes: 1 << 20,
                ..Default::default()
            })
            .unwrap();
        let epoch = log.start[0].epoch;
        let mut reqs: Vec<pb::ApplyRequest> = log
            .events
            .iter()
            .map(|e| {
                let ev = e.event.clone().unwrap();
                pb::ApplyRequest {
                    shard: e.shard,
                    collection: ev.collection.clone(),
                    id: ev.id,
                    record: ev.record,
                    origin_dc: "dc1".into(),
                    position: Some(pb::ShardPosition {
                        shard: e.shard,
                        epoch,
                        seq: e.seq,
                    }),
                    collection_meta: dc1.collection_meta(&ev.collection),
                    ..Default::default()
                }
            })
            .collect();
        assert_eq!(reqs.len(), 3 * usize::from(SHARDS));
        // Shard 2's second change names a collection dc2 cannot know: it fails there.
        let bad = reqs
            .iter()
            .position(|r| r.shard == 2 && r.id == "s2k1")
            .unwrap();
        reqs[bad].collection = "unknown".into();
        reqs[bad].collection_meta = None;
        let e = dc2.apply_batch(&reqs, deadline()).unwrap_err();
        assert_eq!(e.code, aerolith_common::ErrorCode::Unavailable, "{e}");
        for shard in 0..SHARDS {
            let applied: Vec<bool> = (0..3)
                .map(|k| {
                    dc2.read_record(shard, "c", &format!("s{shard}k{k}"))
                        .unwrap()
                        .is_some()
                })
                .collect();
            let want = if shard == 2 {
                vec![true, false, false]
            } else {
                vec![true; 3]
            };
            assert_eq!(applied, want, "shard {shard}");
        }
        // Sent again whole (with the change fixed), the shipment applies what is missing.
        reqs[bad] = pb::ApplyRequest {
            collection: "c".into(),
            collection_meta: dc1.collection_meta("c"),
            ..reqs[bad].clone()
        };
        let answers = dc2.apply_batch(&reqs, deadline()).unwrap();
        let changed: Vec<&str> = reqs
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.changed)
            .map(|(r, _)| r.id.as_str())
            .collect();
        assert_eq!(changed, ["s2k1", "s2k2"]);
        for (r, a) in reqs.iter().zip(&answers) {
            assert_eq!(
                a.record.as_ref().map(|rec| &rec.body),
                r.record.as_ref().map(|rec| &rec.body)
            );
        }
    }
}
