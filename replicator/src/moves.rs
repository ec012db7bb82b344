//! Shard moves within the DC (issue 25), coordinated by its replicator, the one writer of
//! the DC's shard map. A move of shard *s* from node A to node B:
//!
//! 1. **Fence**: a map marking *s* as moving is saved and handed to A first; from then A
//!    refuses writes of *s* (gateways wait and retry, peer DCs' shipments of it are retried)
//!    and has made every write it took durable.
//! 2. **Copy**: A exports everything it holds of *s* from one snapshot, B imports it (the
//!    first page replaces whatever B held of it). The shard's log, counters, watermarks,
//!    tombstones, idempotency records and index entries arrive byte for byte.
//! 3. **Flip**: a map giving *s* to B is saved and handed to B, then to A, then to every
//!    node; gateways learn it from the first node that refuses them. Writes resume at B.
//! 4. **Drop**: A drops its copy.
//!
//! Every step's outcome is in the map or in `moves.json` before the next begins, so a move
//! interrupted by a crash of either node or of this replicator is resumed from its step
//! when the replicator runs again (a fenced shard is copied again from the start; an
//! import always replaces), or rolled back (the fence lifted) when the receiving node
//! stays unreachable. Moves run one at a time, each followed by a rest [`REST_FACTOR`]
//! times as long as it took, so moving takes at most a quarter of the time of the DC's
//! storage nodes while it runs (docs/BENCHMARKS.md measures what that costs the
//! foreground).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use aerolith_common::rpc::RpcClient;
use aerolith_common::shard_map::{ShardMap, ShardMaps};
use aerolith_common::time::now_ms;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, Result, pb};

use crate::shard_map::MapStore;

/// Deadline of one move call.
const CALL: Duration = Duration::from_secs(30);
/// How long a node a move needs may stay unreachable before the move is rolled back.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Pause between attempts to reach a node a move needs.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Bytes asked for per export page.
const PAGE_BYTES: u64 = 4 * 1024 * 1024;
/// A move is followed by a rest this many times as long as it took. With 1 (half the
/// nodes' time) a million-document DC's foreground throughput fell to 0.52-0.57 of before
/// while a quarter of its shards moved; issue 25 allows a fall of 30 % at most.
const REST_FACTOR: u32 = 3;
/// The longest rest after one move.
const REST_MAX: Duration = Duration::from_secs(30);
/// Moves kept in the list once finished.
const KEEP_FINISHED: usize = 1000;

/// Where a move stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Planned, not started.
    Queued,
    /// Fenced and copying (or flipping).
    Running,
    /// The shard is served by its new owner.
    Done,
    /// Rolled back: the shard stays with its old owner.
    Failed,
}

/// One shard move, as `GET /admin/moves` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// Its number, in the order moves were planned.
    pub id: u64,
    /// The shard.
    pub shard: u16,
    /// The node it moves from.
    pub from: String,
    /// The node it moves to.
    pub to: String,
    /// Where it stands.
    pub state: MoveState,
    /// Keys of the shard copied so far (documents, log entries, index entries, counters).
    pub copied: u64,
    /// Keys of the shard in all (known once the copy starts).
    pub total: u64,
    /// Bytes copied so far.
    pub bytes: u64,
    /// When it was planned (ms since the epoch).
    pub planned_ms: u64,
    /// When it started, if it has.
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// When it ended, if it has.
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// How long the shard took no writes (fence to flip), once known.
    #[serde(default)]
    pub pause_ms: Option<u64>,
    /// Whether the old owner dropped its copy.
    #[serde(default)]
    pub dropped: bool,
    /// Why it failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// The moves, kept in `moves.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    next_id: u64,
    moves: Vec<Move>,
}

/// Plans and runs the DC's shard moves.
pub struct Mover {
    client: Arc<RpcClient>,
    maps: Arc<ShardMaps>,
    store: MapStore,
    local: DcConfig,
    file: PathBuf,
    book: Mutex<Book>,
    /// Serialises changes of the map.
    map_lock: tokio::sync::Mutex<()>,
    wake: Notify,
}

impl Mover {
    /// The mover of DC `local`, with its moves from `dir/moves.json`.
    pub fn open(
        dir: &Path,
        client: Arc<RpcClient>,
        maps: Arc<ShardMaps>,
        store: MapStore,
        local: DcConfig,
    ) -> Result<Mover> {
        let file = dir.join("moves.json");
        let book = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid(format!(
                    "{} does not parse ({e}); restore it or move it away",
                    file.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book::default(),
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot read {}: {e}",
                    file.display()
                )));
            }
        };
        Ok(Mover {
            client,
            maps,
            store,
            local,
            file,
            book: Mutex::new(book),
            map_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every move, oldest first.
    pub fn moves(&self) -> Vec<Move> {
        self.lock().moves.clone()
    }

    fn save(&self, book: &Book) -> Result<()> {
        crate::checkpoint::write_json(&self.file, book, true)
    }

    /// Changes the map (at the next epoch) with `change`, saves it and keeps it; hands it
    /// to `first` (in order, each until it answers or `GIVE_UP_AFTER` passes), then to
    /// every node.
    async fn change_map(
        &self,
        change: impl FnOnce(&mut ShardMap) -> Result<()>,
        first: &[String],
    ) -> Result<Arc<ShardMap>> {
        let guard = self.map_lock.lock().await;
        let mut next = self.maps.get(&self.local.id)?.next();
        change(&mut next)?;
        next.addresses(&self.local)?;
        self.store.save(&next)?;
        self.maps.learn(&next.to_pb())?;
        drop(guard);
        let map = self.maps.get(&self.local.id)?;
        for id in first {
            self.hand_to(id, &map).await?;
        }
        if let Err(e) =
            crate::shard_map::hand_out(&self.client, &self.maps, &self.store, &self.local).await
        {
            tracing::warn!(error = %e.message, "cannot hand out the shard map; the next round will");
        }
        Ok(map)
    }

    /// Hands `map` to node `id`, retrying while it is unreachable, for `GIVE_UP_AFTER`.
    async fn hand_to(&self, id: &str, map: &ShardMap) -> Result<()> {
        let started = Instant::now();
        loop {
            let addr = self.addr_of(id)?;
            let req = pb::SetShardMapRequest {
                map: Some(map.to_pb()),
            };
            match self.client.node().set_shard_map(&addr, req, CALL).await {
                Ok(held) if held.epoch >= map.epoch => return Ok(()),
                Ok(held) => {
                    return Err(Error::internal(format!(
                        "node {id} kept shard map epoch {} over {}",
                        held.epoch, map.epoch
                    )));
                }
                Err(e) if started.elapsed() >= GIVE_UP_AFTER => {
                    return Err(Error::unavailable(format!(
                        "node {id} did not take the shard map: {}",
                        e.message
                    )));
                }
                Err(_) => tokio::time::sleep(RETRY_EVERY).await,
            }
        }
    }

    fn addr_of(&self, id: &str) -> Result<String> {
        self.maps
            .nodes(&self.local.id)
            .into_iter()
            .find(|n| n.id == id)
            .map(|n| n.rpc)
            .ok_or_else(|| Error::not_found(format!("node {id} is not in DC {}", self.local.id)))
    }

    /// Lists node `id` at `rpc` in the map (it owns nothing until a rebalance); it must
    /// answer at that address as that node of this DC.
    pub async fn add_node(&self, id: &str, rpc: &str) -> Result<bool> {
        aerolith_common::name::validate_node(id)?;
        let map = self.maps.get(&self.local.id)?;
        if let Some(n) = map.node(id) {
            let same = n.rpc == rpc || self.local.nodes.iter().any(|c| c.id == id && c.rpc == rpc);
            return if same && !n.leaving {
                Ok(false)
            } else {
                Err(Error::already_exists(format!(
                    "node {id} is already in DC {} at {}",
                    self.local.id, n.rpc
                )))
            };
        }
        // A few tries: a connection to an earlier process at that address fails once.
        let mut pong = None;
        let mut last = String::new();
        for _ in 0..5 {
            match self
                .client
                .node()
                .ping(rpc, pb::PingRequest {}, Duration::from_secs(2))
                .await
            {
                Ok(p) => {
                    pong = Some(p);
                    break;
                }
                Err(e) => {
                    last = e.message;
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        }
        let pong = pong.ok_or_else(|| {
            Error::unavailable(format!(
                "no storage node answers at {rpc}: {last}; start it first"
            ))
        })?;
        if pong.dc != self.local.id || pong.node != id {
            return Err(Error::invalid(format!(
                "the storage node at {rpc} is {}/{}, not {}/{id}",
                pong.dc, pong.node, self.local.id
            )));
        }
        self.change_map(
            |m| {
                m.add_node(id, rpc);
                Ok(())
            },
            &[],
        )
        .await?;
        tracing::info!(dc = %self.local.id, node = id, %rpc, "storage node added to the shard map");
        Ok(true)
    }

    /// Marks node `id` as leaving and plans moves of all its shards to the other nodes.
    pub async fn decommission(&self, id: &str) -> Result<Vec<Move>> {
        let map = self.maps.get(&self.local.id)?;
        let node = map
            .node(id)
            .ok_or_else(|| Error::not_found(format!("node {id} is not in DC {}", self.local.id)))?;
        let staying = map
            .nodes()
            .iter()
            .filter(|n| !n.leaving && n.id != id)
            .count();
        if staying == 0 {
            return Err(Error::invalid(format!(
                "node {id} is the last one of DC {} that stays; add another first",
                self.local.id
            )));
        }
        if !node.leaving {
            self.change_map(
                |m| {
                    m.set_leaving(id, true);
                    Ok(())
                },
                &[],
            )
            .await?;
            tracing::info!(dc = %self.local.id, node = id, "decommissioning a storage node");
        }
        self.rebalance()
    }

    /// Plans the moves after which no staying node owns more than ⌈shards/N⌉ shards (N the
    /// nodes that stay) and leaving nodes own none; answers the moves planned now.
    pub fn rebalance(&self) -> Result<Vec<Move>> {
        let map = self.maps.get(&self.local.id)?;
        let mut book = self.lock();
        let pending: Vec<(u16, String)> = book
            .moves
            .iter()
            .filter(|m| matches!(m.state, MoveState::Queued | MoveState::Running))
            .map(|m| (m.shard, m.to.clone()))
            .collect();
        let plan = plan(&map, &pending);
        let mut planned = Vec::new();
        for (shard, from, to) in plan {
            book.next_id += 1;
            let m = Move {
                id: book.next_id,
                shard,
                from,
                to,
                state: MoveState::Queued,
                copied: 0,
                total: 0,
                bytes: 0,
                planned_ms: now_ms(),
                started_ms: None,
                finished_ms: None,
                pause_ms: None,
                dropped: false,
                error: None,
            };
            book.moves.push(m.clone());
            planned.push(m);
        }
        self.save(&book)?;
        drop(book);
        self.wake.notify_one();
        Ok(planned)
    }

    /// Runs moves as they are planned, one at a time, until aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let book = self.lock();
                book.moves
                    .iter()
                    .find(|m| matches!(m.state, MoveState::Queued | MoveState::Running))
                    .cloned()
            };
            let Some(m) = next else {
                self.retire_leavers().await;
                self.drop_leftovers().await;
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                continue;
            };
            let started = Instant::now();
            let outcome = self.execute(m.clone()).await;
            if let Err(e) = outcome {
                tracing::warn!(shard = m.shard, from = %m.from, to = %m.to, error = %e.message, "shard move failed");
                self.update(m.id, |r| {
                    r.state = MoveState::Failed;
                    r.finished_ms = Some(now_ms());
                    r.error = Some(e.message.clone());
                });
            }
            tokio::time::sleep((started.elapsed() * REST_FACTOR).min(REST_MAX)).await;
        }
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Move)) {
        let mut book = self.lock();
        if let Some(m) = book.moves.iter_mut().find(|m| m.id == id) {
            f(m);
        }
        let finished = book
            .moves
            .iter()
            .filter(|m| matches!(m.state, MoveState::Done | MoveState::Failed))
            .count();
        if finished > KEEP_FINISHED {
            let mut drop_n = finished - KEEP_FINISHED;
            book.moves.retain(|m| {
                let old = matches!(m.state, MoveState::Done | MoveState::Failed);
                if old && drop_n > 0 {
                    drop_n -= 1;
                    false
                } else {
                    true
                }
            });
        }
        if let Err(e) = self.save(&book) {
            tracing::warn!(error = %e.message, "cannot save the moves");
        }
    }

    /// One move, from wherever it stands (the map says which steps are done).
    async fn execute(&self, m: Move) -> Result<()> {
        let map = self.maps.get(&self.local.id)?;
        let (shard, from, to) = (m.shard, m.from.clone(), m.to.clone());
        if map.owner(shard) == to && !map.is_moving(shard) {
            // Flipped before a crash: hand it out again and drop the old copy.
            self.finish(&m, &map).await;
            return Ok(());
        }
        if map.owner(shard) != from {
            return Err(Error::invalid(format!(
                "shard {shard} is owned by {}, not {from}; the move is void",
                map.owner(shard)
            )));
        }
        if map.node(&to).is_none_or(|n| n.leaving) {
            return Err(Error::invalid(format!("node {to} cannot take shards")));
        }
        self.update(m.id, |r| {
            r.state = MoveState::Running;
            r.started_ms.get_or_insert(now_ms());
        });
        let fenced_at = Instant::now();
        if !map.is_moving(shard) {
            let fenced = self
                .change_map(
                    |next| {
                        next.set_moving(shard, true);
                        Ok(())
                    },
                    std::slice::from_ref(&from),
                )
                .await;
            if let Err(e) = fenced {
                self.roll_back(shard, &from).await;
                return Err(e);
            }
        } else {
            // Fenced before a crash: make sure the owner holds the fence.
            self.hand_to(&from, &map).await?;
        }
        if let Err(e) = self.copy(&m).await {
            self.roll_back(shard, &from).await;
            return Err(e);
        }
        let flipped = self
            .change_map(
                |next| next.set_owner(shard, &to),
                &[to.clone(), from.clone()],
            )
            .await;
        let pause = fenced_at.elapsed().as_millis() as u64;
        let map = self.maps.get(&self.local.id)?;
        match flipped {
            // Not saved: the shard stays where it was.
            Err(e) if map.owner(shard) != to => {
                self.roll_back(shard, &from).await;
                return Err(e);
            }
            // Saved (the map is durable) though a node did not take it yet: it gets it from
            // the hand-out loop; the move is done.
            Err(e) => {
                tracing::warn!(shard, error = %e.message, "a node did not take the shard map that ends a move yet");
            }
            Ok(_) => {}
        }
        self.update(m.id, |r| r.pause_ms = Some(pause));
        tracing::info!(shard, %from, %to, pause_ms = pause, "shard moved");
        metrics::counter!("aerolith_shard_moves_total").increment(1);
        metrics::histogram!("aerolith_shard_move_pause_seconds").record(pause as f64 / 1000.0);
        self.finish(&m, &map).await;
        Ok(())
    }

    /// Copies the fenced shard from its owner to the new one, page by page.
    async fn copy(&self, m: &Move) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.copy_once(m).await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() >= GIVE_UP_AFTER => return Err(e),
                Err(e) => {
                    tracing::debug!(shard = m.shard, error = %e.message, "shard copy interrupted; starting it again");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        }
    }

    async fn copy_once(&self, m: &Move) -> Result<()> {
        let (from, to) = (self.addr_of(&m.from)?, self.addr_of(&m.to)?);
        let node = self.client.node();
        let (mut offset, mut bytes, mut first) = (0u64, 0u64, true);
        loop {
            let req = pb::ShardExportRequest {
                shard: u32::from(m.shard),
                offset,
                max_bytes: PAGE_BYTES,
            };
            let page = node.shard_export(&from, req, CALL).await?;
            let size: u64 = page
                .entries
                .iter()
                .map(|e| (e.key.len() + e.value.len()) as u64)
                .sum();
            let import = pb::ShardImportRequest {
                shard: u32::from(m.shard),
                reset: first,
                entries: page.entries,
                finish: page.done,
            };
            node.shard_import(&to, import, CALL).await?;
            first = false;
            offset = page.next;
            bytes += size;
            self.update(m.id, |r| {
                r.copied = offset;
                r.total = page.total;
                r.bytes = bytes;
            });
            if page.done {
                return Ok(());
            }
        }
    }

    /// Lifts the fence of `shard` (its owner takes writes again).
    async fn roll_back(&self, shard: u16, from: &str) {
        let lifted = self
            .change_map(
                |next| {
                    next.set_moving(shard, false);
                    Ok(())
                },
                &[from.to_string()],
            )
            .await;
        if let Err(e) = lifted {
            tracing::error!(shard, error = %e.message, "cannot hand the map lifting a move's fence to the shard's owner; it is handed out again every second");
        }
    }

    /// After the flip: the move is done; the old owner drops its copy.
    async fn finish(&self, m: &Move, map: &ShardMap) {
        let dropped = self.drop_copy(m.shard, &m.from, map).await;
        self.update(m.id, |r| {
            r.state = MoveState::Done;
            r.finished_ms.get_or_insert(now_ms());
            r.dropped = dropped;
        });
    }

    async fn drop_copy(&self, shard: u16, from: &str, map: &ShardMap) -> bool {
        let Ok(addr) = self.addr_of(from) else {
            return false;
        };
        if self.hand_to(from, map).await.is_err() {
            return false;
        }
        let req = pb::ShardDropRequest {
            shard: u32::from(shard),
        };
        self.client
            .node()
            .shard_drop(&addr, req, CALL)
            .await
            .is_ok()
    }

    /// Drops the old copies a finished move could not drop then.
    async fn drop_leftovers(&self) {
        let left: Vec<Move> = self
            .lock()
            .moves
            .iter()
            .filter(|m| m.state == MoveState::Done && !m.dropped)
            .cloned()
            .collect();
        let Ok(map) = self.maps.get(&self.local.id) else {
            return;
        };
        for m in left {
            if map.owner(m.shard) == m.from {
                // Moved back since: nothing to drop.
                self.update(m.id, |r| r.dropped = true);
            } else if self.drop_copy(m.shard, &m.from, &map).await {
                self.update(m.id, |r| r.dropped = true);
            }
        }
    }

    /// Takes leaving nodes that own nothing any more off the map: they may be stopped.
    async fn retire_leavers(&self) {
        let Ok(map) = self.maps.get(&self.local.id) else {
            return;
        };
        let done: Vec<String> = map
            .nodes()
            .iter()
            .filter(|n| n.leaving && map.shards_of(&n.id).is_empty())
            .map(|n| n.id.clone())
            .collect();
        for id in done {
            let removed = self.change_map(|next| next.remove_node(&id), &[]).await;
            match removed {
                Ok(_) => {
                    tracing::info!(dc = %self.local.id, node = %id, "storage node decommissioned: it owns no shard and may be stopped")
                }
                Err(e) => {
                    tracing::warn!(node = %id, error = %e.message, "cannot take a decommissioned node off the map")
                }
            }
        }
    }
}

/// The moves that balance `map`: `(shard, from, to)`, given moves already planned
/// (`pending`: shard and destination). Staying nodes end with ⌊S/N⌋ or ⌈S/N⌉ shards
/// (those holding the most keep the extra one), leaving nodes with none.
pub fn plan(map: &ShardMap, pending: &[(u16, String)]) -> Vec<(u16, String, String)> {
    let staying: Vec<&str> = map
        .nodes()
        .iter()
        .filter(|n| !n.leaving)
        .map(|n| n.id.as_str())
        .collect();
    if staying.is_empty() {
        return Vec::new();
    }
    // Where each shard will be once the pending moves are done.
    let mut owner: Vec<String> = (0..map.shards())
        .map(|s| map.owner(s).to_string())
        .collect();
    for (s, to) in pending {
        if let Some(o) = owner.get_mut(usize::from(*s)) {
            *o = to.clone();
        }
    }
    let busy: Vec<u16> = pending.iter().map(|(s, _)| *s).collect();
    let total = usize::from(map.shards());
    let (base, extra) = (total / staying.len(), total % staying.len());
    // The extra shards go to the nodes that hold the most already.
    let count = |id: &str, owner: &[String]| owner.iter().filter(|o| *o == id).count();
    let mut by_load: Vec<&str> = staying.clone();
    by_load.sort_by_key(|id| std::cmp::Reverse(count(id, &owner)));
    let target = |id: &str| {
        let rank = by_load.iter().position(|n| *n == id).unwrap_or(usize::MAX);
        if !staying.contains(&id) {
            0
        } else if rank < extra {
            base + 1
        } else {
            base
        }
    };
    // Shards to give away, from the highest shard of each over-full node down.
    let mut spare: Vec<(u16, String)> = Vec::new();
    let mut ids: Vec<String> = map.nodes().iter().map(|n| n.id.clone()).collect();
    for id in owner.iter() {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    for id in &ids {
        let mut mine: Vec<u16> = (0..map.shards())
            .filter(|s| owner[usize::from(*s)] == *id && !busy.contains(s))
            .collect();
        let over = mine.len().saturating_sub(target(id));
        for s in mine
            .split_off(mine.len() - over.min(mine.len()))
            .into_iter()
            .rev()
        {
            spare.push((s, id.clone()));
        }
    }
    let mut out = Vec::new();
    for to in &staying {
        let mut have = count(to, &owner);
        while have < target(to) {
            let Some((s, from)) = spare.pop() else {
                break;
            };
            owner[usize::from(s)] = to.to_string();
            out.push((s, from, to.to_string()));
            have += 1;
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerolith_common::topology::ClusterConfig;

    fn map(nodes: usize, shards: u16) -> ShardMap {
        let list: Vec<String> = (1..=nodes)
            .map(|i| format!("{{ id = \"n{i}\", rpc = \"a:{i}\" }}"))
            .collect();
        let c = ClusterConfig::parse(&format!(
            "shards = {shards}\n[[dcs]]\nid = \"dc1\"\nnodes = [{}]",
            list.join(", ")
        ))
        .unwrap();
        ShardMap::initial(c.dc("dc1").unwrap(), shards)
    }

    fn apply(m: &mut ShardMap, moves: &[(u16, String, String)]) {
        for (s, from, to) in moves {
            assert_eq!(m.owner(*s), from, "shard {s}");
            m.set_owner(*s, to).unwrap();
        }
    }

    fn loads(m: &ShardMap) -> Vec<usize> {
        m.nodes().iter().map(|n| m.shards_of(&n.id).len()).collect()
    }

    #[test]
    fn a_new_node_gets_its_share_and_nothing_else_moves() {
        let mut m = map(3, 64);
        m.add_node("n4", "a:4");
        let moves = plan(&m, &[]);
        assert_eq!(moves.len(), 16, "{moves:?}");
        assert!(moves.iter().all(|(_, _, to)| to == "n4"));
        apply(&mut m, &moves);
        assert_eq!(loads(&m), vec![16, 16, 16, 16]);
        assert!(plan(&m, &[]).is_empty(), "balanced maps plan nothing");
    }

    #[test]
    fn leaving_nodes_are_emptied_and_uneven_counts_stay_within_one() {
        let mut m = map(4, 64);
        m.set_leaving("n2", true);
        let moves = plan(&m, &[]);
        assert!(moves.iter().all(|(_, from, _)| from == "n2"), "{moves:?}");
        apply(&mut m, &moves);
        let l = loads(&m);
        assert_eq!(l[1], 0);
        let staying: Vec<usize> = [l[0], l[2], l[3]].to_vec();
        assert!(staying.iter().all(|c| *c == 21 || *c == 22), "{l:?}");
        // Pending moves count as done: planning again adds nothing.
        let mut m = map(3, 16);
        m.add_node("n4", "a:4");
        let first = plan(&m, &[]);
        let pending: Vec<(u16, String)> = first.iter().map(|(s, _, to)| (*s, to.clone())).collect();
        assert!(plan(&m, &pending).is_empty());
    }
}
