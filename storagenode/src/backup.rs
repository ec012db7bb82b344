//! Backups: a consistent RocksDB checkpoint of the whole store (hard links where the file
//! system allows), with a manifest naming the node, its epoch, its log heads and its applied
//! watermarks. A store restored from one takes a new epoch (see `Restored`).

use std::path::Path;

use rocksdb::checkpoint::Checkpoint;

use aerolith_common::{Error, Result, pb};

use crate::engine::Cf;
use crate::engine::db_err;
use crate::store::Store;

/// The manifest file written beside a backup's RocksDB files.
pub const MANIFEST: &str = "AEROLITH-BACKUP.json";

impl Store {
    /// Writes a checkpoint of the store to `req.dir`, which must be an absolute path that
    /// does not exist yet, on this node's file system.
    pub fn backup(&self, req: &pb::BackupRequest) -> Result<pb::BackupResponse> {
        self.serving()?;
        let dir = Path::new(&req.dir);
        if !dir.is_absolute() {
            return Err(Error::invalid(format!(
                "the backup directory must be an absolute path, got {:?}",
                req.dir
            )));
        }
        if dir.exists() {
            return Err(Error::invalid(format!(
                "{} already exists; a backup goes to a new directory",
                dir.display()
            )));
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        // Read before the checkpoint: the checkpoint holds at least this much.
        let shards: Vec<u32> = (0..u32::from(self.shard_count())).collect();
        let heads = self
            .change_heads(&pb::ChangeHeadsRequest {
                shards: shards.clone(),
            })?
            .heads;
        let watermarks = self
            .watermarks(&pb::WatermarksRequest { shards })?
            .watermarks;
        Checkpoint::new(self.engine.db())
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(db_err)?;
        let records = self
            .engine
            .db()
            .property_int_value_cf(self.engine.cf(Cf::Docs)?, "rocksdb.estimate-num-keys")
            .map_err(db_err)?
            .unwrap_or(0);
        let manifest = serde_json::json!({
            "dc": self.dc,
            "actor_epoch": self.actor_epoch(),
            "created_at_ms": aerolith_common::time::now_ms(),
            "records_estimate": records,
            "heads": heads.iter().map(|h| [h.shard as u64, h.epoch, h.seq]).collect::<Vec<_>>(),
            "watermarks": watermarks.iter().filter_map(|w| w.position.map(|p|
                serde_json::json!({"origin_dc": w.origin_dc, "shard": p.shard, "epoch": p.epoch, "seq": p.seq}))).collect::<Vec<_>>(),
        });
        let path = dir.join(MANIFEST);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )
        .map_err(|e| Error::unavailable(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(dir = %dir.display(), records, "backup written");
        Ok(pb::BackupResponse {
            dir: req.dir.clone(),
            records,
            watermarks,
            heads,
        })
    }
}
