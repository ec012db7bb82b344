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
    let mut vetted = false;
    loop {
        let status = match client
            .call(&node.rpc, Req::SeedStatus(pb::SeedStatusRequest {}), CALL)
            .await
        {
            Ok(Resp::SeedStatus(s)) => Some(s),
            _ => None,
        };
        if status.is_none() {
            // Down (or restarting): vetted again once it answers.
            vetted = false;
        }
        if let Some(status) = status.as_ref().filter(|s| !s.unseeded && !vetted) {
            match lost_store(client, dc, &node.rpc, &owned, peers, status.actor_epoch).await {
                Ok(None) => vetted = true,
                Ok(Some(peer)) => {
                    vetted = true;
                    tracing::error!(node = %node.id, %peer,
                        "this node started a new, empty store as if the cluster were new, but {peer} holds changes of its shards: it lost its data directory; stop it, move the directory away and start it with --new-store seed");
                    metrics::gauge!("aerolith_node_lost_store", "dc" => dc.to_string(), "node" => node.id.clone())
                        .set(1.0);
                }
                Err(_) => {} // a peer did not answer: asked again next round
            }
        }
        if let Some(status) = status.filter(|s| s.unseeded) {
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

/// Whether a node with a genesis store (actor epoch 1) has lost the data it once had: its
/// logs of its shards are empty, yet a peer DC has applied changes of them. A log's
/// sequence numbers never restart, so a peer can only have seen changes the node wrote.
/// Returns the peer that saw them; an error when a peer could not be asked.
async fn lost_store(
    client: &RpcClient,
    dc: &str,
    node: &str,
    owned: &[u16],
    peers: &[DcConfig],
    epoch: u32,
) -> Result<Option<String>> {
    if epoch != 1 || owned.is_empty() {
        return Ok(None);
    }
    let shards: Vec<u32> = owned.iter().map(|s| u32::from(*s)).collect();
    let heads = Req::ChangeHeads(pb::ChangeHeadsRequest {
        shards: shards.clone(),
    });
    let Resp::Heads(h) = call(client, node, heads).await? else {
        return Err(unexpected("change_heads", node));
    };
    if h.heads.iter().any(|h| h.seq > 0) {
        return Ok(None);
    }
    for peer in peers {
        let mut owners: Vec<&str> = owned.iter().map(|s| peer.owner(*s).rpc.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            let req = Req::Watermarks(pb::WatermarksRequest {
                shards: shards.clone(),
            });
            let Resp::Watermarks(w) = call(client, owner, req).await? else {
                return Err(unexpected("watermarks", owner));
            };
            let seen = w.watermarks.iter().any(|m| {
                m.origin_dc == dc
                    && m.position
                        .is_some_and(|p| p.seq > 0 && shards.contains(&p.shard))
            });
            if seen {
                return Ok(Some(peer.id.clone()));
            }
        }
    }
    Ok(None)
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
