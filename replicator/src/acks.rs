//! Reporting to each local node what every peer DC acknowledged of its logs (from the
//! shipping checkpoints), with each peer's own log head read after that acknowledgement.
//! The node trims its logs and collects tombstones against this (see the storage node's
//! `acks` module), so the report is what keeps a lagging peer's backlog and a delete that
//! races a peer's concurrent write safe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::{ClusterConfig, DcConfig};
use aerolith_common::{Result, pb};

use crate::shipper::PeerLink;

/// How often the report goes out.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
const CALL: Duration = Duration::from_secs(5);

/// Reports to every local node, every [`REPORT_EVERY`], until aborted.
pub async fn keep_reporting(
    client: Arc<RpcClient>,
    maps: Arc<ShardMaps>,
    cluster: ClusterConfig,
    local: DcConfig,
    links: Vec<Arc<PeerLink>>,
) {
    let peers: Vec<DcConfig> = cluster
        .dcs
        .iter()
        .filter(|d| d.id != local.id)
        .cloned()
        .collect();
    loop {
        for link in &links {
            if let Err(e) = rewind(&client, &local.id, link).await {
                tracing::debug!(peer = %link.peer.dc, error = %e.message, "cannot read the peer's watermarks");
            }
        }
        for node in maps.nodes(&local.id) {
            match report(&client, &maps, &node.rpc, &node.shards, &peers, &links).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(node = %node.id, error = %e.message, "acknowledgement report failed")
                }
            }
        }
        tokio::time::sleep(REPORT_EVERY).await;
    }
}

/// The log heads of `shards` held by `dc`'s owners of them (unknown where one does not
/// answer).
async fn heads(
    client: &RpcClient,
    maps: &ShardMaps,
    dc: &DcConfig,
    shards: &[u16],
) -> BTreeMap<u16, pb::ShardPosition> {
    let mut by_owner: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for &s in shards {
        by_owner
            .entry(maps.owner_of(dc, s).rpc)
            .or_default()
            .push(u32::from(s));
    }
    let mut out = BTreeMap::new();
    for (owner, shards) in by_owner {
        let req = pb::ChangeHeadsRequest { shards };
        if let Ok(h) = client.node().change_heads(&owner, req, CALL).await {
            for p in h.heads {
                if let Ok(s) = u16::try_from(p.shard) {
                    out.insert(s, p);
                }
            }
        }
    }
    out
}

/// Moves a link's checkpoints back where the peer's watermarks of this DC's logs stand
/// behind them (read after the checkpoints, so a checkpoint that moved meanwhile is not
/// mistaken for one the peer lost).
async fn rewind(client: &RpcClient, dc: &str, link: &PeerLink) -> Result<()> {
    let acked = link.acknowledged();
    let marks = link.peer_watermarks(client, dc, &[], CALL).await?;
    for (shard, at) in marks {
        if let Some(&was) = acked.get(&shard) {
            link.rewind(shard, was, at)?;
        }
    }
    Ok(())
}

async fn report(
    client: &RpcClient,
    maps: &ShardMaps,
    node: &str,
    shards: &[u16],
    peers: &[DcConfig],
    links: &[Arc<PeerLink>],
) -> Result<()> {
    let mut acks = Vec::new();
    for link in links {
        let Some(peer) = peers.iter().find(|p| p.id == link.peer.dc) else {
            continue;
        };
        // Checkpoints first, heads after: a head read later is at or past the one at the
        // acknowledgement, which only makes the tombstone rule wait longer.
        let acked = link.acknowledged();
        let heads = heads(client, maps, peer, shards).await;
        for &s in shards {
            let (epoch, seq) = acked.get(&s).copied().unwrap_or((0, 0));
            acks.push(pb::PeerAck {
                peer_dc: peer.id.clone(),
                acked: Some(pb::ShardPosition {
                    shard: u32::from(s),
                    epoch,
                    seq,
                }),
                peer_head: heads.get(&s).copied(),
            });
        }
    }
    let req = pb::PeerAcksRequest {
        peers: peers.iter().map(|p| p.id.clone()).collect(),
        acks,
    };
    client.node().peer_acks(node, req, CALL).await.map(|_| ())
}
