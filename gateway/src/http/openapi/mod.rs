//! `GET /openapi.json`: an OpenAPI 3.1 document generated from the route tables
//! (`crate::app::routes`) and the components below, so it lists exactly the routes served
//! and states every constraint the server enforces on them (issue 29): a request valid by
//! the document is accepted, an invalid one refused.

mod components;
mod filter;
mod schemas;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use aerolith_common::ErrorCode;
use aerolith_common::auth::Role;

use super::context::SESSION_HEADER;
use super::{Access, AppState, Route};

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

/// A query parameter or request header an operation reads, besides the path parameters
/// (from the path) and the deadline and session headers (which every route with request
/// headers reads, see [`Op::without_request_headers`]).
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
    /// `X-Aerolith-Write-Concern` on a write.
    WriteConcern,
    /// `Idempotency-Key` on a document write or bulk.
    IdempotencyKey,
    /// The WebSocket handshake's request headers (RFC 6455 section 4.1).
    WebSocketHandshake,
    /// `Sec-WebSocket-Protocol` naming a GraphQL subprotocol.
    GraphqlSubprotocol,
}

impl Param {
    /// Its names under `components.parameters` (a handshake is several headers).
    fn components(self) -> &'static [&'static str] {
        match self {
            Param::Limit => &["Limit"],
            Param::Cursor => &["Cursor"],
            Param::Since => &["Since"],
            Param::IfMatch => &["IfMatch"],
            Param::IfNoneMatchRead => &["IfNoneMatchRead"],
            Param::IfNoneMatchWrite => &["IfNoneMatchWrite"],
            Param::WriteConcern => &["WriteConcern"],
            Param::IdempotencyKey => &["IdempotencyKey"],
            Param::WebSocketHandshake => &[
                "WebSocketConnection",
                "WebSocketUpgrade",
                "WebSocketVersion",
                "WebSocketKey",
            ],
            Param::GraphqlSubprotocol => &["GraphqlSubprotocol"],
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

/// How an operation answers errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Errors {
    /// With the error's HTTP status and the REST error body.
    Rest,
    /// As GraphQL errors in a 200 answer; only refusals before the handler have their own
    /// status (with a GraphQL body).
    Graphql,
}

/// The documentation of one operation (one method on one path).
#[derive(Debug, Clone)]
pub struct Op {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    params: Vec<Param>,
    /// Whether the route reads the deadline and session headers (and so refuses malformed
    /// ones).
    request_headers: bool,
    /// Whether a body is required, and its media types with their schema names.
    body: Option<(bool, &'static [(&'static str, &'static str)])>,
    replies: Vec<Reply>,
    errors: Vec<ErrorCode>,
    style: Errors,
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
            request_headers: true,
            body: None,
            replies: Vec::new(),
            errors: Vec::new(),
            style: Errors::Rest,
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

    /// The route does not read the deadline and session headers (it runs outside the
    /// deadline middleware, as GraphiQL and the GraphQL socket do).
    pub fn without_request_headers(mut self) -> Op {
        self.request_headers = false;
        self
    }

    /// Errors are GraphQL errors in a 200 answer (`POST /graphql`).
    pub fn graphql_errors(mut self) -> Op {
        self.style = Errors::Graphql;
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

/// Errors every route that reads the request headers can answer: the deadline middleware
/// wraps them all, and rejects a malformed header.
const EVERY_ROUTE: [ErrorCode; 2] = [ErrorCode::InvalidArgument, ErrorCode::DeadlineExceeded];

/// The media type of every GraphQL answer over HTTP (async-graphql's, per the GraphQL over
/// HTTP draft), refusals included.
pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";
/// The name of the `?access_token=` security scheme (WebSocket upgrades from browsers).
const ACCESS_TOKEN: &str = "accessToken";

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
        "openapi": "3.1.0",
        "info": {
            "title": "AerolithDB REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST protocol of the AerolithDB gateway. Every error has the \
                body {\"error\": {\"code\", \"message\"}}; an unknown path is 404 not_found and \
                a known path with a method it does not serve is 405 invalid_argument. Values \
                marked x-aerolith-issued-by are tokens only the server issues: send one it \
                handed out (where that field names), never one made up.",
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas::all(),
            "parameters": components::parameters(),
            "headers": components::headers(),
            "securitySchemes": components::security_schemes(BEARER, ACCESS_TOKEN),
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
            .flat_map(|p| p.components())
            .map(|c| reference("parameters", c)),
    );
    if op.request_headers {
        params.push(reference("parameters", "Timeout"));
        params.push(reference("parameters", "Session"));
    }

    let mut responses = Map::new();
    for r in &op.replies {
        responses.insert(r.status.to_string(), reply(r));
    }
    let mut codes: Vec<ErrorCode> = Vec::new();
    if op.request_headers && op.style == Errors::Rest {
        codes.extend(EVERY_ROUTE);
    }
    codes.extend(&op.errors);
    let mut security = json!([]);
    if let Access::Role(role) = route.access {
        codes.push(ErrorCode::Unauthenticated);
        codes.push(ErrorCode::RateLimited);
        // Every token can read: only routes that need more can refuse a valid one.
        if role != Role::Read {
            codes.push(ErrorCode::PermissionDenied);
        }
        let mut schemes = vec![json!({BEARER: []})];
        if route.token_in_query {
            schemes.push(json!({ACCESS_TOKEN: []}));
        }
        security = schemes.into();
    }
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in codes {
        let codes = by_status.entry(code.http_status()).or_default();
        if !codes.contains(&code.as_str()) {
            codes.push(code.as_str());
        }
    }
    for (status, codes) in by_status {
        let error = match op.style {
            Errors::Rest => error_response(&codes),
            Errors::Graphql => graphql_refusal(&codes),
        };
        responses.insert(status.to_string(), error);
    }

    let mut out = Map::new();
    out.insert("operationId".into(), op.id.into());
    out.insert("summary".into(), op.summary.into());
    let mut description = op.description.unwrap_or_default().to_string();
    if let Access::Role(role) = route.access {
        description = format!(
            "{description}{}Needs a token with the {} role (or authentication off).",
            if description.is_empty() { "" } else { " " },
            role.as_str()
        );
    }
    if !description.is_empty() {
        out.insert("description".into(), description.into());
    }
    out.insert("tags".into(), json!([op.tag]));
    out.insert("security".into(), security);
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

/// The headers of every answer: the session token (on errors too).
fn session_header() -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert(SESSION_HEADER.into(), reference("headers", SESSION_HEADER));
    headers
}

/// A success response object.
fn reply(r: &Reply) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), r.description.into());
    let mut headers = session_header();
    headers.extend(
        r.headers
            .iter()
            .map(|h| (h.name().to_string(), reference("headers", h.name()))),
    );
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
        "headers": session_header(),
        "content": {"application/json": {"schema": {"allOf": [
            reference("schemas", "Error"),
            {"type": "object", "properties": {"error": {"type": "object",
                "properties": {"code": {"type": "string", "enum": codes}}}}},
        ]}}},
    })
}

/// A refusal of `POST /graphql` before its handler: the status of one of `codes`, in
/// GraphQL's shape.
fn graphql_refusal(codes: &[&str]) -> Value {
    json!({
        "description": format!("Refused: {} (errors[0].extensions.code)", codes.join(" or ")),
        "content": {GRAPHQL_RESPONSE: {"schema": reference("schemas", "GraphqlResponse")}},
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
        assert_eq!(doc["openapi"], "3.1.0");
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
    fn security_follows_the_route_table() {
        let doc = document();
        let put = &doc["paths"]["/v1/collections/{c}/docs/{id}"]["put"];
        assert_eq!(put["security"], json!([{BEARER: []}]));
        assert!(put["responses"]["401"].is_object() && put["responses"]["403"].is_object());
        let get = &doc["paths"]["/v1/collections/{c}/docs/{id}"]["get"];
        assert!(get["responses"].get("403").is_none(), "every token reads");
        let ws = &doc["paths"]["/v1/ws"]["get"];
        assert_eq!(ws["security"], json!([{BEARER: []}, {ACCESS_TOKEN: []}]));
        let health = &doc["paths"]["/healthz"]["get"];
        assert_eq!(health["security"], json!([]));
        assert!(health["responses"].get("401").is_none());
    }

    #[test]
    fn the_stated_syntax_is_the_checked_one() {
        let doc = document();
        let pattern = |name: &str| {
            doc["components"]["parameters"][name]["schema"]["pattern"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        // The patterns are ECMA-262; these use nothing beyond what the checks below mirror.
        assert!(pattern("IfMatch").contains(components::VERSION));
        for v in ["dc1@1:3", "dc1@1:3.dc2@1:1", "dc1@1:1~1f", "a-b@0:0"] {
            assert!(crate::ops::is_version(v), "{v}");
        }
        for v in [
            "",
            "dc1",
            "dc1@1",
            "dc1@1:",
            "Dc1@1:1",
            "dc1@1:1.",
            "dc1@1:1~",
            "dc1@1:1~G",
        ] {
            assert!(!crate::ops::is_version(v), "{v}");
        }
        assert!(pattern("IdempotencyKey").contains("{0,126}"));
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
