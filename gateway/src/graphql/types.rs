//! GraphQL object types (API.md "GraphQL"), each a view of an operation-layer value.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};

use aerolith_common::document::{ConflictVersion as Conflict, Document as Doc};

use super::json::{Json, body};
use super::{ctx, gql, ops};
use crate::ops::{ChangeView, CollectionInfo, IndexInfo, Page};

/// A collection's conflict strategy.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum ConflictStrategy {
    /// Last writer wins.
    Lww,
    /// Concurrent versions kept as siblings.
    Siblings,
    /// Concurrent writes merged field by field.
    FieldMerge,
}

impl ConflictStrategy {
    /// The strategy's name in REST and the operation layer.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStrategy::Lww => "lww",
            ConflictStrategy::Siblings => "siblings",
            ConflictStrategy::FieldMerge => "field_merge",
        }
    }

    fn from_name(name: &str) -> ConflictStrategy {
        match name {
            "siblings" => ConflictStrategy::Siblings,
            "field_merge" => ConflictStrategy::FieldMerge,
            _ => ConflictStrategy::Lww,
        }
    }
}

/// A collection.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Collection {
    name: String,
    conflict_strategy: ConflictStrategy,
}

#[ComplexObject]
impl Collection {
    /// Its live secondary indexes and how far this DC has built each.
    async fn indexes(&self, c: &Context<'_>) -> async_graphql::Result<Vec<Index>> {
        let list = ops(c)?
            .list_indexes(ctx(c), &self.name)
            .await
            .map_err(gql)?;
        Ok(list.into_iter().map(Index::from).collect())
    }
}

/// One field of a secondary index.
#[derive(SimpleObject)]
pub struct IndexField {
    path: String,
    order: String,
}

/// A field of an index to define.
#[derive(InputObject)]
pub struct IndexFieldInput {
    /// A dotted path (not `_id`).
    pub path: String,
    /// `asc` or `desc`.
    #[graphql(default_with = "Some(\"asc\".to_string())")]
    pub order: Option<String>,
}

/// A secondary index and how far this DC has built it.
#[derive(SimpleObject)]
pub struct Index {
    name: String,
    fields: Vec<IndexField>,
    state: String,
    progress: Option<f64>,
    reason: Option<String>,
}

impl From<IndexInfo> for Index {
    fn from(i: IndexInfo) -> Index {
        Index {
            name: i.name,
            fields: i
                .fields
                .into_iter()
                .map(|f| IndexField {
                    path: f.path,
                    order: f.order.to_string(),
                })
                .collect(),
            state: i.state.to_string(),
            progress: i.progress,
            reason: i.reason,
        }
    }
}

impl From<CollectionInfo> for Collection {
    fn from(c: CollectionInfo) -> Collection {
        Collection {
            conflict_strategy: ConflictStrategy::from_name(&c.conflict_strategy),
            name: c.name,
        }
    }
}

/// A concurrent version of a document.
pub struct ConflictVersion(Conflict);

#[Object]
impl ConflictVersion {
    async fn version(&self) -> &str {
        &self.0.version
    }
    async fn updated_at(&self) -> &str {
        &self.0.updated_at
    }
    async fn origin(&self) -> &str {
        &self.0.origin
    }
    async fn data(&self) -> async_graphql::Result<Json> {
        body(&self.0.data).map_err(gql)
    }
}

/// A document.
pub struct Document(pub Doc);

#[Object]
impl Document {
    async fn collection(&self) -> &str {
        &self.0.collection
    }
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn version(&self) -> &str {
        &self.0.version
    }
    async fn updated_at(&self) -> &str {
        &self.0.updated_at
    }
    async fn origin(&self) -> &str {
        &self.0.origin
    }
    async fn data(&self) -> async_graphql::Result<Json> {
        body(&self.0.data).map_err(gql)
    }
    async fn conflicts(&self) -> Option<Vec<ConflictVersion>> {
        self.0
            .conflicts
            .as_ref()
            .map(|c| c.iter().cloned().map(ConflictVersion).collect())
    }
}

/// A page of documents.
#[derive(SimpleObject)]
pub struct DocumentPage {
    documents: Vec<Document>,
    next_cursor: Option<String>,
    /// With `explain: true`: how each storage node reached its documents.
    plan: Option<Vec<PlanStep>>,
}

/// One storage node's part of a query plan.
#[derive(SimpleObject)]
pub struct PlanStep {
    /// The storage node's id.
    node: String,
    /// The index it used; null for a scan of the collection.
    index: Option<String>,
    /// The records (or, walking an index in the sort's order, entries) it read.
    examined: u64,
}

impl From<Page> for DocumentPage {
    fn from(p: Page) -> DocumentPage {
        DocumentPage {
            documents: p.documents.into_iter().map(Document).collect(),
            next_cursor: p.next_cursor,
            plan: p.plan.map(|steps| {
                steps
                    .into_iter()
                    .map(|s| PlanStep {
                        node: s.node,
                        index: s.index,
                        examined: s.examined,
                    })
                    .collect()
            }),
        }
    }
}

/// A change, or (op `checkpoint`) only a token.
#[derive(SimpleObject)]
pub struct ChangeEvent {
    op: String,
    collection: String,
    id: Option<ID>,
    version: Option<String>,
    updated_at: Option<String>,
    origin: Option<String>,
    data: Option<Json>,
    token: String,
}

impl ChangeEvent {
    /// A change.
    pub fn change(v: ChangeView) -> aerolith_common::Result<ChangeEvent> {
        Ok(ChangeEvent {
            op: v.op.to_string(),
            data: v.data.as_ref().map(body).transpose()?,
            collection: v.collection,
            id: Some(ID(v.id)),
            version: Some(v.version),
            updated_at: Some(v.updated_at),
            origin: Some(v.origin),
            token: v.token,
        })
    }

    /// A checkpoint of `collection`'s feed.
    pub fn checkpoint(collection: &str, token: String) -> ChangeEvent {
        ChangeEvent {
            op: "checkpoint".to_string(),
            collection: collection.to_string(),
            id: None,
            version: None,
            updated_at: None,
            origin: None,
            data: None,
            token,
        }
    }
}

/// One sort key of a query.
#[derive(InputObject)]
pub struct SortInput {
    /// A dotted path, or `_id`.
    pub field: String,
    /// `asc` or `desc`.
    #[graphql(default_with = "Some(\"asc\".to_string())")]
    pub order: Option<String>,
}
