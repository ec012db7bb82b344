//! A connection's bounded outbound queue. Subscriptions wait a little for room (a client
//! catching up drains it in bursts); a client that leaves it full for [`SLOW_AFTER`] is a slow
//! consumer and is disconnected (it can resume from its last token).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::Message;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

/// Default for the frames a connection may have queued before its client counts as a slow
/// consumer.
pub const DEFAULT_QUEUE_FRAMES: usize = 4096;

/// Largest queue a connection may be configured with.
pub const MAX_QUEUE_FRAMES: usize = 1 << 20;

/// How long a full queue may stay full before its client counts as a slow consumer.
pub const SLOW_AFTER: Duration = Duration::from_secs(3);

/// The sending side of a connection, shared by its subscriptions and request handlers.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Message>,
    slow: Arc<Notify>,
    flagged: Arc<AtomicBool>,
}

impl Outbox {
    /// A queue of `frames` and its receiving end.
    pub fn new(frames: usize) -> (Outbox, mpsc::Receiver<Message>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(frames.clamp(1, MAX_QUEUE_FRAMES));
        let slow = Arc::new(Notify::new());
        (
            Outbox {
                tx,
                slow: slow.clone(),
                flagged: Arc::new(AtomicBool::new(false)),
            },
            rx,
            slow,
        )
    }

    /// Queues a subscription frame, waiting up to [`SLOW_AFTER`] for room; a queue that stays
    /// full flags the client as a slow consumer. False when the frame was not queued.
    pub async fn push(&self, frame: Value) -> bool {
        let m = Message::Text(frame.to_string().into());
        match self.tx.send_timeout(m, SLOW_AFTER).await {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                // Counted when detected, not when the writer acts on it: the writer may sit
                // in a blocked send until the client reads again.
                if !self.flagged.swap(true, Ordering::Relaxed) {
                    metrics::counter!("aerolith_ws_slow_consumer_disconnects_total").increment(1);
                }
                self.slow.notify_one();
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }

    /// Queues a reply, waiting for room (replies are paced by the client's own requests).
    pub async fn reply(&self, frame: Value) -> bool {
        self.tx
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_ok()
    }

    /// Queues a control message (ping, close) if there is room; never waits.
    pub fn try_raw(&self, m: Message) {
        let _ = self.tx.try_send(m);
    }
}
