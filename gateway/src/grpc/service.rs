//! `aerolith.v1.Documents`: each method reads its request, calls the operation layer and
//! converts the answer; nothing else happens here.

use std::pin::Pin;

use futures::{Stream, StreamExt, stream};
use tonic::{Request, Response, Status};

use aerolith_common::json::{parse_object, parse_value};
use aerolith_common::patch::PatchKind;
use aerolith_proto::v1 as api;
use api::documents_server::Documents;

use super::convert::{self, non_empty, optional_json};
use super::status::{ctx_of, to_status, who_of};
use crate::ops::{Ctx, DEFAULT_TIMEOUT, Ops, Precondition, WatchItem};

/// The gRPC service over the operation layer.
pub struct DocumentsService {
    ops: Ops,
}

impl DocumentsService {
    /// A service calling `ops`.
    pub fn new(ops: Ops) -> DocumentsService {
        DocumentsService { ops }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// Turns an operation result into a reply.
fn reply<T>(r: aerolith_common::Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(to_status)
}

fn precondition(if_match: &str, if_none_match: &str) -> aerolith_common::Result<Precondition> {
    Precondition::from_tags(non_empty(if_match), non_empty(if_none_match))
}

/// The stream `Watch` answers.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<api::WatchResponse, Status>> + Send>>;

fn checkpoint(token: String) -> api::WatchResponse {
    api::WatchResponse {
        item: Some(api::watch_response::Item::Checkpoint(token)),
    }
}

#[tonic::async_trait]
impl Documents for DocumentsService {
    async fn list_collections(
        &self,
        req: Request<api::ListCollectionsRequest>,
    ) -> Reply<api::ListCollectionsResponse> {
        let ctx = ctx_of(&req)?;
        reply(
            self.ops
                .list_collections(ctx)
                .await
                .map(|list| api::ListCollectionsResponse {
                    collections: list.into_iter().map(convert::collection).collect(),
                }),
        )
    }

    async fn create_collection(
        &self,
        req: Request<api::CreateCollectionRequest>,
    ) -> Reply<api::CreateCollectionResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        reply(
            self.ops
                .put_collection(ctx, &r.name, non_empty(&r.conflict_strategy))
                .await
                .map(|(info, created)| api::CreateCollectionResponse {
                    collection: Some(convert::collection(info)),
                    created,
                }),
        )
    }

    async fn get_collection(
        &self,
        req: Request<api::GetCollectionRequest>,
    ) -> Reply<api::Collection> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        reply(
            self.ops
                .get_collection(ctx, &r.name)
                .await
                .map(convert::collection),
        )
    }

    async fn delete_collection(
        &self,
        req: Request<api::DeleteCollectionRequest>,
    ) -> Reply<api::DeleteCollectionResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        reply(
            self.ops
                .delete_collection(ctx, &r.name)
                .await
                .map(|()| api::DeleteCollectionResponse {}),
        )
    }

    async fn get_document(&self, req: Request<api::GetDocumentRequest>) -> Reply<api::Document> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        reply(
            self.ops
                .get_document(ctx, &r.collection, &r.id)
                .await
                .and_then(convert::document),
        )
    }

    async fn put_document(
        &self,
        req: Request<api::PutDocumentRequest>,
    ) -> Reply<api::PutDocumentResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let pre = precondition(&r.if_match, &r.if_none_match).map_err(to_status)?;
        let data = parse_object(r.data_json.as_bytes(), self.ops.limits()).map_err(to_status)?;
        let written = self
            .ops
            .put_or_create(ctx, &r.collection, non_empty(&r.id), &data, &pre)
            .await;
        reply(written.and_then(|(doc, created)| {
            Ok(api::PutDocumentResponse {
                document: Some(convert::document(doc)?),
                created,
            })
        }))
    }

    async fn patch_document(
        &self,
        req: Request<api::PatchDocumentRequest>,
    ) -> Reply<api::Document> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let pre = precondition(&r.if_match, "").map_err(to_status)?;
        let depth = self.ops.limits().max_depth + 2;
        let patch = parse_value(r.patch_json.as_bytes(), depth).map_err(to_status)?;
        reply(
            self.ops
                .patch_document(
                    ctx,
                    &r.collection,
                    &r.id,
                    PatchKind::of(&patch),
                    &patch,
                    &pre,
                )
                .await
                .and_then(convert::document),
        )
    }

    async fn delete_document(
        &self,
        req: Request<api::DeleteDocumentRequest>,
    ) -> Reply<api::DeleteDocumentResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let pre = precondition(&r.if_match, "").map_err(to_status)?;
        reply(
            self.ops
                .delete_document(ctx, &r.collection, &r.id, &pre)
                .await
                .map(|()| api::DeleteDocumentResponse {}),
        )
    }

    async fn query(&self, req: Request<api::QueryRequest>) -> Reply<api::DocumentPage> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let input = convert::query(&r).map_err(to_status)?;
        reply(
            self.ops
                .query(ctx, &r.collection, &input)
                .await
                .and_then(convert::page),
        )
    }

    async fn count(&self, req: Request<api::CountRequest>) -> Reply<api::CountResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let filter = convert::optional_json(&r.filter_json, "filter_json").map_err(to_status)?;
        reply(
            self.ops
                .count(ctx, &r.collection, filter.as_ref())
                .await
                .map(|count| api::CountResponse { count }),
        )
    }

    async fn bulk_write(
        &self,
        req: Request<api::BulkWriteRequest>,
    ) -> Reply<api::BulkWriteResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let ops = r
            .ops
            .iter()
            .map(convert::bulk_op)
            .collect::<aerolith_common::Result<Vec<_>>>()
            .map_err(to_status)?;
        reply(
            self.ops
                .bulk(ctx, &r.collection, ops)
                .await
                .map(|items| api::BulkWriteResponse {
                    results: items.into_iter().map(convert::bulk_result).collect(),
                }),
        )
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<api::WatchRequest>) -> Reply<WatchStream> {
        let ctx = Ctx::new(DEFAULT_TIMEOUT).by(who_of(&req));
        let r = req.into_inner();
        let filter = optional_json(&r.filter_json, "filter_json").map_err(to_status)?;
        let start = self
            .ops
            .open_feed(ctx, &r.collection, filter.as_ref(), non_empty(&r.since))
            .await
            .map_err(to_status)?;
        let first = checkpoint(start.token.clone());
        let watch = self.ops.watch(&r.collection, start);
        // The feed's items, ending right after the first error.
        let items = stream::unfold(Some(watch), |watch| async move {
            let mut watch = watch?;
            let item = match watch.next().await? {
                WatchItem::Change(v) => convert::change(v).map(|e| api::WatchResponse {
                    item: Some(api::watch_response::Item::Event(e)),
                }),
                WatchItem::Checkpoint(token) => Ok(checkpoint(token)),
                WatchItem::Failed(e) => return Some((Err(to_status(e)), None)),
            };
            Some((item.map_err(to_status), Some(watch)))
        });
        Ok(Response::new(
            stream::once(async { Ok(first) }).chain(items).boxed(),
        ))
    }

    async fn create_index(
        &self,
        req: Request<api::CreateIndexRequest>,
    ) -> Reply<api::CreateIndexResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        let fields = convert::index_fields(&r.fields).map_err(to_status)?;
        reply(
            self.ops
                .put_index(ctx, &r.collection, &r.name, fields)
                .await
                .map(|(info, created)| api::CreateIndexResponse {
                    index: Some(convert::index(info)),
                    created,
                }),
        )
    }

    async fn list_indexes(
        &self,
        req: Request<api::ListIndexesRequest>,
    ) -> Reply<api::ListIndexesResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        reply(self.ops.list_indexes(ctx, &r.collection).await.map(|list| {
            api::ListIndexesResponse {
                indexes: list.into_iter().map(convert::index).collect(),
            }
        }))
    }

    async fn drop_index(
        &self,
        req: Request<api::DropIndexRequest>,
    ) -> Reply<api::DropIndexResponse> {
        let ctx = ctx_of(&req)?;
        let r = req.into_inner();
        reply(
            self.ops
                .drop_index(ctx, &r.collection, &r.name)
                .await
                .map(|()| api::DropIndexResponse {}),
        )
    }
}
