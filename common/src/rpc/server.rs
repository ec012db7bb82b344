//! The RPC server loop: accept connections, then one request per bidirectional stream.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aerolith_proto::internal::v1 as pb;
use quinn::{Endpoint, RecvStream, SendStream};
use tokio::task::JoinHandle;

use super::frame::{FrameError, read_frame, write_frame};
use super::tls::TlsMaterial;
use crate::error::{Error, ErrorCode, Result};

/// Deadline applied when a request names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest deadline a request may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves requests of the internal RPC.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: pb::Request) -> impl Future<Output = pb::Response> + Send;
}

/// The time a request may take, from its `timeout_ms` field.
pub fn request_timeout(timeout_ms: u32) -> Duration {
    match timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(ms as u64).min(MAX_TIMEOUT),
    }
}

/// Builds a response carrying an error.
pub fn error_response(e: &Error) -> pb::Response {
    pb::Response {
        body: Some(pb::response::Body::Error(pb::RpcError {
            code: e.code.as_str().to_string(),
            message: e.message.clone(),
        })),
    }
}

/// A running RPC server.
pub struct RpcServer {
    endpoint: Endpoint,
    accept: JoinHandle<()>,
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
        let accept = tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                let handler = handler.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => serve_connection(conn, handler, max_frame).await,
                        Err(e) => tracing::debug!(error = %e, "QUIC handshake failed"),
                    }
                });
            }
        });
        Ok(RpcServer { endpoint, accept })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.endpoint.local_addr().map_err(Error::internal)
    }

    /// Closes every connection and stops accepting.
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"shutdown");
        self.accept.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

async fn serve_connection<H: Handler>(conn: quinn::Connection, handler: Arc<H>, max_frame: usize) {
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let handler = handler.clone();
                tokio::spawn(serve_stream(handler, send, recv, max_frame));
            }
            Err(e) => {
                tracing::debug!(error = %e, remote = %conn.remote_address(), "connection ended");
                return;
            }
        }
    }
}

async fn serve_stream<H: Handler>(
    handler: Arc<H>,
    mut send: SendStream,
    mut recv: RecvStream,
    max_frame: usize,
) {
    let resp = match read_frame::<pb::Request>(&mut recv, max_frame).await {
        Ok(Some(req)) => {
            let timeout = request_timeout(req.timeout_ms);
            match tokio::time::timeout(timeout, handler.handle(req)).await {
                Ok(resp) => resp,
                Err(_) => error_response(&Error::deadline("the storage node ran out of time")),
            }
        }
        Ok(None) => return,
        Err(e @ FrameError::TooLarge { .. }) => {
            let _ = recv.stop(0u32.into());
            error_response(&Error::new(ErrorCode::PayloadTooLarge, e.to_string()))
        }
        Err(e) => {
            let _ = recv.stop(0u32.into());
            error_response(&Error::invalid(format!("malformed request frame: {e}")))
        }
    };
    if write_frame(&mut send, &resp).await.is_ok() {
        let _ = send.finish();
    }
}
