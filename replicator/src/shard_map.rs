//! The DC's shard map as its one writer keeps it (issue 25; common `shard_map.rs`): a JSON
//! file in the data directory, replaced atomically and durably, and handed to every local
//! storage node, which keeps it and routes nothing by an older one. Peer DCs' maps are
//! learned from their nodes. A node that answers a later map than the file's (the file
//! was lost or restored from an older copy) wins: the map never goes back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::{ShardMap, ShardMaps};
use aerolith_common::topology::{ClusterConfig, DcConfig};
use aerolith_common::{Error, Result, pb};

/// How often the local nodes are handed the map.
const HAND_OUT_EVERY: Duration = Duration::from_secs(1);
/// Every this many hand-outs, the peer DCs' maps are read from their nodes.
const PEERS_EVERY_TICKS: u64 = 5;
/// Deadline of one map call.
const CALL: Duration = Duration::from_secs(2);

/// The file's form of a map.
#[derive(Debug, Serialize, Deserialize)]
struct MapFile {
    dc: String,
    epoch: u64,
    nodes: Vec<String>,
    owners: Vec<u32>,
    #[serde(default)]
    moving: Vec<u32>,
    #[serde(default)]
    addrs: Vec<String>,
    #[serde(default)]
    leaving: Vec<String>,
}

/// Where the local DC's map lives.
#[derive(Debug, Clone)]
pub struct MapStore {
    path: PathBuf,
}

impl MapStore {
    /// The map file under `dir`.
    pub fn new(dir: &Path) -> MapStore {
        MapStore {
            path: dir.join("shard-map.json"),
        }
    }

    /// The stored map, if any.
    pub fn load(&self) -> Result<Option<pb::ShardMap>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let f: MapFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::invalid(format!(
                        "{} does not parse ({e}); restore it from a backup, or move it away to take the map the DC's storage nodes hold",
                        self.path.display()
                    ))
                })?;
                Ok(Some(pb::ShardMap {
                    dc: f.dc,
                    epoch: f.epoch,
                    nodes: f.nodes,
                    owners: f.owners,
                    moving: f.moving,
                    addrs: f.addrs,
                    leaving: f.leaving,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Replaces the stored map atomically and durably.
    pub fn save(&self, m: &ShardMap) -> Result<()> {
        let p = m.to_pb();
        let f = MapFile {
            dc: p.dc,
            epoch: p.epoch,
            nodes: p.nodes,
            owners: p.owners,
            moving: p.moving,
            addrs: p.addrs,
            leaving: p.leaving,
        };
        crate::checkpoint::write_json(&self.path, &f, true)
    }
}

/// Every DC's map at the replicator's start: the local one from the file, or from the local
/// nodes if one of them holds a later one, or the first map `cluster.toml` implies; saved
/// before anything routes by it.
pub async fn open(
    store: &MapStore,
    cluster: &ClusterConfig,
    local: &DcConfig,
    client: &RpcClient,
) -> Result<Arc<ShardMaps>> {
    let maps = Arc::new(ShardMaps::new(cluster));
    if let Some(m) = store.load()? {
        maps.learn(&m)?;
    }
    let node = client.node();
    let held = futures::future::join_all(
        local
            .nodes
            .iter()
            .map(|n| node.get_shard_map(&n.rpc, pb::GetShardMapRequest {}, CALL)),
    )
    .await;
    let from_file = maps.epoch(&local.id);
    for m in held.into_iter().flatten() {
        if m.epoch > maps.epoch(&local.id) {
            maps.learn(&m)?;
        }
    }
    if from_file > 0 && maps.epoch(&local.id) > from_file {
        tracing::warn!(dc = %local.id, epoch = maps.epoch(&local.id), "a storage node holds a later shard map than this replicator's file: taking it");
    }
    if maps.epoch(&local.id) == 0 {
        // A new DC (or one from before maps): its first map.
        maps.learn(&ShardMap::initial(local, cluster.shards).to_pb())?;
    }
    store.save(maps.get(&local.id)?.as_ref())?;
    // Handed out before anything else starts, so gateways starting next find it.
    if let Err(e) = hand_out(client, &maps, store, local).await {
        tracing::debug!(error = %e.message, "the shard map is handed out again in a second");
    }
    Ok(maps)
}

/// Hands the local map to every local node each [`HAND_OUT_EVERY`] and reads the peer DCs'
/// maps from their nodes now and then, until aborted.
pub async fn keep_handing_out(
    client: Arc<RpcClient>,
    maps: Arc<ShardMaps>,
    store: MapStore,
    cluster: ClusterConfig,
    local: DcConfig,
) {
    let mut tick = tokio::time::interval(HAND_OUT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        if let Err(e) = hand_out(&client, &maps, &store, &local).await {
            tracing::warn!(dc = %local.id, error = %e.message, "cannot hand out the shard map");
        }
        if ticks.is_multiple_of(PEERS_EVERY_TICKS) {
            for peer in cluster.dcs.iter().filter(|d| d.id != local.id) {
                learn_from(&client, &maps, peer).await;
            }
        }
        ticks += 1;
    }
}

/// Hands the local map to every local node; a node holding a later one hands it back,
/// and it is kept (and saved).
pub async fn hand_out(
    client: &RpcClient,
    maps: &ShardMaps,
    store: &MapStore,
    local: &DcConfig,
) -> Result<()> {
    let map = maps.get(&local.id)?.to_pb();
    let node = client.node();
    let listed = maps.nodes(&local.id);
    let answers = futures::future::join_all(listed.iter().map(|n| {
        let req = pb::SetShardMapRequest {
            map: Some(map.clone()),
        };
        node.set_shard_map(&n.rpc, req, CALL)
    }))
    .await;
    for held in answers.into_iter().flatten() {
        if held.epoch > map.epoch && maps.learn(&held)? {
            tracing::warn!(dc = %local.id, epoch = held.epoch, "a storage node held a later shard map than this replicator: taking it");
            store.save(maps.get(&local.id)?.as_ref())?;
        }
    }
    Ok(())
}

/// Reads DC `dc`'s map from the first of its nodes that answers, keeping it if later.
pub async fn learn_from(client: &RpcClient, maps: &ShardMaps, dc: &DcConfig) {
    for n in maps.nodes(&dc.id) {
        let req = pb::GetShardMapRequest {};
        if let Ok(m) = client.node().get_shard_map(&n.rpc, req, CALL).await {
            if m.epoch > 0
                && let Err(e) = maps.learn(&m)
            {
                tracing::warn!(dc = %dc.id, error = %e.message, "a peer DC's shard map cannot be used");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_an_absent_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = MapStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let cluster = ClusterConfig::parse(
            "shards = 16\n[[dcs]]\nid = \"a\"\nnodes = [{id=\"n1\", rpc=\"x:1\"}, {id=\"n2\", rpc=\"x:2\"}]",
        )
        .unwrap();
        let m = ShardMap::initial(cluster.dc("a").unwrap(), 16).with_owner(3, "n1");
        store.save(&m).unwrap();
        assert_eq!(store.load().unwrap(), Some(m.to_pb()));
        std::fs::write(dir.path().join("shard-map.json"), b"{").unwrap();
        assert!(store.load().is_err());
    }
}
