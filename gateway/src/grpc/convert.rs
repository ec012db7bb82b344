//! Conversions between the operation layer's values and the `aerolith.v1` messages. Bodies
//! are serialized exactly as REST serializes them, so every protocol returns the same bytes.

use serde::Serialize;
use serde_json::Value;

use aerolith_common::document::Document;
use aerolith_common::json::parse_value;
use aerolith_common::{Error, Result};
use aerolith_proto::v1 as api;

use crate::ops::{BulkItem, ChangeView, CollectionInfo, Page, QueryInput, parse_limit};

/// Nesting accepted in a filter (a 64-deep value under operators), as for REST.
const FILTER_DEPTH: usize = 80;

fn json_text<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

/// A collection as gRPC returns it.
pub fn collection(c: CollectionInfo) -> api::Collection {
    api::Collection {
        name: c.name,
        conflict_strategy: c.conflict_strategy,
        created_at: c.created_at,
    }
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
                data_json: json_text(&c.data)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(api::Document {
        data_json: json_text(&d.data)?,
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
    })
}

/// A change event as gRPC returns it.
pub fn change(v: ChangeView) -> Result<api::ChangeEvent> {
    Ok(api::ChangeEvent {
        data_json: v.data.as_ref().map(json_text).transpose()?,
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
    let sort = (!r.sort.is_empty()).then(|| {
        Value::Array(
            r.sort
                .iter()
                .map(|k| {
                    let mut key = serde_json::Map::new();
                    key.insert("field".into(), Value::String(k.field.clone()));
                    if !k.order.is_empty() {
                        key.insert("order".into(), Value::String(k.order.clone()));
                    }
                    Value::Object(key)
                })
                .collect(),
        )
    });
    let projection = (!r.projection.is_empty()).then(|| {
        Value::Array(
            r.projection
                .iter()
                .map(|p| Value::String(p.clone()))
                .collect(),
        )
    });
    let limit = r.limit.map(|n| n.to_string());
    Ok(QueryInput {
        filter: optional_json(&r.filter_json, "filter_json")?,
        sort,
        limit: parse_limit(limit.as_deref())?,
        cursor: non_empty(&r.cursor).map(str::to_string),
        projection,
    })
}

/// A bulk op as the operation layer reads it (the JSON object of a REST bulk body).
pub fn bulk_op(op: &api::BulkOp) -> Result<Value> {
    let mut obj = serde_json::Map::new();
    obj.insert("op".into(), Value::String(op.op.clone()));
    if let Some(id) = non_empty(&op.id) {
        obj.insert("id".into(), Value::String(id.to_string()));
    }
    if let Some(data) = optional_json(&op.data_json, "data_json")? {
        obj.insert("data".into(), data);
    }
    if let Some(patch) = optional_json(&op.patch_json, "patch_json")? {
        obj.insert("patch".into(), patch);
    }
    if let Some(m) = non_empty(&op.if_match) {
        obj.insert("if_match".into(), Value::String(m.to_string()));
    }
    Ok(Value::Object(obj))
}
