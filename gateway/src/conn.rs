//! A client's connection to a public port as admission sees it: where it comes from (for
//! audit lines) and the connection places it holds (`--max-connections-per-token`). A
//! connection is held by the token of the first authenticated request it carries, and by
//! every other token it carries after (HTTP/2 multiplexes, and a proxy may carry several
//! clients' calls on one connection); its places are given back when it closes. It is made
//! once per accepted connection: by axum's `ConnectInfo` on the plain HTTP port, by the
//! HTTPS accept loop, and as tonic's connect info on the gRPC port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::Extensions;
use axum::http::request::Parts;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};

use aerolith_common::Result;

use crate::admission::Who;
use crate::caps::{Kind, Slot};

/// One client connection (cheap to clone: every request on it carries a clone).
#[derive(Debug, Clone)]
pub struct ClientConn(Arc<ConnState>);

#[derive(Debug)]
struct ConnState {
    peer: Option<SocketAddr>,
    /// The connection place of each token it carried, by token index.
    held: Mutex<Vec<(usize, Slot)>>,
}

impl ClientConn {
    /// A new connection from `peer`, holding nothing yet.
    pub fn new(peer: Option<SocketAddr>) -> ClientConn {
        ClientConn(Arc::new(ConnState {
            peer,
            held: Mutex::new(Vec::new()),
        }))
    }

    /// The client's address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.0.peer
    }

    /// Makes the connection held by `who`'s token (once per token): `rate_limited` when the
    /// token holds its cap of connections already. Callers without a token hold nothing.
    pub fn hold(&self, who: &Who) -> Result<()> {
        let Some(token) = who.caller.token else {
            return Ok(());
        };
        let mut held = self.0.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.iter().any(|(t, _)| *t == token) {
            return Ok(());
        }
        let slot = who.take(Kind::Connection)?;
        held.push((token, slot));
        Ok(())
    }

    /// The connection a request came on, as the HTTP or gRPC server recorded it.
    pub fn of(extensions: &Extensions) -> Option<&ClientConn> {
        extensions
            .get::<ConnectInfo<ClientConn>>()
            .map(|ConnectInfo(c)| c)
            .or_else(|| extensions.get::<ClientConn>())
    }
}

/// The plain HTTP port's listener: TCP, each accepted stream set to `TCP_NODELAY` (answers
/// and WebSocket frames go out as soon as written). A type of its own, so that its
/// connections can be [`ClientConn`]s.
pub struct HttpListener(pub TcpListener);

impl Listener for HttpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        // axum's TCP accept retries failures (out of file descriptors, say) itself.
        let (tcp, addr) = Listener::accept(&mut self.0).await;
        let _ = tcp.set_nodelay(true);
        (tcp, addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, HttpListener>> for ClientConn {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> ClientConn {
        ClientConn::new(Some(*stream.remote_addr()))
    }
}

/// The address a request came from, when the server recorded its connection (an
/// extractor that never fails).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Peer, Self::Rejection> {
        Ok(Peer(
            ClientConn::of(&parts.extensions).and_then(ClientConn::peer),
        ))
    }
}
