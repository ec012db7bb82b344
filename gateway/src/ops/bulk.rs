//! Bulk writes: per-op results in op order, the ops grouped into one RPC per shard owner.
//! Ops on one id keep their order (they go to the same node, which applies them in order);
//! nothing is atomic across documents.

use std::collections::BTreeMap;

use futures::future::join_all;
use serde::Serialize;
use serde_json::{Map, Value};

use aerolith_common::document::version_of;
use aerolith_common::json::encode_object;
use aerolith_common::name::{validate_collection, validate_doc_id};
use aerolith_common::patch::PatchKind;
use aerolith_common::rpc::client::Fate;
use aerolith_common::{Error, ErrorCode, Result, pb};

use super::{Ctx, Ops, Precondition};

/// Most ops one bulk request may hold.
pub const MAX_BULK_OPS: usize = 1000;

/// How often a bulk's ops refused with `not_owner` are sent again to their new owners.
const NOT_OWNER_ROUNDS: u32 = crate::router::NOT_OWNER_RETRIES;

/// The shard a bulk op writes.
fn shard_of(op: &pb::BulkOp) -> u16 {
    match &op.op {
        Some(pb::bulk_op::Op::Put(r)) => r.shard as u16,
        Some(pb::bulk_op::Op::Patch(r)) => r.shard as u16,
        Some(pb::bulk_op::Op::Delete(r)) => r.shard as u16,
        None => 0,
    }
}

/// Largest bulk request body: keeps every per-node bulk RPC within the internal frame cap.
pub const BULK_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The outcome of one op, as API.md renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkItem {
    /// The document id (generated for a put without one; null if the op had no usable id).
    pub id: Option<String>,
    /// The HTTP status the op would have had on its own.
    pub status: u16,
    /// The new version, for puts and patches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The error, for ops that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BulkError>,
}

/// An op's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkError {
    /// The error code.
    pub code: String,
    /// The message.
    pub message: String,
}

fn failed(id: Option<String>, e: &Error) -> BulkItem {
    BulkItem {
        id,
        status: e.code.http_status(),
        version: None,
        error: Some(BulkError {
            code: e.code.as_str().to_string(),
            message: e.message.clone(),
        }),
    }
}

/// One op of a bulk request, as each adapter builds it from its own wire form.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkOp {
    /// Create or replace document `id`; without an id, create one under a generated id
    /// (the put-or-create rule of [`Ops::put_target`]).
    Put {
        /// The document, if named.
        id: Option<String>,
        /// Its new data.
        data: Map<String, Value>,
        /// `If-Match` and friends.
        pre: Precondition,
    },
    /// Patch document `id`.
    Patch {
        /// The document.
        id: String,
        /// Merge patch or JSON Patch.
        kind: PatchKind,
        /// The patch document.
        patch: Value,
        /// `If-Match`.
        pre: Precondition,
    },
    /// Delete document `id`.
    Delete {
        /// The document.
        id: String,
        /// `If-Match`.
        pre: Precondition,
    },
}

/// An op its adapter could not read: it fails alone, with its id if it had a usable one.
#[derive(Debug, Clone)]
pub struct BadOp {
    /// The op's id, if it had a usable one.
    pub id: Option<String>,
    /// Why it cannot run.
    pub error: Error,
}

/// One op as an adapter hands it over: readable, or failing alone.
pub type BulkInput = std::result::Result<BulkOp, BadOp>;

/// One op ready to send: its id, its success status (0 for puts: 201 or 200, decided by
/// the node), the RPC, and its idempotency scope and fingerprint.
struct Built {
    id: String,
    status: u16,
    rpc: pb::bulk_op::Op,
    scope: String,
    fingerprint: Vec<u8>,
}

impl Ops {
    /// Checks one op and builds its RPC; `key` is the op's idempotency key (derived from
    /// the request's), which places a generated id.
    fn build_op(
        &self,
        collection: &str,
        op: BulkOp,
        key: Option<&str>,
    ) -> std::result::Result<Built, BadOp> {
        let (id, scope, pre) = match &op {
            BulkOp::Put { id, pre, .. } => self
                .put_target(collection, id.as_deref(), key, pre)
                .map_err(|error| BadOp {
                    id: id.clone(),
                    error,
                })?,
            BulkOp::Patch { id, pre, .. } | BulkOp::Delete { id, pre } => {
                (id.clone(), id.clone(), pre.clone())
            }
        };
        let bad = |error| BadOp {
            id: Some(id.clone()),
            error,
        };
        validate_doc_id(&id).map_err(bad)?;
        let shard = self.router.shard_of(collection, &id) as u32;
        let precondition = pre.to_proto();
        let (status, rpc, content) = match op {
            BulkOp::Put { data, .. } => {
                let body = encode_object(&data, self.limits).map_err(bad)?;
                let rpc = pb::bulk_op::Op::Put(pb::PutRequest {
                    shard,
                    collection: collection.to_string(),
                    id: id.clone(),
                    body: body.clone(),
                    precondition,
                    ..Default::default()
                });
                (0, rpc, [b"put".to_vec(), body])
            }
            BulkOp::Patch { kind, patch, .. } => {
                let patch = serde_json::to_vec(&patch)
                    .map_err(Error::internal)
                    .map_err(bad)?;
                let kind = match kind {
                    PatchKind::Merge => pb::PatchKind::Merge,
                    PatchKind::JsonPatch => pb::PatchKind::JsonPatch,
                };
                let rpc = pb::bulk_op::Op::Patch(pb::PatchRequest {
                    shard,
                    collection: collection.to_string(),
                    id: id.clone(),
                    kind: kind as i32,
                    patch: patch.clone(),
                    precondition,
                    ..Default::default()
                });
                (200, rpc, [vec![b'p', kind as u8], patch])
            }
            BulkOp::Delete { .. } => {
                let rpc = pb::bulk_op::Op::Delete(pb::DeleteRequest {
                    shard,
                    collection: collection.to_string(),
                    id: id.clone(),
                    precondition,
                    ..Default::default()
                });
                (204, rpc, [b"delete".to_vec(), Vec::new()])
            }
        };
        let fingerprint = aerolith_common::idempotency::fingerprint(&[
            b"bulk",
            collection.as_bytes(),
            scope.as_bytes(),
            &content[0],
            &content[1],
            &pre.fingerprint(),
        ]);
        Ok(Built {
            id,
            status,
            rpc,
            scope,
            fingerprint,
        })
    }

    /// Runs bulk ops against one collection: per-op results in op order.
    pub async fn bulk(
        &self,
        ctx: Ctx,
        collection: &str,
        ops: Vec<BulkInput>,
    ) -> Result<Vec<BulkItem>> {
        validate_collection(collection)?;
        if ops.len() > MAX_BULK_OPS {
            return Err(Error::invalid(format!(
                "a bulk request may hold at most {MAX_BULK_OPS} ops, not {}",
                ops.len()
            )));
        }
        let mut results: Vec<Option<BulkItem>> = vec![None; ops.len()];
        let mut ids: Vec<Option<String>> = vec![None; ops.len()];
        let mut statuses = vec![0u16; ops.len()];
        // Per owner node, the ops it runs, in op order.
        let mut by_node: BTreeMap<String, Vec<(usize, pb::BulkOp)>> = BTreeMap::new();
        for (i, op) in ops.into_iter().enumerate() {
            // Each op is a write of its own, also for idempotency: a key of its own.
            let key = ctx.idempotency_key.as_ref().map(|k| k.for_op(i));
            let built = op.and_then(|op| self.build_op(collection, op, key.as_deref()));
            let b = match built {
                Ok(b) => b,
                Err(bad) => {
                    results[i] = Some(failed(bad.id.clone(), &bad.error));
                    ids[i] = bad.id;
                    continue;
                }
            };
            ids[i] = Some(b.id);
            statuses[i] = b.status;
            let mut rpc = pb::BulkOp { op: Some(b.rpc) };
            let idem = key.map(|key| pb::Idempotency {
                fingerprint: b.fingerprint,
                key,
                scope: b.scope,
            });
            // Each op waits for the session's marks of its shard, as a single write.
            let (shard, session, idempotency) = match &mut rpc.op {
                Some(pb::bulk_op::Op::Put(r)) => (r.shard, &mut r.session, &mut r.idempotency),
                Some(pb::bulk_op::Op::Patch(r)) => (r.shard, &mut r.session, &mut r.idempotency),
                Some(pb::bulk_op::Op::Delete(r)) => (r.shard, &mut r.session, &mut r.idempotency),
                None => (0, &mut Vec::new(), &mut None),
            };
            *session = ctx.session.marks(|s| u32::from(s) == shard);
            *idempotency = idem;
            // A keyed op an earlier attempt sent somewhere goes there again, and nowhere else.
            let addr = crate::unsettled::key(collection, idempotency)
                .and_then(|k| self.router.pinned(&[k]))
                .unwrap_or_else(|| self.router.serving_addr(shard as u16));
            by_node.entry(addr).or_default().push((i, rpc));
        }
        let mut timeout = ctx.remaining()?;
        let mut sent = Vec::new();
        let mut pending: Vec<_> = by_node.into_iter().collect();
        let mut round = 0;
        while !pending.is_empty() {
            round += 1;
            if round > 1 {
                timeout = ctx.remaining().unwrap_or_default();
            }
            let generation = self.router.maps().generation();
            let calls = pending
                .into_iter()
                .map(|(addr, items)| self.send_bulk(collection, addr, items, timeout));
            pending = Vec::new();
            for (items, out) in join_all(calls).await {
                match out {
                    // The node owns some of these shards no more and did nothing: they go
                    // to their owners in the map it handed over.
                    Err(e)
                        if e.code == ErrorCode::NotOwner
                            && round <= NOT_OWNER_ROUNDS
                            && ctx.remaining().is_ok() =>
                    {
                        let mut again: BTreeMap<String, Vec<(usize, pb::BulkOp)>> = BTreeMap::new();
                        for (i, op) in items {
                            let addr = self.router.serving_addr(shard_of(&op));
                            again.entry(addr).or_default().push((i, op));
                        }
                        pending.extend(again);
                    }
                    out => sent.push((
                        items.into_iter().map(|(i, _)| i).collect::<Vec<_>>(),
                        out.map_err(Error::public),
                    )),
                }
            }
            if !pending.is_empty() && self.router.maps().generation() == generation {
                let pause = std::time::Duration::from_millis(10 << round.min(3));
                tokio::time::sleep(pause.min(timeout)).await;
            }
        }
        let mut written = Vec::new();
        for (indexes, out) in sent {
            let answers = match out {
                Ok(b) if b.results.len() == indexes.len() => b.results,
                Ok(b) => {
                    return Err(Error::internal(format!(
                        "a bulk of {} writes was answered with {} results",
                        indexes.len(),
                        b.results.len()
                    )));
                }
                Err(e) => {
                    for i in indexes {
                        results[i] = Some(failed(ids[i].clone(), &e));
                    }
                    continue;
                }
            };
            for (i, answer) in indexes.into_iter().zip(answers) {
                if let Some(pb::bulk_result::Outcome::Doc(d)) = &answer.outcome {
                    written.extend(d.mark.clone());
                }
                results[i] = Some(match answer.outcome {
                    Some(pb::bulk_result::Outcome::Doc(d)) => BulkItem {
                        // A replayed create answers the id its first attempt chose.
                        id: Some(d.id.clone())
                            .filter(|id| !id.is_empty())
                            .or_else(|| ids[i].clone()),
                        status: match statuses[i] {
                            0 if d.created => 201,
                            0 => 200,
                            s => s,
                        },
                        version: d.record.as_ref().filter(|r| !r.tombstone).map(version_of),
                        error: None,
                    },
                    Some(pb::bulk_result::Outcome::Error(e)) => failed(
                        ids[i].clone(),
                        &Error::new(ErrorCode::from_wire(&e.code), e.message),
                    ),
                    None => failed(ids[i].clone(), &Error::internal("empty bulk result")),
                });
            }
        }
        self.settle_all(&ctx, &written).await?;
        Ok(results
            .into_iter()
            .zip(ids)
            .map(|(r, id)| {
                r.unwrap_or_else(|| failed(id, &Error::internal("bulk op without a result")))
            })
            .collect())
    }

    /// Sends one node its ops of a bulk request as one call; answers the ops back with the
    /// outcome, so ops refused with `not_owner` can go to their new owner.
    async fn send_bulk(
        &self,
        collection: &str,
        addr: String,
        items: Vec<(usize, pb::BulkOp)>,
        timeout: std::time::Duration,
    ) -> (Vec<(usize, pb::BulkOp)>, Result<pb::BulkResponse>) {
        let mut body = pb::BulkRequest {
            ops: items.iter().map(|(_, op)| op.clone()).collect(),
        };
        // Sent to another DC (this DC's owner is down): carries this DC's deletions of
        // the collection (crate::deletion_floor).
        let floor = self.router.floor_for(&addr, collection, timeout).await;
        crate::deletion_floor::attach_bulk(&mut body, floor);
        let keys = crate::unsettled::bulk_keys(&body);
        if let Err(e) = self.router.check_unsettled(&keys) {
            return (items, Err(e));
        }
        // Pinned before sending (as Router::call_shard does): the request's deadline may
        // drop this future while the call is in flight.
        let fresh: Vec<_> = keys
            .iter()
            .filter(|k| self.router.pinned(std::slice::from_ref(*k)).is_none())
            .cloned()
            .collect();
        self.router.remember_unsettled(&fresh, &addr);
        let out = match self.router.try_call_node(&addr, body, timeout).await {
            Ok(answer) => {
                self.router.settled(&keys);
                Ok(answer)
            }
            // Refused before anything was done; the shard's idempotency records moved
            // with it, so its new owner answers any key.
            Err(f) if f.error.code == ErrorCode::NotOwner => {
                self.router.settled(&keys);
                Err(f.error)
            }
            // Not retried elsewhere: the ops may have been applied.
            Err(f) if f.error.code == ErrorCode::Unavailable && f.fate == Fate::Unknown => {
                Err(self.router.outcome_unknown(&keys, &addr, &f.error))
            }
            Err(f) => {
                if f.fate != Fate::Unknown {
                    // It did nothing there.
                    self.router.settled(&fresh);
                }
                if f.error.code == ErrorCode::Unavailable {
                    // Later requests go to the next DC's owners of its shards.
                    self.router.unreachable(&addr);
                }
                Err(f.error)
            }
        };
        (items, out)
    }
}
