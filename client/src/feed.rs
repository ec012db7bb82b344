//! Change feeds as a resumable stream over the polled REST feed: the stream keeps the
//! token of the last change it handed out and, after a disconnect, a restarting gateway or
//! an `unavailable`, polls again from that token, so every change arrives at least once and
//! in per-document order.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::client::{Call, Client};
use crate::collections::{Collection, decode, segment};
use crate::error::{Error, Result};
use crate::resume::retryable;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// A put, patch or remote apply (the full new data).
    Put,
    /// A delete.
    Delete,
}

/// One change of a collection's feed (as API.md's change event).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
struct ChangesPage {
    changes: Vec<Change<Value>>,
    next: String,
}

/// A collection's change feed that resumes by itself; read it with [`ChangeFeed::next`] or
/// as a [`Stream`] with [`ChangeFeed::into_stream`].
#[derive(Debug)]
pub struct ChangeFeed<T = serde_json::Value> {
    client: Client,
    collection: String,
    token: Option<String>,
    /// Changes read but not handed out yet (decoded as `T` one by one, when handed out),
    /// and the page's `next` after them.
    buffer: VecDeque<Change<Value>>,
    page_next: Option<String>,
    /// The gateway whose DC the token names (tokens are per DC).
    pin: Option<usize>,
    limit: u32,
    /// How long transient failures may go on before [`ChangeFeed::next`] reports one.
    patience: Option<Duration>,
    /// The URL named in decode errors.
    url: String,
    _data: std::marker::PhantomData<fn() -> T>,
}

impl<T> Collection<T>
where
    T: DeserializeOwned,
{
    /// The polled feed of this collection's changes after `since` (`None`: from the oldest
    /// change the server still holds); [`Collection::changes`] pushes them instead.
    pub fn poll_changes(&self, since: Option<String>) -> ChangeFeed<T> {
        ChangeFeed {
            client: self.client.clone(),
            collection: self.name.clone(),
            token: since,
            buffer: VecDeque::new(),
            page_next: None,
            pin: None,
            limit: 100,
            patience: None,
            url: String::new(),
            _data: std::marker::PhantomData,
        }
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
    /// (`resume_token_expired`, `not_found` of a deleted collection, no permission, ...),
    /// or `Error::Decode` for a change whose data does not fit `T` (the feed has moved past
    /// it: the next call goes on with the change after it).
    pub async fn next(&mut self) -> Result<Change<T>> {
        let mut failing_since: Option<std::time::Instant> = None;
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(change) = self.buffer.pop_front() {
                self.token = Some(change.token.clone());
                if self.buffer.is_empty() {
                    self.token = self.page_next.take().or(self.token.take());
                }
                return typed(&self.url, change);
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
                Err(e) if retryable(&e) => {
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
        let page: ChangesPage = decode(&a.url, &a.body)?;
        self.pin = Some(a.endpoint);
        self.url = a.url;
        if page.changes.is_empty() {
            self.token = Some(page.next);
            return Ok(false);
        }
        self.buffer.extend(page.changes);
        self.page_next = Some(page.next);
        Ok(true)
    }

    /// The feed as a stream; it ends after the first error it reports other than a change
    /// that does not fit `T` (yielded as `Error::Decode`, and the stream goes on).
    pub fn into_stream(self) -> impl Stream<Item = Result<Change<T>>>
    where
        T: Send,
    {
        futures::stream::unfold(Some(self), |feed| async move {
            let mut feed = feed?;
            match feed.next().await {
                Ok(c) => Some((Ok(c), Some(feed))),
                Err(e @ Error::Decode { .. }) => Some((Err(e), Some(feed))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

/// `change` with its data read as a `T`.
pub(crate) fn typed<T: DeserializeOwned>(url: &str, change: Change<Value>) -> Result<Change<T>> {
    let data = match change.data {
        Some(d) => Some(decode::<T>(url, &d)?),
        None => None,
    };
    Ok(Change {
        op: change.op,
        collection: change.collection,
        id: change.id,
        version: change.version,
        updated_at: change.updated_at,
        origin: change.origin,
        data,
        token: change.token,
    })
}
