//! A connection's bounded outbound queue. Subscriptions never wait on it: a client that lets
//! it fill up is a slow consumer and is disconnected (it can resume from its last token).

use std::sync::Arc;

use axum::extract::ws::Message;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

/// Frames a connection may have queued before its client counts as a slow consumer.
pub const QUEUE_FRAMES: usize = 4096;

/// The sending side of a connection, shared by its subscriptions and request handlers.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Message>,
    slow: Arc<Notify>,
}

impl Outbox {
    /// A queue of `frames` and its receiving end.
    pub fn new(frames: usize) -> (Outbox, mpsc::Receiver<Message>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let slow = Arc::new(Notify::new());
        (
            Outbox {
                tx,
                slow: slow.clone(),
            },
            rx,
            slow,
        )
    }

    /// Queues a frame without waiting; a full queue flags the client as a slow consumer.
    /// False when the frame was not queued.
    pub fn push(&self, frame: Value) -> bool {
        match self.tx.try_send(Message::Text(frame.to_string().into())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a reply, waiting for room (replies are paced by the client's own requests).
    pub async fn reply(&self, frame: Value) -> bool {
        self.tx
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_ok()
    }

    /// Queues a raw message (pings), waiting for room.
    pub async fn raw(&self, m: Message) -> bool {
        self.tx.send(m).await.is_ok()
    }
}
