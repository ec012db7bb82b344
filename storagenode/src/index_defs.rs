//! Secondary index definitions as a collection's settings hold them (issue 24).
//!
//! Definitions live in the collection's `CollectionMeta` and replicate with it; what each
//! node has built of them is its own business and never enters the meta (the settings join
//! compares metas byte for byte). Per name the later (HLC, DC) stamp wins, a drop included,
//! so a creation and a drop made concurrently in two DCs settle the same way everywhere.
//! A definition stamped at or before the start of the incarnation that holds it (or the
//! deletion that ended it) belongs to an earlier incarnation and is gone: indexes go with
//! their collection, as in MongoDB, ordered against a deletion by HLC like any write.

use rocksdb::WriteBatch;

use aerolith_common::error::{Error, Result};
pub use aerolith_common::index_def::{MAX_INDEXES, join, live, validate_fields};
use aerolith_common::name::{validate_collection, validate_index};
use aerolith_common::pb;

use crate::collections::deleted_through;
use crate::store::Store;

/// Drops the definitions of earlier incarnations and orders the rest by name: every meta a
/// node stores goes through this, so equal histories give equal bytes.
pub(crate) fn tidy(meta: &mut pb::CollectionMeta) {
    let through = deleted_through(meta);
    meta.indexes.retain(|d| d.hlc > through);
    meta.indexes.sort_by(|a, b| a.name.cmp(&b.name));
}

impl Store {
    /// Defines an index on a collection (created implicitly if needed). On the DC's first
    /// node (`hlc` 0) the same definition again answers `created: false`, another one under
    /// a live name is `invalid_argument`, as is a seventeenth index; the other nodes take
    /// the definition the first one recorded as it is.
    pub fn put_index(&self, req: &pb::PutIndexRequest) -> Result<pb::PutCollectionResponse> {
        validate_collection(&req.collection)?;
        validate_index(&req.name)?;
        validate_fields(&req.fields)?;
        let hlc = self.hlc.adopt_or_now(req.hlc);
        let first = req.hlc == 0;
        self.change_settings(&req.collection, req.after_delete_hlc, hlc, |meta| {
            // The first node stamps past whatever the name held (a drop stamped ahead of
            // the clock included), so a re-creation always wins over it.
            let hlc = match meta.indexes.iter().find(|d| d.name == req.name) {
                Some(held) if first => hlc.max(held.hlc + 1),
                _ => hlc,
            };
            self.hlc.observe(hlc);
            let def = pb::IndexDef {
                name: req.name.clone(),
                fields: req.fields.clone(),
                hlc,
                dc: self.dc.clone(),
                dropped: false,
            };
            if !first {
                let joined = join(&meta.indexes, &[def]);
                let changed = joined != meta.indexes;
                meta.indexes = joined;
                return Ok(changed);
            }
            if let Some(held) = live(meta).find(|d| d.name == req.name) {
                if held.fields == req.fields {
                    return Ok(false);
                }
                return Err(Error::invalid(format!(
                    "index {} of collection {} already exists with other fields; drop it first",
                    req.name, req.collection
                )));
            }
            if live(meta).count() >= MAX_INDEXES {
                return Err(Error::invalid(format!(
                    "collection {} already has {MAX_INDEXES} indexes, the most it may have",
                    req.collection
                )));
            }
            meta.indexes = join(&meta.indexes, &[def]);
            Ok(true)
        })
    }

    /// Drops an index: on the DC's first node (`hlc` 0) `not_found` when the collection has
    /// no live index of that name; the other nodes record the first one's drop as it is.
    pub fn drop_index(&self, req: &pb::DropIndexRequest) -> Result<pb::CollectionMeta> {
        validate_collection(&req.collection)?;
        validate_index(&req.name)?;
        let hlc = self.hlc.adopt_or_now(req.hlc);
        if req.hlc != 0 {
            let drop = pb::IndexDef {
                name: req.name.clone(),
                fields: Vec::new(),
                hlc,
                dc: self.dc.clone(),
                dropped: true,
            };
            let out = self.change_settings(&req.collection, 0, hlc, |meta| {
                let joined = join(&meta.indexes, &[drop]);
                let changed = joined != meta.indexes;
                meta.indexes = joined;
                Ok(changed)
            })?;
            return out
                .meta
                .ok_or_else(|| Error::internal("index drop without settings"));
        }
        let missing = || {
            Error::not_found(format!(
                "index {} of collection {} not found",
                req.name, req.collection
            ))
        };
        if self
            .collection_meta(&req.collection)
            .is_none_or(|m| m.deleted || live(&m).all(|d| d.name != req.name))
        {
            return Err(missing());
        }
        let out = self.change_settings(&req.collection, 0, hlc, |meta| {
            let Some(held) = live(meta).find(|d| d.name == req.name) else {
                return Err(missing());
            };
            // A drop carries no fields, so every node records the same bytes for it.
            let stamp = hlc.max(held.hlc + 1);
            self.hlc.observe(stamp);
            let drop = pb::IndexDef {
                name: held.name.clone(),
                fields: Vec::new(),
                hlc: stamp,
                dc: self.dc.clone(),
                dropped: true,
            };
            meta.indexes = join(&meta.indexes, &[drop]);
            Ok(true)
        })?;
        out.meta
            .ok_or_else(|| Error::internal("index drop without settings"))
    }

    /// Applies `change` to a collection's live settings (creating the collection implicitly
    /// at `hlc` if it has none) under every shard lock, and logs the result when `change`
    /// says it changed something.
    fn change_settings(
        &self,
        name: &str,
        after_delete_hlc: u64,
        hlc: u64,
        change: impl FnOnce(&mut pb::CollectionMeta) -> Result<bool>,
    ) -> Result<pb::PutCollectionResponse> {
        let mut all = self.lock_all_shards()?;
        let st = &mut all[usize::from(self.settings_shard(name))];
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = WriteBatch::default();
        self.take_stale_deletion(&mut cache, name, after_delete_hlc, &mut batch)?;
        let mut meta = match cache.get(name).filter(|m| !m.deleted) {
            Some(cur) => cur.clone(),
            None => self.new_meta(
                name,
                pb::ConflictStrategy::Lww as i32,
                false,
                hlc,
                cache.get(name),
            ),
        };
        let created = change(&mut meta)?;
        if created || cache.get(name) != Some(&meta) {
            self.save_collection(&mut meta, &mut batch)?;
            self.commit_settings(st, &meta, batch)?;
            cache.insert(name.to_string(), meta.clone());
        }
        Ok(pb::PutCollectionResponse {
            meta: Some(meta),
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, hlc: u64, dc: &str, dropped: bool) -> pb::IndexDef {
        pb::IndexDef {
            name: name.into(),
            fields: vec![pb::IndexField {
                path: "age".into(),
                desc: false,
            }],
            hlc,
            dc: dc.into(),
            dropped,
        }
    }

    #[test]
    fn tidy_drops_earlier_incarnations() {
        let mut meta = pb::CollectionMeta {
            name: "c".into(),
            incarnation: 10,
            indexes: vec![def("z", 11, "dc1", false), def("a", 10, "dc1", false)],
            ..Default::default()
        };
        tidy(&mut meta);
        assert_eq!(meta.indexes, vec![def("z", 11, "dc1", false)]);
        meta.deleted = true;
        meta.deleted_hlc = 20;
        tidy(&mut meta);
        assert!(
            meta.indexes.is_empty(),
            "a deletion takes its indexes along"
        );
    }
}
