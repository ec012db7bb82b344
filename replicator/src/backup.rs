//! Backups of a DC (`POST /admin/backup`): a consistent RocksDB checkpoint of every local
//! storage node's store, each into `<dir>/<node id>` on that node's own file system.

use std::path::Path;
use std::time::Duration;

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::RoutedNode;
use aerolith_common::{Error, Result, pb};

/// Time one node's checkpoint may take.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Checkpoints every node of `local` under `root` (an absolute path); each node's answer,
/// in node order.
pub async fn backup(
    client: &RpcClient,
    nodes: &[RoutedNode],
    root: &Path,
) -> Result<Vec<(String, pb::BackupResponse)>> {
    if !root.is_absolute() {
        return Err(Error::invalid(format!(
            "dir must be an absolute path on the storage nodes, got {:?}",
            root.display().to_string()
        )));
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
