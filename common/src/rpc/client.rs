//! The RPC client: one reused connection per peer, re-dialled with backoff, with a
//! semaphore and a deadline in front of every stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::marker::PhantomData;

use quinn::{Connection, Endpoint};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use super::batch;
use super::frame::{DEFAULT_MAX_FRAME, read_frame, write_frame};
use super::service::{Call, Node, Replicator, Service};
use super::tls::{CLUSTER_SERVER_NAME, MAX_STREAMS_PER_CONNECTION, TlsMaterial};
use crate::error::{Error, Result};

/// How long a dial may take before the peer counts as unreachable: a dead peer's UDP port
/// answers nothing, so without this every call would wait out its whole deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A client of the internal RPC, shared by every task of a process.
pub struct RpcClient {
    endpoint: Endpoint,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    max_frame: usize,
}

pub(super) struct Peer {
    addr: String,
    state: tokio::sync::Mutex<PeerState>,
    permits: Semaphore,
    lanes: batch::Lanes,
}

#[derive(Default)]
struct PeerState {
    conn: Option<Connection>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl RpcClient {
    /// A client presenting `tls`'s certificate.
    pub fn new(tls: &TlsMaterial) -> Result<RpcClient> {
        let bind: SocketAddr = ([0, 0, 0, 0], 0).into();
        let mut endpoint = Endpoint::client(bind)
            .map_err(|e| Error::unavailable(format!("cannot bind QUIC client endpoint: {e}")))?;
        endpoint.set_default_client_config(tls.client_config()?);
        Ok(RpcClient {
            endpoint,
            peers: Mutex::new(HashMap::new()),
            max_frame: DEFAULT_MAX_FRAME,
        })
    }

    fn peer(&self, addr: &str) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .entry(addr.to_string())
            .or_insert_with(|| {
                Arc::new(Peer {
                    addr: addr.to_string(),
                    state: tokio::sync::Mutex::new(PeerState::default()),
                    // Stay below the server's stream limit so exhaustion is backpressure here.
                    permits: Semaphore::new(MAX_STREAMS_PER_CONNECTION as usize - 24),
                    lanes: batch::Lanes::default(),
                })
            })
            .clone()
    }

    /// The storage nodes' calls, one typed method each (`client.node().get(addr, req, t)`).
    pub fn node(&self) -> Typed<'_, Node> {
        Typed {
            rpc: self,
            service: PhantomData,
        }
    }

    /// Another DC's replicator's calls, one typed method each.
    pub fn replicator(&self) -> Typed<'_, Replicator> {
        Typed {
            rpc: self,
            service: PhantomData,
        }
    }

    /// Sends one call of service `S` to `addr` and waits for the answer, for at most
    /// `timeout`; on failure, tells whether the peer can have acted on it (see [`Fate`]): a
    /// write that may have been applied must not be sent elsewhere behind its client's back.
    ///
    /// A call with a lane ([`Service::lane`]) goes in a batch with the calls made while the
    /// lane's previous batch was in flight (see `batch.rs`); any other on its own stream.
    ///
    /// Transport failures are `unavailable`, an expired deadline is `deadline_exceeded`, and
    /// an error answered by the peer comes back as that error.
    pub async fn exchange<S: Service>(
        &self,
        addr: &str,
        call: S::Call,
        timeout: Duration,
    ) -> std::result::Result<S::Answer, Failure> {
        let deadline = Instant::now() + timeout;
        let link = Link {
            endpoint: self.endpoint.clone(),
            peer: self.peer(addr),
            max_frame: self.max_frame,
        };
        if let Some(lane) = S::lane(&call) {
            return batch::send::<S>(link, lane, call, deadline).await;
        }
        link.send_alone::<S>(S::request(0, call), deadline).await
    }

    /// Calls sent to any peer in batches of two or more (see [`Service::lane`]).
    pub fn batched_calls(&self) -> u64 {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.values().map(|p| p.lanes.batched()).sum()
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"client closed");
    }
}

/// What a failed call's peer can have done with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Nothing reached the peer (no connection, no stream): it did nothing.
    NotSent,
    /// The peer answered with an error: it did what the error says (for a write, nothing).
    Answered,
    /// The request went out and no answer came: the peer may or may not have acted on it.
    Unknown,
}

/// A failed call: the error, and what the peer can have done.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The error, as [`Typed::call`] returns it.
    pub error: Error,
    /// Whether the peer can have acted on the request.
    pub fate: Fate,
}

/// What a task sending to one peer needs: the endpoint to dial from, the peer, and the
/// frame cap. Owned, so a lane's sender task can outlive the call that started it.
#[derive(Clone)]
pub(super) struct Link {
    endpoint: Endpoint,
    peer: Arc<Peer>,
    max_frame: usize,
}

impl Link {
    /// The peer's address.
    pub(super) fn addr(&self) -> &str {
        &self.peer.addr
    }

    /// The largest frame either side takes.
    pub(super) fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// This link, taking answers of up to `cap` bytes.
    pub(super) fn answers_up_to(&self, cap: usize) -> Link {
        Link {
            max_frame: cap,
            ..self.clone()
        }
    }

    /// The peer's lanes.
    pub(super) fn lanes(&self) -> &batch::Lanes {
        &self.peer.lanes
    }

    /// Sends `request` on a stream of its own, with the time left until `deadline` as its
    /// budget, and takes its answer.
    pub(super) async fn send_alone<S: Service>(
        &self,
        mut request: S::Request,
        deadline: Instant,
    ) -> std::result::Result<S::Answer, Failure> {
        let make = |ms| {
            S::set_timeout(&mut request, ms);
            request
        };
        let resp = self.round_trip::<S>(deadline, make, || {}).await?;
        answer_of::<S>(resp, self.addr())
    }

    /// Sends the request `make` builds (given the milliseconds left) on one stream and
    /// reads its response, until `deadline`. `on_send` runs once the stream is open, just
    /// before the first byte goes out: from then on the peer may act on the request.
    pub(super) async fn round_trip<S: Service>(
        &self,
        deadline: Instant,
        make: impl FnOnce(u32) -> S::Request,
        on_send: impl FnOnce(),
    ) -> std::result::Result<S::Response, Failure> {
        let not_sent = |error| Failure {
            error,
            fate: Fate::NotSent,
        };
        let addr = self.addr();
        let peer = &self.peer;
        let _permit = timeout_at(deadline, peer.permits.acquire())
            .await
            .map_err(|_| not_sent(too_slow::<S>(addr)))?
            .map_err(|e| not_sent(Error::internal(e)))?;
        let conn = peer
            .connection::<S>(&self.endpoint, deadline)
            .await
            .map_err(not_sent)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let req = make(remaining.as_millis().clamp(1, u32::MAX as u128) as u32);
        // Opening a stream is local; from the first byte written, the peer may act on it.
        let sending = std::sync::atomic::AtomicBool::new(false);
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            sending.store(true, std::sync::atomic::Ordering::Relaxed);
            on_send();
            write_frame(&mut send, &req)
                .await
                .map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            read_frame::<S::Response>(&mut recv, self.max_frame)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = timeout_at(deadline, exchange).await;
        let fate = if sending.load(std::sync::atomic::Ordering::Relaxed) {
            Fate::Unknown
        } else {
            Fate::NotSent
        };
        let failed = |error| Failure { error, fate };
        let server = S::SERVER;
        match outcome {
            Err(_) => Err(failed(too_slow::<S>(addr))),
            Ok(Err(e)) => {
                if conn.close_reason().is_some() {
                    peer.forget(&conn).await;
                }
                Err(failed(Error::unavailable(format!(
                    "{server} {addr} unreachable: {e}"
                ))))
            }
            Ok(Ok(None)) => Err(failed(Error::unavailable(format!(
                "{server} {addr} closed the stream without answering"
            )))),
            Ok(Ok(Some(resp))) => Ok(resp),
        }
    }
}

/// The answer a response carries, or the error the peer answered.
pub(super) fn answer_of<S: Service>(
    resp: S::Response,
    addr: &str,
) -> std::result::Result<S::Answer, Failure> {
    match S::answer(resp) {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(error)) => Err(Failure {
            error,
            fate: Fate::Answered,
        }),
        None => Err(Failure {
            error: Error::internal(format!("empty response from {} {addr}", S::SERVER)),
            fate: Fate::Answered,
        }),
    }
}

/// The error of a call whose deadline passed before `addr` answered.
pub(super) fn too_slow<S: Service>(addr: &str) -> Error {
    Error::deadline(format!(
        "{} {addr} did not answer before the deadline",
        S::SERVER
    ))
}

/// The typed calls of one service through an [`RpcClient`]: [`Typed::call`] for any call,
/// and a method per call (written from the list in `service.rs`).
pub struct Typed<'a, S> {
    rpc: &'a RpcClient,
    service: PhantomData<S>,
}

impl<S: Service> Typed<'_, S> {
    /// Sends `req` to `addr` and waits for its answer, for at most `timeout`.
    pub async fn call<C: Call<S>>(
        &self,
        addr: &str,
        req: C,
        timeout: Duration,
    ) -> Result<C::Answer> {
        self.try_call(addr, req, timeout).await.map_err(|f| f.error)
    }

    /// [`Typed::call`], telling on failure whether the peer can have acted on the request.
    pub async fn try_call<C: Call<S>>(
        &self,
        addr: &str,
        req: C,
        timeout: Duration,
    ) -> std::result::Result<C::Answer, Failure> {
        let answer = self
            .rpc
            .exchange::<S>(addr, req.into_call(), timeout)
            .await?;
        expect_answer::<S, C>(answer, addr)
    }
}

/// The answer `C` gets out of a response body, or an `internal` error naming the call (an
/// answer of another kind is a bug on one side).
pub fn expect_answer<S: Service, C: Call<S>>(
    answer: S::Answer,
    addr: &str,
) -> std::result::Result<C::Answer, Failure> {
    C::from_answer(answer).ok_or_else(|| Failure {
        error: Error::internal(format!(
            "unexpected answer to {} from {} {addr}",
            C::NAME,
            S::SERVER
        )),
        fate: Fate::Answered,
    })
}

impl Peer {
    async fn connection<S: Service>(
        &self,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<Connection> {
        let mut st = timeout_at(deadline, self.state.lock())
            .await
            .map_err(|_| too_slow::<S>(&self.addr))?;
        if let Some(c) = &st.conn {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
            st.conn = None;
        }
        if let Some(at) = st.retry_at
            && Instant::now() < at
        {
            return Err(Error::unavailable(format!(
                "{} {} unreachable (re-dialling with backoff)",
                S::SERVER,
                self.addr
            )));
        }
        let connect_by = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        let outcome = timeout_at(connect_by, dial(endpoint, &self.addr)).await;
        let why = match outcome {
            Ok(Ok(c)) if !serves_as::<S>(&c) => {
                c.close(0u32.into(), b"wrong role");
                format!(
                    "it presented a certificate that is not a {}'s (role {})",
                    S::SERVER,
                    super::server::peer_role(&c).map_or("none", |r| r.as_str())
                )
            }
            Ok(Ok(c)) => {
                st.conn = Some(c.clone());
                st.failures = 0;
                st.retry_at = None;
                return Ok(c);
            }
            Ok(Err(e)) => e,
            Err(_) => "connect timed out".to_string(),
        };
        st.failures = st.failures.saturating_add(1);
        let backoff = BACKOFF_MIN
            .saturating_mul(1u32 << st.failures.min(6))
            .min(BACKOFF_MAX);
        st.retry_at = Some(Instant::now() + backoff);
        if Instant::now() >= deadline {
            return Err(too_slow::<S>(&self.addr));
        }
        Err(Error::unavailable(format!(
            "{} {} unreachable: {why}",
            S::SERVER,
            self.addr
        )))
    }

    async fn forget(&self, conn: &Connection) {
        let mut st = self.state.lock().await;
        if st
            .conn
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id())
        {
            st.conn = None;
        }
    }
}

/// Whether the server on `conn` presented the certificate of the role that serves `S`: a
/// process of another role (a gateway's certificate, say) cannot pose as a storage node
/// and feed a replicator forged changes.
fn serves_as<S: Service>(conn: &Connection) -> bool {
    super::server::peer_role(conn) == Some(S::SERVER_ROLE)
}

async fn dial(endpoint: &Endpoint, addr: &str) -> std::result::Result<Connection, String> {
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    endpoint
        .connect(target, CLUSTER_SERVER_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())
}
