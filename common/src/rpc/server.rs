//! The RPC server loop: accept connections, then one request per bidirectional stream.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use quinn::{Endpoint, RecvStream, SendStream};
use std::time::Instant;
use tokio::task::JoinHandle;

use super::frame::{FrameError, read_frame, write_frame};
use super::role::PeerRole;
use super::service::Service;
use super::tls::TlsMaterial;
use crate::error::{Error, ErrorCode, Result};

/// Deadline applied when a request names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest deadline a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves the calls of one service of the internal RPC.
pub trait Handler: Send + Sync + 'static {
    /// The service served.
    type Service: Service;
    /// Answers one call, which the caller waits for until `deadline` (the server loop gives
    /// up at the deadline too, answering `deadline_exceeded`).
    fn handle(
        &self,
        call: <Self::Service as Service>::Call,
        deadline: Instant,
    ) -> impl Future<Output = Result<<Self::Service as Service>::Answer>> + Send;
}

/// The time a request may take, from its `timeout_ms` field.
pub fn request_timeout(timeout_ms: u32) -> Duration {
    match timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(ms as u64).min(MAX_TIMEOUT),
    }
}

/// How long a shutdown waits for the requests in flight to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// A running RPC server.
pub struct RpcServer {
    endpoint: Endpoint,
    accept: JoinHandle<()>,
    drain: Arc<Drain>,
}

/// What a shutdown waits for: requests taken but not answered yet; and, once it began,
/// that no new one is taken.
#[derive(Default)]
struct Drain {
    closing: AtomicBool,
    in_flight: AtomicUsize,
}

impl RpcServer {
    /// Binds a QUIC endpoint and serves `handler` on it until shut down.
    ///
    /// `reset_key` keys QUIC stateless resets. Keep it across restarts (the storage node keeps
    /// it in its store): a restarted server can then reset its clients' old connections at
    /// once, instead of leaving them to hang until their idle timeout.
    pub fn bind<H: Handler>(
        addr: SocketAddr,
        tls: &TlsMaterial,
        handler: Arc<H>,
        max_frame: usize,
        reset_key: &[u8; 32],
    ) -> Result<RpcServer> {
        let bind_err = |e: std::io::Error| {
            Error::unavailable(format!("cannot bind QUIC endpoint {addr}: {e}"))
        };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
        let mut config = quinn::EndpointConfig::new(Arc::new(key));
        // Connection ids must validate after a restart too, or the reset is never sent.
        let mut cid_key = [0u8; 8];
        cid_key.copy_from_slice(&reset_key[..8]);
        let cid_key = u64::from_le_bytes(cid_key);
        config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
                as Box<dyn quinn::ConnectionIdGenerator>
        });
        let endpoint = Endpoint::new(
            config,
            Some(tls.server_config()?),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        let ep = endpoint.clone();
        let drain = Arc::new(Drain::default());
        let draining = drain.clone();
        let accept = tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                let handler = handler.clone();
                let drain = draining.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => serve_connection(conn, handler, max_frame, drain).await,
                        Err(e) => tracing::debug!(error = %e, "QUIC handshake failed"),
                    }
                });
            }
        });
        Ok(RpcServer {
            endpoint,
            accept,
            drain,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.endpoint.local_addr().map_err(Error::internal)
    }

    /// Stops taking requests (new ones are answered `unavailable`, so callers know nothing
    /// was done and may go elsewhere), lets the ones in flight finish (up to
    /// [`DRAIN_LIMIT`]), then closes every connection: a write in flight is answered, not cut
    /// off with its outcome unknown.
    pub async fn shutdown(self) {
        self.drain.closing.store(true, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + DRAIN_LIMIT;
        while self.drain.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.endpoint.close(0u32.into(), b"shutdown");
        self.accept.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// The role of the certificate a connection's peer presented (the handshake checked it
/// against the cluster CA); `None` when it carries none, which every call then refuses.
pub(super) fn peer_role(conn: &quinn::Connection) -> Option<PeerRole> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<rustls::pki_types::CertificateDer<'static>>>()?;
    PeerRole::of_certificate(chain.first()?)
}

async fn serve_connection<H: Handler>(
    conn: quinn::Connection,
    handler: Arc<H>,
    max_frame: usize,
    drain: Arc<Drain>,
) {
    let role = peer_role(&conn);
    if role.is_none() {
        tracing::warn!(
            remote = %conn.remote_address(),
            "a peer presented a cluster certificate without a role; its calls are refused \
             (issue role certificates with `aerolith certs`)"
        );
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let handler = handler.clone();
                let peer = Peer {
                    role,
                    addr: conn.remote_address(),
                };
                tokio::spawn(serve_stream(
                    handler,
                    send,
                    recv,
                    max_frame,
                    drain.clone(),
                    peer,
                ));
            }
            Err(e) => {
                tracing::debug!(error = %e, remote = %conn.remote_address(), "connection ended");
                return;
            }
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
struct Peer {
    role: Option<PeerRole>,
    addr: SocketAddr,
}

async fn serve_stream<H: Handler>(
    handler: Arc<H>,
    mut send: SendStream,
    mut recv: RecvStream,
    max_frame: usize,
    drain: Arc<Drain>,
    peer: Peer,
) {
    let out = match read_frame::<Request<H>>(&mut recv, max_frame).await {
        Ok(Some(req)) => {
            // Counted before the check, so a shutdown that saw no request in flight also
            // sees this one refused.
            drain.in_flight.fetch_add(1, Ordering::SeqCst);
            let out = if drain.closing.load(Ordering::SeqCst) {
                Err(Error::unavailable(
                    "this process is shutting down; the request was not acted on",
                ))
            } else {
                serve_request(&*handler, req, peer).await
            };
            answer::<H::Service>(&mut send, out).await;
            drain.in_flight.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        Ok(None) => return,
        Err(e @ FrameError::TooLarge { .. }) => {
            let _ = recv.stop(0u32.into());
            Err(Error::new(ErrorCode::PayloadTooLarge, e.to_string()))
        }
        Err(e) => {
            let _ = recv.stop(0u32.into());
            Err(Error::invalid(format!("malformed request frame: {e}")))
        }
    };
    answer::<H::Service>(&mut send, out).await;
}

type Request<H> = <<H as Handler>::Service as Service>::Request;
type Answer<H> = <<H as Handler>::Service as Service>::Answer;

/// Runs one request through the handler, within the time the caller gave it, if the
/// caller's role may make it.
async fn serve_request<H: Handler>(handler: &H, req: Request<H>, peer: Peer) -> Result<Answer<H>> {
    let (timeout_ms, call) = H::Service::open(req);
    let Some(call) = call else {
        return Err(Error::invalid(format!(
            "empty request, or a call a {} does not serve",
            H::Service::SERVER
        )));
    };
    if !peer
        .role
        .is_some_and(|role| H::Service::permits(role, &call))
    {
        return Err(refuse::<H::Service>(&call, peer));
    }
    let timeout = request_timeout(timeout_ms);
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout(timeout + ANSWER_GRACE, handler.handle(call, deadline)).await {
        Ok(out) => out,
        Err(_) => Err(Error::deadline(format!(
            "the {} ran out of time",
            H::Service::SERVER
        ))),
    }
}

/// The `permission_denied` answer to a call the peer's role may not make, logged and counted
/// (`aerolith_rpc_refused_total{call,role}`): a refusal means a misconfigured or
/// compromised process, which an operator wants to see.
fn refuse<S: Service>(call: &S::Call, peer: Peer) -> Error {
    let name = S::call_name(call);
    let role = peer.role.map_or("none", PeerRole::as_str);
    metrics::counter!("aerolith_rpc_refused_total", "call" => name, "role" => role).increment(1);
    tracing::warn!(
        call = name,
        role,
        remote = %peer.addr,
        "refused an internal call the peer's role may not make"
    );
    let who = peer.role.map_or_else(
        || "a certificate without a role".to_string(),
        |r| format!("a {r}"),
    );
    Error::new(
        ErrorCode::PermissionDenied,
        format!("{who} may not call {name} on a {}", S::SERVER),
    )
}

/// How long past a call's deadline the server waits before answering `deadline_exceeded`
/// itself. Handlers honour the deadline (a write that finds it passed writes nothing), but
/// one already writing finishes; answering `deadline_exceeded` meanwhile would tell the
/// caller nothing was done while the write lands, and a keyed write could then be sent to
/// another DC and apply twice. With the grace, the caller's own deadline always comes first:
/// for it the outcome is unknown, which is the truth.
const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// How long an answer waits for the peer to acknowledge it (a shutdown waits for this too,
/// so that closing the endpoint does not drop answers still on their way).
const ANSWER_ACK_LIMIT: Duration = Duration::from_secs(2);

/// Writes the answer and finishes the stream, then waits (bounded) until the peer has
/// acknowledged it.
async fn answer<S: Service>(send: &mut SendStream, out: Result<S::Answer>) {
    if write_frame(send, &S::response(out)).await.is_ok() && send.finish().is_ok() {
        let _ = tokio::time::timeout(ANSWER_ACK_LIMIT, send.stopped()).await;
    }
}
