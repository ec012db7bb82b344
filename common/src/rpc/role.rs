//! Which process a cluster certificate speaks for. `aerolith certs` issues one certificate
//! per role, the role carried as a subject-alternative-name URI
//! (`urn:aerolith:role:gateway`), and every internal call names the roles that may make it
//! (`service.rs`): a gateway, the most exposed process, cannot apply forged records, forge
//! acknowledgements, seed, move shards or write backups, whatever it is made to send.

use rustls::pki_types::CertificateDer;

/// The prefix of the SAN URI that carries a certificate's role.
pub const ROLE_URI_PREFIX: &str = "urn:aerolith:role:";

/// The role of a process in the internal RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// A storage node: it serves calls and makes none.
    StorageNode,
    /// A gateway: document, query, listing, feed, session and health calls only.
    Gateway,
    /// A replicator: every call (it applies, acknowledges, seeds, moves shards, backs up).
    Replicator,
}

impl PeerRole {
    /// Every role, in the order `aerolith certs` writes them.
    pub const ALL: [PeerRole; 3] = [
        PeerRole::StorageNode,
        PeerRole::Gateway,
        PeerRole::Replicator,
    ];

    /// The role's name in certificates, file names, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerRole::StorageNode => "storagenode",
            PeerRole::Gateway => "gateway",
            PeerRole::Replicator => "replicator",
        }
    }

    /// The SAN URI naming this role.
    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{}", self.as_str())
    }

    fn from_name(name: &str) -> Option<PeerRole> {
        PeerRole::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The role a certificate carries: `None` when it carries none (a certificate from
    /// before roles, or not ours), or more than one (a certificate must speak for one).
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Option<PeerRole> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let san = parsed.subject_alternative_name().ok()??;
        let mut roles = san.value.general_names.iter().filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(ROLE_URI_PREFIX),
            _ => None,
        });
        let role = PeerRole::from_name(roles.next()?)?;
        roles.next().is_none().then_some(role)
    }
}

impl std::fmt::Display for PeerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
