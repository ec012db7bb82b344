//! A live change feed, shared by the WebSocket, gRPC `Watch` and GraphQL subscriptions: a
//! tail of every storage node's shards of a collection, each node on its own task so a quiet
//! node never delays a busy one. Positions are shared; items are queued while holding them,
//! so the token of any queued item covers exactly the items before it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use aerolith_common::query::Filter;
use aerolith_common::{Error, ErrorCode, Result};

use super::changes::{ChangeView, FeedStart, Fetched, assemble};
use super::token::Positions;
use super::{Ctx, Ops};
use crate::caps::Slot;
use crate::router::NodeShards;

/// How long a caught-up node read waits for the next change.
const LIVE_WAIT: Duration = Duration::from_secs(2);
/// Changes read per node round trip.
const BATCH: u32 = 500;
/// Quiet feeds get a checkpoint at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Pause before retrying a node that did not answer.
const RETRY: Duration = Duration::from_millis(500);
/// Items buffered between the node tasks and the protocol adapter; beyond that the node
/// tasks wait, so a slow reader slows its own feed and nobody else's (and pins at most this
/// many changes).
const QUEUE: usize = 16;

/// What a live feed yields.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// A change that passed the filter.
    Change(ChangeView),
    /// A token that resumes the feed here (the feed was quiet, or its changes were filtered
    /// out).
    Checkpoint(String),
    /// The feed ended for good (an expired token, a deleted collection); nothing follows.
    Failed(Error),
}

/// A running feed: a stream of [`WatchItem`]s. Dropping it stops the node tasks and gives
/// back the caller's subscription place.
pub struct Watch {
    rx: mpsc::Receiver<WatchItem>,
    _tasks: JoinSet<()>,
    _slot: Slot,
}

impl Watch {
    /// The next item; `None` once the feed has ended.
    pub async fn next(&mut self) -> Option<WatchItem> {
        self.rx.recv().await
    }
}

impl Stream for Watch {
    type Item = WatchItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchItem>> {
        self.rx.poll_recv(cx)
    }
}

/// Positions and the last time something was sent, shared by a feed's node tasks.
struct Shared {
    positions: Positions,
    last_sent: Instant,
    /// A node task has ended the feed with an error; the others stay silent.
    failed: bool,
}

/// What every node task of one feed needs.
struct Feed {
    ops: Ops,
    collection: String,
    filter: Option<Filter>,
    tx: mpsc::Sender<WatchItem>,
    shared: Mutex<Shared>,
}

impl Ops {
    /// Starts tailing `collection` from an opened feed (see [`Ops::open_feed`]).
    pub fn watch(&self, collection: &str, start: FeedStart) -> Watch {
        let (tx, rx) = mpsc::channel(QUEUE);
        let feed = Arc::new(Feed {
            ops: self.clone(),
            collection: collection.to_string(),
            filter: start.filter,
            tx,
            shared: Mutex::new(Shared {
                positions: start.positions,
                last_sent: Instant::now(),
                failed: false,
            }),
        });
        let mut tasks = JoinSet::new();
        for node in self.router.nodes() {
            tasks.spawn(tail_node(feed.clone(), node));
        }
        // Ends the feed when the gateway shuts down. It holds the feed weakly, so once the
        // node tasks are gone the channel closes and the reader sees the end.
        let weak = Arc::downgrade(&feed);
        let router = self.router.clone();
        tasks.spawn(async move {
            router.closing().await;
            if let Some(feed) = weak.upgrade() {
                let mut st = feed.shared.lock().await;
                fail(
                    &feed,
                    &mut st,
                    Error::unavailable("the gateway is shutting down"),
                )
                .await;
            }
        });
        Watch {
            rx,
            _tasks: tasks,
            _slot: start.slot,
        }
    }
}

/// Tails one node's shards until a fatal error or a reader that went away. The node's
/// shards are read from the shard map each round: a shard that moves to another node is
/// tailed there from the same position (its log moved with it).
async fn tail_node(feed: Arc<Feed>, mut node: NodeShards) {
    // The collection incarnation this node reported once the collection existed there: if
    // the collection is then deleted (or re-created), the node answers `not_found` and the
    // feed ends (API.md). Each node keeps its own copy of the settings.
    let mut incarnation = None;
    loop {
        if let Some(now) = feed
            .ops
            .router
            .nodes()
            .into_iter()
            .find(|n| n.id == node.id)
        {
            node = now;
        }
        if node.shards.is_empty() {
            tokio::time::sleep(RETRY).await;
            if feed.shared.lock().await.failed {
                return;
            }
            continue;
        }
        let from = feed.shared.lock().await.positions.clone();
        let ctx = Ctx::new(LIVE_WAIT + Duration::from_secs(10));
        let fetched = feed
            .ops
            .fetch_node(
                ctx,
                &node,
                &feed.collection,
                &from,
                BATCH,
                LIVE_WAIT,
                incarnation,
            )
            .await;
        let fetched = match fetched {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::ResumeTokenExpired
                        | ErrorCode::InvalidArgument
                        | ErrorCode::NotFound
                ) =>
            {
                let mut st = feed.shared.lock().await;
                fail(&feed, &mut st, e).await;
                return;
            }
            Err(e) => {
                tracing::debug!(node = %node.id, error = %e.message, "feed paused on a node");
                tokio::time::sleep(RETRY).await;
                if feed.shared.lock().await.failed {
                    return;
                }
                continue;
            }
        };
        let mut st = feed.shared.lock().await;
        if st.failed {
            return;
        }
        if incarnation.is_none() {
            incarnation = fetched.incarnation;
        }
        match deliver(&feed, &mut st, fetched).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                fail(&feed, &mut st, e).await;
                return;
            }
        }
    }
}

/// Queues a batch's matching changes (and a checkpoint when the feed is quiet or the batch
/// ended on filtered-out changes). False once the reader is gone.
async fn deliver(feed: &Feed, st: &mut Shared, fetched: Fetched) -> Result<bool> {
    let dc = feed.ops.router.dc();
    let views = assemble(dc, &mut st.positions, fetched, BATCH)?;
    let mut tail_filtered = views.is_empty();
    for v in views {
        let pass = v.op == "delete"
            || match (&feed.filter, &v.data) {
                (Some(f), Some(data)) => f.matches(&v.id, &data.object()?),
                _ => true,
            };
        tail_filtered = !pass;
        if pass {
            if feed.tx.send(WatchItem::Change(v)).await.is_err() {
                return Ok(false);
            }
            st.last_sent = Instant::now();
        }
    }
    if tail_filtered && st.last_sent.elapsed() >= CHECKPOINT_EVERY {
        let token = st.positions.encode(dc);
        if feed.tx.send(WatchItem::Checkpoint(token)).await.is_err() {
            return Ok(false);
        }
        st.last_sent = Instant::now();
    }
    Ok(true)
}

/// Ends the feed with one error, however many node tasks fail. The caller holds the shared
/// state, so no other task can queue anything after the error.
async fn fail(feed: &Feed, st: &mut Shared, e: Error) {
    if !st.failed {
        st.failed = true;
        let _ = feed.tx.send(WatchItem::Failed(e)).await;
    }
}
