//! The shipping side: for each peer DC, one task per local storage node tails that node's
//! shards (every collection) from the peer's checkpoint, ships what it read to the peer's
//! replicator, and advances the checkpoint only once the peer acknowledged. A failed ship is
//! retried from the same checkpoint with backoff: the peer's apply is idempotent.
//!
//! Remote applies that changed local state are in the log too, so they are forwarded (with
//! three or more DCs, one broken link does not stop convergence), except to the DC that
//! shipped them and the DC that wrote them, unless the merge kept something the shipped
//! record lacked (an `echo`). Nothing loops: an echo that changes nothing at its receiver
//! is not logged there, and merging only moves records up a finite lattice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::{ErrorCode, Result, pb};

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
            self.file.save_progress(&cp)?;
        }
        Ok(())
    }

    /// How far the peer has applied `dc`'s log of each of `shards` (every shard when
    /// empty), asked of the peer's replicator (DESIGN.md "Watermarks").
    pub async fn peer_watermarks(
        &self,
        client: &RpcClient,
        dc: &str,
        shards: &[u16],
        timeout: Duration,
    ) -> Result<BTreeMap<u16, (u64, u64)>> {
        let req = pb::WatermarksRequest {
            shards: shards.iter().map(|s| u32::from(*s)).collect(),
        };
        let w = client
            .replicator()
            .watermarks(&self.peer.addr, req, timeout)
            .await?;
        Ok(w.watermarks
            .into_iter()
            .filter(|w| w.origin_dc == dc)
            .filter_map(|w| {
                let p = w.position?;
                Some((u16::try_from(p.shard).ok()?, (p.epoch, p.seq)))
            })
            .collect())
    }

    /// Whether the peer must be rebuilt: this DC's logs no longer hold what it missed.
    pub fn needs_rebuild(&self) -> bool {
        !self.cut_shards().is_empty()
    }

    /// Shards whose log was trimmed past what the peer acknowledged (the hard cap): the
    /// peer missed changes, so nothing more of them is shipped until the peer is rebuilt
    /// from a full copy (its watermark then stands inside the log again).
    fn cut_shards(&self) -> std::collections::BTreeSet<u16> {
        self.lock().cut.clone()
    }

    fn set_cut(&self, shard: u16, cut: bool) -> Result<()> {
        let mut cp = self.lock();
        let changed = if cut {
            cp.cut.insert(shard)
        } else {
            cp.cut.remove(&shard)
        };
        if changed {
            self.file.save(&cp)?;
        }
        Ok(())
    }

    /// Moves `shard`'s checkpoint back from `was` to `to` when the peer stands behind it (and
    /// the checkpoint has not moved since `was` was read): a peer that was rebuilt from
    /// another DC's copy (or lost an unsynced watermark) gets again what it no longer has.
    /// Re-delivery is harmless (applies are idempotent).
    pub fn rewind(&self, shard: u16, was: (u64, u64), to: (u64, u64)) -> Result<bool> {
        let mut cp = self.lock();
        match cp.shards.get(&shard) {
            Some(&(epoch, seq)) if (epoch, seq) == was && epoch == to.0 && to.1 < seq => {
                tracing::warn!(peer = %self.peer.dc, shard, from = seq, to = to.1, "the peer stands behind its acknowledgement; shipping again from its watermark");
                cp.shards.insert(shard, to);
                self.file.save(&cp)?;
                Ok(true)
            }
            _ => Ok(false),
        }
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
    maps: Arc<ShardMaps>,
    dc: String,
    node_id: String,
    client: Arc<RpcClient>,
) {
    let mut relay = RelaySent::default();
    let mut backoff = BACKOFF_MIN;
    let mut rechecked = std::time::Instant::now();
    loop {
        if link.paused.load(Ordering::Relaxed) {
            tokio::time::sleep(BACKOFF_MAX.min(Duration::from_millis(200))).await;
            continue;
        }
        // The node's shards in the map now: a shard moved to another node is shipped from
        // there, from the same checkpoint (its log moved with it).
        let Some(me) = maps.nodes(&dc).into_iter().find(|n| n.id == node_id) else {
            return;
        };
        let (node, shards) = (me.rpc, me.shards);
        let cut = link.cut_shards();
        let cut_here: Vec<u16> = shards.iter().copied().filter(|s| cut.contains(s)).collect();
        if !cut_here.is_empty() && rechecked.elapsed() >= RECHECK_CUT {
            rechecked = std::time::Instant::now();
            if let Err(e) = resolve_gap(&link, &dc, &node, &cut_here, &client).await {
                tracing::debug!(peer = %link.peer.dc, error = %e.message, "cannot recheck a gap");
            }
            continue;
        }
        let active: Vec<u16> = shards
            .iter()
            .copied()
            .filter(|s| !cut.contains(s))
            .collect();
        if active.is_empty() {
            tokio::time::sleep(RECHECK_CUT).await;
            continue;
        }
        match round(&link, &dc, &node, &active, &client, &mut relay).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) if e.code == ErrorCode::ResumeTokenExpired => {
                if let Err(e) = resolve_gap(&link, &dc, &node, &active, &client).await {
                    tracing::warn!(peer = %link.peer.dc, error = %e.message, "cannot resolve a replication gap");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
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

/// How often a cut shard is checked for a rebuilt peer.
const RECHECK_CUT: Duration = Duration::from_secs(2);

/// After a read found a position the log no longer holds: for each shard, a log renewed
/// in a new epoch (an unclean restart) is shipped again from its start; a log trimmed past
/// the peer's checkpoint resumes from the peer's own watermark when that still lies inside
/// the log (the peer was rebuilt from a copy), and otherwise the shard is cut: the peer
/// missed changes and must be rebuilt (DESIGN.md "Log trimming").
async fn resolve_gap(
    link: &PeerLink,
    dc: &str,
    node: &str,
    shards: &[u16],
    client: &RpcClient,
) -> Result<()> {
    let req = pb::ChangeHeadsRequest {
        shards: shards.iter().map(|s| u32::from(*s)).collect(),
    };
    let h = client.node().change_heads(node, req, LIVE_WAIT * 5).await?;
    let peer_marks = link
        .peer_watermarks(client, dc, shards, LIVE_WAIT * 5)
        .await?;
    for (head, oldest) in h.heads.iter().zip(&h.oldest) {
        let Ok(shard) = u16::try_from(head.shard) else {
            continue;
        };
        let from = link.lock().from(shard);
        if from.epoch != 0 && from.epoch != head.epoch && !link.cut_shards().contains(&shard) {
            tracing::warn!(peer = %link.peer.dc, shard, "log renewed in a new epoch; shipping it again from its start");
            link.restart_from_oldest(&[shard])?;
            continue;
        }
        // Epoch 0 reads from the oldest retained entry: never a position the log lost.
        let missed = from.epoch != 0 && (from.epoch != head.epoch || from.seq < oldest.seq);
        if !missed {
            link.set_cut(shard, false)?;
            continue;
        }
        match peer_marks.get(&shard) {
            Some(&(epoch, seq)) if epoch == head.epoch && seq >= oldest.seq && seq <= head.seq => {
                tracing::info!(peer = %link.peer.dc, shard, seq, "peer stands inside the log again; shipping resumes from its watermark");
                link.advance(&[pb::ShardPosition {
                    shard: head.shard,
                    epoch,
                    seq,
                }])?;
                link.set_cut(shard, false)?;
            }
            _ => {
                if !link.cut_shards().contains(&shard) {
                    tracing::error!(peer = %link.peer.dc, shard, "the log was trimmed past what the peer acknowledged (hard cap): the peer needs a rebuild");
                    metrics::counter!("aerolith_replication_gaps_total", "peer" => link.peer.dc.clone())
                        .increment(1);
                }
                link.set_cut(shard, true)?;
            }
        }
    }
    Ok(())
}

/// How often relay marks are shipped again even when unchanged (a receiving node that
/// restarted has lost them).
const RELAY_REFRESH: Duration = Duration::from_secs(5);

/// The relay marks (see `pb::RelayMark`) last shipped for one node's shards to one peer.
#[derive(Default)]
struct RelaySent {
    last: Vec<pb::RelayMark>,
    at: Option<std::time::Instant>,
}

impl RelaySent {
    /// Whether `marks` should go even in a shipment without changes.
    fn due(&self, marks: &[pb::RelayMark]) -> bool {
        !marks.is_empty()
            && (marks != self.last.as_slice()
                || self.at.is_none_or(|at| at.elapsed() >= RELAY_REFRESH))
    }
}

/// One read of the node's logs and, if it found changes (or relay marks are due), one
/// shipment.
async fn round(
    link: &PeerLink,
    dc: &str,
    node: &str,
    shards: &[u16],
    client: &RpcClient,
    relay: &mut RelaySent,
) -> Result<()> {
    let from: Vec<pb::ShardPosition> = {
        let cp = link.lock();
        shards.iter().map(|s| cp.from(*s)).collect()
    };
    let read = pb::ReadChangesRequest {
        collection: String::new(),
        from: from.clone(),
        limit: BATCH,
        wait_ms: LIVE_WAIT.as_millis() as u32,
        max_bytes: BATCH_BYTES,
        relay: true,
        ..Default::default()
    };
    let read = client
        .node()
        .read_changes(node, read, LIVE_WAIT * 5)
        .await?;
    // The peer knows its own log; what this DC applied of third DCs' logs is news to it.
    let relayed: Vec<pb::RelayMark> = read
        .relayed
        .into_iter()
        .filter(|m| m.origin_dc != link.peer.dc)
        .collect();
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
        if !ev.echo && (ev.applied_from == link.peer.dc || source_dc == link.peer.dc) {
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
            let req = pb::GetCollectionRequest {
                name: ev.collection.clone(),
            };
            let meta = match client.node().get_collection(node, req, LIVE_WAIT * 5).await {
                Ok(m) => Some(m),
                Err(e) if e.code == ErrorCode::NotFound => None,
                Err(e) => return Err(e),
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
            idempotency: ev.idempotency,
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
    if changes.is_empty() && !relay.due(&relayed) {
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
    let ship = pb::ShipRequest {
        from_dc: dc.to_string(),
        changes,
        sent_at_ms: aerolith_common::time::now_ms(),
        relayed: relayed.clone(),
    };
    client
        .replicator()
        .ship(&link.peer.addr, ship, SHIP_TIMEOUT)
        .await?;
    *relay = RelaySent {
        last: relayed,
        at: Some(std::time::Instant::now()),
    };
    link.connected.store(true, Ordering::Relaxed);
    link.sent.fetch_add(n, Ordering::Relaxed);
    metrics::counter!("aerolith_replication_shipped_total", "peer" => link.peer.dc.clone())
        .increment(n);
    link.advance(&read.through)
}
