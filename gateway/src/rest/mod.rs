//! The REST adapter: routes of API.md, each a thin handler that parses, calls `ops` and
//! renders. Deadlines and metrics are middleware layers. Every route is one entry of the
//! route table ([`routes`]), which both builds the router and documents it
//! (`GET /openapi.json`), so the two cannot drift apart.

pub mod auth;
mod changes;
mod collections;
mod documents;
pub mod error;
pub mod extract;
mod health;
mod in_flight;
pub mod openapi;
pub mod query;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, on};
use metrics_exporter_prometheus::PrometheusHandle;

use aerolith_common::ErrorCode as E;

use crate::metrics::track;
use crate::ops::Ops;
use openapi::{Header as H, Method, Op, Param as P, Reply};

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The operation layer.
    pub ops: Ops,
    /// The GraphQL schema over the same operation layer.
    pub graphql: crate::graphql::GraphqlExecutor,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// Frames a WebSocket connection may have queued before its client is a slow consumer.
    pub ws_queue_frames: usize,
    /// How often WebSocket connections are pinged (three silent intervals: dead).
    pub ws_heartbeat: std::time::Duration,
    /// Who may do what, how often.
    pub admission: std::sync::Arc<crate::admission::Admission>,
    /// Places for requests in flight, shared with the gRPC server.
    pub in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

/// One served route: its method, path, handler and documentation.
pub struct Route {
    /// The HTTP method, the only one `handler` serves.
    pub method: Method,
    /// The path in axum's syntax, which is also OpenAPI's (`/v1/collections/{c}`).
    pub path: &'static str,
    /// The handler, as an axum method router for `method` alone.
    pub handler: MethodRouter<AppState>,
    /// What `/openapi.json` says about the route.
    pub doc: Op,
}

impl Route {
    /// A route whose method router is built from `method`, so the two always agree.
    fn new<Hd, T>(method: Method, path: &'static str, handler: Hd, doc: Op) -> Route
    where
        Hd: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            method,
            path,
            handler: on(method.filter(), handler),
            doc,
        }
    }
}

/// Errors of every route that reads or writes through the storage nodes.
const STORE: [E; 2] = [E::Unavailable, E::Internal];

/// The route table: every REST route the gateway serves, with its documentation.
pub fn routes() -> Vec<Route> {
    use Method::{Delete, Get, Patch, Post, Put};
    const COL: &str = "/v1/collections/{c}";
    const DOCS: &str = "/v1/collections/{c}/docs";
    const DOC: &str = "/v1/collections/{c}/docs/{id}";
    vec![
        Route::new(
            Get,
            "/v1/collections",
            collections::list,
            Op::new("listCollections", "collections", "List the collections")
                .reply(Reply::json(200, "Every live collection", "CollectionList"))
                .errors(&STORE),
        ),
        Route::new(
            Put,
            COL,
            collections::put,
            Op::new(
                "putCollection",
                "collections",
                "Create a collection, or confirm one",
            )
            .describe(
                "The conflict strategy is fixed at creation: a PUT with the same \
                    settings (or none) is a no-op (200); one that changes it is invalid_argument.",
            )
            .body(false, &[("application/json", "CollectionSettings")])
            .reply(Reply::json(201, "Created", "Collection"))
            .reply(Reply::json(200, "Already existed, unchanged", "Collection"))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Get,
            COL,
            collections::get,
            Op::new(
                "getCollection",
                "collections",
                "Read a collection's settings",
            )
            .reply(Reply::json(200, "The collection", "Collection"))
            .errors(&[E::NotFound, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Delete,
            COL,
            collections::delete,
            Op::new(
                "deleteCollection",
                "collections",
                "Delete a collection and its documents",
            )
            .describe("Answered once done in the local DC; every DC follows.")
            .reply(Reply::empty(204, "Deleted"))
            .errors(&[E::NotFound, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Get,
            DOCS,
            documents::list,
            Op::new(
                "listDocuments",
                "documents",
                "List documents in id order, a page at a time",
            )
            .param(P::Limit)
            .param(P::Cursor)
            .reply(Reply::json(
                200,
                "One page; only next_cursor null ends the scan",
                "Page",
            ))
            .errors(&STORE),
        ),
        Route::new(
            Get,
            "/v1/collections/{c}/changes",
            changes::poll,
            Op::new("pollChanges", "changes", "Poll a collection's change feed")
                .describe(
                    "Changes after `since` (or from the oldest retained change), at most `limit`, \
                    in per-document order; poll again with `next`. A token older than the \
                    retained history is resume_token_expired (410); a token of another DC is \
                    invalid_argument.",
                )
                .param(P::Since)
                .param(P::Limit)
                .reply(Reply::json(200, "Changes and the next token", "ChangePage"))
                .errors(&[E::ResumeTokenExpired, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Get,
            "/v1/ws",
            crate::ws::upgrade,
            Op::new(
                "websocket",
                "changes",
                "Open a WebSocket: change subscriptions and document operations",
            )
            .describe(
                "JSON text frames as API.md's WebSocket section describes: subscribe (with an \
                    optional filter and since token), unsubscribe, get, put, patch, delete, query, \
                    create_collection and ping; the server answers subscribed, change, \
                    checkpoint, result, error and pong frames. A frame over 1 MiB + 64 KiB closes \
                    the connection with 1009; a client that falls too far behind gets a \
                    rate_limited error (slow consumer) and a close frame.",
            )
            .reply(Reply::empty(101, "Switching to the WebSocket protocol"))
            .errors(&[]),
        ),
        Route::new(
            Post,
            DOCS,
            documents::create,
            Op::new(
                "createDocument",
                "documents",
                "Create a document with a generated id",
            )
            .body(true, &[("application/json", "DocumentData")])
            .reply(Reply::json(201, "Created", "Document").headers(&[H::ETag, H::Location]))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Get,
            DOC,
            documents::get,
            Op::new("getDocument", "documents", "Read a document")
                .param(P::IfNoneMatchRead)
                .reply(Reply::json(200, "The document", "Document").headers(&[H::ETag]))
                .reply(
                    Reply::empty(304, "If-None-Match matched the current version")
                        .headers(&[H::ETag]),
                )
                .errors(&[E::NotFound, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Put,
            DOC,
            documents::put,
            Op::new("putDocument", "documents", "Create or replace a document")
                .describe(
                    "With If-Match, 412 also when the document is missing; with \
                    If-None-Match: *, 201 over a deleted document.",
                )
                .param(P::IfMatch)
                .param(P::IfNoneMatchWrite)
                .body(true, &[("application/json", "DocumentData")])
                .reply(Reply::json(201, "Created", "Document").headers(&[H::ETag]))
                .reply(Reply::json(200, "Replaced", "Document").headers(&[H::ETag]))
                .errors(&[
                    E::AlreadyExists,
                    E::PreconditionFailed,
                    E::PayloadTooLarge,
                    E::Unavailable,
                    E::Internal,
                ]),
        ),
        Route::new(
            Patch,
            DOC,
            documents::patch,
            Op::new("patchDocument", "documents", "Patch a document's data")
                .describe(
                    "A merge patch (RFC 7396; also for application/json or no \
                    Content-Type) or a JSON Patch (RFC 6902; a failed test op is \
                    precondition_failed). A missing document is 404, checked before If-Match.",
                )
                .param(P::IfMatch)
                .body(
                    true,
                    &[
                        ("application/merge-patch+json", "MergePatch"),
                        ("application/json-patch+json", "JsonPatch"),
                        ("application/json", "MergePatch"),
                    ],
                )
                .reply(Reply::json(200, "Patched", "Document").headers(&[H::ETag]))
                .errors(&[
                    E::NotFound,
                    E::PreconditionFailed,
                    E::PayloadTooLarge,
                    E::Unavailable,
                    E::Internal,
                ]),
        ),
        Route::new(
            Delete,
            DOC,
            documents::delete,
            Op::new("deleteDocument", "documents", "Delete a document")
                .describe("A missing document is 404, checked before If-Match.")
                .param(P::IfMatch)
                .reply(Reply::empty(204, "Deleted"))
                .errors(&[
                    E::NotFound,
                    E::PreconditionFailed,
                    E::Unavailable,
                    E::Internal,
                ]),
        ),
        Route::new(
            Post,
            "/v1/collections/{c}/query",
            query::query,
            Op::new(
                "queryDocuments",
                "documents",
                "Query documents, a page at a time",
            )
            .describe("An empty body is the empty query: every document, in id order.")
            .body(false, &[("application/json", "Query")])
            .reply(Reply::json(
                200,
                "One page; only next_cursor null ends the scan",
                "Page",
            ))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Post,
            "/v1/collections/{c}/bulk",
            documents::bulk,
            Op::new(
                "bulkWrite",
                "documents",
                "Apply up to 1000 puts, patches and deletes",
            )
            .describe(
                "Per-op results in op order; ops on one id apply in order; nothing \
                    is atomic across documents. A malformed op fails only itself.",
            )
            .body(true, &[("application/json", "BulkRequest")])
            .reply(Reply::json(200, "Per-op results", "BulkResponse"))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        ),
        Route::new(
            Get,
            "/v1/cluster",
            health::cluster,
            Op::new(
                "getCluster",
                "cluster",
                "DCs, storage nodes, health and shard ownership",
            )
            .reply(Reply::json(
                200,
                "The cluster as this gateway sees it",
                "Cluster",
            ))
            .errors(&[E::Internal]),
        ),
        Route::new(
            Get,
            "/healthz",
            health::healthz,
            Op::new("healthz", "operations", "Liveness: the process is up")
                .reply(Reply::json(200, "Up", "Status")),
        ),
        Route::new(
            Get,
            "/readyz",
            health::readyz,
            Op::new(
                "readyz",
                "operations",
                "Readiness: every shard has a reachable owner",
            )
            .reply(Reply::json(200, "Ready", "Status"))
            .errors(&STORE),
        ),
        Route::new(
            Get,
            "/metrics",
            health::metrics,
            Op::new("metrics", "operations", "Prometheus metrics").reply(Reply::content(
                200,
                "Prometheus text format",
                "text/plain",
                "MetricsText",
            )),
        ),
        Route::new(
            Post,
            "/graphql",
            crate::graphql::execute,
            Op::new("graphql", "graphql", "Execute a GraphQL request")
                .describe(
                    "The schema of API.md's GraphQL section. Errors are GraphQL errors (HTTP 200) \
                    whose extensions.code holds the error code; a malformed request gets one \
                    invalid_argument error.",
                )
                .body(true, &[("application/json", "GraphqlRequest")])
                .reply(Reply::json(200, "The GraphQL response", "GraphqlResponse"))
                .errors(&[]),
        ),
        Route::new(
            Get,
            "/graphql",
            crate::graphql::graphiql,
            Op::new("graphiql", "graphql", "The GraphiQL IDE").reply(Reply::content(
                200,
                "GraphiQL",
                "text/html",
                "Html",
            )),
        ),
        Route::new(
            Get,
            "/graphql/ws",
            crate::graphql::upgrade,
            Op::new(
                "graphqlWebSocket",
                "graphql",
                "GraphQL subscriptions over a WebSocket",
            )
            .describe(
                "The graphql-transport-ws protocol (graphql-ws is also accepted), chosen with \
                    Sec-WebSocket-Protocol. Subscription changes(collection, filter, since) yields \
                    a checkpoint first, then ChangeEvents.",
            )
            .reply(Reply::empty(101, "Switching to the WebSocket protocol"))
            .errors(&[]),
        ),
        Route::new(
            Get,
            "/openapi.json",
            openapi::serve,
            Op::new("getOpenApi", "operations", "This OpenAPI document").reply(Reply::json(
                200,
                "The OpenAPI 3.0 document",
                "OpenApiDocument",
            )),
        ),
    ]
}

/// Every served route as (method, path), e.g. `("GET", "/v1/collections/{c}")`.
pub fn served_routes() -> Vec<(&'static str, &'static str)> {
    routes()
        .into_iter()
        .map(|r| (r.method.as_str(), r.path))
        .collect()
}

/// The routes of the table, without fallbacks, layers or state. Axum merges the entries
/// that share a path into one method router (it panics only on a repeated method).
fn routed() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
}

/// The REST router.
pub fn router(state: AppState) -> Router {
    routed()
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.in_flight.clone(),
            in_flight::limit,
        ))
        .layer(axum::middleware::from_fn(extract::deadline))
        .layer(axum::middleware::from_fn_with_state(
            state.admission.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(track))
        .with_state(state)
}
