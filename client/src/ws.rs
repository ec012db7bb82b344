//! WebSocket connections to a gateway's `/v1/ws`: `ws://`, or `wss://` trusting the client's
//! CA, with the bearer token in the handshake and a refused handshake read as API.md's error.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::error::{Error, Result};

/// A byte stream a WebSocket runs over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for S {}

/// An open WebSocket to a gateway.
pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// The TLS settings of `wss://`: only the CAs of `pem`, HTTP/1.1 (WebSockets upgrade it).
pub(crate) fn tls_config(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Config(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("a CA certificate is unusable: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Config("the CA PEM holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Host and port of a base URL (`http://host:port`, `https://[::1]`, ...).
fn host_port(base: &str) -> Result<(bool, String, u16)> {
    let (tls, rest) = if let Some(r) = base.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = base.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(Error::Config(format!("{base:?} is not http(s)://")));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            let port = p
                .parse()
                .map_err(|_| Error::Config(format!("{base:?}: bad port {p:?}")))?;
            (h, port)
        }
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(Error::Config(format!("{base:?} names no host")));
    }
    Ok((tls, host.to_string(), port))
}

/// Opens `/v1/ws` at the gateway of base URL `base` within `timeout`. A refused handshake
/// is the gateway's error (`unauthenticated`, `rate_limited`, ...); anything that failed
/// before it is `Connect` (nothing was done).
pub(crate) async fn connect(
    base: &str,
    token: Option<&str>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Ws> {
    let (secure, host, port) = host_port(base)?;
    let url = format!(
        "{}{}/v1/ws",
        if secure { "wss://" } else { "ws://" },
        base.split_once("://").map(|(_, r)| r).unwrap_or(base)
    );
    let connect_error = |message: String| Error::Connect {
        url: url.clone(),
        message,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::Config(format!("{url}: {e}")))?;
    if let Some(t) = token {
        let value = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    let open = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if secure {
            let Some(config) = tls else {
                return Err(Error::Config(format!(
                    "{url}: wss:// needs the CA to trust (ClientBuilder::ca_pem)"
                )));
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|e| Error::Config(format!("{url}: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| connect_error(e.to_string()))?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        tokio_tungstenite::client_async(request, io)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| handshake_error(&url, e))
    };
    match tokio::time::timeout(timeout, open).await {
        Ok(r) => r,
        Err(_) => Err(connect_error(format!("no handshake within {timeout:?}"))),
    }
}

/// A failed handshake: the gateway's error body when it answered one.
fn handshake_error(url: &str, e: tokio_tungstenite::tungstenite::Error) -> Error {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let body: serde_json::Value = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            Error::from_body(url.to_string(), resp.status().as_u16(), &body)
        }
        other => Error::Connect {
            url: url.to_string(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn base_urls_name_host_and_port() {
        let hp = |s: &str| host_port(s).unwrap();
        assert_eq!(
            hp("http://127.0.0.1:8080"),
            (false, "127.0.0.1".into(), 8080)
        );
        assert_eq!(hp("https://gw.example"), (true, "gw.example".into(), 443));
        assert_eq!(hp("http://[::1]:9"), (false, "::1".into(), 9));
        assert_eq!(hp("http://[::1]"), (false, "::1".into(), 80));
        assert!(host_port("http://:80").is_err());
        assert!(host_port("http://h:x").is_err());
    }
}
