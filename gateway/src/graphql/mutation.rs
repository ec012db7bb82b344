//! `type Mutation`: collection creation and document writes.

use async_graphql::{Context, ID, Object, Result};

use aerolith_common::auth::Role;
use aerolith_common::json::object_of;
use aerolith_common::patch::PatchKind;

use super::json::Json;
use super::types::{Collection, ConflictStrategy, Document, Index, IndexFieldInput};
use super::{ctx, gql, ops, require};
use crate::ops::{Ctx, Precondition, WriteConcern};

/// The root of writes.
pub struct MutationRoot;

fn precondition(if_match: Option<&str>, if_none_match: bool) -> Result<Precondition> {
    Precondition::from_tags(if_match, if_none_match.then_some("*")).map_err(gql)
}

/// The request's context with the mutation's `writeConcern` (the header's when absent) and
/// `idempotencyKey` (the `Idempotency-Key` header's when absent).
fn write_ctx(c: &Context<'_>, wc: Option<&str>, key: Option<&str>) -> Result<Ctx> {
    require(c, Role::Write)?;
    let ctx = ctx(c);
    let concern = match wc {
        None => ctx.write_concern,
        Some(wc) => WriteConcern::parse(Some(wc)).map_err(gql)?,
    };
    let session = ctx.session.clone();
    let ctx = ctx.with(session, concern);
    match key {
        None => Ok(ctx),
        Some(key) => ctx.with_idempotency_key(Some(key)).map_err(gql),
    }
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a collection (or confirms one with the same strategy).
    async fn create_collection(
        &self,
        c: &Context<'_>,
        name: String,
        #[graphql(default_with = "Some(ConflictStrategy::Lww)")] conflict_strategy: Option<
            ConflictStrategy,
        >,
    ) -> Result<Collection> {
        require(c, Role::Write)?;
        // The schema's default (LWW) applies only to a new collection: like REST without
        // settings, leaving the argument out never conflicts with an existing strategy.
        let written = c
            .field()
            .arguments()
            .map(|args| {
                args.iter().any(|(name, v)| {
                    name.as_str() == "conflictStrategy" && *v != async_graphql::Value::Null
                })
            })
            .unwrap_or(false);
        let strategy = conflict_strategy
            .filter(|_| written)
            .map(ConflictStrategy::as_str);
        let (info, _) = ops(c)?
            .put_collection(ctx(c), &name, strategy)
            .await
            .map_err(gql)?;
        Ok(info.into())
    }

    /// Defines a secondary index, built in the background (the same definition again is a
    /// no-op; other fields under a live name are `invalid_argument`).
    async fn create_index(
        &self,
        c: &Context<'_>,
        collection: String,
        name: String,
        fields: Vec<IndexFieldInput>,
    ) -> Result<Index> {
        require(c, Role::Write)?;
        let fields = fields
            .into_iter()
            .map(|f| crate::ops::index_field(f.path, f.order.as_deref()).map_err(gql))
            .collect::<Result<Vec<_>>>()?;
        let (info, _) = ops(c)?
            .put_index(ctx(c), &collection, &name, fields)
            .await
            .map_err(gql)?;
        Ok(info.into())
    }

    /// Drops a secondary index; `not_found` if it does not exist.
    async fn drop_index(&self, c: &Context<'_>, collection: String, name: String) -> Result<bool> {
        require(c, Role::Write)?;
        ops(c)?
            .drop_index(ctx(c), &collection, &name)
            .await
            .map_err(gql)?;
        Ok(true)
    }

    /// Creates or replaces a document (without `id`, creates one under a generated id).
    #[allow(clippy::too_many_arguments)]
    async fn put_document(
        &self,
        c: &Context<'_>,
        collection: String,
        id: Option<ID>,
        data: Json,
        if_match: Option<String>,
        if_none_match: Option<bool>,
        write_concern: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Document> {
        let wctx = write_ctx(c, write_concern.as_deref(), idempotency_key.as_deref())?;
        let pre = precondition(if_match.as_deref(), if_none_match.unwrap_or(false))?;
        let data = object_of(data.0).map_err(gql)?;
        let (doc, _) = ops(c)?
            .put_or_create(
                wctx,
                &collection,
                id.as_ref().map(|i| i.as_str()),
                &data,
                &pre,
            )
            .await
            .map_err(gql)?;
        Ok(Document(doc))
    }

    /// Applies a merge patch (an object) or a JSON Patch (an array).
    #[allow(clippy::too_many_arguments)]
    async fn patch_document(
        &self,
        c: &Context<'_>,
        collection: String,
        id: ID,
        patch: Json,
        if_match: Option<String>,
        write_concern: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Document> {
        let wctx = write_ctx(c, write_concern.as_deref(), idempotency_key.as_deref())?;
        let pre = precondition(if_match.as_deref(), false)?;
        let kind = PatchKind::of(&patch.0);
        let doc = ops(c)?
            .patch_document(wctx, &collection, &id, kind, &patch.0, &pre)
            .await
            .map_err(gql)?;
        Ok(Document(doc))
    }

    /// Deletes a document; true once deleted.
    async fn delete_document(
        &self,
        c: &Context<'_>,
        collection: String,
        id: ID,
        if_match: Option<String>,
        write_concern: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<bool> {
        let wctx = write_ctx(c, write_concern.as_deref(), idempotency_key.as_deref())?;
        let pre = precondition(if_match.as_deref(), false)?;
        ops(c)?
            .delete_document(wctx, &collection, &id, &pre)
            .await
            .map_err(gql)?;
        Ok(true)
    }
}
