//! One WebSocket subscription: the operation layer's live feed, rendered as `change`,
//! `checkpoint` and `error` frames into the connection's outbox.

use serde_json::{Value, json};

use crate::ops::{ChangeView, Watch, WatchItem};

use super::frame;
use super::outbox::Outbox;

/// Forwards a feed until it fails (the error is sent to the client) or the client goes away
/// or falls too far behind; it is aborted on `unsubscribe`.
pub async fn run(mut watch: Watch, out: Outbox, sub: String) {
    let _open = metrics_guard();
    while let Some(item) = watch.next().await {
        let delivered = match item {
            WatchItem::Change(v) => {
                let sent = out.push(change_frame(&sub, v)).await;
                if sent {
                    metrics::counter!("aerolith_ws_events_delivered_total").increment(1);
                }
                sent
            }
            WatchItem::Checkpoint(token) => {
                out.push(json!({"type": "checkpoint", "sub": sub, "token": token}))
                    .await
            }
            WatchItem::Failed(e) => {
                out.push(frame::error(Some(("sub", &sub)), &e)).await;
                false
            }
        };
        if !delivered {
            return;
        }
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
