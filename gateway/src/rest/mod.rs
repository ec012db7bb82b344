//! The REST adapter: routes of API.md, each a thin handler that parses, calls `ops` and
//! renders. Its route table ([`routes`]) says, beside each route, the role it needs and
//! what `/openapi.json` says about it; the HTTP host (`crate::http`) wraps each in the
//! REST part's layers.

mod bulk;
mod changes;
mod cluster;
mod collections;
mod documents;
pub mod extract;
mod indexes;
pub mod query;

use aerolith_common::ErrorCode as E;
use aerolith_common::auth::Role::{Admin, Read, Write};

use crate::http::Route;
use crate::http::openapi::{self, Header as H, Method, Op, Param as P, Reply};

/// Errors of every route that reads or writes through the storage nodes.
const STORE: [E; 2] = [E::Unavailable, E::Internal];

/// The REST route table: every REST route, the role it needs and its documentation.
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
        )
        .needs(Read),
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
        )
        .needs(Write),
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
        )
        .needs(Read),
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
        )
        .needs(Admin),
        Route::new(
            Put,
            "/v1/collections/{c}/indexes/{name}",
            indexes::put,
            Op::new("putIndex", "indexes", "Define a secondary index")
                .describe(
                    "Builds in the background (202, state building); the same definition again \
                    is a no-op (200); another one under a live name is invalid_argument, as is \
                    a seventeenth index. A missing collection is created with the defaults. \
                    Indexes never change a query's answer, only its cost.",
                )
                .body(true, &[("application/json", "IndexDefinition")])
                .reply(Reply::json(202, "Defined; building", "Index"))
                .reply(Reply::json(200, "Already defined, unchanged", "Index"))
                .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        )
        .needs(Write),
        Route::new(
            Get,
            "/v1/collections/{c}/indexes",
            indexes::list,
            Op::new(
                "listIndexes",
                "indexes",
                "List a collection's indexes and their build state",
            )
            .reply(Reply::json(200, "Every live index", "IndexList"))
            .errors(&[E::NotFound, E::Unavailable, E::Internal]),
        )
        .needs(Read),
        Route::new(
            Delete,
            "/v1/collections/{c}/indexes/{name}",
            indexes::delete,
            Op::new("dropIndex", "indexes", "Drop a secondary index")
                .reply(Reply::empty(204, "Dropped"))
                .errors(&[E::NotFound, E::Unavailable, E::Internal]),
        )
        .needs(Write),
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
        )
        .needs(Read),
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
        )
        .needs(Read),
        Route::new(
            Post,
            DOCS,
            documents::create,
            Op::new(
                "createDocument",
                "documents",
                "Create a document with a generated id",
            )
            .param(P::WriteConcern)
            .param(P::IdempotencyKey)
            .body(true, &[("application/json", "DocumentData")])
            .reply(Reply::json(201, "Created", "Document").headers(&[H::ETag, H::Location]))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        )
        .needs(Write),
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
        )
        .needs(Read),
        Route::new(
            Put,
            DOC,
            documents::put,
            Op::new("putDocument", "documents", "Create or replace a document")
                .param(P::WriteConcern)
                .param(P::IdempotencyKey)
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
        )
        .needs(Write),
        Route::new(
            Patch,
            DOC,
            documents::patch,
            Op::new("patchDocument", "documents", "Patch a document's data")
                .param(P::WriteConcern)
                .param(P::IdempotencyKey)
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
        )
        .needs(Write),
        Route::new(
            Delete,
            DOC,
            documents::delete,
            Op::new("deleteDocument", "documents", "Delete a document")
                .param(P::WriteConcern)
                .param(P::IdempotencyKey)
                .describe("A missing document is 404, checked before If-Match.")
                .param(P::IfMatch)
                .reply(Reply::empty(204, "Deleted"))
                .errors(&[
                    E::NotFound,
                    E::PreconditionFailed,
                    E::Unavailable,
                    E::Internal,
                ]),
        )
        .needs(Write),
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
        )
        .needs(Read),
        Route::new(
            Post,
            "/v1/collections/{c}/count",
            query::count,
            Op::new(
                "countDocuments",
                "documents",
                "Count the documents that match a filter",
            )
            .describe("An empty body counts every document. Uses an index where a query would.")
            .body(false, &[("application/json", "CountQuery")])
            .reply(Reply::json(
                200,
                "The number of matching documents",
                "Count",
            ))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        )
        .needs(Read),
        Route::new(
            Post,
            "/v1/collections/{c}/bulk",
            documents::bulk,
            Op::new(
                "bulkWrite",
                "documents",
                "Apply up to 1000 puts, patches and deletes",
            )
            .param(P::WriteConcern)
            .param(P::IdempotencyKey)
            .describe(
                "Per-op results in op order; ops on one id apply in order; nothing \
                    is atomic across documents. A malformed op fails only itself.",
            )
            .body(true, &[("application/json", "BulkRequest")])
            .reply(Reply::json(200, "Per-op results", "BulkResponse"))
            .errors(&[E::PayloadTooLarge, E::Unavailable, E::Internal]),
        )
        .needs(Write),
        Route::new(
            Get,
            "/v1/cluster",
            cluster::cluster,
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
        )
        .needs(Read),
        Route::new(
            Get,
            "/openapi.json",
            openapi::serve,
            Op::new("getOpenApi", "operations", "This OpenAPI document").reply(Reply::json(
                200,
                "The OpenAPI 3.0 document",
                "OpenApiDocument",
            )),
        )
        .open(),
    ]
}
