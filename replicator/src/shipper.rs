//! The shipping side: for each peer DC, one task per local storage node tails that node's
//! shards (every collection) from the peer's checkpoint, ships what it read to the peer's
//! replicator, and advances the checkpoint only once the peer acknowledged. A failed ship is
//! retried from the same checkpoint with backoff: the peer's apply is idempotent.
//!
//! Remote applies that changed local state are in the log too, so they are forwarded (with
//! three or more DCs, one broken link does not stop convergence), except to the DC that
//! shipped them and the DC that wrote them: nothing loops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerolith_common::rpc::RpcClient;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, ErrorCode, Result, pb};
use pb::request::Body as Req;
use pb::response::Body as Resp;

use crate::checkpoint::{Checkpoint, CheckpointFile};

/// Changes read (and shipped) per round trip.
const BATCH: u32 = 500;
/// Bytes of changes per batch, well within the RPC frame limit.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// How long a caught-up read waits for the next change.
const LIVE_WAIT: Duration = Duration::from_secs(2);
/// Deadline of one shipment (the peer applies the whole batch before answering).
const SHIP_TIMEOUT: Duration = Duration::from_secs(60);
/// Backoff between failed attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A peer DC and its replicator's RPC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer DC's id.
    pub dc: String,
    /// Its replicator's `host:port`.
    pub addr: String,
}

/// What the shipping tasks of one peer share.
pub struct PeerLink {
    /// The peer.
    pub peer: Peer,
    checkpoint: Mutex<Checkpoint>,
    file: CheckpointFile,
    /// Set by the admin API: stop shipping (the backlog stays in the logs).
    pub paused: AtomicBool,
    /// True after the last shipment succeeded, false after one failed.
    pub connected: AtomicBool,
    /// Changes shipped and acknowledged.
    pub sent: AtomicU64,
}

impl PeerLink {
    /// A link to `peer` with its persisted checkpoint.
    pub fn open(peer: Peer, file: CheckpointFile) -> Result<PeerLink> {
        Ok(PeerLink {
            checkpoint: Mutex::new(file.load()?),
            file,
            peer,
            paused: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            sent: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Checkpoint> {
        self.checkpoint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The acknowledged positions, by shard.
    pub fn acknowledged(&self) -> BTreeMap<u16, (u64, u64)> {
        self.lock().shards.clone()
    }

    fn advance(&self, through: &[pb::ShardPosition]) -> Result<()> {
        let mut cp = self.lock();
        let before = cp.clone();
        cp.advance(through);
        if *cp != before {
            self.file.save(&cp)?;
        }
        Ok(())
    }

    fn restart_from_oldest(&self, shards: &[u16]) -> Result<()> {
        let mut cp = self.lock();
        for s in shards {
            cp.shards.remove(s);
        }
        self.file.save(&cp)
    }
}

/// Ships one local node's shards to one peer until aborted.
pub async fn ship_node(
    link: Arc<PeerLink>,
    local: DcConfig,
    node_index: usize,
    shards: Vec<u16>,
    client: Arc<RpcClient>,
) {
    let node = local.nodes[node_index].rpc.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        if link.paused.load(Ordering::Relaxed) {
            tokio::time::sleep(BACKOFF_MAX.min(Duration::from_millis(200))).await;
            continue;
        }
        match round(&link, &local.id, &node, &shards, &client).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) if e.code == ErrorCode::ResumeTokenExpired => {
                // The log no longer holds what the peer has not acknowledged: shipping from
                // the oldest retained change keeps going, but the peer may have missed changes
                // until anti-entropy repairs them (issue 12).
                tracing::error!(peer = %link.peer.dc, error = %e.message, "replication gap");
                metrics::counter!("aerolith_replication_gaps_total", "peer" => link.peer.dc.clone())
                    .increment(1);
                if let Err(e) = link.restart_from_oldest(&shards) {
                    tracing::error!(error = %e.message, "cannot save a checkpoint");
                }
            }
            Err(e) => {
                link.connected.store(false, Ordering::Relaxed);
                tracing::debug!(peer = %link.peer.dc, error = %e.message, "shipping paused");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One read of the node's logs and, if it found changes, one shipment.
async fn round(
    link: &PeerLink,
    dc: &str,
    node: &str,
    shards: &[u16],
    client: &RpcClient,
) -> Result<()> {
    let from: Vec<pb::ShardPosition> = {
        let cp = link.lock();
        shards.iter().map(|s| cp.from(*s)).collect()
    };
    let read = Req::ReadChanges(pb::ReadChangesRequest {
        collection: String::new(),
        from: from.clone(),
        limit: BATCH,
        wait_ms: LIVE_WAIT.as_millis() as u32,
        max_bytes: BATCH_BYTES,
        ..Default::default()
    });
    let Resp::Changes(read) = client.call(node, read, LIVE_WAIT * 5).await? else {
        return Err(Error::internal("unexpected answer to read_changes"));
    };
    // Each change carries its collection's settings, so the peer never applies a change
    // under settings it does not hold.
    let mut metas: BTreeMap<String, Option<pb::CollectionMeta>> = BTreeMap::new();
    let epochs: BTreeMap<u32, u64> = read.start.iter().map(|p| (p.shard, p.epoch)).collect();
    let mut changes = Vec::with_capacity(read.events.len());
    for rec in read.events {
        let Some(ev) = rec.event else { continue };
        let position = Some(pb::ShardPosition {
            shard: rec.shard,
            epoch: epochs.get(&rec.shard).copied().unwrap_or_default(),
            seq: rec.seq,
        });
        let source_dc = if ev.source_dc.is_empty() {
            dc.to_string()
        } else {
            ev.source_dc
        };
        if ev.applied_from == link.peer.dc || source_dc == link.peer.dc {
            // The peer sent this change or wrote it: it knows it, and shipping it back could
            // only be skipped there. Only its position goes, to move the peer's watermark.
            changes.push(pb::ShippedChange {
                shard: rec.shard,
                position,
                collection: ev.collection,
                id: ev.id,
                source_dc,
                ..Default::default()
            });
            continue;
        }
        if ev.collection_meta.is_some() {
            // A collection's settings (its creation, a change, its deletion).
            changes.push(pb::ShippedChange {
                shard: rec.shard,
                position,
                collection: ev.collection,
                collection_meta: ev.collection_meta,
                source_dc,
                ..Default::default()
            });
            continue;
        }
        if !metas.contains_key(&ev.collection) {
            let meta = match client
                .call(
                    node,
                    Req::GetCollection(pb::GetCollectionRequest {
                        name: ev.collection.clone(),
                    }),
                    LIVE_WAIT * 5,
                )
                .await
            {
                Ok(Resp::Collection(m)) => Some(m),
                Err(e) if e.code == ErrorCode::NotFound => None,
                Err(e) => return Err(e),
                Ok(_) => return Err(Error::internal("unexpected answer to get_collection")),
            };
            metas.insert(ev.collection.clone(), meta);
        }
        changes.push(pb::ShippedChange {
            shard: rec.shard,
            position,
            collection_meta: metas.get(&ev.collection).cloned().flatten(),
            collection: ev.collection,
            id: ev.id,
            record: ev.record,
            source_dc,
        });
    }
    // Entries the read passed over (changes of deleted collections) still move the peer's
    // watermark, so its lag, sessions and write concern see the whole log as shipped.
    for through in &read.through {
        let shipped_to = changes
            .iter()
            .filter(|c| c.shard == through.shard)
            .filter_map(|c| c.position.as_ref().map(|p| p.seq))
            .max()
            .or_else(|| {
                from.iter()
                    .find(|f| f.shard == through.shard && f.epoch == through.epoch)
                    .map(|f| f.seq)
            })
            .unwrap_or(0);
        if through.seq > shipped_to {
            changes.push(pb::ShippedChange {
                shard: through.shard,
                position: Some(*through),
                ..Default::default()
            });
        }
    }
    if changes.is_empty() {
        return link.advance(&read.through);
    }
    // A pause takes effect before anything read after it is sent: the batch is dropped and
    // read again after the resume (the checkpoint has not moved).
    if link.paused.load(Ordering::Relaxed) {
        return Ok(());
    }
    let n = changes
        .iter()
        .filter(|c| c.record.is_some() || c.collection_meta.is_some())
        .count() as u64;
    let ship = Req::Ship(pb::ShipRequest {
        from_dc: dc.to_string(),
        changes,
        sent_at_ms: aerolith_common::time::now_ms(),
    });
    match client.call(&link.peer.addr, ship, SHIP_TIMEOUT).await? {
        Resp::Shipped(_) => {}
        _ => return Err(Error::internal("unexpected answer to ship")),
    }
    link.connected.store(true, Ordering::Relaxed);
    link.sent.fetch_add(n, Ordering::Relaxed);
    metrics::counter!("aerolith_replication_shipped_total", "peer" => link.peer.dc.clone())
        .increment(n);
    link.advance(&read.through)
}
