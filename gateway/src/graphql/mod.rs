//! The GraphQL adapter (API.md "GraphQL"): the schema's resolvers call the operation layer;
//! `POST /graphql` executes, `GET /graphql` serves GraphiQL, and `/graphql/ws` carries
//! subscriptions over `graphql-transport-ws` (and the older `graphql-ws`).

mod body;
pub mod json;
mod mutation;
mod query;
mod socket;
mod subscription;
mod types;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, Data, Executor, Request, Response, Schema, ServerError, Value};
use async_graphql_axum::GraphQLResponse;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse};
use futures::StreamExt;

use aerolith_common::auth::{Caller, Role};
use aerolith_common::{Error, ErrorCode};

use crate::admission::Who;
use crate::http::context::{request_ctx, with_session};
use crate::http::error::ApiError;
use crate::http::openapi::{GRAPHQL_RESPONSE, Method, Op, Param, Reply};
use crate::http::{AppState, Route};
use crate::ops::{Ctx, DEFAULT_TIMEOUT, Ops, Session};
use body::GraphqlBody;
pub use body::graphql_max_bytes;
use mutation::MutationRoot;
use query::QueryRoot;
use subscription::SubscriptionRoot;

/// GraphQL's routes: the endpoint (whose refusals are GraphQL errors), GraphiQL and the
/// subscription upgrade (whose token may come in the query, for browsers).
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::Post,
            "/graphql",
            execute,
            Op::new("graphql", "graphql", "Execute a GraphQL request")
                .graphql_errors()
                .describe(
                    "The schema of API.md's GraphQL section. Errors are GraphQL errors (HTTP 200) \
                    whose extensions.code holds the error code; a malformed request gets one \
                    invalid_argument error.",
                )
                .body(true, &[("application/json", "GraphqlRequest")])
                .reply(Reply::content(
                    200,
                    "The GraphQL response",
                    GRAPHQL_RESPONSE,
                    "GraphqlResponse",
                ))
                .errors(&[]),
        )
        // Mutations need `write`: checked per operation.
        .needs(Role::Read)
        .refused_with(refusal),
        Route::new(
            Method::Get,
            "/graphql",
            graphiql,
            Op::new("graphiql", "graphql", "The GraphiQL IDE")
                .without_request_headers()
                .reply(Reply::content(200, "GraphiQL", "text/html", "Html")),
        )
        .needs(Role::Read),
        Route::new(
            Method::Get,
            "/graphql/ws",
            socket::upgrade,
            Op::new(
                "graphqlWebSocket",
                "graphql",
                "GraphQL subscriptions over a WebSocket",
            )
            .without_request_headers()
            .param(Param::WebSocketHandshake)
            .param(Param::GraphqlSubprotocol)
            .describe(
                "The graphql-transport-ws protocol (graphql-ws is also accepted), chosen with \
                    Sec-WebSocket-Protocol. Subscription changes(collection, filter, since) yields \
                    a checkpoint first, then ChangeEvents. The token comes on the upgrade or, \
                    without one there, in connection_init's payload (Authorization: Bearer, \
                    also under headers, or token, authToken or access_token); a refused one \
                    closes the socket with 4403 (4429 over the WebSocket cap).",
            )
            .reply(Reply::empty(101, "Switching to the WebSocket protocol"))
            .errors(&[ErrorCode::InvalidArgument]),
        )
        .needs(Role::Read)
        .token_in_query()
        .token_later(),
    ]
}

/// Deepest selection a query may nest (introspection needs about 13).
const MAX_DEPTH: usize = 20;
/// Most work one request may ask for: a field counts 1, and a `documents` page counts its
/// `limit` times its selection: room for a 1000-document page of every field, or a few
/// pages of fewer fields, but not hundreds of aliased pages.
const MAX_COMPLEXITY: usize = 20_000;

/// The schema type.
pub type AerolithSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema with its executor rules: every request's variables get their numbers back
/// (see [`json::normalize`]) and every error gets an API.md code.
#[derive(Clone)]
pub struct GraphqlExecutor(AerolithSchema);

/// The schema, its resolvers calling `ops`.
pub fn schema(ops: Ops) -> GraphqlExecutor {
    GraphqlExecutor(
        Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
            .data(ops)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish(),
    )
}

impl GraphqlExecutor {
    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.0.sdl()
    }
}

fn prepare(mut request: Request) -> Request {
    for v in request.variables.values_mut() {
        json::normalize(v);
    }
    request
}

/// Errors raised by async-graphql itself (syntax, validation, limits) have no code: they are
/// the client's, so `invalid_argument`.
fn coded(mut resp: Response) -> Response {
    for e in &mut resp.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", ErrorCode::InvalidArgument.as_str());
        }
    }
    resp
}

impl Executor for GraphqlExecutor {
    async fn execute(&self, request: Request) -> Response {
        coded(self.0.execute(prepare(request)).await)
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        Executor::execute_stream(&self.0, prepare(request), session_data)
            .map(coded)
            .boxed()
    }
}

/// An operation-layer error as a GraphQL error carrying its code.
pub(crate) fn gql(e: Error) -> async_graphql::Error {
    let code = e.code.as_str();
    use async_graphql::ErrorExtensions;
    async_graphql::Error::new(e.message).extend_with(|_, ext| ext.set("code", code))
}

/// A nullable field's answer: `not_found` is the field's `null` with the error beside it in
/// `errors` (an error returned from the resolver would null its parent instead: here the
/// whole `data`, async-graphql bubbling field errors up to the root).
pub(crate) fn null_if_not_found<T>(
    c: &async_graphql::Context<'_>,
    found: Result<T, Error>,
) -> async_graphql::Result<Option<T>> {
    match found {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == ErrorCode::NotFound => {
            c.add_error(c.set_error_path(gql(e).into_server_error(c.item.pos)));
            Ok(None)
        }
        Err(e) => Err(gql(e)),
    }
}

/// The request's context (operations over a WebSocket, which have no request of their own,
/// get the default deadline for each call, and the connection's caller).
pub(crate) fn ctx(c: &async_graphql::Context<'_>) -> Ctx {
    c.data_opt::<Ctx>()
        .cloned()
        .unwrap_or_else(|| Ctx::new(DEFAULT_TIMEOUT).by(c.data_opt::<Who>().cloned()))
}

/// The operation layer.
pub(crate) fn ops<'a>(c: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Ops> {
    c.data::<Ops>()
}

/// `permission_denied` (with an audit line) unless the request's caller has `role`. The
/// HTTP middleware puts the caller in every request's (and WebSocket connection's) data;
/// without one, only reads.
pub(crate) fn require(c: &async_graphql::Context<'_>, role: Role) -> async_graphql::Result<()> {
    match c.data_opt::<Who>() {
        Some(who) => {
            let target = format_args!("graphql {}", c.field().name());
            who.require(role, target).map_err(gql)
        }
        None => Caller::READ_ONLY.require(role).map_err(gql),
    }
}

/// An authentication failure on `POST /graphql`: GraphQL's errors list, under the code's
/// HTTP status.
pub fn refusal(e: Error) -> axum::response::Response {
    let status = axum::http::StatusCode::from_u16(e.code.http_status())
        .unwrap_or(axum::http::StatusCode::UNAUTHORIZED);
    let code = e.code;
    let mut resp = GraphQLResponse::from(error_response(e)).into_response();
    *resp.status_mut() = status;
    resp.extensions_mut().insert(code);
    resp
}

/// Most requests one batch may hold.
const MAX_BATCH: usize = 16;
/// How long past the deadline a request may run before it is cut off; resolvers give up at
/// the deadline itself, so this only catches a resolver that does not.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// A GraphQL response holding one coded error.
pub(crate) fn error_response(e: Error) -> Response {
    let mut err = ServerError::new(e.message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", Value::from(e.code.as_str()));
    Response::from_errors(vec![err])
}

fn parse_batch(body: Result<GraphqlBody, ApiError>) -> Result<BatchRequest, Error> {
    let GraphqlBody(bytes) = body.map_err(|e| e.error)?;
    let batch = serde_json::from_slice::<BatchRequest>(&bytes)
        .map_err(|e| Error::invalid(format!("not a GraphQL request: {e}")))?;
    match &batch {
        BatchRequest::Batch(list) if list.len() > MAX_BATCH => Err(Error::invalid(format!(
            "a batch may hold at most {MAX_BATCH} requests, not {}",
            list.len()
        ))),
        _ => Ok(batch),
    }
}

/// `POST /graphql`: executes one request (or a batch) within the request's deadline
/// (`X-Aerolith-Timeout-Ms`) and session (`X-Aerolith-Session`, handed back merged); every
/// failure is a GraphQL error with a code.
pub async fn execute(
    State(s): State<AppState>,
    who: Option<Extension<Who>>,
    headers: HeaderMap,
    body: Result<GraphqlBody, ApiError>,
) -> axum::response::Response {
    let ctx = match request_ctx(&headers) {
        Ok(c) => c,
        Err(e) => {
            let resp = GraphQLResponse::from(error_response(e)).into_response();
            return with_session(resp, &Session::default());
        }
    };
    let session = ctx.session.clone();
    let answer = |r: GraphQLResponse| with_session(r.into_response(), &session);
    let batch = match parse_batch(body) {
        Ok(b) => b,
        Err(e) => return answer(error_response(e).into()),
    };
    let timeout = ctx.remaining().unwrap_or_default();
    let who = who.map(|Extension(w)| w);
    let mut batch = batch.data(ctx.by(who.clone()));
    // Without a caller (the route's authentication always gives one) resolvers allow reads.
    if let Some(who) = who {
        batch = batch.data(who);
    }
    let run = s.graphql.execute_batch(batch);
    match tokio::time::timeout(timeout + DEADLINE_GRACE, run).await {
        Ok(resp) => answer(resp.into()),
        Err(_) => answer(error_response(Error::deadline("request deadline exceeded")).into()),
    }
}

/// `GET /graphql`: the GraphiQL IDE.
pub async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// API.md's schema, verbatim but for the `idempotencyKey` argument of the three document
    /// mutations, which API.md's "Idempotency" paragraph names and its SDL block leaves out,
    /// and for secondary indexes (issue 24: `indexes` on `Collection`, `createIndex` and
    /// `dropIndex`), which API.md's REST table has and its SDL block predates.
    const API_SCHEMA: &str = r#"
scalar JSON
enum ConflictStrategy { LWW SIBLINGS FIELD_MERGE }
type Collection { name: String!, conflictStrategy: ConflictStrategy!, indexes: [Index!]! }
type IndexField { path: String!, order: String! }
input IndexFieldInput { path: String!, order: String = "asc" }
type Index { name: String!, fields: [IndexField!]!, state: String!, progress: Float, reason: String }
type ConflictVersion { version: String!, updatedAt: String!, origin: String!, data: JSON! }
type Document { collection: String!, id: ID!, version: String!, updatedAt: String!, origin: String!, data: JSON!, conflicts: [ConflictVersion!] }
type DocumentPage { documents: [Document!]!, nextCursor: String, plan: [PlanStep!] }
type PlanStep { node: String!, index: String, examined: Int! }
type ChangeEvent { op: String!, collection: String!, id: ID, version: String, updatedAt: String, origin: String, data: JSON, token: String! }
input SortInput { field: String!, order: String = "asc" }
type Query {
  collections: [Collection!]!
  collection(name: String!): Collection
  document(collection: String!, id: ID!): Document
  documents(collection: String!, filter: JSON, sort: [SortInput!], limit: Int = 100, cursor: String, projection: [String!], explain: Boolean): DocumentPage!
  count(collection: String!, filter: JSON): Int!
}
type Mutation {
  createCollection(name: String!, conflictStrategy: ConflictStrategy = LWW): Collection!
  createIndex(collection: String!, name: String!, fields: [IndexFieldInput!]!): Index!
  dropIndex(collection: String!, name: String!): Boolean!
  putDocument(collection: String!, id: ID, data: JSON!, ifMatch: String, ifNoneMatch: Boolean, writeConcern: String, idempotencyKey: String): Document!
  patchDocument(collection: String!, id: ID!, patch: JSON!, ifMatch: String, writeConcern: String, idempotencyKey: String): Document!
  deleteDocument(collection: String!, id: ID!, ifMatch: String, writeConcern: String, idempotencyKey: String): Boolean!
}
type Subscription { changes(collection: String!, filter: JSON, since: String): ChangeEvent! }
"#;

    /// Every `kind Name.member signature` of an SDL text, descriptions, directives and
    /// layout dropped, so two renderings of one schema compare equal.
    fn members(sdl: &str) -> BTreeSet<String> {
        let mut text = String::new();
        let mut in_description = false;
        for line in sdl.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("\"\"\"") {
                if !rest.contains("\"\"\"") {
                    in_description = !in_description;
                }
                continue;
            }
            if !in_description && !line.starts_with('"') && !line.starts_with('@') {
                text.push_str(line);
                text.push('\n');
            }
        }
        for p in ["{", "}", "(", ")", ",", ":", "=", "!", "[", "]"] {
            text = text.replace(p, &format!(" {p} "));
        }
        let tokens: Vec<&str> = text.split_whitespace().filter(|t| *t != ",").collect();
        let is_name = |t: &str| t.chars().all(|c| c.is_alphanumeric() || c == '_');
        let mut out = BTreeSet::new();
        let mut i = 0;
        while i < tokens.len() {
            let (kind, name) = (tokens[i], tokens.get(i + 1).copied().unwrap_or(""));
            i += 2;
            match kind {
                "scalar" => {
                    out.insert(format!("scalar {name}"));
                    continue;
                }
                "type" | "input" | "enum" if tokens.get(i) == Some(&"{") => i += 1,
                _ => {
                    // `schema { ... }`, `directive ...` and the like: skip to the next block.
                    while i < tokens.len() && tokens[i] != "}" {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
            }
            while i < tokens.len() && tokens[i] != "}" {
                let mut member = vec![tokens[i]];
                i += 1;
                if kind != "enum" {
                    let mut depth = 0;
                    while i < tokens.len() {
                        let t = tokens[i];
                        let starts_next = depth == 0
                            && is_name(t)
                            && matches!(tokens.get(i + 1), Some(&":") | Some(&"("))
                            && member.last() != Some(&"=")
                            && member.last() != Some(&":")
                            && member.last() != Some(&"[");
                        if t == "}" && depth == 0 || starts_next {
                            break;
                        }
                        depth += i32::from(t == "(") - i32::from(t == ")");
                        member.push(t);
                        i += 1;
                    }
                }
                out.insert(format!("{kind} {name}.{}", member.join(" ")));
            }
            i += 1;
        }
        out
    }

    #[test]
    fn the_schema_is_exactly_api_md() {
        let sdl = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
            .finish()
            .sdl();
        let want = members(API_SCHEMA);
        let have = members(&sdl);
        assert_eq!(want.len(), 38 + 12 + 5, "{want:#?}");
        assert_eq!(have, want, "SDL:\n{sdl}");
    }
}
