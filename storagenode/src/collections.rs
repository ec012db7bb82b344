//! Collection settings as one storage node holds them: explicit and implicit creation,
//! lookups, and deletion (a collection tombstone plus a range delete of its documents).

use std::collections::HashMap;

use prost::Message;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use aerolith_common::json::decode_stored;
use aerolith_common::name::validate_collection;
use aerolith_common::shard::shard_of;
use aerolith_common::strategy::strategy_name;
use aerolith_common::time::now_ms;
use aerolith_common::{Error, Result, pb};

use crate::engine::Cf;
use crate::engine::db_err;
use crate::keys::{doc_prefix, doc_prefix_end, meta_collection, split_doc_key};
use crate::newest::written_hlc;
use crate::store::{ShardState, Store};

impl Store {
    pub(crate) fn save_collection(
        &self,
        meta: &mut pb::CollectionMeta,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        crate::index_defs::tidy(meta);
        batch.put_cf(
            self.engine.cf(Cf::Meta)?,
            meta_collection(&meta.name),
            meta.encode_to_vec(),
        );
        Ok(())
    }

    pub(crate) fn new_meta(
        &self,
        name: &str,
        strategy: i32,
        explicit: bool,
        hlc: u64,
        prev: Option<&pb::CollectionMeta>,
    ) -> pb::CollectionMeta {
        pb::CollectionMeta {
            name: name.to_string(),
            strategy,
            explicit,
            settings_hlc: hlc,
            settings_dc: self.dc.clone(),
            incarnation: prev
                .filter(|p| p.deleted)
                .map(|p| p.deleted_hlc)
                .unwrap_or(0),
            created_at_ms: now_ms(),
            deleted: false,
            deleted_hlc: 0,
            // Definitions made after the deletion `prev` records belong to this incarnation.
            indexes: prev.map(|p| p.indexes.clone()).unwrap_or_default(),
        }
    }

    /// The shard whose change log carries a collection's settings.
    pub(crate) fn settings_shard(&self, name: &str) -> u16 {
        shard_of(name, "", self.shard_count())
    }

    /// Writes `batch` (new settings, perhaps a range delete) together with a change-log
    /// entry carrying `meta`, so replicators ship settings even where no document of the
    /// collection is ever written. `st` is the settings shard's lock, taken before the
    /// collections lock (the order document writes use too).
    pub(crate) fn commit_settings(
        &self,
        st: &mut ShardState,
        meta: &pb::CollectionMeta,
        batch: WriteBatch,
    ) -> Result<()> {
        let event = pb::ChangeEvent {
            collection: meta.name.clone(),
            collection_meta: Some(meta.clone()),
            logged_at_ms: now_ms(),
            ..Default::default()
        };
        self.commit_with(st, self.settings_shard(&meta.name), &event, batch)
    }

    /// Adds to `batch` the removal of every document of a collection written at or before
    /// `floor` (a deletion's HLC, or the incarnation replacing the held one); returns
    /// whether any written after it outlive it. A deletion is ordered against writes by
    /// HLC like any other change (DESIGN.md "Collections"): a write this node took before
    /// it learnt of a deletion recorded earlier elsewhere in the DC is newer than the
    /// deletion, was acknowledged after it, and stays. Nearly always nothing is that new
    /// ([`crate::newest::Newest`]) and one range delete per shard does; otherwise the
    /// collection is scanned. Called with every shard lock held.
    ///
    /// Index entries go with them: all of the collection's, then, for the documents that
    /// outlive the deletion, those of `next`'s indexes made after it (the ones the next
    /// incarnation keeps).
    fn delete_documents(
        &self,
        next: &pb::CollectionMeta,
        floor: u64,
        batch: &mut WriteBatch,
    ) -> Result<bool> {
        let name = next.name.as_str();
        let docs = self.engine.cf(Cf::Docs)?;
        let index = self.engine.cf(Cf::Index)?;
        for shard in 0..self.shard_count() {
            batch.delete_range_cf(index, doc_prefix(shard, name), doc_prefix_end(shard, name));
        }
        let newer = self
            .newest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .any_after(name, floor);
        if !newer {
            for shard in 0..self.shard_count() {
                batch.delete_range_cf(docs, doc_prefix(shard, name), doc_prefix_end(shard, name));
            }
            return Ok(false);
        }
        let kept: Vec<&pb::IndexDef> = crate::index_defs::live(next)
            .filter(|d| d.hlc > floor)
            .collect();
        let mut outlived = false;
        for shard in 0..self.shard_count() {
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(doc_prefix_end(shard, name));
            let start = doc_prefix(shard, name);
            let iter = self.engine.db().iterator_cf_opt(
                docs,
                ro,
                IteratorMode::From(&start, Direction::Forward),
            );
            for item in iter {
                let (key, value) = item.map_err(db_err)?;
                let rec = pb::DocRecord::decode(&*value)
                    .map_err(|e| Error::internal(format!("corrupt record {key:?}: {e}")))?;
                if written_hlc(&rec) > floor {
                    outlived = true;
                    if !rec.tombstone
                        && !kept.is_empty()
                        && let Some((_, id)) = split_doc_key(&key)
                    {
                        let body = decode_stored(&rec.body)?;
                        for k in crate::index_entries::entries(
                            shard,
                            name,
                            id,
                            kept.iter().copied(),
                            &body,
                        ) {
                            batch.put_cf(index, k, []);
                        }
                    }
                } else {
                    batch.delete_cf(docs, key);
                }
            }
        }
        Ok(outlived)
    }

    /// What a collection deleted at `deleted_hlc` becomes when documents written after the
    /// deletion outlive it: an implicit creation right after it. Every node derives the
    /// same settings from the deletion alone, so DCs agree without shipping them.
    fn reborn(&self, name: &str, deleted_hlc: u64) -> pb::CollectionMeta {
        pb::CollectionMeta {
            name: name.to_string(),
            strategy: pb::ConflictStrategy::Lww as i32,
            explicit: false,
            settings_hlc: deleted_hlc,
            settings_dc: String::new(),
            incarnation: deleted_hlc,
            created_at_ms: deleted_hlc >> 16,
            deleted: false,
            deleted_hlc: 0,
            indexes: Vec::new(),
        }
    }

    /// The settings to hold after leaving `held`'s incarnation for `next` (a deletion, or a
    /// newer incarnation), adding the removal of what `next` ends to `batch`.
    fn leave(
        &self,
        held: &pb::CollectionMeta,
        next: pb::CollectionMeta,
        batch: &mut WriteBatch,
    ) -> Result<pb::CollectionMeta> {
        if held.deleted {
            return Ok(next);
        }
        let outlived = self.delete_documents(&next, deleted_through(&next), batch)?;
        Ok(if outlived && next.deleted {
            // Index definitions made after the deletion belong to the incarnation it begins.
            pb::CollectionMeta {
                indexes: next.indexes.clone(),
                ..self.reborn(&next.name, next.deleted_hlc)
            }
        } else {
            next
        })
    }

    /// A deleted collection a document written after the deletion lands in (replication
    /// ordered it after the deletion): it lives again, as [`Store::reborn`]. Called under the
    /// document's shard lock; the settings held afterwards.
    pub(crate) fn revive(&self, deleted: &pb::CollectionMeta) -> Result<pb::CollectionMeta> {
        let mut meta = pb::CollectionMeta {
            indexes: deleted.indexes.clone(),
            ..self.reborn(&deleted.name, deleted.deleted_hlc)
        };
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        self.save_unlogged(&mut meta, WriteBatch::default())?;
        cache.insert(deleted.name.clone(), meta.clone());
        Ok(meta)
    }

    /// Writes settings (with `batch`, perhaps a range delete) and the HLC, durably, with no
    /// change-log entry: settings a node derives itself (an implicit creation, a deletion
    /// taken early) reach the peers with the documents that carry them.
    fn save_unlogged(&self, meta: &mut pb::CollectionMeta, mut batch: WriteBatch) -> Result<()> {
        self.save_collection(meta, &mut batch)?;
        self.hlc_into(&mut batch)?;
        self.engine
            .db()
            .write_opt(batch, &self.write_options())
            .map_err(db_err)
    }

    /// The live settings of a collection, created implicitly (default settings) if needed.
    pub(crate) fn collection_for_write(&self, name: &str) -> Result<pb::CollectionMeta> {
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(name).filter(|m| !m.deleted) {
            return Ok(m.clone());
        }
        validate_collection(name)?;
        let mut meta = self.new_meta(
            name,
            pb::ConflictStrategy::Lww as i32,
            false,
            self.hlc.now(),
            cache.get(name),
        );
        self.save_unlogged(&mut meta, WriteBatch::default())?;
        cache.insert(name.to_string(), meta.clone());
        Ok(meta)
    }

    /// Takes a deletion of a collection recorded at `floor` in another DC that this node has
    /// not taken yet (a write failed over from that DC carries it): the write then lands in
    /// the incarnation after that deletion, not in the deleted one, where the deletion would
    /// remove it on arrival. Nothing when `floor` is 0 or this node is past it already. The
    /// deletion itself still arrives by replication; taking it early is what its arrival
    /// would do (the settings join), so it is not logged again.
    pub(crate) fn take_deletion(&self, name: &str, floor: u64) -> Result<()> {
        if floor == 0 {
            return Ok(());
        }
        let past =
            |held: Option<&pb::CollectionMeta>| held.is_some_and(|m| deleted_through(m) >= floor);
        if past(self.collection_meta(name).as_ref()) {
            return Ok(());
        }
        let _all = self.lock_all_shards()?;
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let held = cache.get(name);
        if past(held) {
            return Ok(());
        }
        validate_collection(name)?;
        self.hlc.observe(floor);
        let mut batch = WriteBatch::default();
        let before = match held {
            Some(m) => m.clone(),
            None => self.new_meta(name, pb::ConflictStrategy::Lww as i32, false, floor, None),
        };
        let deletion = pb::CollectionMeta {
            deleted: true,
            deleted_hlc: floor,
            ..before.clone()
        };
        let mut meta = self.leave(&before, deletion, &mut batch)?;
        self.save_unlogged(&mut meta, batch)?;
        cache.insert(name.to_string(), meta);
        Ok(())
    }

    /// The settings this node holds for a collection, tombstone included, if any.
    pub(crate) fn collection_meta(&self, name: &str) -> Option<pb::CollectionMeta> {
        let cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(name).cloned()
    }

    /// Applies a deletion recorded elsewhere in the DC at `after_delete_hlc` that never
    /// reached this node, when its live incarnation is older: the removal goes into `batch`
    /// and the deletion into `cache` (the caller saves what follows it). Called with every
    /// shard lock held.
    pub(crate) fn take_stale_deletion(
        &self,
        cache: &mut HashMap<String, pb::CollectionMeta>,
        name: &str,
        after_delete_hlc: u64,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let stale = cache
            .get(name)
            .filter(|m| !m.deleted && m.incarnation < after_delete_hlc)
            .cloned();
        if let Some(stale) = stale {
            self.hlc.observe(after_delete_hlc);
            let deletion = pb::CollectionMeta {
                deleted: true,
                deleted_hlc: after_delete_hlc,
                ..stale.clone()
            };
            let held = self.leave(&stale, deletion, batch)?;
            cache.insert(name.to_string(), held);
        }
        Ok(())
    }

    /// Creates a collection or makes an implicit one explicit; a different strategy than an
    /// explicit collection's is `invalid_argument`.
    pub fn put_collection(
        &self,
        req: &pb::PutCollectionRequest,
    ) -> Result<pb::PutCollectionResponse> {
        validate_collection(&req.name)?;
        pb::ConflictStrategy::try_from(req.strategy)
            .map_err(|_| Error::invalid(format!("unknown conflict strategy {}", req.strategy)))?;
        let hlc = self.hlc.adopt_or_now(req.settings_hlc);
        let mut all = self.lock_all_shards()?;
        let st = &mut all[usize::from(self.settings_shard(&req.name))];
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = WriteBatch::default();
        self.take_stale_deletion(&mut cache, &req.name, req.after_delete_hlc, &mut batch)?;
        let current = cache.get(&req.name).filter(|m| !m.deleted).cloned();
        let (mut meta, created) = match current {
            Some(cur) if cur.strategy == req.strategy => {
                if cur.explicit || !req.explicit {
                    return Ok(pb::PutCollectionResponse {
                        meta: Some(cur),
                        created: false,
                    });
                }
                (
                    pb::CollectionMeta {
                        explicit: true,
                        ..cur
                    },
                    false,
                )
            }
            Some(cur) if cur.explicit || !req.explicit => {
                return Err(Error::invalid(format!(
                    "collection {} already exists with conflict_strategy {}; the strategy is fixed at creation",
                    req.name,
                    strategy_name(cur.strategy)
                )));
            }
            // Explicit settings win over an implicit creation's defaults.
            Some(cur) => (
                pb::CollectionMeta {
                    strategy: req.strategy,
                    explicit: true,
                    settings_hlc: hlc,
                    settings_dc: self.dc.clone(),
                    ..cur
                },
                false,
            ),
            None => (
                self.new_meta(
                    &req.name,
                    req.strategy,
                    req.explicit,
                    hlc,
                    cache.get(&req.name),
                ),
                true,
            ),
        };
        self.save_collection(&mut meta, &mut batch)?;
        self.commit_settings(st, &meta, batch)?;
        cache.insert(req.name.clone(), meta.clone());
        Ok(pb::PutCollectionResponse {
            meta: Some(meta),
            created,
        })
    }

    /// Merges another DC's settings of a collection into this node's (replication): a
    /// newer incarnation replaces an older one (whose documents are range-deleted), a
    /// deletion of the live incarnation deletes it, and within one incarnation explicit
    /// settings win over implicit ones, then the later (HLC, DC). Returns the settings now
    /// held and whether they changed.
    pub fn apply_collection(
        &self,
        remote: &pb::CollectionMeta,
    ) -> Result<(pb::CollectionMeta, bool)> {
        validate_collection(&remote.name)?;
        pb::ConflictStrategy::try_from(remote.strategy).map_err(|_| {
            Error::invalid(format!("unknown conflict strategy {}", remote.strategy))
        })?;
        self.hlc.observe(
            remote
                .settings_hlc
                .max(remote.deleted_hlc)
                .max(remote.incarnation)
                .max(remote.indexes.iter().map(|d| d.hlc).max().unwrap_or(0)),
        );
        // Every shipped change carries its collection's settings, nearly always the ones
        // held already: answer those without taking the settings shard's lock.
        if let Some(held) = self.collection_meta(&remote.name)
            && held == *remote
        {
            return Ok((held, false));
        }
        let mut all = self.lock_all_shards()?;
        let st = &mut all[usize::from(self.settings_shard(&remote.name))];
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let local = cache.get(&remote.name).cloned();
        let mut batch = WriteBatch::default();
        let merged = match &local {
            None => Some(remote.clone()),
            Some(l) => merge_settings(l, remote),
        };
        let Some(merged) = merged.filter(|m| Some(m) != local.as_ref()) else {
            return Ok((local.unwrap_or_else(|| remote.clone()), false));
        };
        // Leaving an incarnation (by a deletion or for a newer one) removes its documents.
        let mut merged = match &local {
            Some(l) if merged.deleted || merged.incarnation != l.incarnation => {
                self.leave(l, merged, &mut batch)?
            }
            _ => merged,
        };
        self.save_collection(&mut merged, &mut batch)?;
        self.commit_settings(st, &merged, batch)?;
        cache.insert(remote.name.clone(), merged.clone());
        Ok((merged, true))
    }

    /// Every collection this node knows, tombstones included.
    pub fn list_collections(&self) -> Vec<pb::CollectionMeta> {
        let cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = cache.values().cloned().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Deletes a collection: writes its tombstone and range-deletes its documents.
    pub fn delete_collection(
        &self,
        req: &pb::DeleteCollectionRequest,
    ) -> Result<pb::CollectionMeta> {
        validate_collection(&req.name)?;
        let hlc = self.hlc.adopt_or_now(req.hlc);
        let mut all = self.lock_all_shards()?;
        let st = &mut all[usize::from(self.settings_shard(&req.name))];
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let current = cache.get(&req.name).cloned();
        let deletion = match &current {
            Some(cur) => pb::CollectionMeta {
                deleted: true,
                deleted_hlc: cur.deleted_hlc.max(hlc),
                ..cur.clone()
            },
            None => pb::CollectionMeta {
                deleted: true,
                deleted_hlc: hlc,
                ..self.new_meta(
                    &req.name,
                    pb::ConflictStrategy::Lww as i32,
                    false,
                    hlc,
                    None,
                )
            },
        };
        let mut batch = WriteBatch::default();
        let mut held = match &current {
            Some(cur) => self.leave(cur, deletion.clone(), &mut batch)?,
            None => deletion.clone(),
        };
        self.save_collection(&mut held, &mut batch)?;
        self.commit_settings(st, &held, batch)?;
        cache.insert(req.name.clone(), held);
        Ok(deletion)
    }
}

/// Whether a record outlives the collection's latest deletion: written after it (a
/// deletion's removal leaves none older behind, see [`Store::lock_all_shards`]; this keeps
/// them invisible regardless).
pub(crate) fn visible(meta: Option<&pb::CollectionMeta>, rec: &pb::DocRecord) -> bool {
    meta.is_none_or(|m| written_hlc(rec) > deleted_through(m))
}

/// The HLC at or before which a collection's documents are gone: its deletion's, or the
/// one that began its live incarnation (0 for a first incarnation).
pub(crate) fn deleted_through(meta: &pb::CollectionMeta) -> u64 {
    if meta.deleted {
        meta.deleted_hlc
    } else {
        meta.incarnation
    }
}

/// The settings a node should hold after seeing `local` and `remote` (see
/// [`Store::apply_collection`]); `None` when `local` already is that.
fn merge_settings(
    local: &pb::CollectionMeta,
    remote: &pb::CollectionMeta,
) -> Option<pb::CollectionMeta> {
    let merged = settings_join(local, remote);
    (merged != *local).then_some(merged)
}

/// The join of two versions of one collection's settings: commutative, associative and
/// idempotent, so every node that has seen the same versions holds identical settings,
/// whatever the order (the DC's replicator reconciles its nodes by handing each the
/// versions it lacks). The newer incarnation wins; a deletion wins over the incarnation it
/// followed (or an older one) and a live incarnation created after (or at) a deletion wins
/// over it; two deletions order by time; within one live incarnation explicit settings win
/// over implicit ones, then the later (HLC, DC); remaining ties go to the greater encoding.
/// The creation time of a live incarnation is the earliest any node recorded.
pub(crate) fn settings_join(a: &pb::CollectionMeta, b: &pb::CollectionMeta) -> pb::CollectionMeta {
    // A live incarnation `i` orders as (i, 1, rank), a deletion at `h` as (h, 0): a live
    // incarnation wins over a deletion exactly when it was created at or after it.
    let key = |m: &pb::CollectionMeta| {
        if m.deleted {
            (m.deleted_hlc, false, false, 0, String::new())
        } else {
            (
                m.incarnation,
                true,
                m.explicit,
                m.settings_hlc,
                m.settings_dc.clone(),
            )
        }
    };
    let tiebreak = |m: &pb::CollectionMeta| {
        pb::CollectionMeta {
            created_at_ms: 0,
            ..m.clone()
        }
        .encode_to_vec()
    };
    let order = key(a)
        .cmp(&key(b))
        .then_with(|| tiebreak(a).cmp(&tiebreak(b)));
    let mut joined = if order == std::cmp::Ordering::Less {
        b.clone()
    } else {
        a.clone()
    };
    if !a.deleted && !b.deleted && a.incarnation == b.incarnation {
        joined.created_at_ms = a.created_at_ms.min(b.created_at_ms);
    }
    // Index definitions join by name on their own stamps, whichever settings won.
    joined.indexes = crate::index_defs::join(&a.indexes, &b.indexes);
    crate::index_defs::tidy(&mut joined);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(explicit: bool, hlc: u64, dc: &str, incarnation: u64) -> pb::CollectionMeta {
        pb::CollectionMeta {
            name: "c".into(),
            strategy: if explicit {
                pb::ConflictStrategy::Siblings as i32
            } else {
                pb::ConflictStrategy::Lww as i32
            },
            explicit,
            settings_hlc: hlc,
            settings_dc: dc.into(),
            incarnation,
            created_at_ms: hlc,
            deleted: false,
            deleted_hlc: 0,
            indexes: Vec::new(),
        }
    }

    fn deleted(m: pb::CollectionMeta, at: u64) -> pb::CollectionMeta {
        pb::CollectionMeta {
            deleted: true,
            deleted_hlc: at,
            ..m
        }
    }

    #[test]
    fn settings_merge_is_order_independent() {
        let metas = [
            meta(false, 10, "dc1", 0),
            meta(true, 5, "dc2", 0),
            meta(false, 20, "dc3", 0),
            deleted(meta(false, 10, "dc1", 0), 30),
            meta(false, 40, "dc2", 30),
            meta(true, 35, "dc1", 30),
        ];
        let fold = |order: &[usize]| {
            order
                .iter()
                .fold(None::<pb::CollectionMeta>, |acc, &i| match acc {
                    None => Some(metas[i].clone()),
                    Some(l) => Some(merge_settings(&l, &metas[i]).unwrap_or(l)),
                })
        };
        let want = fold(&[0, 1, 2, 3, 4, 5]).unwrap();
        // Explicit beats implicit within the newest incarnation (30), whatever the order.
        assert_eq!(
            (want.incarnation, want.explicit, want.settings_dc.as_str()),
            (30, true, "dc1")
        );
        for order in [[5, 4, 3, 2, 1, 0], [3, 0, 5, 1, 4, 2], [2, 4, 0, 5, 3, 1]] {
            assert_eq!(fold(&order).unwrap(), want, "{order:?}");
        }
        // A deletion of an older incarnation does not touch a newer one.
        assert!(merge_settings(&metas[4], &metas[3]).is_none());
        // A deletion reaches the incarnation it followed.
        assert!(merge_settings(&metas[0], &metas[3]).is_some_and(|m| m.deleted));
    }

    /// Ties that the rules leave open (one deletion recorded by nodes that held different
    /// settings before it, one incarnation's creation times) still end identical.
    #[test]
    fn the_join_is_a_semilattice_even_on_ties() {
        let mut other = meta(true, 10, "dc1", 0);
        other.strategy = pb::ConflictStrategy::FieldMerge as i32;
        let metas = [
            deleted(meta(false, 10, "dc1", 0), 30),
            deleted(meta(true, 12, "dc2", 0), 30),
            meta(true, 10, "dc1", 0),
            pb::CollectionMeta {
                created_at_ms: 3,
                ..meta(true, 10, "dc1", 0)
            },
            other,
            meta(false, 40, "dc2", 30),
        ];
        for a in &metas {
            assert_eq!(settings_join(a, a), *a, "idempotent");
            for b in &metas {
                assert_eq!(settings_join(a, b), settings_join(b, a), "commutative");
                for c in &metas {
                    assert_eq!(
                        settings_join(&settings_join(a, b), c),
                        settings_join(a, &settings_join(b, c)),
                        "associative"
                    );
                }
            }
        }
        assert_eq!(settings_join(&metas[2], &metas[3]).created_at_ms, 3);
    }
}
