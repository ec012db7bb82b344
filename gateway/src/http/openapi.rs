//! `GET /openapi.json`: an OpenAPI 3.0.3 document generated from the route tables
//! (`crate::app::routes`) and the schemas below, so it lists exactly the routes served.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use aerolith_common::ErrorCode;
use aerolith_common::json::Limits;

use super::AppState;
use super::Route;
use super::context::{SESSION_HEADER, TIMEOUT_HEADER, WRITE_CONCERN_HEADER};
use crate::ops::{
    BULK_MAX_BYTES, DEFAULT_LIMIT, DEFAULT_TIMEOUT, MAX_BULK_OPS, MAX_LIMIT, MAX_TIMEOUT,
};

/// An HTTP method a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET` (axum also answers `HEAD` with it).
    Get,
    /// `PUT`.
    Put,
    /// `POST`.
    Post,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The method's name in upper case (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The axum filter that matches the method.
    pub fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Put => MethodFilter::PUT,
            Method::Post => MethodFilter::POST,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        }
    }

    /// The key of the operation under an OpenAPI path item (`get`).
    fn key(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

/// A query parameter or request header an operation reads (besides the path parameters,
/// which come from the path, and the deadline header, which every route reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `?limit=`: page size.
    Limit,
    /// `?cursor=`: where a page starts.
    Cursor,
    /// `?since=`: a change-feed resume token.
    Since,
    /// `If-Match` on a write.
    IfMatch,
    /// `If-None-Match` on a read (304 on a match).
    IfNoneMatchRead,
    /// `If-None-Match: *` on a write (create only).
    IfNoneMatchWrite,
}

impl Param {
    /// Its name under `components.parameters`.
    fn component(self) -> &'static str {
        match self {
            Param::Limit => "Limit",
            Param::Cursor => "Cursor",
            Param::Since => "Since",
            Param::IfMatch => "IfMatch",
            Param::IfNoneMatchRead => "IfNoneMatchRead",
            Param::IfNoneMatchWrite => "IfNoneMatchWrite",
        }
    }
}

/// A response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// `ETag`: the document's version, quoted.
    ETag,
    /// `Location`: the new document's path.
    Location,
}

impl Header {
    /// Its header name, which is also its name under `components.headers`.
    fn name(self) -> &'static str {
        match self {
            Header::ETag => "ETag",
            Header::Location => "Location",
        }
    }
}

/// One success (or 304) response of an operation.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    description: &'static str,
    /// Media type and schema name of the body, if it has one.
    content: Option<(&'static str, &'static str)>,
    headers: &'static [Header],
}

impl Reply {
    /// A response with a JSON body of the named schema.
    pub fn json(status: u16, description: &'static str, schema: &'static str) -> Reply {
        Reply::content(status, description, "application/json", schema)
    }

    /// A response with a body of the given media type and named schema.
    pub fn content(
        status: u16,
        description: &'static str,
        media: &'static str,
        schema: &'static str,
    ) -> Reply {
        Reply {
            status,
            description,
            content: Some((media, schema)),
            headers: &[],
        }
    }

    /// A response without a body.
    pub fn empty(status: u16, description: &'static str) -> Reply {
        Reply {
            status,
            description,
            content: None,
            headers: &[],
        }
    }

    /// The same response, with these headers.
    pub fn headers(self, headers: &'static [Header]) -> Reply {
        Reply { headers, ..self }
    }
}

/// The documentation of one operation (one method on one path).
#[derive(Debug, Clone)]
pub struct Op {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    params: Vec<Param>,
    /// Whether a body is required, and its media types with their schema names.
    body: Option<(bool, &'static [(&'static str, &'static str)])>,
    replies: Vec<Reply>,
    errors: Vec<ErrorCode>,
}

impl Op {
    /// An operation with its unique id, tag and summary.
    pub fn new(id: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op {
            id,
            tag,
            summary,
            description: None,
            params: Vec::new(),
            body: None,
            replies: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a longer description.
    pub fn describe(mut self, description: &'static str) -> Op {
        self.description = Some(description);
        self
    }

    /// Adds a query parameter or request header.
    pub fn param(mut self, param: Param) -> Op {
        self.params.push(param);
        self
    }

    /// Sets the request body: whether it is required, and (media type, schema name) pairs.
    pub fn body(mut self, required: bool, content: &'static [(&'static str, &'static str)]) -> Op {
        self.body = Some((required, content));
        self
    }

    /// Adds a success response.
    pub fn reply(mut self, reply: Reply) -> Op {
        self.replies.push(reply);
        self
    }

    /// Adds error codes the operation can answer (beside those of every route).
    pub fn errors(mut self, codes: &[ErrorCode]) -> Op {
        self.errors.extend_from_slice(codes);
        self
    }
}

/// Errors every route can answer: the deadline middleware wraps them all, and rejects a
/// malformed deadline header.
const EVERY_ROUTE: [ErrorCode; 2] = [ErrorCode::InvalidArgument, ErrorCode::DeadlineExceeded];

/// `GET /openapi.json`: the document `crate::app` built from the served routes.
pub async fn serve(State(s): State<AppState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], s.openapi.clone()).into_response()
}

/// Builds the OpenAPI document of `routes`.
pub fn build(routes: &[Route]) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut tags: Vec<&str> = Vec::new();
    for route in routes {
        paths
            .entry(route.path)
            .or_default()
            .insert(route.method.key(), operation(route));
        if !tags.contains(&route.doc.tag) {
            tags.push(route.doc.tag);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "AerolithDB REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST protocol of the AerolithDB gateway. Every error has the \
                body {\"error\": {\"code\", \"message\"}}; an unknown path is 404 not_found and \
                a known path with a method it does not serve is 405 invalid_argument.",
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "parameters": parameters(),
            "headers": {
                "ETag": {
                    "description": "The document's version, quoted.",
                    "schema": {"type": "string"},
                },
                "Location": {
                    "description": "The new document's path, /v1/collections/{c}/docs/{id}.",
                    "schema": {"type": "string"},
                },
                SESSION_HEADER: {
                    "description": "The session token: the request's merged with what it \
                        read or wrote (on every answer, errors included).",
                    "schema": {"type": "string"},
                },
            },
        },
    })
}

/// A `$ref` to a component of the given kind (`schemas`, `parameters`, `headers`).
fn reference(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

/// The names of a path's parameters, in order (`{c}` and `{id}`).
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

/// The component documenting a path parameter of the given name.
fn path_param_component(name: &str) -> Option<&'static str> {
    match name {
        "c" => Some("Collection"),
        "id" => Some("DocumentId"),
        "name" => Some("IndexName"),
        _ => None,
    }
}

/// One operation object.
fn operation(route: &Route) -> Value {
    let op = &route.doc;
    let mut params: Vec<Value> = path_params(route.path)
        .map(|name| match path_param_component(name) {
            Some(c) => reference("parameters", c),
            None => json!({"name": name, "in": "path", "required": true,
                "schema": {"type": "string"}}),
        })
        .collect();
    params.extend(
        op.params
            .iter()
            .map(|p| reference("parameters", p.component())),
    );
    params.push(reference("parameters", "Timeout"));
    params.push(reference("parameters", "Session"));
    params.push(reference("parameters", "WriteConcern"));
    params.push(reference("parameters", "IdempotencyKey"));

    let mut responses = Map::new();
    for r in &op.replies {
        responses.insert(r.status.to_string(), reply(r));
    }
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in EVERY_ROUTE.iter().chain(&op.errors) {
        let codes = by_status.entry(code.http_status()).or_default();
        if !codes.contains(&code.as_str()) {
            codes.push(code.as_str());
        }
    }
    for (status, codes) in by_status {
        responses.insert(status.to_string(), error_response(&codes));
    }

    let mut out = Map::new();
    out.insert("operationId".into(), op.id.into());
    out.insert("summary".into(), op.summary.into());
    if let Some(d) = op.description {
        out.insert("description".into(), d.into());
    }
    out.insert("tags".into(), json!([op.tag]));
    out.insert("parameters".into(), params.into());
    if let Some((required, content)) = op.body {
        let content: Map<String, Value> = content
            .iter()
            .map(|(media, schema)| {
                (
                    (*media).to_string(),
                    json!({"schema": reference("schemas", schema)}),
                )
            })
            .collect();
        out.insert(
            "requestBody".into(),
            json!({"required": required, "content": content}),
        );
    }
    out.insert("responses".into(), responses.into());
    Value::Object(out)
}

/// A success response object.
fn reply(r: &Reply) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), r.description.into());
    let mut headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|h| (h.name().to_string(), reference("headers", h.name())))
        .collect();
    headers.insert(SESSION_HEADER.into(), reference("headers", SESSION_HEADER));
    out.insert("headers".into(), headers.into());
    if let Some((media, schema)) = r.content {
        out.insert(
            "content".into(),
            json!({ media: {"schema": reference("schemas", schema)} }),
        );
    }
    Value::Object(out)
}

/// An error response carrying one of `codes` (all of one HTTP status).
fn error_response(codes: &[&str]) -> Value {
    json!({
        "description": format!("Error: {}", codes.join(" or ")),
        "content": {"application/json": {"schema": {"allOf": [
            reference("schemas", "Error"),
            {"type": "object", "properties": {"error": {"type": "object",
                "properties": {"code": {"type": "string", "enum": codes}}}}},
        ]}}},
    })
}

/// `components.parameters`.
fn parameters() -> Value {
    json!({
        "Collection": {
            "name": "c", "in": "path", "required": true,
            "description": "Collection name; names starting with _ are reserved.",
            "schema": {"type": "string", "pattern": COLLECTION_PATTERN},
        },
        "IndexName": {
            "name": "name", "in": "path", "required": true,
            "description": "Index name (the collection-name rule).",
            "schema": {"type": "string", "pattern": COLLECTION_PATTERN},
        },
        "DocumentId": {
            "name": "id", "in": "path", "required": true,
            "description": "Document id (not . or ..).",
            "schema": {"type": "string", "pattern": DOC_ID_PATTERN},
        },
        "Limit": {
            "name": "limit", "in": "query", "required": false,
            "description": "Page size; anything else than an integer in range is invalid_argument.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT},
        },
        "Cursor": {
            "name": "cursor", "in": "query", "required": false,
            "description": "The next_cursor of the previous page.",
            "schema": {"type": "string"},
        },
        "Since": {
            "name": "since", "in": "query", "required": false,
            "description": "A resume token (next, or any change's token); without it the feed \
                starts at the oldest retained change.",
            "schema": {"type": "string"},
        },
        "IfMatch": {
            "name": "If-Match", "in": "header", "required": false,
            "description": "Write only if the document's current version is this one (quoted \
                or bare), or with * if the document exists; otherwise precondition_failed.",
            "schema": {"type": "string"},
        },
        "IfNoneMatchRead": {
            "name": "If-None-Match", "in": "header", "required": false,
            "description": "Versions (ETags, comma-separated) or *: a match answers 304.",
            "schema": {"type": "string"},
        },
        "IfNoneMatchWrite": {
            "name": "If-None-Match", "in": "header", "required": false,
            "description": "* creates only: an existing document is already_exists.",
            "schema": {"type": "string", "enum": ["*"]},
        },
        "Session": {
            "name": SESSION_HEADER, "in": "header", "required": false,
            "description": "A session token from an earlier answer: reads wait (up to the \
                deadline) until this DC holds everything the session wrote or read.",
            "schema": {"type": "string"},
        },
        "WriteConcern": {
            "name": WRITE_CONCERN_HEADER, "in": "header", "required": false,
            "description": "For writes: local (acknowledged once durable on one node) or all \
                (once every DC not marked down has applied it; deadline_exceeded otherwise, \
                and the write stands).",
            "schema": {"type": "string", "enum": ["local", "all"], "default": "local"},
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "For writes (PUT, POST, PATCH, DELETE of a document, and bulk): a \
                retry with the same key and the same request within the retention window \
                (default 24 h) answers what the first answered and writes nothing again; the \
                same key with another request is invalid_argument.",
            "schema": {"type": "string", "pattern": "^[\\x20-\\x7E]{1,128}$"},
        },
        "Timeout": {
            "name": TIMEOUT_HEADER, "in": "header", "required": false,
            "description": "The request deadline in milliseconds; past it the answer is \
                deadline_exceeded.",
            "schema": {"type": "integer", "minimum": 1,
                "maximum": MAX_TIMEOUT.as_millis() as u64,
                "default": DEFAULT_TIMEOUT.as_millis() as u64},
        },
    })
}

/// API.md's collection name pattern.
const COLLECTION_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{0,63}$";
/// API.md's document id pattern.
const DOC_ID_PATTERN: &str = "^[A-Za-z0-9_.:~-]{1,256}$";

/// A required-fields object schema.
fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// `components.schemas`: the bodies the handlers read and write.
fn schemas() -> Value {
    let limits = Limits::default();
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let doc_fields = |extra: Value| {
        let mut props = json!({
            "version": {"type": "string", "description": "Opaque; the ETag and the If-Match value."},
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
    let mut all = json!({
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
                its settings).",
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
        "DocumentData": {"type": "object", "additionalProperties": true,
            "description": format!("A document body: a JSON object, at most {} bytes encoded \
                and {} levels deep by default; duplicate keys are invalid_argument.",
                limits.max_bytes, limits.max_depth)},
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
            "next_cursor": {"type": "string", "nullable": true,
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
            "data": {"type": "object", "nullable": true, "additionalProperties": true,
                "description": "The new body; null for a delete."},
            "token": {"type": "string", "description": "Resumes the feed right after this change."},
        })),
        "ChangePage": object(&["changes", "next"], json!({
            "changes": {"type": "array", "items": reference("schemas", "Change")},
            "next": {"type": "string", "description": "The token to poll with next."},
        })),
        "MergePatch": {"type": "object", "additionalProperties": true,
            "description": "An RFC 7396 merge patch."},
        "JsonPatch": {"type": "array", "items": reference("schemas", "JsonPatchOp"),
            "description": "An RFC 6902 JSON Patch; a failed test op is precondition_failed."},
        "JsonPatchOp": object(&["op", "path"], json!({
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        })),
        "Query": {"type": "object", "additionalProperties": false, "properties": {
            "filter": {"type": "object", "nullable": true, "additionalProperties": true,
                "description": "Field paths (dotted; _id is the id) to values (equality) or \
                    operator objects ($eq $ne $gt $gte $lt $lte $in $nin $exists $prefix \
                    $regex), combined with $and, $or (arrays of filters) and $not."},
            "sort": {"type": "array", "nullable": true,
                "items": reference("schemas", "SortKey")},
            "limit": {"type": "integer", "nullable": true, "minimum": 1, "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT},
            "cursor": {"type": "string", "nullable": true},
            "projection": {"type": "array", "nullable": true, "items": {"type": "string"},
                "description": "Dotted paths to keep in data."},
            "explain": {"type": "boolean", "nullable": true, "default": false,
                "description": "Add plan to the page: how each storage node reached its documents."},
        }},
        "SortKey": object(&["field"], json!({
            "field": {"type": "string"},
            "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
        })),
        "BulkRequest": {"type": "object", "required": ["ops"], "additionalProperties": false,
            "description": format!("At most {BULK_MAX_BYTES} bytes."),
            "properties": {"ops": {"type": "array", "maxItems": MAX_BULK_OPS,
                "items": reference("schemas", "BulkOp")}}},
        "BulkOp": {"type": "object", "required": ["op"], "additionalProperties": false,
            "description": "A put without an id gets a generated one.",
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
            "id": {"type": "string", "nullable": true},
            "status": {"type": "integer", "description": "The HTTP status the op would have \
                had on its own."},
            "version": {"type": "string"},
            "error": reference("schemas", "ErrorDetail"),
        })),
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
        "MetricsText": {"type": "string", "description": "Prometheus text exposition format."},
        "OpenApiDocument": {"type": "object", "description": "An OpenAPI 3.0 document."},
        "GraphqlRequest": {"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"}, "operationName": {"type": "string", "nullable": true},
            "variables": {"type": "object", "nullable": true, "additionalProperties": true}},
            "description": "A GraphQL request (or an array of them, a batch)."},
        "GraphqlResponse": {"type": "object", "properties": {
            "data": {"type": "object", "nullable": true, "additionalProperties": true},
            "errors": {"type": "array", "items": {"type": "object", "additionalProperties": true}}},
            "description": "A GraphQL response; errors[].extensions.code holds the error code."},
        "Html": {"type": "string", "description": "An HTML page."},
    });
    for more in [index_schemas(), plan_schemas()] {
        if let (Some(map), Value::Object(more)) = (all.as_object_mut(), more) {
            map.extend(more);
        }
    }
    all
}

/// The schemas of `count` and of `explain`'s plan (a block of their own, as
/// [`index_schemas`]).
fn plan_schemas() -> Value {
    json!({
        "CountQuery": {"type": "object", "additionalProperties": false, "properties": {
            "filter": {"type": "object", "nullable": true, "additionalProperties": true,
                "description": "A query filter; absent or null counts every document."},
        }},
        "Count": object(&["count"], json!({
            "count": {"type": "integer", "minimum": 0},
        })),
        "PlanStep": object(&["node", "index", "examined"], json!({
            "node": {"type": "string", "description": "The storage node's id."},
            "index": {"type": "string", "nullable": true,
                "description": "The index the node used; null for a scan of the collection."},
            "examined": {"type": "integer", "minimum": 0,
                "description": "Records (or, walking an index in the sort's order, entries) read."},
        })),
    })
}

/// The schemas of secondary indexes (a block of their own: one `json!` of every schema
/// passes the macro's recursion limit).
fn index_schemas() -> Value {
    json!({
        "IndexField": {"type": "object", "additionalProperties": false, "required": ["path"],
            "properties": {"path": {"type": "string", "description": "A dotted path, not _id."},
                "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}}},
        "IndexDefinition": {"type": "object", "additionalProperties": false,
            "required": ["fields"],
            "properties": {"fields": {"type": "array", "minItems": 1, "maxItems": 8,
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn document() -> Value {
        build(&crate::app::routes())
    }

    /// Every `$ref` string in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_documented_with_its_method() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.0.3");
        let routes = crate::app::routes();
        for r in &routes {
            let op = &doc["paths"][r.path][r.method.key()];
            assert_eq!(
                op["operationId"],
                r.doc.id,
                "{} {}",
                r.method.as_str(),
                r.path
            );
            assert!(op["responses"].as_object().is_some_and(|m| !m.is_empty()));
            for name in path_params(r.path) {
                assert!(
                    path_param_component(name).is_some(),
                    "undocumented {{{name}}}"
                );
            }
        }
        // Nothing documented that is not served.
        let documented: usize = doc["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .filter_map(Value::as_object)
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(documented, routes.len());
        assert_eq!(crate::app::served_routes().len(), routes.len());
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 20);
        for r in found {
            let pointer = r.strip_prefix('#').expect("local ref");
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = HashSet::new();
        for r in crate::app::routes() {
            assert!(seen.insert(r.doc.id), "duplicate operationId {}", r.doc.id);
        }
    }

    #[test]
    fn errors_carry_their_codes() {
        let doc = document();
        let put = &doc["paths"]["/v1/collections/{c}/docs/{id}"]["put"]["responses"];
        let codes = &put["412"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]
            ["error"]["properties"]["code"]["enum"];
        assert_eq!(codes, &json!(["already_exists", "precondition_failed"]));
        assert!(put.get("504").is_some() && put.get("201").is_some());
    }
}
