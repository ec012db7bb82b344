//! The WebSocket adapter (`GET /v1/ws`, API.md "WebSocket"): JSON text frames carrying
//! subscriptions to change feeds and the document, query and collection operations. One
//! reader loop per connection dispatches frames; one writer task drains a bounded queue.

mod frame;
mod outbox;
mod requests;
mod subscription;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use aerolith_common::{Error, ErrorCode};

use crate::admission::Who;
use crate::caps::{Kind, Slot};
use crate::http::error::ApiError;
use crate::http::openapi::{Method, Op, Param, Reply};
use crate::http::upgrade::handshake;
use crate::http::{AppState, Route};
use crate::ops::{Ctx, DEFAULT_TIMEOUT, Ops};
use frame::{ClientFrame, FrameError};
pub use outbox::DEFAULT_QUEUE_FRAMES;
use outbox::Outbox;

/// Largest text frame a client may send (a 1 MiB document plus the frame around it); a
/// larger one closes the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024 + 64 * 1024;
/// Frames beyond this are refused by the WebSocket layer itself.
const HARD_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Requests of one connection running at once.
const MAX_REQUESTS_IN_FLIGHT: usize = 64;
/// Default for how often the server pings; a client silent (no frame, no pong) for three
/// intervals is considered dead.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The WebSocket API's route: the upgrade (whose token may come in the query, for
/// browsers); each frame's operation is checked against the caller's role.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::Get,
            "/v1/ws",
            upgrade,
            Op::new(
                "websocket",
                "changes",
                "Open a WebSocket: change subscriptions and document operations",
            )
            .param(Param::WebSocketHandshake)
            .describe(
                "JSON text frames as API.md's WebSocket section describes: subscribe (with an \
                    optional filter and since token), unsubscribe, get, put, patch, delete, query, \
                    create_collection and ping; the server answers subscribed, change, \
                    checkpoint, result, error and pong frames. A frame over 1 MiB + 64 KiB closes \
                    the connection with 1009; a client that falls too far behind gets a \
                    rate_limited error (slow consumer) and a close frame.",
            )
            .reply(Reply::empty(101, "Switching to the WebSocket protocol"))
            .errors(&[]),
        )
        .needs(aerolith_common::auth::Role::Read)
        .token_in_query(),
    ]
}

/// `GET /v1/ws`: upgrades to a WebSocket connection, which holds one of its token's
/// WebSocket places while it is open (over the cap: 429 `rate_limited`).
pub async fn upgrade(
    State(s): State<AppState>,
    who: Option<Extension<Who>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match handshake(ws, &headers) {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    // The route's authentication put the caller there; without one, fail closed.
    let Some(Extension(who)) = who else {
        return ApiError::from(Error::new(ErrorCode::Unauthenticated, "no caller")).into_response();
    };
    let place = match who.take(Kind::WebSocket) {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    ws.max_message_size(HARD_FRAME_BYTES)
        .max_frame_size(HARD_FRAME_BYTES)
        .on_upgrade(move |socket| {
            let sizes = Sizes {
                queue_frames: s.ws_queue_frames,
                heartbeat_every: s.ws_heartbeat,
            };
            serve(s.ops.clone(), who, place, sizes, socket)
        })
}

/// A connection's outgoing queue and heartbeat.
struct Sizes {
    queue_frames: usize,
    heartbeat_every: Duration,
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Serves one connection until the client leaves, dies, sends an oversized frame or falls
/// too far behind; its WebSocket `place` is given back when it returns.
async fn serve(ops: Ops, who: Who, place: Slot, sizes: Sizes, socket: WebSocket) {
    let _place = place;
    let heartbeat_every = sizes.heartbeat_every;
    let dead_after = heartbeat_every * 3;
    let (mut sink, mut stream) = socket.split();
    let (out, mut queue, slow) = Outbox::new(sizes.queue_frames);
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = slow.notified() => {
                    let e = Error::new(ErrorCode::RateLimited, "slow consumer");
                    let _ = sink.send(Message::Text(frame::error(None, &e).to_string().into())).await;
                    let _ = sink.send(close(close_code::AGAIN, "slow consumer")).await;
                    break;
                }
                m = queue.recv() => match m {
                    Some(m) => {
                        let closing = matches!(m, Message::Close(_));
                        // A socket that takes no frame for DEAD_AFTER belongs to a client that
                        // is gone or stuck: drop it rather than hang (a merely slow one is cut
                        // off above, with an error it can act on, once it reads again).
                        match tokio::time::timeout(dead_after, sink.send(m)).await {
                            Ok(Ok(())) if !closing => {}
                            Err(_) => {
                                metrics::counter!("aerolith_ws_slow_consumer_disconnects_total").increment(1);
                                break;
                            }
                            _ => break,
                        }
                    }
                    None => break,
                },
            }
        }
    });
    let mut conn = Connection {
        ops,
        who,
        out,
        subs: HashMap::new(),
        requests: Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT)),
    };
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat_every,
        heartbeat_every,
    );
    let mut last_heard = Instant::now();
    let mut writer = writer;
    loop {
        tokio::select! {
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > MAX_FRAME_BYTES {
                            conn.out.try_raw(close(close_code::SIZE, "frame too large"));
                            break;
                        }
                        conn.on_text(text.as_str()).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = Error::invalid("binary frames are not supported; send JSON text frames");
                        conn.out.reply(frame::error(None, &e)).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            conn.out.try_raw(close(close_code::SIZE, "frame too large"));
                        }
                        break;
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > dead_after {
                    conn.out.try_raw(close(close_code::AWAY, "no heartbeat"));
                    break;
                }
                conn.out.try_raw(Message::Ping(Default::default()));
            }
            _ = &mut writer => break,
        }
    }
    for (_, h) in conn.subs.drain() {
        h.abort();
    }
    drop(conn);
    // Let the writer flush a final close frame, but never wait on a stuck client for long.
    if !writer.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut writer).await;
        writer.abort();
    }
}

/// One connection's state: its subscriptions by name, and room for requests in flight.
struct Connection {
    ops: Ops,
    /// Whose token opened the connection: each request frame needs its kind's role and
    /// counts against the caller's rate like an HTTP request.
    who: Who,
    out: Outbox,
    subs: HashMap<String, JoinHandle<()>>,
    requests: Arc<Semaphore>,
}

impl Connection {
    async fn on_text(&mut self, text: &str) {
        match frame::parse(text) {
            Ok(f) => self.on_frame(f).await,
            Err(FrameError { about, error }) => {
                let about = about.as_ref().map(|(k, v)| (*k, v.as_str()));
                self.out.reply(frame::error(about, &error)).await;
            }
        }
    }

    async fn on_frame(&mut self, f: ClientFrame) {
        match f {
            ClientFrame::Ping => {
                self.out.reply(json!({"type": "pong"})).await;
            }
            ClientFrame::Subscribe {
                sub,
                collection,
                filter,
                since,
            } => {
                if let Err(e) = self.subscribe(&sub, collection, filter, since).await {
                    self.out.reply(frame::error(Some(("sub", &sub)), &e)).await;
                }
            }
            ClientFrame::Unsubscribe { sub } => {
                if let Some(h) = self.subs.remove(&sub) {
                    h.abort();
                }
            }
            ClientFrame::Request { req, kind, fields } => {
                let name = kind.name();
                let admitted = (self.who.require(kind.role(), format_args!("/v1/ws {name}")))
                    .and_then(|()| self.who.charge());
                if let Err(e) = admitted {
                    self.out.reply(frame::error(Some(("req", &req)), &e)).await;
                    return;
                }
                // Requests run concurrently, so a slow one does not hold up the connection, but
                // at most MAX_REQUESTS_IN_FLIGHT at once: beyond that the reader waits.
                let Ok(permit) = self.requests.clone().acquire_owned().await else {
                    return;
                };
                let ops = self.ops.clone();
                let out = self.out.clone();
                let who = self.who.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let reply = match requests::run(&ops, who, kind, &fields).await {
                        Ok(mut v) => {
                            v["type"] = json!("result");
                            v["req"] = json!(req);
                            v
                        }
                        Err(e) => frame::error(Some(("req", &req)), &e),
                    };
                    out.reply(reply).await;
                });
            }
        }
    }

    /// Starts a subscription, queuing `subscribed` (with its starting token) before any change.
    async fn subscribe(
        &mut self,
        sub: &str,
        collection: String,
        filter: Option<Value>,
        since: Option<String>,
    ) -> aerolith_common::Result<()> {
        if self.subs.get(sub).is_some_and(|h| !h.is_finished()) {
            return Err(Error::invalid(format!(
                "subscription \"{sub}\" is already in use"
            )));
        }
        let start = self
            .ops
            .open_feed(
                Ctx::new(DEFAULT_TIMEOUT).by(Some(self.who.clone())),
                &collection,
                filter.as_ref(),
                since.as_deref(),
            )
            .await?;
        self.out
            .reply(json!({"type": "subscribed", "sub": sub, "token": start.token.clone()}))
            .await;
        let watch = self.ops.watch(&collection, start);
        let task = tokio::spawn(subscription::run(watch, self.out.clone(), sub.to_string()));
        self.subs.insert(sub.to_string(), task);
        Ok(())
    }
}
