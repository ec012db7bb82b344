//! Mutual TLS for the internal RPC: a cluster CA signs one certificate per role (see
//! `role.rs`), and both ends of every connection must present one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

use super::role::PeerRole;
use crate::error::{Error, Result};
use crate::topology::TlsFiles;

/// The server name every cluster certificate carries and every client checks.
pub const CLUSTER_SERVER_NAME: &str = "aerolith.internal";
/// ALPN protocol of the internal RPC.
pub const ALPN: &[u8] = b"aerolith-rpc/1";

/// Streams one connection may have open at once; the client-side semaphore stays below it.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// The certificates and key one process uses for the internal RPC.
#[derive(Debug)]
pub struct TlsMaterial {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{what}: {e}"))
}

impl TlsMaterial {
    /// Loads the CA and the certificate and key of `role` named in `cluster.toml`, and
    /// checks that the certificate speaks for `role`: a certificate without a role (one
    /// shared by every process, as before roles) is refused with the command that issues
    /// role certificates, never used with less checking.
    pub fn from_files(files: &TlsFiles, role: PeerRole) -> Result<TlsMaterial> {
        let (cert, key) = files.pair(role)?;
        let read = |p: &Path| -> Result<Vec<CertificateDer<'static>>> {
            CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls_err(&format!("cannot read certificates from {}", p.display()), e))
        };
        let ca = read(&files.ca)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::invalid(format!("no certificate in {}", files.ca.display())))?;
        let chain = read(cert)?;
        let Some(leaf) = chain.first() else {
            return Err(Error::invalid(format!(
                "no certificate in {}",
                cert.display()
            )));
        };
        match PeerRole::of_certificate(leaf) {
            Some(r) if r == role => {}
            Some(other) => {
                return Err(Error::invalid(format!(
                    "{} is a {other} certificate; a {role} presents its own (cluster.toml's [tls] `{role}` entry)",
                    cert.display()
                )));
            }
            None => {
                return Err(Error::invalid(format!(
                    "{} carries no AerolithDB role: it is a certificate every process shared before role \
                     certificates, and peers now refuse it. Issue one per role with \
                     `aerolith certs --out DIR --force` (it writes ca.pem and storagenode, gateway and \
                     replicator .pem/.key) and name them in cluster.toml's [tls] as \
                     `{role} = {{ cert = \"DIR/{role}.pem\", key = \"DIR/{role}.key\" }}`",
                    cert.display()
                )));
            }
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            tls_err(
                &format!("cannot read private key from {}", key.display()),
                e,
            )
        })?;
        Ok(TlsMaterial { ca, chain, key })
    }

    /// The role this process's certificate speaks for.
    pub fn role(&self) -> Option<PeerRole> {
        self.chain.first().and_then(PeerRole::of_certificate)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| tls_err("invalid CA certificate", e))?;
        Ok(Arc::new(roots))
    }

    /// A QUIC server configuration that demands a client certificate from the cluster CA.
    pub fn server_config(&self) -> Result<quinn::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| tls_err("client verifier", e))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_err("server certificate", e))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| tls_err("QUIC server config", e))?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        cfg.transport_config(Arc::new(transport(false)));
        Ok(cfg)
    }

    /// A QUIC client configuration that presents this certificate and trusts only the cluster CA.
    pub fn client_config(&self) -> Result<quinn::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_err("TLS versions", e))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_err("client certificate", e))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        // No 0-RTT: requests are not all idempotent.
        tls.enable_early_data = false;
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| tls_err("QUIC client config", e))?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
        cfg.transport_config(Arc::new(transport(true)));
        Ok(cfg)
    }
}

/// The largest UDP payload MTU discovery tries: a 9 000-byte jumbo frame less IPv6 and UDP
/// headers.
const JUMBO_UDP_PAYLOAD: u16 = 8952;
/// Ack-eliciting packets a peer may take before it must send an ACK.
const ACK_AFTER_PACKETS: u32 = 8;

/// quinn's defaults suit the internet; these suit a datacenter and say so explicitly.
fn transport(client: bool) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(MAX_STREAMS_PER_CONNECTION.into());
    t.max_concurrent_uni_streams(0u8.into());
    t.stream_receive_window((8u32 * 1024 * 1024).into());
    t.receive_window((64u32 * 1024 * 1024).into());
    t.send_window(64 * 1024 * 1024);
    // A datacenter's links carry more than the internet's 1 200-byte floor, and a batch of
    // answers is tens of KiB: MTU discovery searches up to jumbo frames (it settles at what
    // the path carries; 1 452 on plain Ethernet).
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(JUMBO_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    // Under load the requests and answers flowing both ways carry the ACKs; ask the peer
    // for ACK-only datagrams only after several packets or a millisecond.
    let mut ack = quinn::AckFrequencyConfig::default();
    ack.ack_eliciting_threshold(ACK_AFTER_PACKETS.into());
    ack.max_ack_delay(Some(Duration::from_millis(1)));
    t.ack_frequency_config(Some(ack));
    // Idle connections are kept open by the client's keep-alive; a dead peer is noticed
    // within the idle timeout.
    if let Ok(idle) = Duration::from_secs(4).try_into() {
        t.max_idle_timeout(Some(idle));
    }
    if client {
        t.keep_alive_interval(Some(Duration::from_secs(1)));
    }
    t
}

/// A cluster CA generated in memory (for `aerolith dev`, tests, and `aerolith certs`).
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and key issued by a [`DevCa`], in PEM.
#[derive(Debug, Clone)]
pub struct IssuedPem {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl DevCa {
    /// Generates a new CA key and self-signed certificate.
    pub fn generate() -> Result<DevCa> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_err("CA params", e))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "AerolithDB cluster CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(|e| tls_err("CA key", e))?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(|e| tls_err("CA", e))?;
        Ok(DevCa { issuer })
    }

    /// The CA certificate in PEM.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Signs a fresh key for processes of `role` (`name` goes in the subject, the role in a
    /// SAN URI).
    fn sign(&self, name: &str, role: Option<PeerRole>) -> Result<(rcgen::Certificate, KeyPair)> {
        let mut params = CertificateParams::new(vec![
            CLUSTER_SERVER_NAME.to_string(),
            "localhost".to_string(),
        ])
        .map_err(|e| tls_err("certificate params", e))?;
        if let Some(role) = role {
            let uri = role.uri().try_into().map_err(|e| tls_err("role URI", e))?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(|e| tls_err("key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| tls_err("signing", e))?;
        Ok((cert, key))
    }

    /// Issues a certificate for processes of `role`, in PEM (for files).
    pub fn issue_pem(&self, name: &str, role: PeerRole) -> Result<IssuedPem> {
        let (cert, key) = self.sign(name, Some(role))?;
        Ok(IssuedPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a server certificate for the public ports (HTTPS, gRPC, the admin API) valid
    /// for `names` (DNS names or IP addresses), in PEM: server authentication only and no
    /// role, so it is worth nothing inside the cluster.
    pub fn issue_server_pem(&self, names: &[String]) -> Result<IssuedPem> {
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(|e| tls_err("server names", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "AerolithDB public endpoint");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(|e| tls_err("key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| tls_err("signing", e))?;
        Ok(IssuedPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a certificate for one process of `role` as ready-to-use material.
    pub fn issue(&self, name: &str, role: PeerRole) -> Result<TlsMaterial> {
        let (cert, key) = self.sign(name, Some(role))?;
        Ok(self.material(&cert, &key))
    }

    /// Issues a certificate without a role, as `aerolith certs` did before roles (one for
    /// every process): for checking that such a certificate is refused, in PEM and as
    /// material.
    pub fn issue_without_role(&self, name: &str) -> Result<(IssuedPem, TlsMaterial)> {
        let (cert, key) = self.sign(name, None)?;
        let pem = IssuedPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok((pem, self.material(&cert, &key)))
    }

    fn material(&self, cert: &rcgen::Certificate, key: &KeyPair) -> TlsMaterial {
        TlsMaterial {
            ca: self.issuer.der().clone(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}
