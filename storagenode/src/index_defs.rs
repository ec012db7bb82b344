//! Secondary index definitions as a collection's settings hold them (issue 24).
//!
//! Definitions live in the collection's `CollectionMeta` and replicate with it; what each
//! node has built of them is its own business and never enters the meta (the settings join
//! compares metas byte for byte). Per name the later (HLC, DC) stamp wins, a drop included,
//! so a creation and a drop made concurrently in two DCs settle the same way everywhere.
//! A definition stamped at or before the start of the incarnation that holds it (or the
//! deletion that ended it) belongs to an earlier incarnation and is gone: indexes go with
//! their collection, as in MongoDB, ordered against a deletion by HLC like any write.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use prost::Message;
use rocksdb::WriteBatch;

use aerolith_common::error::{Error, Result};
use aerolith_common::name::{validate_collection, validate_index, validate_index_path};
use aerolith_common::pb;

use crate::collections::deleted_through;
use crate::store::Store;

/// The most live indexes one collection may hold.
pub const MAX_INDEXES: usize = 16;

/// The most fields one index may have.
pub const MAX_FIELDS: usize = 8;

/// The join of two definition lists: per name the later (HLC, DC) wins, remaining ties go
/// to the greater encoding; ordered by name. Commutative, associative and idempotent.
pub(crate) fn join(a: &[pb::IndexDef], b: &[pb::IndexDef]) -> Vec<pb::IndexDef> {
    let mut by_name: BTreeMap<&str, &pb::IndexDef> = BTreeMap::new();
    for def in a.iter().chain(b) {
        match by_name.get(def.name.as_str()) {
            Some(held) if later(held, def) != Ordering::Less => {}
            _ => {
                by_name.insert(&def.name, def);
            }
        }
    }
    by_name.into_values().cloned().collect()
}

fn later(a: &pb::IndexDef, b: &pb::IndexDef) -> Ordering {
    (a.hlc, &a.dc)
        .cmp(&(b.hlc, &b.dc))
        .then_with(|| a.encode_to_vec().cmp(&b.encode_to_vec()))
}

/// Drops the definitions of earlier incarnations and orders the rest by name: every meta a
/// node stores goes through this, so equal histories give equal bytes.
pub(crate) fn tidy(meta: &mut pb::CollectionMeta) {
    let through = deleted_through(meta);
    meta.indexes.retain(|d| d.hlc > through);
    meta.indexes.sort_by(|a, b| a.name.cmp(&b.name));
}

/// The definitions in force: not dropped.
pub fn live(meta: &pb::CollectionMeta) -> impl Iterator<Item = &pb::IndexDef> {
    meta.indexes.iter().filter(|d| !d.dropped)
}

/// Checks an index's fields: one to [`MAX_FIELDS`] valid dotted paths, none twice.
pub fn validate_fields(fields: &[pb::IndexField]) -> Result<()> {
    if fields.is_empty() || fields.len() > MAX_FIELDS {
        return Err(Error::invalid(format!(
            "an index has 1 to {MAX_FIELDS} fields, not {}",
            fields.len()
        )));
    }
    for (i, f) in fields.iter().enumerate() {
        validate_index_path(&f.path)?;
        if fields[..i].iter().any(|g| g.path == f.path) {
            return Err(Error::invalid(format!(
                "field {} appears twice in the index",
                f.path
            )));
        }
    }
    Ok(())
}

impl Store {
    /// Defines an index on a collection (created implicitly if needed). The same definition
    /// again answers `created: false`; another one under a live name is `invalid_argument`,
    /// as is a seventeenth index.
    pub fn put_index(&self, req: &pb::PutIndexRequest) -> Result<pb::PutCollectionResponse> {
        validate_collection(&req.collection)?;
        validate_index(&req.name)?;
        validate_fields(&req.fields)?;
        let hlc = self.hlc.adopt_or_now(req.hlc);
        self.change_settings(&req.collection, req.after_delete_hlc, hlc, |meta| {
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
            let def = pb::IndexDef {
                name: req.name.clone(),
                fields: req.fields.clone(),
                hlc,
                dc: self.dc.clone(),
                dropped: false,
            };
            meta.indexes = join(&meta.indexes, &[def]);
            Ok(true)
        })
    }

    /// Drops an index; `not_found` when the collection has no live index of that name.
    pub fn drop_index(&self, req: &pb::DropIndexRequest) -> Result<pb::CollectionMeta> {
        validate_collection(&req.collection)?;
        validate_index(&req.name)?;
        let hlc = self.hlc.adopt_or_now(req.hlc);
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
            let drop = pb::IndexDef {
                hlc: hlc.max(held.hlc + 1),
                dc: self.dc.clone(),
                dropped: true,
                ..held.clone()
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
    fn join_is_a_semilattice() {
        let lists = [
            vec![def("a", 5, "dc1", false)],
            vec![def("a", 7, "dc2", true), def("b", 3, "dc1", false)],
            vec![def("a", 7, "dc1", false)],
            vec![def("b", 3, "dc1", true)],
            vec![],
        ];
        for x in &lists {
            assert_eq!(join(x, x), join(x, &[]), "idempotent");
            for y in &lists {
                assert_eq!(join(x, y), join(y, x), "commutative");
                for z in &lists {
                    assert_eq!(join(&join(x, y), z), join(x, &join(y, z)), "associative");
                }
            }
        }
        let all = lists.iter().fold(Vec::new(), |acc, l| join(&acc, l));
        assert_eq!(
            all,
            vec![def("a", 7, "dc2", true), def("b", 3, "dc1", true)],
            "the later stamp wins per name; equal stamps go to the greater encoding"
        );
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

    #[test]
    fn fields_are_checked() {
        let f = |p: &str| pb::IndexField {
            path: p.into(),
            desc: false,
        };
        assert!(validate_fields(&[f("a"), f("b.c")]).is_ok());
        assert!(validate_fields(&[]).is_err());
        assert!(validate_fields(&[f("a"), f("a")]).is_err());
        let nine: Vec<_> = (0..9).map(|i| f(&format!("f{i}"))).collect();
        assert!(validate_fields(&nine).is_err());
    }
}
