//! Collection settings as one storage node holds them: explicit and implicit creation,
//! lookups, and deletion (a collection tombstone plus a range delete of its documents).

use prost::Message;
use rocksdb::WriteBatch;

use aerolith_common::name::validate_collection;
use aerolith_common::strategy::strategy_name;
use aerolith_common::time::now_ms;
use aerolith_common::{Error, Result, pb};

use crate::engine::db_err;
use crate::keys::{CF_DOCS, CF_META, doc_prefix, doc_prefix_end, meta_collection};
use crate::store::Store;

impl Store {
    fn save_collection(&self, meta: &pb::CollectionMeta, batch: &mut WriteBatch) -> Result<()> {
        batch.put_cf(
            self.engine.cf(CF_META)?,
            meta_collection(&meta.name),
            meta.encode_to_vec(),
        );
        Ok(())
    }

    fn new_meta(
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
        }
    }

    /// Adds a range delete of every document of a collection to `batch`.
    fn delete_documents(&self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        let docs = self.engine.cf(CF_DOCS)?;
        for shard in 0..self.shard_count() {
            batch.delete_range_cf(docs, doc_prefix(shard, name), doc_prefix_end(shard, name));
        }
        Ok(())
    }

    /// The live settings of a collection, created implicitly (default settings) if needed.
    pub(crate) fn collection_for_write(&self, name: &str) -> Result<pb::CollectionMeta> {
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(name).filter(|m| !m.deleted) {
            return Ok(m.clone());
        }
        validate_collection(name)?;
        let meta = self.new_meta(
            name,
            pb::ConflictStrategy::Lww as i32,
            false,
            self.hlc.now(),
            cache.get(name),
        );
        let mut batch = WriteBatch::default();
        self.save_collection(&meta, &mut batch)?;
        self.engine
            .db()
            .write_opt(batch, &self.write_options())
            .map_err(db_err)?;
        cache.insert(name.to_string(), meta.clone());
        Ok(meta)
    }

    /// The settings this node holds for a collection, tombstone included, if any.
    pub(crate) fn collection_meta(&self, name: &str) -> Option<pb::CollectionMeta> {
        let cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(name).cloned()
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
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = WriteBatch::default();
        let stale = cache
            .get(&req.name)
            .filter(|m| !m.deleted && m.incarnation < req.after_delete_hlc)
            .cloned();
        if let Some(stale) = stale {
            // A deletion recorded elsewhere in the DC never reached this node: apply it now.
            self.hlc.observe(req.after_delete_hlc);
            self.delete_documents(&req.name, &mut batch)?;
            cache.insert(
                req.name.clone(),
                pb::CollectionMeta {
                    deleted: true,
                    deleted_hlc: req.after_delete_hlc,
                    ..stale
                },
            );
        }
        let current = cache.get(&req.name).filter(|m| !m.deleted).cloned();
        let (meta, created) = match current {
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
        self.save_collection(&meta, &mut batch)?;
        self.engine
            .db()
            .write_opt(batch, &self.write_options())
            .map_err(db_err)?;
        cache.insert(req.name.clone(), meta.clone());
        Ok(pb::PutCollectionResponse {
            meta: Some(meta),
            created,
        })
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
        let mut cache = self.collections.lock().unwrap_or_else(|p| p.into_inner());
        let meta = match cache.get(&req.name) {
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
        self.save_collection(&meta, &mut batch)?;
        self.delete_documents(&req.name, &mut batch)?;
        self.engine
            .db()
            .write_opt(batch, &self.write_options())
            .map_err(db_err)?;
        cache.insert(req.name.clone(), meta.clone());
        Ok(meta)
    }
}

/// Whether a record belongs to the collection's current incarnation (records of a deleted
/// incarnation may linger briefly after a range delete raced a write; they stay invisible).
pub(crate) fn visible(meta: Option<&pb::CollectionMeta>, rec: &pb::DocRecord) -> bool {
    match meta {
        None => true,
        Some(m) if m.deleted => rec.incarnation > m.deleted_hlc,
        Some(m) => rec.incarnation >= m.incarnation,
    }
}
