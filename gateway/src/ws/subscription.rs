//! One subscription: a tail of every storage node's shards of a collection, each node on its
//! own task so a quiet node never delays a busy one. Positions are shared; events are queued
//! while holding them, so the token of any queued frame covers exactly the frames before it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use aerolith_common::query::Filter;
use aerolith_common::{ErrorCode, Result};

use super::frame;
use super::outbox::Outbox;
use crate::ops::{ChangeView, Ctx, Ops, Positions, assemble};
use crate::router::NodeShards;

/// How long a caught-up node read waits for the next change.
const LIVE_WAIT: Duration = Duration::from_secs(2);
/// Changes read per node round trip.
const BATCH: u32 = 500;
/// Quiet subscriptions get a checkpoint at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Pause before retrying a node that did not answer.
const RETRY: Duration = Duration::from_millis(500);

/// What a subscription needs.
pub struct Spec {
    /// The client's name for it.
    pub sub: String,
    /// Its collection.
    pub collection: String,
    /// Puts must match it.
    pub filter: Option<Filter>,
}

/// Positions and the last checkpoint time, shared by a subscription's node tasks.
struct Shared {
    positions: Positions,
    last_sent: Instant,
    /// A node task has ended the subscription with an error; the others stay silent.
    failed: bool,
}

/// Runs a subscription until it fails for good (the error is sent to the client) or the
/// client goes away; it is aborted on `unsubscribe`.
pub async fn run(ops: Ops, out: Outbox, spec: Spec, positions: Positions) {
    let _open = metrics_guard();
    let spec = Arc::new(spec);
    let shared = Arc::new(Mutex::new(Shared {
        positions,
        last_sent: Instant::now(),
        failed: false,
    }));
    let mut tasks = JoinSet::new();
    for node in ops.router().nodes() {
        tasks.spawn(tail_node(
            ops.clone(),
            out.clone(),
            spec.clone(),
            shared.clone(),
            node,
        ));
    }
    // The first task to end ends the subscription (dropping the set aborts the others).
    let _ = tasks.join_next().await;
}

/// Tails one node's shards until a fatal error or a closed connection.
async fn tail_node(
    ops: Ops,
    out: Outbox,
    spec: Arc<Spec>,
    shared: Arc<Mutex<Shared>>,
    node: NodeShards,
) {
    let dc = ops.router().dc().to_string();
    // The collection incarnation this node reported once the collection existed there: if
    // the collection is then deleted (or re-created), the node answers `not_found` and the
    // subscription ends (API.md). Each node keeps its own copy of the settings.
    let mut incarnation = None;
    loop {
        let from = shared.lock().await.positions.clone();
        let ctx = Ctx::new(LIVE_WAIT + Duration::from_secs(10));
        let fetched = ops
            .fetch_node(
                ctx,
                &node,
                &spec.collection,
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
                fail(&shared, &out, &spec.sub, &e).await;
                return;
            }
            Err(e) => {
                tracing::debug!(node = %node.id, error = %e.message, "subscription paused on a node");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut st = shared.lock().await;
        if st.failed {
            return;
        }
        if incarnation.is_none() {
            incarnation = fetched.incarnation;
        }
        match deliver(&dc, &spec, &mut st, fetched, &out).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                drop(st);
                fail(&shared, &out, &spec.sub, &e).await;
                return;
            }
        }
    }
}

/// Queues a batch's matching changes (and a checkpoint when the feed is quiet or the batch
/// ended on filtered-out changes). False once the connection is gone or too far behind.
async fn deliver(
    dc: &str,
    spec: &Spec,
    st: &mut Shared,
    fetched: crate::ops::Fetched,
    out: &Outbox,
) -> Result<bool> {
    let views = assemble(dc, &mut st.positions, fetched, BATCH)?;
    let mut tail_filtered = views.is_empty();
    for v in views {
        let pass = v.op == "delete"
            || match (&spec.filter, &v.data) {
                (Some(f), Some(data)) => f.matches(&v.id, data),
                _ => true,
            };
        tail_filtered = !pass;
        if pass {
            if !out.push(change_frame(&spec.sub, v)).await {
                return Ok(false);
            }
            metrics::counter!("aerolith_ws_events_delivered_total").increment(1);
            st.last_sent = Instant::now();
        }
    }
    if tail_filtered && st.last_sent.elapsed() >= CHECKPOINT_EVERY {
        let token = st.positions.encode(dc);
        if !out
            .push(json!({"type": "checkpoint", "sub": spec.sub, "token": token}))
            .await
        {
            return Ok(false);
        }
        st.last_sent = Instant::now();
    }
    Ok(true)
}

/// Ends the subscription with one error frame, however many node tasks fail.
async fn fail(shared: &Mutex<Shared>, out: &Outbox, sub: &str, e: &aerolith_common::Error) {
    let mut st = shared.lock().await;
    if !st.failed {
        st.failed = true;
        out.push(frame::error(Some(("sub", sub)), e)).await;
    }
}

fn change_frame(sub: &str, v: ChangeView) -> Value {
    let mut frame = serde_json::to_value(v).unwrap_or(Value::Null);
    frame["type"] = json!("change");
    frame["sub"] = json!(sub);
    frame
}

/// Counts the subscription as open while it lives.
struct OpenGuard;

fn metrics_guard() -> OpenGuard {
    metrics::gauge!("aerolith_ws_subscriptions").increment(1.0);
    OpenGuard
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        metrics::gauge!("aerolith_ws_subscriptions").decrement(1.0);
    }
}
