//! Anti-entropy (`POST /admin/resync`, and a periodic pass): compares this DC with a peer
//! shard by shard, Merkle style — a digest per shard, then per hash range of the shards that
//! differ, then the records of the ranges that differ — and repairs each difference in both
//! directions through the normal merge (an apply marked `repair`, which moves no
//! watermark). Scans are paced so a pass does not starve foreground traffic.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use prost::Message;

use aerolith_common::rpc::{Call, Node, RpcClient};
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, ErrorCode, Result, pb};

/// Hash ranges per shard: a shard that differs is narrowed to these.
pub const RANGES: u32 = 64;
/// Default pace: records scanned per second (digests and range reads together).
pub const DEFAULT_RECORDS_PER_SECOND: u64 = 200_000;
/// Records merged per repair call.
const REPAIR_BATCH: usize = 500;
/// Time one RPC of a pass may take (a shard scan).
const CALL: Duration = Duration::from_secs(60);

/// What a pass compared and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The peer DC compared with.
    pub peer: String,
    /// Shards compared.
    pub shards_compared: u64,
    /// Shards whose digests differed.
    pub shards_differing: u64,
    /// Hash ranges compared (of the differing shards).
    pub ranges_compared: u64,
    /// Ranges whose digests differed.
    pub ranges_differing: u64,
    /// Records read from the differing ranges, both sides.
    pub records_compared: u64,
    /// Documents whose records differed and were merged (each counted once).
    pub documents_repaired: u64,
    /// Records merged into this DC.
    pub repaired_here: u64,
    /// Records merged into the peer.
    pub repaired_there: u64,
    /// Collection settings handed to a node (of either DC) that lacked them.
    pub settings_repaired: u64,
    /// Wall time of the pass.
    pub took_ms: u64,
}

/// Runs a pass against every peer each `every`, logging what it repaired, until the task
/// is aborted.
pub async fn every(
    client: std::sync::Arc<RpcClient>,
    maps: std::sync::Arc<ShardMaps>,
    local: DcConfig,
    peers: Vec<DcConfig>,
    shards: u16,
    every: Duration,
    records_per_second: u64,
) {
    loop {
        tokio::time::sleep(every).await;
        for peer in &peers {
            match resync(
                &client,
                &maps,
                &local,
                peer,
                shards,
                None,
                records_per_second,
            )
            .await
            {
                Ok(sum) => tracing::info!(peer = %peer.id, repaired = sum.documents_repaired,
                    shards_differing = sum.shards_differing, took_ms = sum.took_ms,
                    "anti-entropy pass"),
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e.message, "anti-entropy pass failed")
                }
            }
        }
    }
}

/// How long a pass keeps retrying a node that does not answer (one restarting, or one
/// the client is still re-dialling) before it gives up.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(15);

/// One call of the pass; a node that is unreachable for a moment is retried, so a pass
/// does not fail on a node that has just restarted.
async fn call<C: Call<Node>>(client: &RpcClient, addr: &str, req: C) -> Result<C::Answer> {
    let give_up = Instant::now() + UNREACHABLE_GRACE;
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.node().call(addr, req.clone(), CALL).await {
            Err(e) if e.code == ErrorCode::Unavailable && Instant::now() + backoff < give_up => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Sleeps off the scan cost so a pass stays under `records_per_second`.
struct Pacer {
    per_second: u64,
}

impl Pacer {
    async fn charge(&self, records: u64) {
        if self.per_second > 0 && records > 0 {
            let secs = records as f64 / self.per_second as f64;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
    }
}

async fn shard_digest(client: &RpcClient, addr: &str, shard: u16) -> Result<pb::ShardDigest> {
    let req = pb::DigestRequest {
        shards: vec![u32::from(shard)],
        ranges: RANGES,
        check_indexes: false,
    };
    let mut d = call(client, addr, req).await?;
    match d.shards.len() {
        1 => Ok(d.shards.remove(0)),
        n => Err(Error::internal(format!(
            "a digest of one shard from {addr} held {n}"
        ))),
    }
}

/// The records of some ranges of a shard (one scan), by (collection, id), as stored.
async fn ranges(
    client: &RpcClient,
    addr: &str,
    shard: u16,
    list: &[u32],
) -> Result<BTreeMap<(String, String), Vec<u8>>> {
    let req = pb::RangeRequest {
        shard: u32::from(shard),
        ranges: RANGES,
        range: 0,
        range_list: list.to_vec(),
    };
    Ok(call(client, addr, req)
        .await?
        .records
        .into_iter()
        .map(|r| ((r.collection, r.id), r.record))
        .collect())
}

/// Collections' settings as each DC holds them, fetched once a pass (sent with repairs, so
/// a node that lost them can apply).
#[derive(Default)]
struct Settings(HashMap<(String, String), Option<pb::CollectionMeta>>);

impl Settings {
    /// `name`'s settings in `dc`, as its node at `addr` holds them.
    async fn of(
        &mut self,
        client: &RpcClient,
        dc: &str,
        addr: &str,
        name: &str,
    ) -> Option<pb::CollectionMeta> {
        let key = (dc.to_string(), name.to_string());
        if let Some(known) = self.0.get(&key) {
            return known.clone();
        }
        let req = pb::GetCollectionRequest {
            name: name.to_string(),
        };
        let meta = call(client, addr, req).await.ok();
        self.0.insert(key, meta.clone());
        meta
    }
}

/// Merges `records` (read from `from`'s store) into `to_addr`.
async fn repair(
    client: &RpcClient,
    maps: &ShardMaps,
    settings: &mut Settings,
    from: &DcConfig,
    to: &DcConfig,
    shard: u16,
    records: Vec<(String, String, pb::DocRecord)>,
) -> Result<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    let (from_addr, to_addr) = (
        &maps.owner_of(from, shard).rpc,
        &maps.owner_of(to, shard).rpc,
    );
    let mut applies = Vec::with_capacity(records.len());
    for (collection, id, record) in records {
        let meta = settings.of(client, &from.id, from_addr, &collection).await;
        applies.push(pb::ApplyRequest {
            shard: u32::from(shard),
            collection,
            id,
            source_dc: record.origin.clone(),
            record: Some(record),
            origin_dc: from.id.clone(),
            position: None,
            collection_meta: meta,
            sender_wall_ms: 0,
            repair: true,
            idempotency: None,
        });
    }
    let n = applies.len() as u64;
    // In batches, so a shard with many differences stays within the RPC frame limit.
    for chunk in applies.chunks(REPAIR_BATCH) {
        let req = pb::ApplyBatchRequest {
            applies: chunk.to_vec(),
            ..Default::default()
        };
        call(client, to_addr, req).await?;
    }
    Ok(n)
}

fn decode(bytes: &[u8], what: &str) -> Result<pb::DocRecord> {
    pb::DocRecord::decode(bytes).map_err(|e| Error::internal(format!("corrupt record {what}: {e}")))
}

/// Compares `local` with `peer` over every shard and repairs what differs; only records of
/// `collection` when one is named. Scans are paced to `records_per_second` (0: unpaced).
pub async fn resync(
    client: &RpcClient,
    maps: &ShardMaps,
    local: &DcConfig,
    peer: &DcConfig,
    shards: u16,
    collection: Option<&str>,
    records_per_second: u64,
) -> Result<Summary> {
    let started = Instant::now();
    let pacer = Pacer {
        per_second: records_per_second,
    };
    // The peer's owners as its nodes know them now.
    crate::shard_map::learn_from(client, maps, peer).await;
    let mut settings = Settings::default();
    let mut sum = Summary {
        peer: peer.id.clone(),
        ..Summary::default()
    };
    // Collection settings first, across both DCs' nodes: records are repaired within one
    // incarnation only, so both sides must hold the same one (and a deletion either side
    // took reaches the other).
    let listed: Vec<_> = maps
        .nodes(&local.id)
        .into_iter()
        .chain(maps.nodes(&peer.id))
        .collect();
    let nodes: Vec<&str> = listed.iter().map(|n| n.rpc.as_str()).collect();
    sum.settings_repaired = crate::settings::reconcile(client, &nodes).await?;
    for shard in 0..shards {
        let (a, b) = (
            &maps.owner_of(local, shard).rpc,
            &maps.owner_of(peer, shard).rpc,
        );
        let (da, db) = tokio::try_join!(
            shard_digest(client, a, shard),
            shard_digest(client, b, shard)
        )?;
        sum.shards_compared += 1;
        pacer.charge(da.records + db.records).await;
        if da.digest == db.digest {
            continue;
        }
        sum.shards_differing += 1;
        sum.ranges_compared += u64::from(RANGES);
        let differing: Vec<u32> = (0..RANGES)
            .filter(|r| {
                let (ra, rb) = (
                    da.range_digests.get(*r as usize),
                    db.range_digests.get(*r as usize),
                );
                ra.is_none() || ra != rb
            })
            .collect();
        sum.ranges_differing += differing.len() as u64;
        // Every differing range of the shard in one scan a side.
        let (mine, theirs) = tokio::try_join!(
            ranges(client, a, shard, &differing),
            ranges(client, b, shard, &differing)
        )?;
        sum.records_compared += (mine.len() + theirs.len()) as u64;
        pacer.charge(da.records + db.records).await;
        let (mut to_peer, mut to_local) = (Vec::new(), Vec::new());
        let keys: std::collections::BTreeSet<&(String, String)> =
            mine.keys().chain(theirs.keys()).collect();
        for key in keys {
            if collection.is_some_and(|c| c != key.0) {
                continue;
            }
            let (m, t) = (mine.get(key), theirs.get(key));
            if m == t {
                continue;
            }
            let what = format!("{}/{}", key.0, key.1);
            let m = m.map(|m| decode(m, &what)).transpose()?;
            let t = t.map(|t| decode(t, &what)).transpose()?;
            // A tombstone on one side and no record on the other say the same thing (one
            // DC collected it first): merging it back would only log the delete again.
            let gone = |r: &Option<pb::DocRecord>| {
                r.as_ref()
                    .is_none_or(|r| r.tombstone && r.siblings.is_empty())
            };
            if gone(&m) && gone(&t) && (m.is_none() || t.is_none()) {
                continue;
            }
            sum.documents_repaired += 1;
            if let Some(m) = m {
                to_peer.push((key.0.clone(), key.1.clone(), m));
            }
            if let Some(t) = t {
                to_local.push((key.0.clone(), key.1.clone(), t));
            }
        }
        sum.repaired_there +=
            repair(client, maps, &mut settings, local, peer, shard, to_peer).await?;
        sum.repaired_here +=
            repair(client, maps, &mut settings, peer, local, shard, to_local).await?;
    }
    sum.took_ms = started.elapsed().as_millis() as u64;
    if sum.documents_repaired > 0 {
        tracing::warn!(peer = %sum.peer, repaired = sum.documents_repaired, "anti-entropy repaired documents");
    }
    Ok(sum)
}
