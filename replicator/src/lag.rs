//! Replication lag per peer, for `GET /admin/status` and the `aerolith_replication_lag_*`
//! gauges: how many changes of this DC's logs a peer has not applied yet, and the age of the
//! oldest of them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use aerolith_common::time::{now_ms, rfc3339_ms};
use aerolith_common::{Result, hlc, pb};

use crate::admin::AdminState;

/// Every local shard's log head.
async fn heads(s: &AdminState) -> Result<BTreeMap<u16, (u64, u64)>> {
    let mut out = BTreeMap::new();
    for node in s.maps.nodes(&s.local.id) {
        let req = pb::ChangeHeadsRequest {
            shards: node.shards.iter().map(|s| u32::from(*s)).collect(),
        };
        let h = s
            .client
            .node()
            .change_heads(&node.rpc, req, Duration::from_secs(5))
            .await?;
        for p in h.heads {
            if let Ok(shard) = u16::try_from(p.shard) {
                out.insert(shard, (p.epoch, p.seq));
            }
        }
    }
    Ok(out)
}

/// Age of the oldest change of `shard` not yet acknowledged (ms), read from the log.
async fn oldest_unshipped_ms(s: &AdminState, shard: u16, acked: (u64, u64)) -> Result<u64> {
    let node = &s.maps.owner_of(&s.local, shard).rpc;
    let req = pb::ReadChangesRequest {
        collection: String::new(),
        from: vec![pb::ShardPosition {
            shard: u32::from(shard),
            epoch: acked.0,
            seq: acked.1,
        }],
        limit: 1,
        ..Default::default()
    };
    let c = s
        .client
        .node()
        .read_changes(node, req, Duration::from_secs(5))
        .await?;
    // A settings entry has no record: it is dated by when it was logged.
    let written = c.events.first().and_then(|e| e.event.as_ref()).map(|ev| {
        ev.record
            .as_ref()
            .map_or(ev.logged_at_ms, |r| hlc::wall_ms(r.hlc))
    });
    Ok(written.map_or(0, |w| now_ms().saturating_sub(w)))
}

/// How often the lag gauges of `/metrics` are refreshed.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Keeps `aerolith_replication_lag_changes` and `aerolith_replication_lag_ms` (per peer)
/// current for `/metrics`, until the task is aborted.
pub async fn track(state: AdminState) {
    loop {
        if let Ok(peers) = peer_status(&state).await {
            for p in peers {
                let peer = p["dc"].as_str().unwrap_or_default().to_string();
                let field = |k: &str| p[k].as_u64().unwrap_or(0) as f64;
                metrics::gauge!("aerolith_replication_lag_changes", "peer" => peer.clone())
                    .set(field("lag_changes"));
                metrics::gauge!("aerolith_replication_lag_ms", "peer" => peer).set(field("lag_ms"));
            }
        }
        tokio::time::sleep(LAG_EVERY).await;
    }
}

/// Every peer's entry of `/admin/status`.
pub async fn peer_status(s: &AdminState) -> Result<Vec<Value>> {
    let heads = heads(s).await?;
    let mut peers = Vec::new();
    for link in &s.links {
        // The peer's applied watermarks of this DC's logs; the acknowledged checkpoint
        // (never ahead of them) when the peer cannot be asked.
        let acked = match link
            .peer_watermarks(&s.client, &s.local.id, &[], WATERMARKS_TIMEOUT)
            .await
        {
            Ok(w) => w,
            Err(_) => link.acknowledged(),
        };
        let mut lag_changes = 0u64;
        let mut lag_ms = 0u64;
        for (shard, (epoch, seq)) in &heads {
            let (a_epoch, a_seq) = acked.get(shard).copied().unwrap_or((0, 0));
            let behind = if a_epoch == *epoch {
                seq.saturating_sub(a_seq)
            } else {
                *seq
            };
            if behind > 0 {
                lag_changes += behind;
                let from = if a_epoch == *epoch {
                    (a_epoch, a_seq)
                } else {
                    (0, 0)
                };
                lag_ms = lag_ms.max(oldest_unshipped_ms(s, *shard, from).await.unwrap_or(0));
            }
        }
        let received = s.stats.received(&link.peer.dc);
        let state = if link.paused.load(Ordering::Relaxed) {
            "paused"
        } else if link.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        };
        peers.push(json!({
            "dc": link.peer.dc,
            "state": state,
            "lag_changes": lag_changes,
            "lag_ms": lag_ms,
            "last_applied_at": received.last_applied_ms.map(rfc3339_ms),
            "sent": link.sent.load(Ordering::Relaxed),
            "applied": received.applied,
            "conflicts": received.conflicts,
            "needs_rebuild": link.needs_rebuild(),
        }));
    }
    Ok(peers)
}

/// How long a status waits for a peer's watermarks before it falls back to checkpoints.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(2);
