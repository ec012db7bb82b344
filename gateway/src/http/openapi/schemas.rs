//! `components.schemas`: the bodies the handlers read and write (JSON Schema 2020-12, as
//! OpenAPI 3.1 has it), each as strict as the handler that reads it.

use serde_json::{Value, json};

use aerolith_common::ErrorCode;
use aerolith_common::index_def::MAX_FIELDS;
use aerolith_common::json::Limits;

use super::components::{COLLECTION_PATTERN, DOC_ID_PATTERN, VERSION};
use super::{filter, reference};
use crate::ops::{BULK_MAX_BYTES, DEFAULT_LIMIT, MAX_BULK_OPS, MAX_LIMIT};

/// A required-fields object schema.
pub fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// Merges the schema maps of `blocks` (several `json!` blocks: one with every schema passes
/// the macro's recursion limit).
fn merged(blocks: impl IntoIterator<Item = Value>) -> Value {
    let mut all = serde_json::Map::new();
    for block in blocks {
        if let Value::Object(map) = block {
            all.extend(map);
        }
    }
    Value::Object(all)
}

/// Every schema.
pub fn all() -> Value {
    merged([
        basics(),
        documents(),
        query(),
        filter::schemas(),
        bulk(),
        cluster(),
        index_schemas(),
        plan_schemas(),
        graphql(),
    ])
}

/// Errors, statuses and collections.
fn basics() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "ErrorCode": {"type": "string", "enum": codes},
        "ErrorDetail": object(&["code", "message"], json!({
            "code": reference("schemas", "ErrorCode"),
            "message": {"type": "string"},
        })),
        "Error": object(&["error"], json!({"error": reference("schemas", "ErrorDetail")})),
        "Status": object(&["status"], json!({"status": {"type": "string"}})),
        "ConflictStrategy": {"type": "string", "enum": ["lww", "siblings", "field_merge"],
            "default": "lww"},
        "CollectionSettings": {"type": "object", "additionalProperties": false,
            "description": "An empty body means the defaults (or, for an existing collection, \
                its settings). The strategy is fixed at creation: another one for an existing \
                collection is invalid_argument.",
            "properties": {"conflict_strategy": reference("schemas", "ConflictStrategy")}},
        "Collection": object(&["name", "conflict_strategy", "created_at"], json!({
            "name": {"type": "string", "pattern": COLLECTION_PATTERN},
            "conflict_strategy": reference("schemas", "ConflictStrategy"),
            "created_at": {"type": "string", "format": "date-time"},
        })),
        "CollectionSummary": object(&["name", "conflict_strategy"], json!({
            "name": {"type": "string", "pattern": COLLECTION_PATTERN},
            "conflict_strategy": reference("schemas", "ConflictStrategy"),
        })),
        "CollectionList": object(&["collections"], json!({"collections": {"type": "array",
            "items": reference("schemas", "CollectionSummary")}})),
        "MetricsText": {"type": "string", "description": "Prometheus text exposition format."},
        "OpenApiDocument": {"type": "object", "description": "An OpenAPI 3.1 document."},
        "Html": {"type": "string", "description": "An HTML page."},
    })
}

/// Documents, pages, changes and patches.
fn documents() -> Value {
    let limits = Limits::default();
    let version = format!("^{VERSION}$");
    // An RFC 6901 JSON Pointer.
    let pointer = json!({"type": "string", "pattern": "^(/([^/~]|~[01])*)*$"});
    let doc_fields = |extra: Value| {
        let mut props = json!({
            "version": {"type": "string", "pattern": version,
                "description": "Opaque; the ETag and the If-Match value."},
            "updated_at": {"type": "string", "format": "date-time",
                "description": "RFC 3339 UTC with milliseconds."},
            "origin": {"type": "string", "description": "DC of the write."},
            "data": reference("schemas", "DocumentData"),
        });
        if let (Some(p), Value::Object(e)) = (props.as_object_mut(), extra) {
            p.extend(e);
        }
        props
    };
    json!({
        "DocumentData": {"type": "object",
            "description": format!("A document body: a JSON object, at most {} bytes encoded \
                and {} levels deep (the object itself is level 1; arrays count) by default; \
                duplicate keys are invalid_argument.", limits.max_bytes, limits.max_depth)},
        "ConflictVersion": object(&["version", "updated_at", "origin", "data"],
            doc_fields(json!({}))),
        "Document": object(&["collection", "id", "version", "updated_at", "origin", "data"],
            doc_fields(json!({
                "collection": {"type": "string", "pattern": COLLECTION_PATTERN},
                "id": {"type": "string", "pattern": DOC_ID_PATTERN},
                "conflicts": {"type": "array", "items": reference("schemas", "ConflictVersion"),
                    "description": "Unresolved concurrent versions (siblings collections only), \
                        by (updated_at, origin) descending."},
            }))),
        "Page": object(&["documents", "next_cursor"], json!({
            "documents": {"type": "array", "items": reference("schemas", "Document")},
            "next_cursor": {"type": ["string", "null"],
                "description": "Where the next page starts; null ends the scan."},
            "plan": {"type": "array", "items": reference("schemas", "PlanStep"),
                "description": "Only with explain: one step per storage node."},
        })),
        "Change": object(&["op", "collection", "id", "version", "updated_at", "origin", "data", "token"], json!({
            "op": {"type": "string", "enum": ["put", "delete"],
                "description": "put for creates, replaces and patches (with the full new data)."},
            "collection": {"type": "string"},
            "id": {"type": "string"},
            "version": {"type": "string"},
            "updated_at": {"type": "string", "format": "date-time"},
            "origin": {"type": "string"},
            "data": {"type": ["object", "null"],
                "description": "The new body; null for a delete."},
            "token": {"type": "string", "description": "Resumes the feed right after this change."},
        })),
        "ChangePage": object(&["changes", "next"], json!({
            "changes": {"type": "array", "items": reference("schemas", "Change")},
            "next": {"type": "string", "description": "The token to poll with next."},
        })),
        "MergePatch": {"type": "object",
            "description": "An RFC 7396 merge patch; the patched data must stay within the \
                document limits."},
        "JsonPatch": {"type": "array", "maxItems": 1000,
            "items": reference("schemas", "JsonPatchOp"),
            "description": "An RFC 6902 JSON Patch, applied atomically; a failed test op is \
                precondition_failed, an op that cannot apply is invalid_argument."},
        "JsonPatchOp": {"oneOf": [
            object(&["op", "path", "value"], json!({
                "op": {"type": "string", "enum": ["add", "replace", "test"]},
                "path": pointer, "value": {}})),
            object(&["op", "path"], json!({
                "op": {"type": "string", "enum": ["remove"]}, "path": pointer})),
            object(&["op", "from", "path"], json!({
                "op": {"type": "string", "enum": ["move", "copy"]},
                "from": pointer, "path": pointer})),
        ], "description": "An op whose path does not fit the document's content (or, for \
            test, whose value differs) fails the whole patch."},
    })
}

/// Query and count bodies.
fn query() -> Value {
    json!({
        "Query": {"type": "object", "additionalProperties": false,
            "description": "null for any field means absent.",
            "properties": {
            "filter": {"anyOf": [reference("schemas", "Filter"), {"type": "null"}]},
            "sort": {"type": ["array", "null"], "items": reference("schemas", "SortKey")},
            "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT},
            "cursor": {"type": ["string", "null"], "format": "aerolith-query-cursor",
                "pattern": "^[A-Za-z0-9_-]+$",
                "x-aerolith-issued-by": "the next_cursor field of a page of the same query \
                    (same filter and sort)",
                "description": "The next_cursor of the previous page of the same query; any \
                    other value is invalid_argument."},
            "projection": {"type": ["array", "null"],
                "items": {"type": "string", "pattern": filter::FIELD_PATH},
                "description": "Dotted paths to keep in data."},
            "explain": {"type": ["boolean", "null"], "default": false,
                "description": "Add plan to the page: how each storage node reached its documents."},
        }},
        "SortKey": {"type": "object", "required": ["field"], "additionalProperties": false,
            "properties": {
            "field": {"type": "string", "pattern": filter::FIELD_PATH,
                "description": "A dotted path, or _id."},
            "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
        }},
    })
}

/// Bulk writes.
fn bulk() -> Value {
    json!({
        "BulkRequest": {"type": "object", "required": ["ops"], "additionalProperties": false,
            "description": format!("At most {BULK_MAX_BYTES} bytes."),
            "properties": {"ops": {"type": "array", "maxItems": MAX_BULK_OPS,
                // Any value: a malformed op is no malformed request.
                "items": {"description": "An op, as BulkOp describes it; anything else is a \
                    malformed op, which fails only itself (its result has status 400 and the \
                    error)."}}},
            "examples": [{"ops": [
                {"op": "put", "id": "a", "data": {"n": 1}},
                {"op": "patch", "id": "a", "patch": {"m": 2}},
                {"op": "put", "data": {"n": 3}},
                {"op": "delete", "id": "a", "if_match": "*"},
            ]}]},
        "BulkOp": {"type": "object", "required": ["op"], "additionalProperties": false,
            "description": "A put without an id gets a generated one (and takes no if_match).",
            "properties": {
                "op": {"type": "string", "enum": ["put", "delete", "patch"]},
                "id": {"type": "string", "pattern": DOC_ID_PATTERN},
                "data": reference("schemas", "DocumentData"),
                "patch": {"oneOf": [reference("schemas", "MergePatch"),
                    reference("schemas", "JsonPatch")]},
                "if_match": {"type": "string"},
            }},
        "BulkResponse": object(&["results"], json!({"results": {"type": "array",
            "items": reference("schemas", "BulkResult")}})),
        "BulkResult": object(&["id", "status"], json!({
            "id": {"type": ["string", "null"]},
            "status": {"type": "integer", "description": "The HTTP status the op would have \
                had on its own."},
            "version": {"type": "string"},
            "error": reference("schemas", "ErrorDetail"),
        })),
    })
}

/// `GET /v1/cluster`.
fn cluster() -> Value {
    json!({
        "Cluster": object(&["dc", "shards", "dcs"], json!({
            "dc": {"type": "string", "description": "This gateway's DC."},
            "shards": {"type": "integer", "description": "Number of virtual shards."},
            "dcs": {"type": "array", "items": reference("schemas", "DcView")},
        })),
        "DcView": object(&["id", "state", "nodes"], json!({
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["up", "down"]},
            "nodes": {"type": "array", "items": reference("schemas", "NodeView")},
        })),
        "NodeView": object(&["id", "healthy", "shards"], json!({
            "id": {"type": "string"},
            "healthy": {"type": "boolean"},
            "shards": {"type": "array", "items": {"type": "integer"}},
        })),
    })
}

/// GraphQL's request and response.
fn graphql() -> Value {
    json!({
        "GraphqlRequest": {"oneOf": [reference("schemas", "GraphqlOperation"), {
            "type": "array", "maxItems": 16, "items": reference("schemas", "GraphqlOperation"),
            "description": "A batch."}],
            "description": "A GraphQL request (or a batch of up to 16)."},
        "GraphqlOperation": {"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"}, "operationName": {"type": ["string", "null"]},
            "variables": {"type": ["object", "null"]}}},
        "GraphqlResponse": {"type": ["object", "array"],
            "description": "A GraphQL response (an array for a batch); errors[].extensions.code \
                holds the error code."},
    })
}

/// The schemas of `count` and of `explain`'s plan.
fn plan_schemas() -> Value {
    json!({
        "CountQuery": {"type": "object", "additionalProperties": false, "properties": {
            "filter": {"anyOf": [reference("schemas", "Filter"), {"type": "null"}],
                "description": "A query filter; absent or null counts every document."},
        }},
        "Count": object(&["count"], json!({
            "count": {"type": "integer", "minimum": 0},
        })),
        "PlanStep": object(&["node", "index", "examined"], json!({
            "node": {"type": "string", "description": "The storage node's id."},
            "index": {"type": ["string", "null"],
                "description": "The index the node used; null for a scan of the collection."},
            "examined": {"type": "integer", "minimum": 0,
                "description": "Records (or, walking an index in the sort's order, entries) read."},
        })),
    })
}

/// The schemas of secondary indexes.
fn index_schemas() -> Value {
    json!({
        "IndexField": {"type": "object", "additionalProperties": false, "required": ["path"],
            "properties": {"path": {"type": "string", "pattern": filter::INDEX_PATH,
                    "maxLength": 1024, "description": "A dotted path, not _id."},
                "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}}},
        "IndexDefinition": {"type": "object", "additionalProperties": false,
            "required": ["fields"],
            "description": "No path may appear twice (invalid_argument).",
            "properties": {"fields": {"type": "array", "minItems": 1, "maxItems": MAX_FIELDS,
                "items": reference("schemas", "IndexField")}}},
        "Index": object(&["name", "fields", "state"], json!({
            "name": {"type": "string", "pattern": COLLECTION_PATTERN},
            "fields": {"type": "array", "items": reference("schemas", "IndexField")},
            "state": {"type": "string", "enum": ["building", "ready", "failed"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1,
                "description": "While building: the share of the DC's shards built."},
            "reason": {"type": "string", "description": "Why a build failed."},
        })),
        "IndexList": object(&["indexes"], json!({"indexes": {"type": "array",
            "items": reference("schemas", "Index")}})),
    })
}
