//! Seeding rebuilt nodes (DESIGN.md "Actors"): a local node whose store is new or untrusted
//! waits, serving nothing, until this task has copied each of its shards from the shard's
//! owner in a peer DC: the source's watermarks and log head first, then its records page by
//! page, then those positions become the node's watermarks, so replication catches up from
//! exactly where the copy began. Never by merge: a merge would bring back documents whose
//! tombstones the peers have already collected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_common::rpc::RpcClient;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, Result, pb};
use pb::request::Body as Req;
use pb::response::Body as Resp;

/// How often local nodes are asked whether they wait to be seeded.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Deadline of one seeding call.
const CALL: Duration = Duration::from_secs(60);
/// Records per page.
const PAGE: u32 = 2000;

/// Seeds local nodes that wait for it (each node on its own), until the task is aborted.
pub async fn keep_seeding(
    client: Arc<RpcClient>,
    local: DcConfig,
    peers: Vec<DcConfig>,
    shards: u16,
) {
    let loops = (0..local.nodes.len()).map(|i| {
        let owned = local.shards_of(i, shards);
        seed_node(&client, &local.id, &local.nodes[i], owned, &peers)
    });
    futures::future::join_all(loops).await;
}

async fn seed_node(
    client: &RpcClient,
    dc: &str,
    node: &aerolith_common::topology::NodeConfig,
    owned: Vec<u16>,
    peers: &[DcConfig],
) {
    loop {
        if let Ok(Resp::SeedStatus(status)) = client
            .call(&node.rpc, Req::SeedStatus(pb::SeedStatusRequest {}), CALL)
            .await
            && status.unseeded
        {
            let started = Instant::now();
            let mut records = 0u64;
            for shard in status.pending {
                let Ok(shard) = u16::try_from(shard) else {
                    continue;
                };
                // A store has room for every shard, but only the node's own hold data.
                let done = if owned.contains(&shard) {
                    seed_shard(client, dc, &node.rpc, peers, shard).await
                } else {
                    finish(client, &node.rpc, shard, Vec::new())
                        .await
                        .map(|()| 0)
                };
                match done {
                    Ok(n) => records += n,
                    Err(e) => {
                        tracing::warn!(node = %node.id, shard, error = %e.message, "seeding a shard failed; will retry");
                        break;
                    }
                }
            }
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(node = %node.id, records, secs, "seeded records from a peer DC");
            metrics::counter!("aerolith_seeded_records_total").increment(records);
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

async fn call(client: &RpcClient, addr: &str, req: Req) -> Result<Resp> {
    client.call(addr, req, CALL).await
}

fn unexpected(what: &str, addr: &str) -> Error {
    Error::internal(format!("unexpected answer to {what} from {addr}"))
}

/// The positions of `source`'s copy of `shard` (of `dc`): its watermarks of every other
/// DC's log, and its own log head.
async fn positions(
    client: &RpcClient,
    source: &str,
    dc: &str,
    shard: u16,
) -> Result<Vec<pb::Watermark>> {
    let shards = vec![u32::from(shard)];
    let Resp::Heads(heads) = call(
        client,
        source,
        Req::ChangeHeads(pb::ChangeHeadsRequest {
            shards: shards.clone(),
        }),
    )
    .await?
    else {
        return Err(unexpected("change_heads", source));
    };
    let Resp::Watermarks(w) = call(
        client,
        source,
        Req::Watermarks(pb::WatermarksRequest { shards }),
    )
    .await?
    else {
        return Err(unexpected("watermarks", source));
    };
    let mut marks = w.watermarks;
    marks.extend(heads.heads.into_iter().map(|h| pb::Watermark {
        origin_dc: dc.to_string(),
        position: Some(h),
    }));
    Ok(marks)
}

/// Copies `shard` into `dc`'s node at `target` from a peer DC whose owner of it is seeded:
/// of those that answer, the one that has applied the most of `dc`'s own log (so the
/// fewest of this DC's earlier writes are missing from the copy; first in configuration
/// order on a tie). Returns the records copied. With no peer DC at all (a single-DC
/// cluster) there is nothing to copy from, and the node serves what its store holds.
pub async fn seed_shard(
    client: &RpcClient,
    dc: &str,
    target: &str,
    peers: &[DcConfig],
    shard: u16,
) -> Result<u64> {
    let mut source = None;
    let mut best = None;
    for peer in peers {
        let addr = &peer.owner(shard).rpc;
        let Ok(Resp::SeedStatus(s)) =
            call(client, addr, Req::SeedStatus(pb::SeedStatusRequest {})).await
        else {
            continue;
        };
        if s.unseeded {
            continue;
        }
        let req = Req::Watermarks(pb::WatermarksRequest {
            shards: vec![u32::from(shard)],
        });
        let Ok(Resp::Watermarks(w)) = call(client, addr, req).await else {
            continue;
        };
        let applied = w
            .watermarks
            .iter()
            .filter(|m| m.origin_dc == dc)
            .filter_map(|m| m.position.map(|p| (p.epoch, p.seq)))
            .max()
            .unwrap_or((0, 0));
        if best.is_none_or(|b| applied > b) {
            best = Some(applied);
            source = Some((peer, addr));
        }
    }
    let (marks, copied) = match (source, peers.is_empty()) {
        (None, true) => (Vec::new(), 0),
        (None, false) => {
            return Err(Error::unavailable(format!(
                "no peer DC has a seeded owner of shard {shard} that answers"
            )));
        }
        (Some((peer, addr)), _) => {
            let marks = positions(client, addr, &peer.id, shard).await?;
            let mut after = Vec::new();
            let mut copied = 0u64;
            loop {
                let read = Req::SeedRead(pb::SeedReadRequest {
                    shard: u32::from(shard),
                    after: after.clone(),
                    limit: PAGE,
                    max_bytes: 0,
                });
                let Resp::SeedRead(page) = call(client, addr, read).await? else {
                    return Err(unexpected("seed_read", addr));
                };
                copied += page.records.len() as u64;
                let write = Req::SeedWrite(pb::SeedWriteRequest {
                    shard: u32::from(shard),
                    reset: after.is_empty(),
                    records: page.records,
                    collections: page.collections,
                });
                call(client, target, write).await?;
                if page.done || page.last.is_empty() {
                    break;
                }
                after = page.last;
            }
            (marks, copied)
        }
    };
    finish(client, target, shard, marks).await?;
    Ok(copied)
}

/// Ends a shard's seeding at `target` with `marks` as its watermarks.
async fn finish(
    client: &RpcClient,
    target: &str,
    shard: u16,
    watermarks: Vec<pb::Watermark>,
) -> Result<()> {
    let req = Req::SeedFinish(pb::SeedFinishRequest {
        shard: u32::from(shard),
        watermarks,
    });
    call(client, target, req).await.map(|_| ())
}
