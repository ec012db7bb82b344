//! Collection settings that always converge (DESIGN.md "Collections"). Every storage node
//! holds its own copy of every collection's settings, and a collection create, change or
//! delete reaches the DC's nodes one call at a time: a request cut short (its deadline, a
//! node restarting) leaves them on different incarnations. Settings merge as a lattice (a
//! node's `apply_collection` is the join), so this task lists what every local node holds
//! and hands each node every version it lacks; once any node has taken a change, every
//! node of the DC ends on the same settings. The nodes log what changed, and replication
//! carries it to the other DCs, whose replicators do the same.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message;

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Result, pb};

/// How often the DC's nodes are compared.
const EVERY: Duration = Duration::from_secs(1);
/// Deadline of one call.
const CALL: Duration = Duration::from_secs(10);

/// Reconciles the local nodes' collection settings every [`EVERY`], until aborted.
pub async fn keep_converged(
    client: std::sync::Arc<RpcClient>,
    maps: std::sync::Arc<ShardMaps>,
    local: DcConfig,
) {
    loop {
        tokio::time::sleep(EVERY).await;
        let listed = maps.nodes(&local.id);
        let nodes: Vec<&str> = listed.iter().map(|n| n.rpc.as_str()).collect();
        match reconcile(&client, &nodes).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    repaired = n,
                    "collection settings reconciled across the DC's nodes"
                );
                metrics::counter!("aerolith_settings_repairs_total").increment(n);
            }
            Err(e) => tracing::debug!(error = %e.message, "cannot compare collection settings"),
        }
    }
}

/// One comparison of the settings every node in `nodes` holds (a DC's, or two DCs' for
/// anti-entropy); how many settings were handed to a node that lacked them. Nodes that do
/// not answer (down, being seeded) are left for a later round; the others still converge
/// among themselves.
pub async fn reconcile(client: &RpcClient, nodes: &[&str]) -> Result<u64> {
    let lists = futures::future::join_all(nodes.iter().map(|addr| async move {
        client
            .node()
            .list_collections(addr, pb::ListCollectionsRequest {}, CALL)
            .await
            .ok()
            .map(|c| (*addr, c.collections))
    }))
    .await;
    let held: Vec<(&str, Vec<pb::CollectionMeta>)> = lists.into_iter().flatten().collect();
    // Every distinct version of any collection's settings, by encoding.
    let mut versions: BTreeMap<Vec<u8>, &pb::CollectionMeta> = BTreeMap::new();
    for (_, metas) in &held {
        for m in metas {
            versions.insert(m.encode_to_vec(), m);
        }
    }
    let mut pushed = 0;
    for (addr, metas) in &held {
        let mine: BTreeSet<Vec<u8>> = metas.iter().map(|m| m.encode_to_vec()).collect();
        for (bytes, meta) in &versions {
            if !mine.contains(bytes) {
                client
                    .node()
                    .apply_collection(addr, (*meta).clone(), CALL)
                    .await?;
                pushed += 1;
            }
        }
    }
    Ok(pushed)
}
