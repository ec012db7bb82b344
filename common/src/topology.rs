//! `cluster.toml`: the deployment's DCs, storage nodes and shard ownership.
//!
//! ```toml
//! name = "prod"
//! shards = 64
//! [tls]                        # PEM files; absent in dev (certificates are generated)
//! ca = "/certs/ca.pem"          # each process reads the CA and its own role's pair
//! storagenode = { cert = "/certs/storagenode.pem", key = "/certs/storagenode.key" }
//! gateway = { cert = "/certs/gateway.pem", key = "/certs/gateway.key" }
//! replicator = { cert = "/certs/replicator.pem", key = "/certs/replicator.key" }
//! [[dcs]]
//! id = "dc1"
//! nodes = [ { id = "n1", rpc = "10.0.0.1:7000" }, { id = "n2", rpc = "10.0.0.2:7000" } ]
//! ```
//!
//! An environment variable `AEROLITH_NODE_<DC>_<NODE>_RPC` (upper case, `-` as `_`) overrides
//! a node's RPC address, for containers.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::name::validate_dc;
use crate::rpc::PeerRole;
use crate::shard::{DEFAULT_SHARDS, shard_of};

/// The fewest shards a cluster may have.
pub const MIN_SHARDS: u16 = 16;
/// The most shards a cluster may have: a change-feed token holds a position per shard
/// (about two bytes each, packed), so at 4096 an active feed's token is about 11 KB.
pub const MAX_SHARDS: u16 = 4096;

/// The whole deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Cluster name, for logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// Number of virtual shards: a power of two from [`MIN_SHARDS`] to [`MAX_SHARDS`],
    /// fixed at creation (a store refuses another count).
    #[serde(default = "default_shards")]
    pub shards: u16,
    /// Certificate files for the internal RPC (absent: generated in-process, dev only).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// The datacenters, each holding a full copy of the data.
    pub dcs: Vec<DcConfig>,
}

/// PEM files of the cluster CA and of each role's certificate and key (`aerolith certs`
/// writes them; every process reads the CA and its own role's pair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// The storage nodes' certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storagenode: Option<CertPair>,
    /// The gateways' certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<CertPair>,
    /// The replicators' certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicator: Option<CertPair>,
    /// One certificate for every process, as `aerolith certs` wrote before roles: a process
    /// given it (no pair for its role) refuses to start, naming the command that issues
    /// role certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// A certificate (chain) and its private key, in PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertPair {
    /// The certificate (chain), signed by the cluster CA.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `aerolith certs` writes into `dir`: `ca.pem` and `<role>.pem`/`<role>.key`
    /// for every role.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        let pair = |role: PeerRole| {
            Some(CertPair {
                cert: dir.join(format!("{role}.pem")),
                key: dir.join(format!("{role}.key")),
            })
        };
        TlsFiles {
            ca: dir.join("ca.pem"),
            storagenode: pair(PeerRole::StorageNode),
            gateway: pair(PeerRole::Gateway),
            replicator: pair(PeerRole::Replicator),
            cert: None,
            key: None,
        }
    }

    /// The certificate and key a process of `role` presents: its role's pair, else the
    /// one shared certificate of an older deployment (whose missing role the loader then
    /// reports).
    pub fn pair(&self, role: PeerRole) -> Result<(&Path, &Path)> {
        let own = match role {
            PeerRole::StorageNode => &self.storagenode,
            PeerRole::Gateway => &self.gateway,
            PeerRole::Replicator => &self.replicator,
        };
        if let Some(p) = own {
            return Ok((&p.cert, &p.key));
        }
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Ok((c, k)),
            _ => Err(Error::invalid(format!(
                "cluster.toml's [tls] names no {role} certificate: add `{role} = {{ cert = \"…/{role}.pem\", key = \"…/{role}.key\" }}` (`aerolith certs --out DIR` writes them)"
            ))),
        }
    }
}

/// One datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcConfig {
    /// DC id (`^[a-z][a-z0-9-]{0,31}$`).
    pub id: String,
    /// Its storage nodes; shard `s` belongs to `nodes[s % nodes.len()]`.
    pub nodes: Vec<NodeConfig>,
}

/// One storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Node id, unique within its DC.
    pub id: String,
    /// `host:port` of its internal QUIC RPC endpoint.
    pub rpc: String,
}

fn default_name() -> String {
    "aerolith".into()
}

fn default_shards() -> u16 {
    DEFAULT_SHARDS
}

impl ClusterConfig {
    /// Reads and validates a `cluster.toml`, applying environment overrides.
    pub fn load(path: &Path) -> Result<ClusterConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
        let mut cfg = Self::parse(&text)
            .map_err(|e| Error::invalid(format!("{}: {}", path.display(), e.message)))?;
        cfg.apply_env(|k| std::env::var(k).ok());
        Ok(cfg)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<ClusterConfig> {
        let cfg: ClusterConfig = toml::from_str(text)
            .map_err(|e| Error::invalid(format!("invalid cluster.toml: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Overrides node addresses from `AEROLITH_NODE_<DC>_<NODE>_RPC` variables.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        for dc in &mut self.dcs {
            for node in &mut dc.nodes {
                let key = format!(
                    "AEROLITH_NODE_{}_{}_RPC",
                    env_part(&dc.id),
                    env_part(&node.id)
                );
                if let Some(v) = get(&key) {
                    node.rpc = v;
                }
            }
        }
    }

    /// Checks the invariants every process relies on.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_SHARDS..=MAX_SHARDS).contains(&self.shards) || !self.shards.is_power_of_two() {
            return Err(Error::invalid(format!(
                "cluster.toml: shards must be a power of two from {MIN_SHARDS} to {MAX_SHARDS}, not {}",
                self.shards
            )));
        }
        if self.dcs.is_empty() {
            return Err(Error::invalid("cluster.toml: at least one DC is needed"));
        }
        for (i, dc) in self.dcs.iter().enumerate() {
            validate_dc(&dc.id)?;
            if self.dcs[..i].iter().any(|d| d.id == dc.id) {
                return Err(Error::invalid(format!("cluster.toml: DC {} twice", dc.id)));
            }
            if dc.nodes.is_empty() {
                return Err(Error::invalid(format!(
                    "cluster.toml: DC {} has no nodes",
                    dc.id
                )));
            }
            if dc.nodes.len() > usize::from(self.shards) {
                return Err(Error::invalid(format!(
                    "cluster.toml: DC {} has {} nodes but there are only {} shards (a node owns at least one)",
                    dc.id,
                    dc.nodes.len(),
                    self.shards
                )));
            }
            for (j, n) in dc.nodes.iter().enumerate() {
                if dc.nodes[..j].iter().any(|m| m.id == n.id) {
                    return Err(Error::invalid(format!(
                        "cluster.toml: node {} twice in DC {}",
                        n.id, dc.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The DC with this id.
    pub fn dc(&self, id: &str) -> Result<&DcConfig> {
        self.dcs
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::invalid(format!("DC {id} is not in cluster.toml")))
    }

    /// The shard of a document.
    pub fn shard_of(&self, collection: &str, id: &str) -> u16 {
        shard_of(collection, id, self.shards)
    }
}

impl DcConfig {
    /// The node that owns `shard` in this DC.
    pub fn owner(&self, shard: u16) -> &NodeConfig {
        &self.nodes[shard as usize % self.nodes.len()]
    }

    /// The shards a node owns, ascending.
    pub fn shards_of(&self, node_index: usize, shards: u16) -> Vec<u16> {
        (0..shards)
            .filter(|s| *s as usize % self.nodes.len() == node_index)
            .collect()
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Result<&NodeConfig> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| Error::invalid(format!("node {id} is not in DC {}", self.id)))
    }
}

fn env_part(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
name = "t"
[[dcs]]
id = "dc1"
nodes = [ { id = "n1", rpc = "127.0.0.1:7001" }, { id = "n2", rpc = "127.0.0.1:7002" }, { id = "n3", rpc = "127.0.0.1:7003" } ]
"#;

    #[test]
    fn parses_and_maps_shards() {
        let cfg = ClusterConfig::parse(TOML).unwrap();
        assert_eq!(cfg.shards, 64);
        let dc = cfg.dc("dc1").unwrap();
        assert_eq!(dc.owner(0).id, "n1");
        assert_eq!(dc.owner(4).id, "n2");
        assert_eq!(dc.shards_of(2, 8), vec![2, 5]);
        assert!(cfg.dc("dc9").is_err());
    }

    #[test]
    fn env_overrides_addresses() {
        let mut cfg = ClusterConfig::parse(TOML).unwrap();
        cfg.apply_env(|k| (k == "AEROLITH_NODE_DC1_N2_RPC").then(|| "node2:7000".to_string()));
        assert_eq!(cfg.dcs[0].nodes[1].rpc, "node2:7000");
        assert_eq!(cfg.dcs[0].nodes[0].rpc, "127.0.0.1:7001");
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(ClusterConfig::parse("dcs = []").is_err());
        assert!(
            ClusterConfig::parse("[[dcs]]\nid = \"DC\"\nnodes = [{id=\"n\", rpc=\"x:1\"}]")
                .is_err()
        );
        let with_shards = |n: &str| {
            ClusterConfig::parse(&format!(
                "shards = {n}\n[[dcs]]\nid = \"a\"\nnodes = [{{id=\"n\", rpc=\"x:1\"}}]"
            ))
        };
        for bad in ["0", "1", "8", "48", "100", "3000", "8192", "65535"] {
            let e = with_shards(bad).expect_err(bad);
            assert!(e.message.contains("power of two"), "{bad}: {e}");
        }
        for good in ["16", "64", "256", "1024", "4096"] {
            assert!(with_shards(good).is_ok(), "{good}");
        }
        assert!(ClusterConfig::parse("[[dcs]]\nid = \"a\"\nnodes = []").is_err());
        let seventeen: Vec<String> = (0..17)
            .map(|i| format!("{{id=\"n{i}\", rpc=\"x:{i}\"}}"))
            .collect();
        let crowded = format!(
            "shards = 16\n[[dcs]]\nid = \"a\"\nnodes = [{}]",
            seventeen.join(", ")
        );
        let e = ClusterConfig::parse(&crowded).expect_err("more nodes than shards");
        assert!(e.message.contains("only 16 shards"), "{e}");
    }
}
