//! The storage node's RPC service: decodes a request, runs it on the blocking pool (RocksDB
//! calls block; a point read that memory can answer runs in place), and encodes the answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aerolith_common::rpc::{Handler, Node};
use aerolith_common::time::now_ms;
use aerolith_common::{Error, Result, pb};
use pb::request::Body as Req;
use pb::response::Body as Resp;

use crate::session::wait_covered;
use crate::store::Store;

/// Serves one store over the internal RPC.
pub struct NodeService {
    store: Arc<Store>,
    node: String,
    scan_budget: usize,
    /// DCs an operator marked in or out of service, as the replicator hands them over;
    /// pings answer with them, which is how gateways learn them. Held in memory only: the
    /// replicator keeps them and hands them over again every few seconds.
    dc_states: Arc<Mutex<BTreeMap<String, pb::DcState>>>,
    /// The directory backups are written below; `None` refuses them.
    backup_dir: Option<std::path::PathBuf>,
}

impl NodeService {
    /// A service for `store`, answering pings as `node`; scans examine at most `scan_budget`
    /// records per call.
    pub fn new(store: Arc<Store>, node: String, scan_budget: usize) -> Self {
        NodeService {
            store,
            node,
            scan_budget: scan_budget.max(1),
            dc_states: Arc::default(),
            backup_dir: None,
        }
    }

    /// The service writing backups only below `dir` (`None`: refusing them).
    pub fn with_backup_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.backup_dir = dir;
        self
    }
}

/// Runs one request against the store.
fn dispatch(store: &Store, body: Req, deadline: Instant, budget: usize) -> Result<Resp> {
    // A shipment's clock sample is taken on arrival, before the applies queue behind each
    // other.
    let arrived = now_ms();
    if !matches!(
        body,
        Req::SeedStatus(_)
            | Req::SeedDecide(_)
            | Req::SeedWrite(_)
            | Req::SeedFinish(_)
            | Req::PeerAcks(_)
            | Req::SetShardMap(_)
            | Req::GetShardMap(_)
    ) {
        store.serving()?;
    }
    Ok(match body {
        Req::Get(r) => Resp::Doc(store.get(&r)?),
        Req::Put(r) => Resp::Doc(store.put(&r, deadline)?),
        Req::Patch(r) => Resp::Doc(store.patch(&r, deadline)?),
        Req::Delete(r) => Resp::Doc(store.delete(&r, deadline)?),
        Req::List(r) => Resp::List(store.list(&r, budget)?),
        Req::Query(r) => Resp::Query(store.query(&r, deadline, budget)?),
        Req::ReadChanges(r) => Resp::Changes(store.read_changes(&r)?),
        Req::ChangeHeads(r) => Resp::Heads(store.change_heads(&r)?),
        Req::Apply(r) => {
            store.sample_peer_clock(&r.origin_dc, r.sender_wall_ms, arrived);
            Resp::Apply(store.apply(&r, deadline)?)
        }
        Req::ApplyBatch(b) => {
            // One shipment, one clock sample (its applies all carry the same send time).
            if let Some(a) = b.applies.first() {
                store.sample_peer_clock(&a.origin_dc, a.sender_wall_ms, arrived);
            }
            let results = store.apply_batch(&b.applies, deadline)?;
            // After the applies: a mark names the sender's log head, which they may reach.
            store.take_relayed(&b.relayed_via, &b.relayed)?;
            Resp::AppliedBatch(pb::ApplyBatchResponse { results })
        }
        Req::Watermarks(r) => Resp::Watermarks(store.watermarks(&r)?),
        Req::Digest(r) => Resp::Digests(store.digest(&r, deadline)?),
        Req::Range(r) => Resp::Range(store.range(&r, deadline)?),
        Req::ApplyCollection(m) => Resp::Collection(store.apply_collection(&m)?.0),
        // Waited for in `handle`, before the blocking pool.
        Req::AwaitMarks(_) => Resp::Empty(pb::Empty {}),
        Req::DcStates(_) => return Err(Error::internal("DC states are handled before storage")),
        Req::PutCollection(r) => Resp::PutCollection(store.put_collection(&r)?),
        Req::GetCollection(r) => match store.collection_meta(&r.name) {
            Some(m) => Resp::Collection(m),
            None => return Err(Error::not_found(format!("collection {} not found", r.name))),
        },
        Req::ListCollections(_) => Resp::Collections(pb::ListCollectionsResponse {
            collections: store.list_collections(),
        }),
        Req::DeleteCollection(r) => Resp::Collection(store.delete_collection(&r)?),
        Req::PutIndex(r) => Resp::PutCollection(store.put_index(&r)?),
        Req::DropIndex(r) => Resp::Collection(store.drop_index(&r)?),
        Req::IndexStates(r) => Resp::IndexStates(store.index_states(&r.collection)?),
        Req::Ping(_) => Resp::Empty(pb::Empty {}),
        Req::Bulk(r) => Resp::Bulk(bulk(store, r, deadline)),
        Req::SeedStatus(_) => Resp::SeedStatus(store.seed_status()),
        Req::SeedDecide(r) => {
            store.seed_decide(&r)?;
            Resp::Empty(pb::Empty {})
        }
        Req::SeedRead(r) => Resp::SeedRead(store.seed_read(&r)?),
        Req::SeedWrite(r) => {
            store.seed_write(&r)?;
            Resp::Empty(pb::Empty {})
        }
        Req::SeedFinish(r) => {
            store.seed_finish(&r)?;
            Resp::Empty(pb::Empty {})
        }
        Req::PeerAcks(r) => Resp::PeerAcks(store.peer_acks(&r)?),
        Req::Backup(r) => Resp::Backup(store.backup(&r)?),
        Req::SetShardMap(r) => Resp::ShardMap(store.set_shard_map(&r)?),
        Req::GetShardMap(_) => Resp::ShardMap(store.shard_map()),
        Req::ShardExport(r) => Resp::ShardExport(store.shard_export(&r)?),
        Req::ShardImport(r) => {
            store.shard_import(&r)?;
            Resp::Empty(pb::Empty {})
        }
        Req::ShardDrop(r) => {
            store.shard_drop(&r)?;
            Resp::Empty(pb::Empty {})
        }
        // Served in `handle`, item by item.
        Req::Batch(_) => return Err(Error::internal("a batch is served before storage")),
    })
}

/// Applies a bulk request's writes in order, each with its own result, as one commit
/// group: every write is staged, then waited for (see [`Store::finish_each`]).
fn bulk(store: &Store, req: pb::BulkRequest, deadline: Instant) -> pb::BulkResponse {
    use pb::bulk_op::Op;
    use pb::bulk_result::Outcome;
    let staged = req
        .ops
        .into_iter()
        .map(|op| match op.op {
            Some(Op::Put(r)) => store.stage_put(&r, deadline),
            Some(Op::Patch(r)) => store.stage_patch(&r, deadline),
            Some(Op::Delete(r)) => store.stage_delete(&r, deadline),
            None => Err(Error::invalid("empty bulk operation")),
        })
        .collect();
    let results = store
        .finish_each(staged)
        .into_iter()
        .map(|outcome| pb::BulkResult {
            outcome: Some(match outcome {
                Ok(doc) => Outcome::Doc(doc),
                Err(e) => Outcome::Error(pb::RpcError {
                    code: e.code.as_str().to_string(),
                    message: e.message,
                }),
            }),
        })
        .collect();
    pb::BulkResponse { results }
}

/// The marks a request must wait for before it runs: a session's reads, and its writes
/// (whose preconditions and patches must see the state the session has seen).
pub(crate) fn session_marks(body: &Req) -> std::borrow::Cow<'_, [pb::SessionMark]> {
    use pb::bulk_op::Op;
    use std::borrow::Cow;
    match body {
        Req::Get(r) => Cow::Borrowed(&r.session),
        Req::List(r) => Cow::Borrowed(&r.session),
        Req::Query(r) => Cow::Borrowed(&r.session),
        Req::AwaitMarks(r) => Cow::Borrowed(&r.marks),
        Req::Put(r) => Cow::Borrowed(&r.session),
        Req::Patch(r) => Cow::Borrowed(&r.session),
        Req::Delete(r) => Cow::Borrowed(&r.session),
        Req::Bulk(b) => Cow::Owned(
            b.ops
                .iter()
                .flat_map(|op| match &op.op {
                    Some(Op::Put(r)) => r.session.as_slice(),
                    Some(Op::Patch(r)) => r.session.as_slice(),
                    Some(Op::Delete(r)) => r.session.as_slice(),
                    None => &[],
                })
                .cloned()
                .collect(),
        ),
        _ => Cow::Borrowed(&[]),
    }
}

/// Time kept back from a live read's deadline, so its answer reaches the caller in time.
const TAIL_MARGIN: Duration = Duration::from_millis(500);

/// A live read: answers at once when changes are waiting, otherwise when the next one commits
/// or when `wait_ms` (bounded by the deadline) runs out, with the positions reached.
async fn tail(
    store: Arc<Store>,
    mut req: pb::ReadChangesRequest,
    deadline: Instant,
) -> Result<pb::ReadChangesResponse> {
    let until = (Instant::now() + Duration::from_millis(u64::from(req.wait_ms)))
        .min(deadline.checked_sub(TAIL_MARGIN).unwrap_or(deadline));
    let mut commits = store.watch_commits();
    let mut start: Option<Vec<pb::ShardPosition>> = None;
    loop {
        commits.borrow_and_update();
        let s = store.clone();
        let r = req.clone();
        let mut resp = tokio::task::spawn_blocking(move || s.read_changes(&r))
            .await
            .map_err(|e| Error::internal(format!("storage task failed: {e}")))??;
        // The caller's start is where the first read started, even after empty rounds.
        let first_start = start.get_or_insert_with(|| resp.start.clone()).clone();
        if !resp.events.is_empty() || Instant::now() >= until {
            resp.start = first_start;
            return Ok(resp);
        }
        // Nothing of this collection yet: continue from where this read got to, following
        // the incarnation this read saw, so that the collection deleted (or re-created)
        // during the wait ends the read with `not_found` instead of an answer that no
        // longer names any incarnation (a quiet subscriber would never learn of the delete).
        req.from = resp.through.clone();
        if resp.live && !req.follow {
            req.follow = true;
            req.incarnation = resp.incarnation;
        }
        if tokio::time::timeout_at(until.into(), commits.changed())
            .await
            .is_err()
        {
            resp.start = first_start;
            return Ok(resp);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a request on the blocking pool, after waiting for any session marks it carries
/// (a session read, or an `all` write's confirmation, waits for replication first).
async fn run(store: Arc<Store>, body: Req, deadline: Instant, budget: usize) -> Result<Resp> {
    store.check_owned(&body)?;
    let marks = session_marks(&body);
    if !marks.is_empty() {
        store.serving()?;
        // Give up a little before the caller does, so it learns why.
        let margin = TAIL_MARGIN.min(deadline.saturating_duration_since(Instant::now()) / 10);
        let until = deadline.checked_sub(margin).unwrap_or(deadline);
        wait_covered(&store, &marks, until).await?;
    }
    drop(marks);
    // A point read that memory can answer is answered here: the blocking pool's hand-off
    // costs more than the read.
    if let Req::Get(r) = &body {
        store.serving()?;
        if let Some(doc) = store.get_cached(r)? {
            return Ok(Resp::Doc(doc));
        }
    }
    tokio::task::spawn_blocking(move || dispatch(&store, body, deadline, budget))
        .await
        .map_err(|e| Error::internal(format!("storage task failed: {e}")))?
}

impl Handler for NodeService {
    type Service = Node;

    fn handle(&self, call: Req, deadline: Instant) -> impl Future<Output = Result<Resp>> + Send {
        let store = self.store.clone();
        let states = self.dc_states.clone();
        let pong = matches!(call, Req::Ping(_)).then(|| pb::PingResponse {
            dc: store.dc.clone(),
            node: self.node.clone(),
            dc_states: lock(&states).values().cloned().collect(),
            not_serving: store.serving().err().map(|e| e.message).unwrap_or_default(),
            map_epoch: store.map_epoch(),
        });
        let budget = self.scan_budget;
        let backup_dir = self.backup_dir.clone();
        async move {
            match call {
                Req::Backup(mut r) => {
                    let dir = crate::backup::resolve_dir(backup_dir.as_deref(), &r.dir)?;
                    r.dir = dir.to_string_lossy().into_owned();
                    run(store, Req::Backup(r), deadline, budget).await
                }
                Req::Ping(_) => Ok(Resp::Pong(pong.unwrap_or_default())),
                Req::DcStates(r) => {
                    aerolith_common::dc_state::merge(&mut lock(&states), &r.states);
                    Ok(Resp::Empty(pb::Empty {}))
                }
                Req::Batch(b) => Ok(Resp::Batch(crate::batch::serve(store, b.items).await)),
                Req::ReadChanges(r) if r.wait_ms > 0 => {
                    store.serving()?;
                    store.check_owner(r.from.iter().map(|p| p.shard))?;
                    tail(store, r, deadline).await.map(Resp::Changes)
                }
                body => run(store, body, deadline, budget).await,
            }
        }
    }
}
