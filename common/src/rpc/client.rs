//! The RPC client: one reused connection per peer, re-dialled with backoff, with a
//! semaphore and a deadline in front of every stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerolith_proto::internal::v1 as pb;
use quinn::{Connection, Endpoint};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use super::frame::{DEFAULT_MAX_FRAME, read_frame, write_frame};
use super::tls::{CLUSTER_SERVER_NAME, MAX_STREAMS_PER_CONNECTION, TlsMaterial};
use crate::error::{Error, ErrorCode, Result};

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

struct Peer {
    addr: String,
    state: tokio::sync::Mutex<PeerState>,
    permits: Semaphore,
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
                })
            })
            .clone()
    }

    /// Sends one request to `addr` and waits for its response, for at most `timeout`.
    ///
    /// Transport failures are `unavailable`, an expired deadline is `deadline_exceeded`, and
    /// an error answered by the peer comes back as that error.
    pub async fn call(
        &self,
        addr: &str,
        body: pb::request::Body,
        timeout: Duration,
    ) -> Result<pb::response::Body> {
        let deadline = Instant::now() + timeout;
        let peer = self.peer(addr);
        let _permit = timeout_at(deadline, peer.permits.acquire())
            .await
            .map_err(|_| too_slow(addr))?
            .map_err(Error::internal)?;
        let conn = peer.connection(&self.endpoint, deadline).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let req = pb::Request {
            timeout_ms: remaining.as_millis().clamp(1, u32::MAX as u128) as u32,
            body: Some(body),
        };
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            write_frame(&mut send, &req)
                .await
                .map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            read_frame::<pb::Response>(&mut recv, self.max_frame)
                .await
                .map_err(|e| e.to_string())
        };
        match timeout_at(deadline, exchange).await {
            Err(_) => Err(too_slow(addr)),
            Ok(Err(e)) => {
                if conn.close_reason().is_some() {
                    peer.forget(&conn).await;
                }
                Err(Error::unavailable(format!(
                    "storage node {addr} unreachable: {e}"
                )))
            }
            Ok(Ok(None)) => Err(Error::unavailable(format!(
                "storage node {addr} closed the stream without answering"
            ))),
            Ok(Ok(Some(resp))) => match resp.body {
                Some(pb::response::Body::Error(e)) => {
                    Err(Error::new(ErrorCode::from_wire(&e.code), e.message))
                }
                Some(body) => Ok(body),
                None => Err(Error::internal(format!("empty response from {addr}"))),
            },
        }
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"client closed");
    }
}

fn too_slow(addr: &str) -> Error {
    Error::deadline(format!(
        "storage node {addr} did not answer before the deadline"
    ))
}

impl Peer {
    async fn connection(&self, endpoint: &Endpoint, deadline: Instant) -> Result<Connection> {
        let mut st = timeout_at(deadline, self.state.lock())
            .await
            .map_err(|_| too_slow(&self.addr))?;
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
                "storage node {} unreachable (re-dialling with backoff)",
                self.addr
            )));
        }
        let connect_by = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        let outcome = timeout_at(connect_by, dial(endpoint, &self.addr)).await;
        let why = match outcome {
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
            return Err(too_slow(&self.addr));
        }
        Err(Error::unavailable(format!(
            "storage node {} unreachable: {why}",
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
