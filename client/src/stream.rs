//! Change streams over the WebSocket API: pushed as they happen, optionally filtered,
//! starting now or after a token; the stream keeps the last token it saw and, after a
//! disconnect, a restarting gateway or a "slow consumer", reconnects (the token's gateway
//! first) and resumes from it, so every change arrives at least once and in per-document
//! order.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use futures::{SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Client;
use crate::collections::{Collection, decode};
use crate::error::{Error, ErrorCode, Result};
use crate::feed::{Change, typed};
use crate::resume::{Resume, Rounds, retryable};
use crate::ws::{self, Ws};

/// With no frame for this long the connection is taken for dead (the gateway pings every
/// 15 s, and sends a checkpoint after 2 s of a quiet feed).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(35);

/// A collection's change stream over `/v1/ws`; read it with [`ChangeStream::next`] or as a
/// [`Stream`] with [`ChangeStream::into_stream`]. It connects on first use.
#[derive(Debug)]
pub struct ChangeStream<T = Value> {
    client: Client,
    collection: String,
    filter: Option<Value>,
    /// The last token, and where to resume.
    resume: Resume,
    /// The open connection and the gateway it goes to.
    ws: Option<(usize, Ws)>,
    /// Whether the open connection's subscription was confirmed.
    subscribed: bool,
    /// Changes that came before [`ChangeStream::start`] returned.
    pending: VecDeque<Value>,
    reconnect_timeout: Option<Duration>,
    idle_timeout: Duration,
    _data: PhantomData<fn() -> T>,
}

impl<T> Collection<T>
where
    T: DeserializeOwned,
{
    /// This collection's change stream over WebSocket, from now on (see
    /// [`ChangeStream::since`] and [`ChangeStream::filter`]); [`Collection::poll_changes`]
    /// reads the polled feed instead.
    pub fn changes(&self) -> ChangeStream<T> {
        ChangeStream {
            client: self.client.clone(),
            collection: self.name.clone(),
            filter: None,
            resume: Resume::new(None),
            ws: None,
            subscribed: false,
            pending: VecDeque::new(),
            reconnect_timeout: None,
            idle_timeout: IDLE_TIMEOUT,
            _data: PhantomData,
        }
    }
}

/// What one frame meant for the stream.
enum Frame {
    Change(Value),
    Nothing,
    /// The connection is gone (or to be dropped, for this reason): resume elsewhere, or
    /// later, from the token.
    Dropped(Error),
}

impl<T> ChangeStream<T>
where
    T: DeserializeOwned,
{
    /// Starts after `token` (a change's, a checkpoint's, or [`ChangeStream::token`] of an
    /// earlier stream) instead of now.
    pub fn since(mut self, token: impl Into<String>) -> ChangeStream<T> {
        self.resume.token = Some(token.into());
        self
    }

    /// Only changes whose new data matches this query filter (deletes always come).
    pub fn filter(mut self, filter: Value) -> ChangeStream<T> {
        self.filter = Some(filter);
        self
    }

    /// Reports `unavailable` when no gateway took the subscription for this long
    /// (default: keep trying).
    pub fn reconnect_timeout(mut self, t: Duration) -> ChangeStream<T> {
        self.reconnect_timeout = Some(t);
        self
    }

    /// Changes the reconnect timeout of a stream in use (`None`: keep trying), e.g. a
    /// quick answer for the first connection and patience once it runs.
    pub fn set_reconnect_timeout(&mut self, t: Option<Duration>) {
        self.reconnect_timeout = t;
    }

    /// How long a connection may stay silent before it is taken for dead (default 35 s).
    pub fn idle_timeout(mut self, t: Duration) -> ChangeStream<T> {
        self.idle_timeout = t;
        self
    }

    /// The last token seen: [`ChangeStream::since`] with it resumes right after it.
    pub fn token(&self) -> Option<&str> {
        self.resume.token.as_deref()
    }

    /// How many times the stream reconnected after losing its connection.
    pub fn reconnects(&self) -> u64 {
        self.resume.reconnects
    }

    /// Connects and waits until the gateway confirms the subscription; then
    /// [`ChangeStream::token`] is where the stream starts.
    pub async fn start(&mut self) -> Result<()> {
        if self.ws.is_none() {
            self.connect().await?;
        }
        Ok(())
    }

    /// The next change, waiting for one. An error ends nothing by itself: after
    /// `Error::Decode` (a change whose data does not fit `T`) the stream has moved past that
    /// change. The errors that end a feed are API errors: `resume_token_expired`,
    /// `not_found` of a deleted collection, `unauthenticated`, ...
    pub async fn next(&mut self) -> Result<Change<T>> {
        // Changes held from a subscription's start come before anything read after them.
        let raw = loop {
            if let Some(c) = self.pending.pop_front() {
                break c;
            }
            if let Some(c) = self.frame().await? {
                break c;
            }
        };
        let change: Change<Value> = decode(&self.url(), &raw)?;
        self.resume.token = Some(change.token.clone());
        typed(&self.url(), change)
    }

    /// The stream as a [`Stream`]; it ends after the first API error it yields (a decode
    /// error is yielded and the stream goes on).
    pub fn into_stream(self) -> impl Stream<Item = Result<Change<T>>>
    where
        T: Send,
    {
        futures::stream::unfold(Some(self), |stream| async move {
            let mut stream = stream?;
            match stream.next().await {
                Ok(c) => Some((Ok(c), Some(stream))),
                Err(e @ Error::Decode { .. }) => Some((Err(e), Some(stream))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// Closes the connection politely.
    pub async fn close(&mut self) {
        if let Some((_, mut ws)) = self.ws.take() {
            let _ = ws.close(None).await;
        }
        self.subscribed = false;
    }

    /// The URL named in errors.
    fn url(&self) -> String {
        let i = self
            .ws
            .as_ref()
            .map(|(i, _)| *i)
            .or(self.resume.home)
            .unwrap_or(0);
        format!("{}/v1/ws", self.client.endpoints().url(i))
    }

    /// Reads one frame (connecting first if need be): a change's raw frame, or `None`.
    async fn frame(&mut self) -> Result<Option<Value>> {
        if self.ws.is_none() {
            // Nothing read yet: what the subscription held back goes out first.
            self.connect().await?;
            return Ok(None);
        }
        match self.read(self.idle_timeout).await? {
            Frame::Change(c) => Ok(Some(c)),
            Frame::Nothing | Frame::Dropped(_) => Ok(None),
        }
    }

    /// Reads one frame of the open connection within `wait`; a connection that is closed,
    /// broken, silent for `wait`, or told to go is dropped.
    async fn read(&mut self, wait: Duration) -> Result<Frame> {
        let Some((i, ws)) = self.ws.as_mut() else {
            return Ok(Frame::Dropped(Error::Config("not connected".into())));
        };
        let url = format!("{}/v1/ws", self.client.endpoints().url(*i));
        let gone = |message: String| Error::Connect {
            url: url.clone(),
            message,
        };
        let frame = match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(frame) => self.handle(frame)?,
                Err(e) => Frame::Dropped(gone(format!("not a JSON frame: {e}"))),
            },
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                Frame::Dropped(gone("the gateway closed the connection".into()))
            }
            Ok(Some(Ok(_))) => Frame::Nothing,
            Ok(Some(Err(e))) => Frame::Dropped(gone(e.to_string())),
            Err(_) => Frame::Dropped(gone(format!("nothing heard for {wait:?}"))),
        };
        if matches!(frame, Frame::Dropped(_)) {
            self.drop_connection();
        }
        Ok(frame)
    }

    /// What `frame` means; the API error that ends the stream as `Err`.
    fn handle(&mut self, frame: Value) -> Result<Frame> {
        let Some(current) = self.ws.as_ref().map(|(i, _)| *i) else {
            return Ok(Frame::Nothing);
        };
        let token = frame["token"].as_str().map(str::to_string);
        match frame["type"].as_str() {
            Some("subscribed") => {
                self.subscribed = true;
                self.resume.subscribed(current, token);
                Ok(Frame::Nothing)
            }
            Some("checkpoint") => {
                self.resume.seen(current, token);
                Ok(Frame::Nothing)
            }
            // The token moves when the change is handed out, not before.
            Some("change") => {
                self.resume.seen(current, None);
                Ok(Frame::Change(frame))
            }
            Some("error") => {
                let e = &frame["error"];
                let code = ErrorCode::parse(e["code"].as_str().unwrap_or("internal"));
                let message = e["message"].as_str().unwrap_or("the feed failed");
                let gateways = self.client.endpoints().urls().len();
                match self
                    .resume
                    .on_error(current, gateways, code.clone(), message.to_string())
                {
                    Ok(()) => Ok(Frame::Dropped(Error::Api {
                        status: code.http_status(),
                        code,
                        message: message.to_string(),
                    })),
                    Err(e) => {
                        self.drop_connection();
                        Err(e)
                    }
                }
            }
            _ => Ok(Frame::Nothing),
        }
    }

    fn drop_connection(&mut self) {
        self.ws = None;
        self.subscribed = false;
    }

    /// Subscribes at a gateway: each gateway in turn, with growing pauses between rounds,
    /// until one confirms the subscription or `reconnect_timeout` passes. A gateway that
    /// refuses it (busy, unavailable, the token of another DC) counts as a failed attempt.
    async fn connect(&mut self) -> Result<()> {
        let mut rounds = Rounds::new(self.reconnect_timeout);
        loop {
            let mut last = None;
            for i in self.resume.order(self.client.endpoints().order()) {
                match self.subscribe_at(i).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(refused)) => last = Some(refused),
                    Err(e) if retryable(&e) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            rounds.failed("subscription", last).await?;
        }
    }

    /// Opens `/v1/ws` at gateway `i`, subscribes, and waits (within the client's default
    /// deadline) for the confirmation; changes that come before it are kept for `next`.
    /// `Ok(Err(..))`: the gateway refused in a way another attempt may get past (busy, the
    /// token of another DC, no confirmation in time); `Err`: the error as it is.
    async fn subscribe_at(&mut self, i: usize) -> Result<Result<()>> {
        let timeout = self.client.default_timeout();
        let deadline = Instant::now() + timeout;
        let base = self.client.endpoints().url(i).to_string();
        // Held changes not handed out come again: the token is still before them.
        self.pending.clear();
        let mut socket =
            ws::connect(&base, self.client.token(), self.client.ws_tls(), timeout).await?;
        let mut subscribe = json!({
            "type": "subscribe", "sub": "s", "collection": self.collection,
        });
        if let Some(f) = &self.filter {
            subscribe["filter"] = f.clone();
        }
        if let Some(t) = &self.resume.token {
            subscribe["since"] = json!(t);
        }
        if let Err(e) = socket.send(Message::text(subscribe.to_string())).await {
            return Ok(Err(Error::Connect {
                url: format!("{base}/v1/ws"),
                message: e.to_string(),
            }));
        }
        self.ws = Some((i, socket));
        self.subscribed = false;
        while !self.subscribed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.drop_connection();
                return Ok(Err(Error::Connect {
                    url: format!("{base}/v1/ws"),
                    message: format!("the subscription was not confirmed within {timeout:?}"),
                }));
            }
            match self.read(left).await? {
                Frame::Change(c) => self.pending.push_back(c),
                Frame::Nothing => {}
                Frame::Dropped(refused) => return Ok(Err(refused)),
            }
        }
        self.resume.connected();
        Ok(Ok(()))
    }
}
