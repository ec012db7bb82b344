//! Backups of a DC (`POST /admin/backup`): a consistent RocksDB checkpoint of every local
//! storage node's store, each into `<dir>/<node id>` below that node's backup directory
//! (`--backup-dir`), on its own file system. The node decides what it accepts.

use std::path::Path;
use std::time::Duration;

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::RoutedNode;
use aerolith_common::{Error, Result, pb};

/// Time one node's checkpoint may take.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Checkpoints every node of `local` under `root` (relative to each node's backup
/// directory, or an absolute path inside it); each node's answer, in node order.
pub async fn backup(
    client: &RpcClient,
    nodes: &[RoutedNode],
    root: &Path,
) -> Result<Vec<(String, pb::BackupResponse)>> {
    if root.as_os_str().is_empty() {
        return Err(Error::invalid(
            "dir names the backup: a path below the storage nodes' --backup-dir",
        ));
    }
    let mut done = Vec::with_capacity(nodes.len());
    for node in nodes {
        let dir = root.join(&node.id).to_string_lossy().into_owned();
        let req = pb::BackupRequest { dir };
        let b = client.node().backup(&node.rpc, req, BACKUP_TIMEOUT).await?;
        done.push((node.id.clone(), b));
    }
    Ok(done)
}
