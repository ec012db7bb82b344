//! `type Subscription`: a collection's change feed, over `graphql-transport-ws`.

use async_graphql::{Context, Result, Subscription};
use futures::{Stream, StreamExt, stream};

use super::json::Json;
use super::types::ChangeEvent;
use super::{gql, ops};
use crate::ops::WatchItem;

/// The root of subscriptions.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The feed of `collection`: first a checkpoint with the starting token, then changes
    /// (puts matching `filter`, every delete) and checkpoints while it is quiet. An error
    /// (an expired token, a deleted collection) ends it.
    async fn changes(
        &self,
        c: &Context<'_>,
        collection: String,
        filter: Option<Json>,
        since: Option<String>,
    ) -> Result<impl Stream<Item = Result<ChangeEvent>> + use<>> {
        let ops = ops(c)?.clone();
        let filter = filter.map(|f| f.0).filter(|f| !f.is_null());
        let start = ops
            .open_feed(
                super::ctx(c),
                &collection,
                filter.as_ref(),
                since.as_deref(),
            )
            .await
            .map_err(gql)?;
        let first = ChangeEvent::checkpoint(&collection, start.token.clone());
        let watch = ops.watch(&collection, start);
        let items = stream::unfold(Some((watch, collection)), |state| async move {
            let (mut watch, collection) = state?;
            let event = match watch.next().await? {
                WatchItem::Change(v) => match ChangeEvent::change(v) {
                    Ok(event) => event,
                    Err(e) => return Some((Err(gql(e)), None)),
                },
                WatchItem::Checkpoint(token) => ChangeEvent::checkpoint(&collection, token),
                WatchItem::Failed(e) => return Some((Err(gql(e)), None)),
            };
            Some((Ok(event), Some((watch, collection))))
        });
        Ok(stream::once(async { Ok(first) }).chain(items))
    }
}
