//! The receiving side: another DC's replicator ships batches of its change logs; each change
//! is applied through the owner of its shard in this DC (which merges it and moves the
//! watermark atomically), in batch order, and the batch is acknowledged once all are applied.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerolith_common::rpc::Handler;
use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, Result, pb};

use crate::failover::DcStates;
use crate::stats::Stats;
use pb::replicator_request::Body as Call;
use pb::replicator_response::Body as Answer;

/// Applies shipped batches to this DC's storage nodes.
pub struct Receiver {
    dc: DcConfig,
    /// Which local node owns each shard.
    maps: Arc<ShardMaps>,
    shards: u16,
    pub(crate) client: Arc<RpcClient>,
    stats: Arc<Stats>,
    /// Collection settings already merged into every node of the DC.
    settled: Mutex<HashSet<Vec<u8>>>,
}

impl Receiver {
    /// A receiver applying to the nodes of `dc`, a cluster of `shards` shards.
    pub fn new(
        dc: DcConfig,
        shards: u16,
        maps: Arc<ShardMaps>,
        client: Arc<RpcClient>,
        stats: Arc<Stats>,
    ) -> Receiver {
        Receiver {
            dc,
            maps,
            shards,
            client,
            stats,
            settled: Mutex::new(HashSet::new()),
        }
    }

    /// Merges collection settings into every node of the DC once per distinct settings, so
    /// every node (not only the shard's owner) holds them before local writes arrive.
    async fn settle(&self, meta: &pb::CollectionMeta, timeout: Duration) -> Result<()> {
        let key = prost::Message::encode_to_vec(meta);
        if self.lock().contains(&key) {
            return Ok(());
        }
        for node in self.maps.nodes(&self.dc.id) {
            self.client
                .node()
                .apply_collection(&node.rpc, meta.clone(), timeout)
                .await?;
        }
        self.lock().insert(key);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This DC's applied watermarks (of every other DC's logs), from each shard's owner.
    pub async fn watermarks(&self, timeout: Duration) -> Result<Vec<pb::Watermark>> {
        let mut out = Vec::new();
        for node in self.maps.nodes(&self.dc.id) {
            let req = pb::WatermarksRequest {
                shards: node.shards.iter().map(|s| u32::from(*s)).collect(),
            };
            let w = self
                .client
                .node()
                .watermarks(&node.rpc, req, timeout)
                .await?;
            out.extend(w.watermarks);
        }
        Ok(out)
    }

    /// Applies one batch; the number of changes that changed a record. Settings go first,
    /// into every node; then each node gets its share of the changes, in batch order, in
    /// one `ApplyBatch` (nodes in parallel). Settings may go first because their merge does
    /// not depend on order, and a change of an incarnation they end is dropped whether it
    /// is applied before or after them.
    pub async fn apply(&self, ship: pb::ShipRequest, timeout: Duration) -> Result<u32> {
        let arrived = std::time::Instant::now();
        for c in &ship.changes {
            if let Some(meta) = &c.collection_meta {
                self.settle(meta, timeout).await?;
            }
        }
        // Per node: the applies, and what the statistics need of each.
        let mut by_node: BTreeMap<String, (Vec<pb::ApplyRequest>, Vec<Applied>)> = BTreeMap::new();
        let mut relayed: BTreeMap<String, Vec<pb::RelayMark>> = BTreeMap::new();
        for m in ship.relayed {
            let shard = u16::try_from(m.shard)
                .ok()
                .filter(|s| *s < self.shards)
                .ok_or_else(|| Error::invalid(format!("shard {} out of range", m.shard)))?;
            let owner = self.maps.owner_of(&self.dc, shard).rpc.clone();
            by_node.entry(owner.clone()).or_default();
            relayed.entry(owner).or_default().push(m);
        }
        for c in ship.changes {
            let shard = u16::try_from(c.shard)
                .ok()
                .filter(|s| *s < self.shards)
                .ok_or_else(|| Error::invalid(format!("shard {} out of range", c.shard)))?;
            let (applies, seen) = by_node
                .entry(self.maps.owner_of(&self.dc, shard).rpc.clone())
                .or_default();
            seen.push(Applied {
                collection: c.collection.clone(),
                id: c.id.clone(),
                // A bare position (a change the DC already knows) is not an applied change.
                counted: c.record.is_some() || c.collection_meta.is_some(),
            });
            applies.push(pb::ApplyRequest {
                shard: c.shard,
                collection: c.collection,
                id: c.id,
                record: c.record,
                origin_dc: ship.from_dc.clone(),
                position: c.position,
                collection_meta: c.collection_meta,
                source_dc: c.source_dc,
                sender_wall_ms: ship.sent_at_ms,
                repair: false,
                idempotency: c.idempotency,
            });
        }
        let from_dc = &ship.from_dc;
        let calls = by_node
            .into_iter()
            .map(|(node, (applies, seen))| {
                let relayed = relayed.remove(&node).unwrap_or_default();
                (node, applies, seen, relayed)
            })
            .map(|(node, mut applies, seen, relayed)| async move {
                // The sender's clock sample, moved on by the time this DC held the batch
                // (settings first, other nodes' batches), so a node compares clocks, not
                // queueing delays.
                let held = u64::try_from(arrived.elapsed().as_millis()).unwrap_or(u64::MAX);
                for a in applies.iter_mut().filter(|a| a.sender_wall_ms != 0) {
                    a.sender_wall_ms = a.sender_wall_ms.saturating_add(held);
                }
                let req = pb::ApplyBatchRequest {
                    applies,
                    relayed,
                    relayed_via: from_dc.clone(),
                };
                let answer = self.client.node().apply_batch(&node, req, timeout).await?;
                if answer.results.len() != seen.len() {
                    return Err(Error::internal("apply_batch answered a different count"));
                }
                let mut changed = 0;
                for (a, r) in seen.iter().zip(&answer.results) {
                    changed += u32::from(r.changed);
                    if a.counted {
                        self.stats.applied(from_dc, &a.collection, &a.id, r);
                    }
                }
                Ok(changed)
            });
        Ok(futures::future::try_join_all(calls)
            .await?
            .into_iter()
            .sum())
    }
}

/// What the statistics record of one shipped change.
struct Applied {
    collection: String,
    id: String,
    counted: bool,
}

/// Serves `Ship` requests over the internal RPC.
pub struct ShipService {
    receiver: Arc<Receiver>,
    states: Arc<DcStates>,
    local: DcConfig,
}

impl ShipService {
    /// A service applying through `receiver`, merging DC states a peer hands over into
    /// `states` (and on to the nodes of `local`).
    pub fn new(receiver: Arc<Receiver>, states: Arc<DcStates>, local: DcConfig) -> ShipService {
        ShipService {
            receiver,
            states,
            local,
        }
    }
}

impl Handler for ShipService {
    type Service = aerolith_common::rpc::Replicator;

    fn handle(
        &self,
        call: Call,
        deadline: std::time::Instant,
    ) -> impl Future<Output = Result<Answer>> + Send {
        let receiver = self.receiver.clone();
        let states = self.states.clone();
        let local = self.local.clone();
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        async move {
            Ok(match call {
                Call::Ping(_) => Answer::Pong(pb::PingResponse::default()),
                Call::Ship(ship) => {
                    // Bare positions (changes this DC already knows) are not counted, as
                    // the sender does not count them as sent.
                    let applied = ship
                        .changes
                        .iter()
                        .filter(|c| c.record.is_some() || c.collection_meta.is_some())
                        .count() as u32;
                    let from = ship.from_dc.clone();
                    let changed = receiver.apply(ship, timeout).await?;
                    metrics::counter!("aerolith_replication_applied_total", "peer" => from)
                        .increment(u64::from(applied));
                    Answer::Shipped(pb::ShipResponse { applied, changed })
                }
                Call::Watermarks(_) => Answer::Watermarks(pb::WatermarksResponse {
                    watermarks: receiver.watermarks(timeout).await?,
                }),
                Call::DcStates(r) => {
                    if states.merge(&r.states)? {
                        states.spread(&receiver.client, &local, &[]).await;
                    }
                    Answer::Empty(pb::Empty {})
                }
            })
        }
    }
}
