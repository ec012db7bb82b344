//! Change feeds as a resumable stream over the polled REST feed: the stream keeps the
//! token of the last change it handed out and, after a disconnect, a restarting gateway or
//! an `unavailable`, polls again from that token, so every change arrives at least once and
//! in per-document order.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use reqwest::Method;
use serde::{Deserialize, de::DeserializeOwned};

use crate::client::{Call, Client};
use crate::collections::{Collection, decode, segment};
use crate::error::{Error, ErrorCode, Result};

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// A put, patch or remote apply (the full new data).
    Put,
    /// A delete.
    Delete,
}

/// One change of a collection's feed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Change<T = serde_json::Value> {
    /// What it did.
    pub op: ChangeOp,
    /// The collection.
    pub collection: String,
    /// The document's id.
    pub id: String,
    /// The document's version after the change.
    pub version: String,
    /// When it was written.
    pub updated_at: String,
    /// The DC that wrote it.
    pub origin: String,
    /// The new data (`None` for a delete).
    pub data: Option<T>,
    /// The token that resumes right after this change.
    pub token: String,
}

/// A polled page of the feed.
#[derive(Deserialize)]
struct ChangesPage<T> {
    changes: Vec<Change<T>>,
    next: String,
}

/// A collection's change feed that resumes by itself; read it with [`ChangeFeed::next`] or
/// as a [`Stream`] with [`ChangeFeed::into_stream`].
#[derive(Debug)]
pub struct ChangeFeed<T = serde_json::Value> {
    client: Client,
    collection: String,
    token: Option<String>,
    /// Changes read but not handed out yet, and the page's `next` after them.
    buffer: VecDeque<Change<T>>,
    page_next: Option<String>,
    /// The gateway whose DC the token names (tokens are per DC).
    pin: Option<usize>,
    limit: u32,
    /// How long transient failures may go on before [`ChangeFeed::next`] reports one.
    patience: Option<Duration>,
}

impl<T> Collection<T>
where
    T: DeserializeOwned,
{
    /// The feed of this collection's changes after `since` (`None`: from the oldest change
    /// the server still holds).
    pub fn changes(&self, since: Option<String>) -> ChangeFeed<T> {
        ChangeFeed {
            client: self.client.clone(),
            collection: self.name.clone(),
            token: since,
            buffer: VecDeque::new(),
            page_next: None,
            pin: None,
            limit: 100,
            patience: None,
        }
    }
}

/// Whether a feed poll that failed this way should be tried again from the same token.
fn transient(e: &Error) -> bool {
    match e {
        Error::Connect { .. } | Error::Transport { .. } | Error::Timeout(_) => true,
        Error::Status { status, .. } => matches!(status, 502..=504),
        Error::Api { code, .. } => matches!(
            code,
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded | ErrorCode::RateLimited
        ),
        Error::Decode { .. } | Error::Config(_) => false,
    }
}

impl<T> ChangeFeed<T>
where
    T: DeserializeOwned,
{
    /// The token after the last change handed out (save it to resume in a new process).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Polls at most `limit` changes a request (1..=1000).
    pub fn page_size(mut self, limit: u32) -> ChangeFeed<T> {
        self.limit = limit.clamp(1, 1000);
        self
    }

    /// Reports a transient failure once it has lasted `patience` (default: retry forever).
    pub fn patience(mut self, patience: Duration) -> ChangeFeed<T> {
        self.patience = Some(patience);
        self
    }

    /// The next change, waiting for one; an error only when resuming cannot help
    /// (`resume_token_expired`, `not_found` of a deleted collection, no permission, ...).
    pub async fn next(&mut self) -> Result<Change<T>> {
        let mut failing_since: Option<std::time::Instant> = None;
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(change) = self.buffer.pop_front() {
                self.token = Some(change.token.clone());
                if self.buffer.is_empty() {
                    self.token = self.page_next.take().or(self.token.take());
                }
                return Ok(change);
            }
            match self.poll().await {
                Ok(true) => {
                    failing_since = None;
                    pause = Duration::from_millis(50);
                }
                Ok(false) => {
                    failing_since = None;
                    tokio::time::sleep(self.client.feed_poll()).await;
                }
                Err(e) if transient(&e) => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    if self.patience.is_some_and(|p| since.elapsed() >= p) {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One poll from the current token; whether it brought changes.
    async fn poll(&mut self) -> Result<bool> {
        let mut path = format!(
            "/v1/collections/{}/changes?limit={}",
            segment(&self.collection),
            self.limit
        );
        if let Some(t) = &self.token {
            path.push_str(&format!("&since={}", segment(t)));
        }
        let mut call = Call::new(Method::GET, path);
        call.pin = self.pin;
        let a = self.client.send(call).await?;
        let page: ChangesPage<T> = decode(&a.url, &a.body)?;
        self.pin = Some(a.endpoint);
        if page.changes.is_empty() {
            self.token = Some(page.next);
            return Ok(false);
        }
        self.buffer.extend(page.changes);
        self.page_next = Some(page.next);
        Ok(true)
    }

    /// The feed as a stream; it ends after the first error it reports.
    pub fn into_stream(self) -> impl Stream<Item = Result<Change<T>>>
    where
        T: Send,
    {
        futures::stream::unfold(Some(self), |feed| async move {
            let mut feed = feed?;
            match feed.next().await {
                Ok(c) => Some((Ok(c), Some(feed))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
