//! Between the gRPC messages of `aerolith.v1` and the client's types.

use aerolith_proto::v1 as pb;
use serde_json::Value;

use crate::bulk::{BulkError, BulkOp, BulkResult};
use crate::collections::{CollectionInfo, ConflictStrategy};
use crate::documents::{ConflictVersion, Document, Patch};
use crate::error::Result;
use crate::query::Query;

/// A strategy as the server spells it (`lww`, `siblings`, `field_merge`).
pub(super) fn strategy_name(s: ConflictStrategy) -> String {
    match serde_json::to_value(s) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

/// A collection's description, or `None` for a strategy this client does not know.
pub(super) fn collection_info(c: pb::Collection) -> Option<CollectionInfo> {
    let conflict_strategy = serde_json::from_value(Value::String(c.conflict_strategy)).ok()?;
    Some(CollectionInfo {
        name: c.name,
        conflict_strategy,
        created_at: (!c.created_at.is_empty()).then_some(c.created_at),
    })
}

/// A document, its JSON texts parsed by `json`.
pub(super) fn document(d: pb::Document, json: impl Fn(&str) -> Result<Value>) -> Result<Document> {
    let conflicts = d
        .conflicts
        .into_iter()
        .map(|c| {
            Ok(ConflictVersion {
                data: json(&c.data_json)?,
                version: c.version,
                updated_at: c.updated_at,
                origin: c.origin,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Document {
        data: json(&d.data_json)?,
        collection: d.collection,
        id: d.id,
        version: d.version,
        updated_at: d.updated_at,
        origin: d.origin,
        conflicts,
    })
}

/// The `Query` request of `query` from `cursor`.
pub(super) fn query_request(
    collection: &str,
    query: &Query,
    cursor: Option<&str>,
) -> pb::QueryRequest {
    pb::QueryRequest {
        collection: collection.into(),
        filter_json: query
            .filter
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default(),
        sort: query
            .sort
            .iter()
            .map(|(field, desc)| pb::SortField {
                field: field.clone(),
                order: if *desc { "desc" } else { "asc" }.into(),
            })
            .collect(),
        limit: query.limit,
        cursor: cursor.unwrap_or_default().into(),
        projection: query.projection.clone().unwrap_or_default(),
        explain: false,
    }
}

/// One bulk op as the gRPC message.
pub(super) fn bulk_op(op: &BulkOp) -> pb::BulkOp {
    match op {
        BulkOp::Put { id, data, if_match } => pb::BulkOp {
            op: "put".into(),
            id: id.clone().unwrap_or_default(),
            data_json: data.to_string(),
            patch_json: String::new(),
            if_match: if_match.clone().unwrap_or_default(),
        },
        BulkOp::Patch {
            id,
            patch: Patch::Merge(p) | Patch::Json(p),
            if_match,
        } => pb::BulkOp {
            op: "patch".into(),
            id: id.clone(),
            data_json: String::new(),
            patch_json: p.to_string(),
            if_match: if_match.clone().unwrap_or_default(),
        },
        BulkOp::Delete { id, if_match } => pb::BulkOp {
            op: "delete".into(),
            id: id.clone(),
            data_json: String::new(),
            patch_json: String::new(),
            if_match: if_match.clone().unwrap_or_default(),
        },
    }
}

/// One op's outcome.
pub(super) fn bulk_result(r: pb::BulkResult) -> BulkResult {
    BulkResult {
        id: r.id,
        status: u16::try_from(r.status).unwrap_or(500),
        version: r.version,
        error: r.error.map(|e| BulkError {
            code: e.code,
            message: e.message,
        }),
    }
}
