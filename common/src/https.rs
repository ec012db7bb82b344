//! TLS on the ports a person or client connects to (optional): the gateway's HTTP port
//! (REST, GraphQL, WebSocket) and the replicator's admin API served over rustls by hyper (the
//! gateway's gRPC port by tonic's own acceptor, from the same files), from one PEM
//! certificate chain and key.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// Where the public ports' certificate and key are (`--tls-cert`, `--tls-key`, or the
/// environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain for TLS on this process's public ports (a gateway's HTTP and
    /// gRPC ports, a replicator's admin API), with `--tls-key`; without it, they speak
    /// plain TCP. Also AEROLITH_TLS_CERT (an empty value counts as none, so a compose
    /// override can turn TLS off).
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`. Also AEROLITH_TLS_KEY (empty: none).
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

/// A path from the environment variable `var`; unset and empty are both none.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl TlsArgs {
    /// The certificate and key read, when both are given (by flag or environment): one
    /// without the other is an error, never plain TCP by mistake.
    pub fn load(&self) -> Result<Option<PublicTls>> {
        let cert = self
            .tls_cert
            .clone()
            .or_else(|| env_path("AEROLITH_TLS_CERT"));
        let key = self
            .tls_key
            .clone()
            .or_else(|| env_path("AEROLITH_TLS_KEY"));
        match (cert, key) {
            (Some(cert), Some(key)) => PublicTls::from_files(&cert, &key).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) => Err(Error::invalid(
                "--tls-cert (AEROLITH_TLS_CERT) needs --tls-key (AEROLITH_TLS_KEY)",
            )),
            (None, Some(_)) => Err(Error::invalid(
                "--tls-key (AEROLITH_TLS_KEY) needs --tls-cert (AEROLITH_TLS_CERT)",
            )),
        }
    }
}

/// The public ports' certificate chain and key, checked to make a server config.
#[derive(Clone)]
pub struct PublicTls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for PublicTls {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicTls")
    }
}

impl PublicTls {
    /// Reads and checks a PEM certificate chain and key.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<PublicTls> {
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| Error::invalid(format!("cannot read {}: {e}", p.display())))
        };
        let tls = PublicTls::from_pem(read(cert)?, read(key)?)?;
        Ok(tls)
    }

    /// A certificate chain and key in PEM, checked.
    pub fn from_pem(cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Result<PublicTls> {
        let tls = PublicTls { cert_pem, key_pem };
        tls.rustls_config(vec![])?;
        Ok(tls)
    }

    /// A rustls server config offering `alpn`.
    fn rustls_config(&self, alpn: Vec<Vec<u8>>) -> Result<Arc<rustls::ServerConfig>> {
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid(format!("bad TLS certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid(
                "the TLS certificate file holds no certificate",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| Error::invalid(format!("bad TLS key PEM: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::invalid(format!("the TLS certificate and key do not fit: {e}")))?;
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// The certificate chain, in PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// The private key, in PEM.
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }
}

/// How long an HTTP/1 client has to send a request's headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` over TLS on `listener` (HTTP/2 and HTTP/1.1 by ALPN, WebSocket upgrades
/// included) until `stop` resolves, then lets open connections finish. Every request of a
/// connection carries `ConnectInfo(connect_info(peer address))`, as with `axum::serve`'s
/// connect info (the replicator's is the address, the gateway's its connection's state).
pub async fn serve_https<C>(
    listener: TcpListener,
    app: axum::Router,
    tls: PublicTls,
    connect_info: impl Fn(std::net::SocketAddr) -> C,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<()>
where
    C: Clone + Send + Sync + 'static,
{
    use axum::Extension;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::Layer;

    let acceptor =
        TlsAcceptor::from(tls.rustls_config(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // HTTP connections are tasks of this set, so aborting the server's task ends them
    // (connections upgraded to WebSockets run in tasks of their own, which end with the
    // gateway's feeds at shutdown).
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        // Handlers and layers find the connection's info in every request's extensions, as
        // `axum::serve`'s connect info puts it on a plain port (the audit trail names the
        // peer; the gateway's caps count by connection).
        let info = axum::extract::ConnectInfo(connect_info(peer));
        let service = TowerToHyperService::new(Extension(info).layer(app.clone()));
        let watcher = graceful.watcher();
        connections.spawn(async move {
            // A client that fails the handshake (plain HTTP, a bad hello) or stalls in it
            // just goes away.
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let mut builder = Builder::new(TokioExecutor::new());
            // A client must send its request headers within HEADER_READ_TIMEOUT (hyper
            // enforces it only with a timer).
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            // No extended CONNECT (RFC 8441): the WebSocket routes are GET upgrades, so a
            // browser told it may open a WebSocket inside HTTP/2 would be refused; without
            // the setting it opens an HTTP/1.1 connection for the socket, which works.
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let _ = watcher.watch(conn.into_owned()).await;
        });
        // Finished connections leave the set as they go.
        while connections.try_join_next().is_some() {}
    }
    graceful.shutdown().await;
    Ok(())
}
