//! `type Query`: collection and document reads.

use async_graphql::{Context, ID, Object, Result};

use super::json::Json;
use super::types::{Collection, Document, DocumentPage, SortInput};
use super::{ctx, gql, null_if_not_found, ops};
use aerolith_common::query::{SortKey, projection_paths};

use crate::ops::{DEFAULT_LIMIT, QueryInput, check_limit};

/// A page costs its selection once per document it may hold.
fn page_cost(limit: Option<i32>, child_complexity: usize) -> usize {
    let documents = limit.unwrap_or(100).clamp(1, 1000) as usize;
    documents.saturating_mul(child_complexity.max(1))
}

/// The root of reads.
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Every collection of the DC.
    async fn collections(&self, c: &Context<'_>) -> Result<Vec<Collection>> {
        let list = ops(c)?.list_collections(ctx(c)).await.map_err(gql)?;
        Ok(list.into_iter().map(Collection::from).collect())
    }

    /// One collection; null (with a `not_found` error) if it does not exist.
    async fn collection(&self, c: &Context<'_>, name: String) -> Result<Option<Collection>> {
        let info = ops(c)?.get_collection(ctx(c), &name).await;
        null_if_not_found(c, info.map(Collection::from))
    }

    /// One document; null (with a `not_found` error) if absent or deleted.
    async fn document(
        &self,
        c: &Context<'_>,
        collection: String,
        id: ID,
    ) -> Result<Option<Document>> {
        let doc = ops(c)?.get_document(ctx(c), &collection, &id).await;
        null_if_not_found(c, doc.map(Document))
    }

    /// One page of a query (API.md "Query").
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn documents(
        &self,
        c: &Context<'_>,
        collection: String,
        filter: Option<Json>,
        sort: Option<Vec<SortInput>>,
        #[graphql(default = 100)] limit: Option<i32>,
        cursor: Option<String>,
        projection: Option<Vec<String>>,
        explain: Option<bool>,
    ) -> Result<DocumentPage> {
        let sort = sort
            .unwrap_or_default()
            .iter()
            .map(|k| SortKey::ordered(&k.field, k.order.as_deref()))
            .collect::<aerolith_common::Result<Vec<_>>>()
            .map_err(gql)?;
        let input = QueryInput {
            filter: filter.map(|f| f.0).filter(|f| !f.is_null()),
            sort,
            limit: match limit {
                None => DEFAULT_LIMIT,
                Some(n) => check_limit(Some(i64::from(n)), &n).map_err(gql)?,
            },
            cursor,
            projection: projection.map(projection_paths).transpose().map_err(gql)?,
            explain: explain.unwrap_or(false),
        };
        let page = ops(c)?
            .query(ctx(c), &collection, &input)
            .await
            .map_err(gql)?;
        Ok(page.into())
    }

    /// How many documents of a collection match `filter` (all of them without one).
    async fn count(
        &self,
        c: &Context<'_>,
        collection: String,
        filter: Option<Json>,
    ) -> Result<u64> {
        let filter = filter.map(|f| f.0).filter(|f| !f.is_null());
        ops(c)?
            .count(ctx(c), &collection, filter.as_ref())
            .await
            .map_err(gql)
    }
}
