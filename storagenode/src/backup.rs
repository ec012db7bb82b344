//! Backups: a consistent RocksDB checkpoint of the whole store (hard links where the file
//! system allows), with a manifest naming the node, its epoch, its log heads and its applied
//! watermarks. A store restored from one takes a new epoch (see `Restored`).

use std::path::{Component, Path, PathBuf};

use rocksdb::checkpoint::Checkpoint;

use aerolith_common::{Error, Result, pb};

use crate::engine::Cf;
use crate::engine::db_err;
use crate::store::Store;

/// The manifest file written beside a backup's RocksDB files.
pub const MANIFEST: &str = "AEROLITH-BACKUP.json";

/// Where a backup asked for as `asked` goes: below `root`, the node's configured backup
/// directory, whether `asked` is relative to it or an absolute path inside it. Anything
/// else is refused, so that no caller, whatever its certificate, can make the node write
/// a checkpoint over another file of its machine.
pub fn resolve_dir(root: Option<&Path>, asked: &str) -> Result<PathBuf> {
    let Some(root) = root else {
        return Err(Error::new(
            aerolith_common::ErrorCode::PermissionDenied,
            "this storage node takes no backups: start it with --backup-dir DIR",
        ));
    };
    let path = Path::new(asked);
    let plain = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::RootDir));
    let dir = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    if asked.is_empty() || !plain || !dir.starts_with(root) || dir == root {
        return Err(Error::new(
            aerolith_common::ErrorCode::PermissionDenied,
            format!(
                "a backup goes to a new directory below this node's backup directory {} (a path relative to it, or an absolute one inside it, without `.` or `..`), not {asked:?}",
                root.display()
            ),
        ));
    }
    Ok(dir)
}

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

#[cfg(test)]
mod tests {
    use super::resolve_dir;
    use aerolith_common::ErrorCode;
    use std::path::Path;

    #[test]
    fn backups_go_only_below_the_configured_directory() {
        let root = Path::new("/var/backups/aerolith");
        let ok = |asked: &str| resolve_dir(Some(root), asked).unwrap();
        assert_eq!(ok("nightly/n1"), root.join("nightly/n1"));
        assert_eq!(ok("/var/backups/aerolith/b/n1"), root.join("b/n1"));
        for bad in [
            "",
            "/etc/cron.d/x",
            "/var/backups/aerolith",
            "/var/backups/aerolith-other/n1",
            "../escape/n1",
            "b/../../../etc/n1",
            "/var/backups/aerolith/../../etc/n1",
            "./b/n1",
        ] {
            let e = resolve_dir(Some(root), bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::PermissionDenied, "{bad}: {e}");
        }
        let e = resolve_dir(None, "/tmp/b/n1").unwrap_err();
        assert!(e.message.contains("--backup-dir"), "{e}");
    }
}
