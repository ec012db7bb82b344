//! Bulk writes: per-op results in op order, the ops grouped into one RPC per shard owner.
//! Ops on one id keep their order (they go to the same node, which applies them in order);
//! nothing is atomic across documents.

use std::collections::BTreeMap;

use futures::future::join_all;
use serde::Serialize;
use serde_json::{Map, Value};

use aerolith_common::document::version_of;
use aerolith_common::json::{encode_object, parse_value};
use aerolith_common::name::{validate_collection, validate_doc_id};
use aerolith_common::rpc::client::Fate;
use aerolith_common::{Error, ErrorCode, Result, pb};

use super::{Ctx, Ops};

/// Most ops one bulk request may hold.
pub const MAX_BULK_OPS: usize = 1000;

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

fn field<'a>(op: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    op.get(name).filter(|v| !v.is_null())
}

impl Ops {
    /// Turns one op object into its RPC form, or the reason it cannot run; `key` is the op's
    /// idempotency key (derived from the request's), which places a generated id.
    fn bulk_op(
        &self,
        collection: &str,
        op: &Value,
        key: Option<&str>,
    ) -> (Option<String>, Result<(u16, pb::BulkOp)>) {
        let Value::Object(op) = op else {
            return (
                None,
                Err(Error::invalid("each bulk op must be a JSON object")),
            );
        };
        let given = field(op, "id").map(|v| v.as_str().map(str::to_string));
        let id = match (field(op, "op").and_then(Value::as_str), given) {
            (_, Some(None)) => {
                return (None, Err(Error::invalid("a bulk op's id must be a string")));
            }
            (Some("put"), None) => self.generated_id(collection, key),
            (_, Some(Some(id))) => id,
            (_, None) => {
                return (
                    None,
                    Err(Error::invalid("a bulk patch or delete needs an id")),
                );
            }
        };
        let built = self.rpc_op(collection, &id, op);
        (Some(id), built)
    }

    /// Checks one op with a known id and builds its RPC; the status is the op's success
    /// status (0 for puts: 201 or 200, decided by the node).
    fn rpc_op(
        &self,
        collection: &str,
        id: &str,
        op: &Map<String, Value>,
    ) -> Result<(u16, pb::BulkOp)> {
        validate_doc_id(id)?;
        for key in op.keys() {
            if !matches!(key.as_str(), "op" | "id" | "data" | "patch" | "if_match") {
                return Err(Error::invalid(format!("unknown bulk op field {key:?}")));
            }
        }
        let precondition = match field(op, "if_match") {
            None => None,
            Some(Value::String(m)) => Some(pb::Precondition {
                if_match_any: m == "*",
                if_match: if m == "*" {
                    String::new()
                } else {
                    m.trim_matches('"').to_string()
                },
                if_none_match_any: false,
            }),
            Some(_) => return Err(Error::invalid("if_match must be a string")),
        };
        let shard = self.router.shard_of(collection, id);
        let (collection, id_s) = (collection.to_string(), id.to_string());
        use pb::bulk_op::Op;
        Ok(match field(op, "op").and_then(Value::as_str) {
            Some("put") => {
                let Some(Value::Object(data)) = field(op, "data") else {
                    return Err(Error::invalid("a bulk put needs data: a JSON object"));
                };
                let body = encode_object(data, self.limits)?;
                (
                    0,
                    pb::BulkOp {
                        op: Some(Op::Put(pb::PutRequest {
                            after_delete_hlc: 0,
                            shard: shard as u32,
                            collection,
                            id: id_s,
                            body,
                            precondition,
                            session: Vec::new(),
                            idempotency: None,
                        })),
                    },
                )
            }
            Some("patch") => {
                let kind = match field(op, "patch") {
                    Some(Value::Object(_)) => pb::PatchKind::Merge,
                    Some(Value::Array(_)) => pb::PatchKind::JsonPatch,
                    _ => {
                        return Err(Error::invalid(
                            "a bulk patch needs patch: a merge patch object or a JSON Patch array",
                        ));
                    }
                };
                let patch = serde_json::to_vec(field(op, "patch").unwrap_or(&Value::Null))
                    .map_err(Error::internal)?;
                (
                    200,
                    pb::BulkOp {
                        op: Some(Op::Patch(pb::PatchRequest {
                            after_delete_hlc: 0,
                            shard: shard as u32,
                            collection,
                            id: id_s,
                            kind: kind as i32,
                            patch,
                            precondition,
                            session: Vec::new(),
                            idempotency: None,
                        })),
                    },
                )
            }
            Some("delete") => (
                204,
                pb::BulkOp {
                    op: Some(Op::Delete(pb::DeleteRequest {
                        after_delete_hlc: 0,
                        shard: shard as u32,
                        collection,
                        id: id_s,
                        precondition,
                        session: Vec::new(),
                        idempotency: None,
                    })),
                },
            ),
            _ => {
                return Err(Error::invalid(
                    "a bulk op's op must be put, delete or patch",
                ));
            }
        })
    }

    /// Runs a bulk request body `{"ops": [...]}` against one collection.
    pub async fn bulk(&self, ctx: Ctx, collection: &str, body: &[u8]) -> Result<Vec<BulkItem>> {
        validate_collection(collection)?;
        let Value::Object(mut top) = parse_value(body, self.limits.max_depth + 3)? else {
            return Err(Error::invalid(
                "a bulk body must be a JSON object {\"ops\": [...]}",
            ));
        };
        let Some(Value::Array(ops)) = top.remove("ops") else {
            return Err(Error::invalid("a bulk body needs ops: an array"));
        };
        if let Some(key) = top.keys().next() {
            return Err(Error::invalid(format!("unknown bulk field {key:?}")));
        }
        self.bulk_ops(ctx, collection, ops).await
    }

    /// Runs bulk ops (each a JSON object as in the REST body) against one collection.
    pub async fn bulk_ops(
        &self,
        ctx: Ctx,
        collection: &str,
        ops: Vec<Value>,
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
        for (i, op) in ops.iter().enumerate() {
            // Each op is a write of its own, also for idempotency: a key of its own.
            let key = ctx.idempotency_key.as_ref().map(|k| k.for_op(i));
            let (id, built) = self.bulk_op(collection, op, key.as_deref());
            ids[i] = id.clone();
            match built {
                Ok((status, mut rpc)) => {
                    statuses[i] = status;
                    // A put without an id is a create: its key is scoped to the collection.
                    let scope = match op.get("id") {
                        Some(Value::String(_)) => id.clone().unwrap_or_default(),
                        _ => String::new(),
                    };
                    let op_bytes = serde_json::to_vec(op).map_err(Error::internal)?;
                    let idem = key.map(|key| pb::Idempotency {
                        fingerprint: aerolith_common::idempotency::fingerprint(&[
                            b"bulk",
                            collection.as_bytes(),
                            &op_bytes,
                        ]),
                        key,
                        scope,
                    });
                    // Each op waits for the session's marks of its shard, as a single write.
                    let (shard, session, idempotency) = match &mut rpc.op {
                        Some(pb::bulk_op::Op::Put(r)) => {
                            (r.shard, &mut r.session, &mut r.idempotency)
                        }
                        Some(pb::bulk_op::Op::Patch(r)) => {
                            (r.shard, &mut r.session, &mut r.idempotency)
                        }
                        Some(pb::bulk_op::Op::Delete(r)) => {
                            (r.shard, &mut r.session, &mut r.idempotency)
                        }
                        None => (0, &mut Vec::new(), &mut None),
                    };
                    *session = ctx.session.marks(|s| u32::from(s) == shard);
                    *idempotency = idem;
                    let addr = self.router.serving_addr(shard as u16);
                    by_node.entry(addr).or_default().push((i, rpc));
                }
                Err(e) => results[i] = Some(failed(id, &e)),
            }
        }
        let timeout = ctx.remaining()?;
        let calls = by_node.into_iter().map(|(addr, items)| async move {
            let (indexes, rpcs): (Vec<usize>, Vec<pb::BulkOp>) = items.into_iter().unzip();
            let body = pb::BulkRequest { ops: rpcs };
            let keys = crate::unsettled::bulk_keys(&body);
            if let Err(e) = self.router.check_unsettled(&keys) {
                return (indexes, Err(e));
            }
            let out = match self.router.try_call_node(&addr, body, timeout).await {
                Ok(answer) => {
                    self.router.settled(&keys);
                    Ok(answer)
                }
                // Not retried elsewhere: the ops may have been applied.
                Err(f) if f.error.code == ErrorCode::Unavailable && f.fate == Fate::Unknown => {
                    Err(self.router.outcome_unknown(&keys, &addr, &f.error))
                }
                Err(f) => {
                    if f.error.code == ErrorCode::Unavailable {
                        // Later requests go to the next DC's owners of its shards.
                        self.router.unreachable(&addr);
                    } else if f.fate == Fate::Unknown {
                        // Out of time after it was sent: it may still be applied.
                        self.router.remember_unsettled(&keys, &addr);
                    }
                    Err(f.error)
                }
            };
            (indexes, out)
        });
        let mut written = Vec::new();
        for (indexes, out) in join_all(calls).await {
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
}
