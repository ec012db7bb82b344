//! Health probes for container healthchecks (images have no shell or curl): every binary
//! answers `<binary> healthcheck http URL` (a gateway's `/readyz`, a replicator's
//! `/healthz`) and `<binary> healthcheck node --config FILE --dc DC --node N` (a storage
//! node, which has no HTTP port, pinged over the internal RPC with the cluster's
//! certificates). Exit 0 when healthy, 1 with one line saying why.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use aerolith_proto::internal::v1 as pb;

use crate::rpc::{PeerRole, RpcClient, TlsMaterial};
use crate::topology::ClusterConfig;
use crate::{Error, Result};

/// What a healthcheck probes.
#[derive(Debug, Clone, Subcommand)]
pub enum Probe {
    /// A gateway or replicator: an HTTP GET that must answer 2xx (e.g.
    /// http://127.0.0.1:8080/readyz, http://127.0.0.1:9090/healthz).
    Http {
        /// The URL to GET (http://, or https:// with `--ca`).
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
        /// PEM file of the CA that signed an https:// server's certificate.
        #[arg(long, env = "AEROLITH_CA", value_name = "PEM")]
        ca: Option<PathBuf>,
    },
    /// A storage node: a ping over the internal RPC, with cluster.toml's certificates.
    Node {
        /// cluster.toml (environment overrides of node addresses apply).
        #[arg(long, env = "AEROLITH_CONFIG")]
        config: PathBuf,
        /// The node's DC.
        #[arg(long, env = "AEROLITH_DC")]
        dc: String,
        /// The node's id.
        #[arg(long, env = "AEROLITH_NODE")]
        node: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// `<binary> healthcheck ...` on its own, for binaries whose other flags sit at the top.
#[derive(Debug, Parser)]
struct HealthcheckCmd {
    #[command(subcommand)]
    probe: Probe,
}

/// Runs a probe.
pub async fn probe(p: Probe) -> Result<()> {
    match p {
        Probe::Http { url, timeout, ca } => {
            http(&url, ca.as_deref(), Duration::from_secs(timeout)).await
        }
        Probe::Node {
            config,
            dc,
            node: id,
            timeout,
        } => node(&config, &dc, &id, Duration::from_secs(timeout)).await,
    }
}

/// If this process was started as `<bin> healthcheck ...`, runs the probe and returns the
/// exit code (printing one line on failure); otherwise `None`.
pub async fn run_if_asked(bin: &str) -> Option<i32> {
    let mut args = std::env::args_os();
    args.next();
    if args.next().as_deref() != Some(OsStr::new("healthcheck")) {
        return None;
    }
    let argv = std::iter::once(OsString::from(format!("{bin} healthcheck"))).chain(args);
    let cmd = HealthcheckCmd::parse_from(argv);
    Some(match probe(cmd.probe).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{bin} healthcheck: {}", e.message);
            1
        }
    })
}

/// Succeeds if a GET of `url` answers with a 2xx status within `timeout` (over TLS for
/// https://, trusting only the CA in `ca`).
pub async fn http(url: &str, ca: Option<&std::path::Path>, timeout: Duration) -> Result<()> {
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, None),
        (None, Some(rest)) => {
            let ca =
                ca.ok_or_else(|| Error::invalid(format!("{url}: an https:// URL needs --ca PEM")))?;
            (rest, Some(tls_connector(ca)?))
        }
        _ => {
            return Err(Error::invalid(format!(
                "{url}: only http:// and https:// URLs are probed"
            )));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let exchange = async {
        let tcp = TcpStream::connect(authority).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        match tls {
            None => status_line(tcp, &request).await,
            Some(connector) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority, |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                status_line(connector.connect(name, tcp).await?, &request).await
            }
        }
    };
    let head = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::unavailable(format!("GET {url}: no answer within {timeout:?}")))?
        .map_err(|e| Error::unavailable(format!("GET {url}: {e}")))?;
    let line = String::from_utf8_lossy(&head);
    let status = line.split_whitespace().nth(1).unwrap_or_default();
    if status.len() == 3 && status.starts_with('2') {
        Ok(())
    } else {
        let first = line.lines().next().unwrap_or_default();
        Err(Error::unavailable(format!("GET {url} answered {first:?}")))
    }
}

/// Succeeds if storage node `id` of `dc` (its address from `config`, environment overrides
/// included) answers a ping within `timeout`.
pub async fn node(config: &std::path::Path, dc: &str, id: &str, timeout: Duration) -> Result<()> {
    let cfg = ClusterConfig::load(config)?;
    let tls = cfg.tls.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "{} has no [tls] section: a node is probed over the internal RPC, which needs the cluster's certificates",
            config.display()
        ))
    })?;
    let client = RpcClient::new(&TlsMaterial::from_files(tls, PeerRole::StorageNode)?)?;
    let addr = &cfg
        .dc(dc)?
        .nodes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| Error::invalid(format!("{dc} has no node {id} in {}", config.display())))?
        .rpc;
    client
        .node()
        .ping(addr, pb::PingRequest {}, timeout)
        .await
        .map_err(|e| Error::unavailable(format!("ping {dc}/{id} at {addr}: {}", e.message)))?;
    Ok(())
}

/// Sends `request` and reads up to the status line, which is all a probe needs.
async fn status_line(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// A TLS client trusting only the CA certificates in the PEM file `ca`.
fn tls_connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::invalid(format!("cannot read --ca {}: {e}", ca.display())))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| Error::invalid(format!("--ca {}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(Error::invalid(format!(
            "--ca {} holds no certificate",
            ca.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers every connection with `status_line` and closes it.
    async fn answering(status_line: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("{status_line}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        format!("http://{addr}/readyz")
    }

    #[tokio::test]
    async fn http_probes_pass_on_2xx_only() {
        let t = Duration::from_secs(3);
        assert!(
            http(&answering("HTTP/1.1 200 OK").await, None, t)
                .await
                .is_ok()
        );
        assert!(
            http(&answering("HTTP/1.1 204 No Content").await, None, t)
                .await
                .is_ok()
        );
        let e = http(
            &answering("HTTP/1.1 503 Service Unavailable").await,
            None,
            t,
        )
        .await
        .unwrap_err();
        assert!(e.message.contains("503"), "{}", e.message);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(http(&format!("http://{closed}/"), None, t).await.is_err());
        assert!(http("https://example.com/", None, t).await.is_err());
    }

    #[tokio::test]
    async fn a_silent_server_fails_the_probe_at_its_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let e = http(&url, None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.message.contains("no answer"), "{}", e.message);
        drop(listener);
    }
}
