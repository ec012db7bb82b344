//! Conversions between the operation layer's values and the `aerolith.v1` messages. Bodies
//! are serialized exactly as REST serializes them, so every protocol returns the same bytes.

use serde_json::Value;

use aerolith_common::document::Document;
use aerolith_common::json::parse_value;
use aerolith_common::{Error, Result};
use aerolith_proto::v1 as api;

use aerolith_common::patch::PatchKind;
use aerolith_common::query::{SortKey, projection_paths};

use crate::ops::{
    BadOp, BulkInput, BulkItem, BulkOp, ChangeView, CollectionInfo, DEFAULT_LIMIT, IndexInfo, Page,
    Precondition, QueryInput, check_limit,
};

/// Nesting accepted in a filter (a 64-deep value under operators), as for REST.
const FILTER_DEPTH: usize = 80;

/// A collection as gRPC returns it.
pub fn collection(c: CollectionInfo) -> api::Collection {
    api::Collection {
        name: c.name,
        conflict_strategy: c.conflict_strategy,
        created_at: c.created_at,
    }
}

/// An index as gRPC returns it.
pub fn index(i: IndexInfo) -> api::Index {
    api::Index {
        name: i.name,
        fields: i
            .fields
            .into_iter()
            .map(|f| api::IndexField {
                path: f.path,
                order: f.order.to_string(),
            })
            .collect(),
        state: i.state.to_string(),
        progress: i.progress,
        reason: i.reason,
    }
}

/// An index definition's fields from gRPC (`order` empty, `asc` or `desc`).
pub fn index_fields(fields: &[api::IndexField]) -> Result<Vec<aerolith_common::pb::IndexField>> {
    fields
        .iter()
        .map(|f| crate::ops::index_field(f.path.clone(), non_empty(&f.order)))
        .collect()
}

/// A document as gRPC returns it.
pub fn document(d: Document) -> Result<api::Document> {
    let conflicts = d
        .conflicts
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            Ok(api::ConflictVersion {
                version: c.version,
                updated_at: c.updated_at,
                origin: c.origin,
                data_json: c.data.as_str().to_owned(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(api::Document {
        data_json: d.data.as_str().to_owned(),
        collection: d.collection,
        id: d.id,
        version: d.version,
        updated_at: d.updated_at,
        origin: d.origin,
        conflicts,
    })
}

/// A page as gRPC returns it.
pub fn page(p: Page) -> Result<api::DocumentPage> {
    Ok(api::DocumentPage {
        documents: p
            .documents
            .into_iter()
            .map(document)
            .collect::<Result<_>>()?,
        next_cursor: p.next_cursor,
        plan: p
            .plan
            .unwrap_or_default()
            .into_iter()
            .map(|s| api::PlanStep {
                node: s.node,
                index: s.index,
                examined: s.examined,
            })
            .collect(),
    })
}

/// A change event as gRPC returns it.
pub fn change(v: ChangeView) -> Result<api::ChangeEvent> {
    Ok(api::ChangeEvent {
        data_json: v.data.as_ref().map(|d| d.as_str().to_owned()),
        op: v.op.to_string(),
        collection: v.collection,
        id: v.id,
        version: v.version,
        updated_at: v.updated_at,
        origin: v.origin,
        token: v.token,
    })
}

/// A bulk op's outcome as gRPC returns it.
pub fn bulk_result(b: BulkItem) -> api::BulkResult {
    api::BulkResult {
        id: b.id,
        status: u32::from(b.status),
        version: b.version,
        error: b.error.map(|e| api::OpError {
            code: e.code,
            message: e.message,
        }),
    }
}

/// An optional JSON field: empty means absent.
pub fn optional_json(text: &str, what: &str) -> Result<Option<Value>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_value(text.as_bytes(), FILTER_DEPTH)
        .map(Some)
        .map_err(|e| Error::invalid(format!("{what}: {}", e.message)))
}

/// Empty strings are absent fields in proto3.
pub fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// A query request in the operation layer's terms.
pub fn query(r: &api::QueryRequest) -> Result<QueryInput> {
    let sort = r
        .sort
        .iter()
        .map(|k| SortKey::ordered(&k.field, non_empty(&k.order)))
        .collect::<Result<Vec<_>>>()?;
    let projection = (!r.projection.is_empty())
        .then(|| projection_paths(r.projection.clone()))
        .transpose()?;
    let limit = match r.limit {
        None => DEFAULT_LIMIT,
        Some(n) => check_limit(Some(i64::from(n)), &n)?,
    };
    Ok(QueryInput {
        filter: optional_json(&r.filter_json, "filter_json")?,
        sort,
        limit,
        cursor: non_empty(&r.cursor).map(str::to_string),
        projection,
        explain: r.explain,
    })
}

/// A bulk op in the operation layer's terms: malformed JSON fails the whole request (as a
/// malformed REST body does); an op that cannot run fails alone.
pub fn bulk_op(op: &api::BulkOp) -> Result<BulkInput> {
    let data = optional_json(&op.data_json, "data_json")?;
    let patch = optional_json(&op.patch_json, "patch_json")?;
    let id = non_empty(&op.id).map(str::to_string);
    let bad = |error| BadOp {
        id: id.clone(),
        error,
    };
    let pre = match Precondition::from_tags(non_empty(&op.if_match), None) {
        Ok(pre) => pre,
        Err(e) => return Ok(Err(bad(e))),
    };
    let needs_id = || {
        id.clone()
            .ok_or_else(|| bad(Error::invalid("a bulk patch or delete needs an id")))
    };
    Ok(match op.op.as_str() {
        "put" => match data {
            Some(Value::Object(data)) => Ok(BulkOp::Put {
                id: id.clone(),
                data,
                pre,
            }),
            _ => Err(bad(Error::invalid(
                "a bulk put needs data_json: a JSON object",
            ))),
        },
        "patch" => match patch {
            Some(patch @ (Value::Object(_) | Value::Array(_))) => {
                needs_id().map(|id| BulkOp::Patch {
                    id,
                    kind: PatchKind::of(&patch),
                    patch,
                    pre,
                })
            }
            _ => Err(bad(Error::invalid(
                "a bulk patch needs patch_json: a merge patch object or a JSON Patch array",
            ))),
        },
        "delete" => needs_id().map(|id| BulkOp::Delete { id, pre }),
        _ => Err(bad(Error::invalid(
            "a bulk op's op must be put, delete or patch",
        ))),
    })
}
