//! Seeding rebuilt nodes (DESIGN.md "Actors"): a local node whose store is new or untrusted
//! waits, serving nothing, until this task has copied each of its shards from the shard's
//! owner in a peer DC: the source's watermarks and log head first, then its records page by
//! page, then those positions become the node's watermarks, so replication catches up from
//! exactly where the copy began. Never by merge: a merge would bring back documents whose
//! tombstones the peers have already collected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_common::rpc::{Call, Node, RpcClient};
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, Result, pb};

/// How often local nodes are asked whether they wait to be seeded.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Deadline of one seeding call.
const CALL: Duration = Duration::from_secs(60);
/// Records per page.
const PAGE: u32 = 2000;

/// Seeds local nodes that wait for it (each node on its own), until the task is aborted.
pub async fn keep_seeding(
    client: Arc<RpcClient>,
    maps: Arc<ShardMaps>,
    local: DcConfig,
    peers: Vec<DcConfig>,
) {
    let dc = local.id.clone();
    let peers = Arc::new(peers);
    crate::per_node::for_each_node(maps.clone(), dc.clone(), move |node| {
        let (client, maps, dc, peers) = (client.clone(), maps.clone(), dc.clone(), peers.clone());
        async move { seed_node(&client, &maps, &dc, &node, &peers).await }
    })
    .await;
}

async fn seed_node(
    client: &RpcClient,
    maps: &ShardMaps,
    dc: &str,
    node_id: &str,
    peers: &[DcConfig],
) {
    let mut vetted = false;
    loop {
        let Some(node) = maps.nodes(dc).into_iter().find(|n| n.id == node_id) else {
            return;
        };
        let owned = node.shards.clone();
        let status = call(client, &node.rpc, pb::SeedStatusRequest {}).await.ok();
        if status.is_none() {
            // Down (or restarting): vetted again once it answers.
            vetted = false;
        }
        if status.as_ref().is_some_and(|s| s.undecided) {
            match must_seed(client, maps, dc, &owned, peers).await {
                Ok(seed) => {
                    let req = pb::SeedDecideRequest { seed };
                    if let Err(e) = call(client, &node.rpc, req).await {
                        tracing::warn!(node = %node.id, error = %e.message, "cannot hand a new store its seeding decision; will retry");
                    } else {
                        tracing::info!(node = %node.id, seed, "decided a new store's start: seeded from a peer DC (true) or empty (false)");
                        // The lost-store check is for stores that started as genesis on
                        // their own; this one was checked just now.
                        vetted = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %node.id, error = %e.message,
                        "a new store waits: cannot tell whether a peer DC holds data of its shards (start it with --new-store genesis to serve it empty, or --new-store seed to copy it from a peer DC)");
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
            continue;
        }
        if let Some(status) = status.as_ref().filter(|s| !s.unseeded && !vetted) {
            match lost_store(
                client,
                maps,
                dc,
                &node.rpc,
                &owned,
                peers,
                status.actor_epoch,
            )
            .await
            {
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
                    seed_shard(client, maps, dc, &node.rpc, peers, shard).await
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

/// Whether a new store of `dc` holding `owned` shards must be copied from a peer DC
/// (`--new-store auto`), or may start empty and take its shards' data through replication:
/// it must when a peer DC has applied changes of this DC's logs of them (this store
/// replaces one that wrote, whose counters must not be reused), when a peer's log of one
/// of them no longer holds its whole history (replication could not bring it all), or when
/// a peer owner is being rebuilt itself. Owners that are new and undecided hold nothing (a
/// new cluster starting). An error when a peer owner does not answer: nobody can tell yet.
async fn must_seed(
    client: &RpcClient,
    maps: &ShardMaps,
    dc: &str,
    owned: &[u16],
    peers: &[DcConfig],
) -> Result<bool> {
    for peer in peers {
        let mut by_owner: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for s in owned {
            by_owner
                .entry(maps.owner_of(peer, *s).rpc)
                .or_default()
                .push(u32::from(*s));
        }
        for (owner, shards) in by_owner {
            let status = call(client, &owner, pb::SeedStatusRequest {}).await?;
            if status.undecided {
                continue;
            }
            if status.unseeded {
                return Ok(true);
            }
            let req = pb::WatermarksRequest {
                shards: shards.clone(),
            };
            let w = call(client, &owner, req).await?;
            let ours = w
                .watermarks
                .iter()
                .any(|m| m.origin_dc == dc && m.position.is_some_and(|p| p.seq > 0));
            if ours {
                tracing::info!(%dc, peer = %peer.id, "a peer DC has applied this DC's changes of a new store's shards");
                return Ok(true);
            }
            let h = call(client, &owner, pb::ChangeHeadsRequest { shards }).await?;
            if h.oldest.iter().any(|o| o.seq > 0) {
                tracing::info!(%dc, peer = %peer.id, "a peer DC's log of a new store's shards no longer holds its whole history");
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether a node with a genesis store (actor epoch 1) has lost the data it once had: a
/// peer DC has applied changes of one of its shards' logs in a log epoch other than the one
/// the log has now. A store under actor epoch 1 never renewed its logs (every renewal also
/// takes a new actor epoch), so such a log was created again from nothing. Returns the peer
/// that saw the old log; an error when a peer could not be asked.
async fn lost_store(
    client: &RpcClient,
    maps: &ShardMaps,
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
    let heads = pb::ChangeHeadsRequest {
        shards: shards.clone(),
    };
    let h = call(client, node, heads).await?;
    let log_epochs: std::collections::BTreeMap<u32, u64> =
        h.heads.iter().map(|p| (p.shard, p.epoch)).collect();
    for peer in peers {
        let mut owners: Vec<String> = owned.iter().map(|s| maps.owner_of(peer, *s).rpc).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            let req = pb::WatermarksRequest {
                shards: shards.clone(),
            };
            let w = call(client, &owner, req).await?;
            let seen = w.watermarks.iter().any(|m| {
                m.origin_dc == dc
                    && m.position.is_some_and(|p| {
                        p.seq > 0 && log_epochs.get(&p.shard).is_some_and(|e| *e != p.epoch)
                    })
            });
            if seen {
                return Ok(Some(peer.id.clone()));
            }
        }
    }
    Ok(None)
}

async fn call<C: Call<Node>>(client: &RpcClient, addr: &str, req: C) -> Result<C::Answer> {
    client.node().call(addr, req, CALL).await
}

/// `source`'s log head of `shard`, as the watermark of `dc`'s log a copy from it gives.
async fn head(client: &RpcClient, source: &str, dc: &str, shard: u16) -> Result<pb::Watermark> {
    let req = pb::ChangeHeadsRequest {
        shards: vec![u32::from(shard)],
    };
    let mut h = call(client, source, req).await?;
    match h.heads.len() {
        1 => Ok(pb::Watermark {
            origin_dc: dc.to_string(),
            position: Some(h.heads.remove(0)),
        }),
        n => Err(Error::internal(format!(
            "the head of one shard from {source} came as {n}"
        ))),
    }
}

/// A peer owner to copy a shard from, with its watermarks of the shard as read before the
/// copy begins.
struct Source<'a> {
    peer: &'a DcConfig,
    addr: String,
    marks: Vec<pb::Watermark>,
}

/// Of `peers`' owners of `shard` that are seeded and answer, the one that has applied the
/// most of `dc`'s own log (so the fewest of this DC's earlier writes are missing from the
/// copy; first in configuration order on a tie).
async fn source<'a>(
    client: &RpcClient,
    maps: &ShardMaps,
    dc: &str,
    peers: &'a [DcConfig],
    shard: u16,
) -> Option<Source<'a>> {
    let mut best: Option<((u64, u64), Source<'a>)> = None;
    for peer in peers {
        let addr = maps.owner_of(peer, shard).rpc;
        match call(client, &addr, pb::SeedStatusRequest {}).await {
            Ok(s) if !s.unseeded => {}
            _ => continue,
        }
        let req = pb::WatermarksRequest {
            shards: vec![u32::from(shard)],
        };
        let Ok(w) = call(client, &addr, req).await else {
            continue;
        };
        let applied = w
            .watermarks
            .iter()
            .filter(|m| m.origin_dc == dc)
            .filter_map(|m| m.position.map(|p| (p.epoch, p.seq)))
            .max()
            .unwrap_or((0, 0));
        if best.as_ref().is_none_or(|(b, _)| applied > *b) {
            let marks = w.watermarks;
            best = Some((applied, Source { peer, addr, marks }));
        }
    }
    best.map(|(_, s)| s)
}

/// Copies `shard`'s records from `source` into `target` page by page (the first page
/// replaces what `target` held); returns how many.
async fn copy(client: &RpcClient, source: &str, target: &str, shard: u16) -> Result<u64> {
    let mut after = Vec::new();
    let mut copied = 0u64;
    loop {
        let read = pb::SeedReadRequest {
            shard: u32::from(shard),
            after: after.clone(),
            limit: PAGE,
            max_bytes: 0,
        };
        let page = call(client, source, read).await?;
        copied += page.records.len() as u64;
        let write = pb::SeedWriteRequest {
            shard: u32::from(shard),
            reset: after.is_empty(),
            records: page.records,
            collections: page.collections,
        };
        call(client, target, write).await?;
        if page.done || page.last.is_empty() {
            return Ok(copied);
        }
        after = page.last;
    }
}

/// Copies `shard` into `dc`'s node at `target` from a peer DC (see [`source`]): the
/// source's watermarks and log head first, then its records, then those positions become
/// the node's watermarks. Returns the records copied. With no peer DC at all (a single-DC
/// cluster) there is nothing to copy from, and the node serves what its store holds.
pub async fn seed_shard(
    client: &RpcClient,
    maps: &ShardMaps,
    dc: &str,
    target: &str,
    peers: &[DcConfig],
    shard: u16,
) -> Result<u64> {
    if peers.is_empty() {
        finish(client, target, shard, Vec::new()).await?;
        return Ok(0);
    }
    let Some(Source {
        peer,
        addr,
        mut marks,
    }) = source(client, maps, dc, peers, shard).await
    else {
        return Err(Error::unavailable(format!(
            "no peer DC has a seeded owner of shard {shard} that answers"
        )));
    };
    marks.push(head(client, &addr, &peer.id, shard).await?);
    let copied = copy(client, &addr, target, shard).await?;
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
    let req = pb::SeedFinishRequest {
        shard: u32::from(shard),
        watermarks,
    };
    call(client, target, req).await.map(|_| ())
}
