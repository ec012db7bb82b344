//! Change streams over gRPC (`Watch`): like the WebSocket ones, they keep the last token and,
//! after a broken stream, a restarting gateway or a slow-consumer end, call `Watch` again
//! from it (the token's gateway first), so every change arrives at least once and in
//! per-document order.

use std::time::Duration;

use aerolith_proto::v1 as pb;
use serde_json::Value;
use tonic::Streaming;

use super::{Attempt, GrpcClient, classify};
use crate::error::{Error, ErrorCode, Result};
use crate::feed::{Change, ChangeOp};
use crate::resume::{Resume, Rounds, retryable};
use crate::stream::IDLE_TIMEOUT;

/// A collection's change stream over gRPC; read it with [`GrpcChangeStream::next`].
#[derive(Debug)]
pub struct GrpcChangeStream {
    client: GrpcClient,
    collection: String,
    filter: Option<Value>,
    resume: Resume,
    /// The open `Watch` and the gateway it goes to.
    open: Option<(usize, Streaming<pb::WatchResponse>)>,
    /// A change that came with the call's first answer (before any checkpoint).
    pending: Option<pb::ChangeEvent>,
    reconnect_timeout: Option<Duration>,
    idle_timeout: Duration,
}

impl GrpcChangeStream {
    pub(super) fn new(client: GrpcClient, collection: &str) -> GrpcChangeStream {
        GrpcChangeStream {
            client,
            collection: collection.to_string(),
            filter: None,
            resume: Resume::new(None),
            open: None,
            pending: None,
            reconnect_timeout: None,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// Starts after `token` instead of now.
    pub fn since(mut self, token: impl Into<String>) -> GrpcChangeStream {
        self.resume.token = Some(token.into());
        self
    }

    /// Only changes whose new data matches this query filter (deletes always come).
    pub fn filter(mut self, filter: Value) -> GrpcChangeStream {
        self.filter = Some(filter);
        self
    }

    /// Reports `unavailable` when no gateway took the call for this long (default: keep
    /// trying).
    pub fn reconnect_timeout(mut self, t: Duration) -> GrpcChangeStream {
        self.reconnect_timeout = Some(t);
        self
    }

    /// The last token seen: [`GrpcChangeStream::since`] with it resumes right after it.
    pub fn token(&self) -> Option<&str> {
        self.resume.token.as_deref()
    }

    /// How many times the stream called `Watch` again after losing it.
    pub fn reconnects(&self) -> u64 {
        self.resume.reconnects
    }

    /// Calls `Watch` and waits for its first checkpoint; then [`GrpcChangeStream::token`]
    /// is where the stream starts.
    pub async fn start(&mut self) -> Result<()> {
        if self.open.is_none() {
            self.connect().await?;
        }
        Ok(())
    }

    /// The next change, waiting for one; an error when resuming cannot help
    /// (`resume_token_expired`, `not_found` of a deleted collection, ...), or `Decode`
    /// for a change that is not what API.md promises (the stream moves past it).
    pub async fn next(&mut self) -> Result<Change> {
        loop {
            if self.open.is_none() {
                self.connect().await?;
            }
            let idle = self.idle_timeout;
            let Some((i, stream)) = self.open.as_mut() else {
                continue;
            };
            let i = *i;
            // The token moves when a change is handed out, not when it is read.
            if let Some(e) = self.pending.take() {
                self.resume.seen(i, Some(e.token.clone()));
                return self.change(e);
            }
            let item = match tokio::time::timeout(idle, stream.message()).await {
                Ok(Ok(Some(item))) => item,
                // Silent too long, ended, or broken: resume from the token.
                Err(_) | Ok(Ok(None)) => {
                    self.open = None;
                    continue;
                }
                Ok(Err(status)) => {
                    self.open = None;
                    // Not handed out: it comes again after the token.
                    self.pending = None;
                    self.failed(i, &status)?;
                    continue;
                }
            };
            match item.item {
                Some(pb::watch_response::Item::Checkpoint(t)) => self.resume.seen(i, Some(t)),
                Some(pb::watch_response::Item::Event(e)) => {
                    self.resume.seen(i, Some(e.token.clone()));
                    return self.change(e);
                }
                None => {}
            }
        }
    }

    /// What a failed `Watch` at gateway `i` means: `Ok` to resume, or the error that ends it.
    fn failed(&mut self, i: usize, status: &tonic::Status) -> Result<()> {
        match classify(&self.client.gateways[i].url, status) {
            Attempt::Skip(_) | Attempt::Unknown(_) => Ok(()),
            Attempt::Fail(Error::Api { code, message, .. }) => {
                let n = self.client.gateways.len();
                self.resume.on_error(i, n, code, message)
            }
            Attempt::Fail(e) => Err(e),
        }
    }

    fn change(&self, e: pb::ChangeEvent) -> Result<Change> {
        let decode = |message: String| Error::Decode {
            url: self.client.gateways[self.resume.home.unwrap_or(0)]
                .url
                .clone(),
            message,
        };
        let op = match e.op.as_str() {
            "put" => ChangeOp::Put,
            "delete" => ChangeOp::Delete,
            other => return Err(decode(format!("unknown change op {other:?}"))),
        };
        let data = match e.data_json {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| decode(e.to_string()))?),
            None => None,
        };
        Ok(Change {
            op,
            collection: e.collection,
            id: e.id,
            version: e.version,
            updated_at: e.updated_at,
            origin: e.origin,
            data,
            token: e.token,
        })
    }

    /// Calls `Watch` at a gateway and reads its first checkpoint: each gateway in turn,
    /// with growing pauses between rounds, until one takes it or `reconnect_timeout` passes.
    async fn connect(&mut self) -> Result<()> {
        let mut rounds = Rounds::new(self.reconnect_timeout);
        loop {
            let mut last = None;
            for i in self.resume.order(self.client.order()) {
                match self.open_at(i).await {
                    Ok(()) => return Ok(()),
                    Err(e) if retryable(&e) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            rounds.failed("Watch", last).await?;
        }
    }

    /// One `Watch` call at gateway `i`, kept open once its first checkpoint came.
    async fn open_at(&mut self, i: usize) -> Result<()> {
        let g = &self.client.gateways[i];
        let req = pb::WatchRequest {
            collection: self.collection.clone(),
            filter_json: self
                .filter
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
            since: self.resume.token.clone().unwrap_or_default(),
        };
        // No deadline: a watch lasts; the handshake is bounded by the client's timeout.
        let mut r = self
            .client
            .request(req, Duration::ZERO, None, &Default::default());
        r.metadata_mut().remove("grpc-timeout");
        let mut client = g.client.clone();
        let opened = tokio::time::timeout(self.client.timeout, async {
            let mut stream = client.watch(r).await?.into_inner();
            let first = stream.message().await?;
            Ok::<_, tonic::Status>((stream, first))
        })
        .await;
        let (stream, first) = match opened {
            Err(_) => {
                return Err(Error::Connect {
                    url: g.url.clone(),
                    message: "no answer to Watch in time".into(),
                });
            }
            Ok(Err(status)) => {
                return match classify(&g.url, &status) {
                    Attempt::Skip(e) | Attempt::Unknown(e) => Err(e),
                    Attempt::Fail(Error::Api { code, message, .. }) => {
                        let n = self.client.gateways.len();
                        self.resume.on_error(i, n, code.clone(), message.clone())?;
                        // Another gateway may take the token: go on to it.
                        Err(Error::Api {
                            status: 503,
                            code: ErrorCode::Unavailable,
                            message,
                        })
                    }
                    Attempt::Fail(e) => Err(e),
                };
            }
            Ok(Ok(x)) => x,
        };
        self.resume.connected();
        match first.and_then(|m| m.item) {
            Some(pb::watch_response::Item::Checkpoint(t)) => self.resume.subscribed(i, Some(t)),
            Some(pb::watch_response::Item::Event(e)) => {
                self.resume.subscribed(i, None);
                self.pending = Some(e);
            }
            None => self.resume.subscribed(i, None),
        }
        self.open = Some((i, stream));
        Ok(())
    }
}
