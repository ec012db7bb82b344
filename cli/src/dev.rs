//! `aerolith dev`: a whole cluster in one process on loopback. Each storage node still has its
//! own RocksDB directory and the gateway reaches it over real QUIC with mutual TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use aerolith_common::json::Limits;
use aerolith_common::origin::Origin;
use aerolith_common::rpc::{DevCa, PeerRole};
use aerolith_common::shard::DEFAULT_SHARDS;
use aerolith_common::topology::{ClusterConfig, DcConfig, MAX_SHARDS, MIN_SHARDS, NodeConfig};
use aerolith_gateway::{Gateway, GatewayOptions};
use aerolith_replicator::{Peer, Replicator, ReplicatorOptions};
use aerolith_storagenode::{
    Durability, MemoryProfile, NewStore, NodeOptions, Retention, StorageNode,
};

/// Default REST port of the first DC.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Default gRPC port of the first DC.
pub const DEFAULT_GRPC_PORT: u16 = 50051;
/// How long start-up waits for every gateway to reach every shard's owner.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Default replicator admin port of the first DC.
pub const DEFAULT_ADMIN_PORT: u16 = 9090;

/// How to run the dev cluster.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Where data lives (kept across restarts).
    pub data_dir: PathBuf,
    /// Number of DCs.
    pub dcs: usize,
    /// Storage nodes per DC.
    pub nodes_per_dc: usize,
    /// Virtual shards (a power of two from 16 to 4096), fixed when the data directory is
    /// created.
    pub shards: u16,
    /// Moves every default port by `port_base - 8080`; `None` picks free ports (tests).
    pub port_base: Option<u16>,
    /// Write acknowledgement rule.
    pub durability: Durability,
    /// Records a storage node examines per id-ordered scan call ([`aerolith_storagenode::DEFAULT_SCAN_BUDGET`]).
    pub scan_budget: usize,
    /// How much of each shard's change log the nodes keep.
    pub retention: Retention,
    /// Frames a WebSocket connection may queue before its client is a slow consumer.
    pub ws_queue_frames: usize,
    /// WebSocket ping interval (three silent intervals: the client is dead).
    pub ws_heartbeat: std::time::Duration,
    /// Where each replicator ships to each peer (tests route links through a fault proxy);
    /// `None` ships straight to the peer's replicator.
    pub link_route: Option<LinkRoute>,
    /// The tokens every gateway and replicator admin API asks for; empty: auth off.
    pub tokens: aerolith_common::auth::Tokens,
    /// Every gateway's request rate and concurrency limits.
    pub requests: aerolith_gateway::admission::RequestLimits,
    /// TLS on every gateway's HTTP and gRPC ports; `None`: plain TCP.
    pub public_tls: Option<aerolith_common::https::PublicTls>,
    /// How often each replicator runs an anti-entropy pass; `None`: only on request.
    pub resync_every: Option<std::time::Duration>,
}

/// Maps (`from` DC, `to` DC, the peer replicator's real address) to the address to ship to.
pub type RouteFn = dyn Fn(&str, &str, SocketAddr) -> SocketAddr + Send + Sync;

/// Chooses the address DC `from`'s replicator ships to DC `to`'s, given the real one.
#[derive(Clone)]
pub struct LinkRoute(pub Arc<RouteFn>);

impl std::fmt::Debug for LinkRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkRoute")
    }
}

impl DevOptions {
    /// One durable DC of three nodes in `data_dir` on free ports, with default limits.
    pub fn new(data_dir: PathBuf) -> DevOptions {
        DevOptions {
            data_dir,
            dcs: 1,
            nodes_per_dc: 3,
            shards: DEFAULT_SHARDS,
            port_base: None,
            durability: Durability::Durable,
            scan_budget: aerolith_storagenode::DEFAULT_SCAN_BUDGET,
            retention: Retention::default(),
            ws_queue_frames: aerolith_gateway::ws::DEFAULT_QUEUE_FRAMES,
            ws_heartbeat: aerolith_gateway::ws::DEFAULT_HEARTBEAT,
            link_route: None,
            tokens: aerolith_common::auth::Tokens::default(),
            requests: Default::default(),
            public_tls: None,
            resync_every: Some(std::time::Duration::from_secs(3600)),
        }
    }
}

/// The topology a data directory was created with (`<data-dir>/topology.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Topology {
    dcs: usize,
    nodes_per_dc: usize,
    shards: u16,
}

/// One DC's public endpoints, as written to `endpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcEndpoints {
    /// DC id.
    pub id: String,
    /// REST / GraphQL / WebSocket address.
    pub http: String,
    /// gRPC address.
    pub grpc: String,
    /// Replicator admin address.
    pub admin: String,
}

/// The content of `endpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Every DC.
    pub dcs: Vec<DcEndpoints>,
}

/// A running dev cluster.
pub struct DevCluster {
    /// Per DC, its storage nodes (`None` once stopped by [`DevCluster::stop_node`]).
    nodes: Vec<Vec<(Option<StorageNode>, NodeOptions)>>,
    gateways: Vec<Gateway>,
    /// One per DC when there are several.
    replicators: Vec<Replicator>,
    endpoints: Endpoints,
}

fn port(default: u16, dc: usize, base: Option<u16>) -> anyhow::Result<u16> {
    let Some(base) = base else { return Ok(0) };
    let p = default as i64 + dc as i64 + base as i64 - DEFAULT_HTTP_PORT as i64;
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("--port-base {base} moves a port out of range ({p})"))
}

/// How a data directory's recorded topology compares with the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// A new data directory.
    New,
    /// The same topology.
    Same,
    /// More nodes per DC than it had (this many): they are added and the DCs rebalanced.
    Grown(usize),
}

/// Checks (or records, for a new data directory) its topology.
fn check_topology(data_dir: &Path, want: &Topology) -> anyhow::Result<Existing> {
    let path = data_dir.join("topology.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let have: Topology = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is corrupt", path.display()))?;
            let grown = have.dcs == want.dcs
                && have.shards == want.shards
                && want.nodes_per_dc > have.nodes_per_dc;
            // A directory from before shard maps has none yet: its first map would deal the
            // shards over every node, new ones too, as if they held data.
            let mapped = (1..=have.dcs).all(|d| {
                data_dir
                    .join(format!("dc{d}"))
                    .join("replicator")
                    .join("shard-map.json")
                    .exists()
            });
            if grown && !mapped {
                bail!(
                    "{} has no shard map yet (it was created by an older release): start it once with --nodes-per-dc {}, then with more",
                    data_dir.display(),
                    have.nodes_per_dc
                );
            }
            if grown {
                write_atomically(&path, &serde_json::to_vec_pretty(want)?)?;
                return Ok(Existing::Grown(have.nodes_per_dc));
            }
            if have != *want {
                bail!(
                    "{} was created with --dcs {} --nodes-per-dc {} --shards {}; it cannot be restarted with --dcs {} --nodes-per-dc {} --shards {} (a larger --nodes-per-dc adds nodes; fewer nodes need `aerolith admin nodes decommission` and another --data-dir; otherwise use another --data-dir)",
                    data_dir.display(),
                    have.dcs,
                    have.nodes_per_dc,
                    have.shards,
                    want.dcs,
                    want.nodes_per_dc,
                    want.shards
                );
            }
            Ok(Existing::Same)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomically(&path, &serde_json::to_vec_pretty(want)?)?;
            Ok(Existing::New)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a file through a temporary file and a rename, so readers never see half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    Ok(())
}

impl DevCluster {
    /// Starts every process of the cluster and writes `endpoints.json` once all are ready.
    pub async fn start(opts: DevOptions) -> anyhow::Result<DevCluster> {
        if opts.dcs == 0 {
            bail!("--dcs must be at least 1");
        }
        if opts.dcs > 9 {
            bail!("--dcs must be from 1 to 9");
        }
        if !(MIN_SHARDS..=MAX_SHARDS).contains(&opts.shards) || !opts.shards.is_power_of_two() {
            bail!("--shards must be a power of two from {MIN_SHARDS} to {MAX_SHARDS}");
        }
        if opts.nodes_per_dc == 0 || opts.nodes_per_dc > usize::from(opts.shards) {
            bail!(
                "--nodes-per-dc must be from 1 to the shard count, {}",
                opts.shards
            );
        }
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
        let endpoints_path = opts.data_dir.join("endpoints.json");
        match std::fs::remove_file(&endpoints_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("cannot remove the stale endpoints.json"),
        }
        let existing = check_topology(
            &opts.data_dir,
            &Topology {
                dcs: opts.dcs,
                nodes_per_dc: opts.nodes_per_dc,
                shards: opts.shards,
            },
        )?;

        let ca = DevCa::generate()?;
        let mut cluster = ClusterConfig {
            name: "dev".into(),
            shards: opts.shards,
            tls: None,
            dcs: Vec::new(),
        };
        let mut nodes = Vec::new();
        for d in 0..opts.dcs {
            let dc = format!("dc{}", d + 1);
            let mut dc_nodes = Vec::new();
            let mut running = Vec::new();
            for n in 0..opts.nodes_per_dc {
                let id = format!("n{}", n + 1);
                let data_dir = opts.data_dir.join(&dc).join(&id);
                // A node of an existing cluster whose store is gone (or empty) lost its
                // disk: it is rebuilt from a peer DC, never restarted empty as a new one.
                let lost = std::fs::read_dir(&data_dir).map_or(true, |mut d| d.next().is_none());
                // A node added by a larger --nodes-per-dc starts empty: it owns nothing
                // until the rebalance below moves shards to it.
                let added = matches!(existing, Existing::Grown(had) if n >= had);
                let new_store = if existing != Existing::New && !added && opts.dcs > 1 && lost {
                    tracing::warn!(%dc, node = %id, "store missing; the node will be rebuilt from a peer DC");
                    NewStore::Seed
                } else {
                    NewStore::Genesis
                };
                let mut node_opts = NodeOptions {
                    data_dir,
                    dc: dc.clone(),
                    node: id.clone(),
                    shards: opts.shards,
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                    durability: opts.durability,
                    memory: MemoryProfile::Small,
                    limits: Limits::default(),
                    tls: ca.issue(&format!("{dc}-{id}"), PeerRole::StorageNode)?,
                    scan_budget: opts.scan_budget,
                    retention: opts.retention,
                    new_store,
                    backup_dir: Some(opts.data_dir.join(&dc).join("backups")),
                };
                let node = StorageNode::start(node_opts.clone())
                    .await
                    .with_context(|| format!("storage node {dc}/{id} failed to start"))?;
                dc_nodes.push(NodeConfig {
                    id,
                    rpc: node.addr().to_string(),
                });
                // A restart must come back on the same address: the cluster map names it.
                node_opts.listen = node.addr();
                running.push((Some(node), node_opts));
            }
            nodes.push(running);
            cluster.dcs.push(DcConfig {
                id: dc,
                nodes: dc_nodes,
            });
        }

        // Replicators (one per DC, also with a single DC, for its admin API): every DC's
        // receives first, so each can then ship to all the others.
        let mut replicators = Vec::new();
        let mut admin_addrs = Vec::new();
        let mut admin_listeners = Vec::new();
        {
            for dc in &cluster.dcs {
                let r = Replicator::bind(ReplicatorOptions {
                    cluster: cluster.clone(),
                    dc: dc.id.clone(),
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                    tls: ca.issue(&format!("{}-replicator", dc.id), PeerRole::Replicator)?,
                    data_dir: opts.data_dir.join(&dc.id).join("replicator"),
                    tokens: opts.tokens.clone(),
                    resync_every: opts.resync_every,
                    resync_rate: aerolith_replicator::resync::DEFAULT_RECORDS_PER_SECOND,
                })
                .await
                .with_context(|| format!("replicator of {} failed to start", dc.id))?;
                replicators.push(r);
            }
            let peers: Vec<(String, SocketAddr)> = replicators
                .iter()
                .zip(&cluster.dcs)
                .map(|(r, dc)| (dc.id.clone(), r.addr()))
                .collect();
            for (d, (r, dc)) in replicators.iter_mut().zip(&cluster.dcs).enumerate() {
                for (peer, addr) in peers.iter().filter(|(p, _)| *p != dc.id) {
                    let addr = match &opts.link_route {
                        Some(route) => (route.0)(&dc.id, peer, *addr),
                        None => *addr,
                    };
                    r.ship_to(Peer {
                        dc: peer.clone(),
                        addr: addr.to_string(),
                    })?;
                }
                r.start_loops()?;
                if let Existing::Grown(had) = existing {
                    for node in &dc.nodes[had..] {
                        r.mover().add_node(&node.id, &node.rpc).await?;
                    }
                    let planned = r.mover().rebalance()?;
                    tracing::info!(dc = %dc.id, nodes = dc.nodes.len(), moves = planned.len(), "nodes added; shards move to them in the background (aerolith admin moves)");
                }
                // Bound now, served once the gateways' addresses (the consoles' origins)
                // are known.
                let admin = port(DEFAULT_ADMIN_PORT, d, opts.port_base)?;
                let listener =
                    aerolith_replicator::admin::bind(SocketAddr::from(([127, 0, 0, 1], admin)))
                        .await
                        .with_context(|| {
                            format!("replicator admin of {} failed to start", dc.id)
                        })?;
                admin_addrs.push(listener.local_addr()?);
                admin_listeners.push(listener);
            }
        }
        let scheme = if opts.public_tls.is_some() {
            "https"
        } else {
            "http"
        };

        let mut gateways = Vec::new();
        let mut endpoints = Endpoints { dcs: Vec::new() };
        for (d, dc) in cluster.dcs.iter().enumerate() {
            let http_port = port(DEFAULT_HTTP_PORT, d, opts.port_base)?;
            let grpc_port = port(DEFAULT_GRPC_PORT, d, opts.port_base)?;
            let gateway = Gateway::start(GatewayOptions {
                cluster: cluster.clone(),
                dc: dc.id.clone(),
                http_listen: SocketAddr::from(([127, 0, 0, 1], http_port)),
                grpc_listen: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
                tls: ca.issue(&format!("{}-gateway", dc.id), PeerRole::Gateway)?,
                limits: Limits::default(),
                ws_queue_frames: opts.ws_queue_frames,
                ws_heartbeat: opts.ws_heartbeat,
                tokens: opts.tokens.clone(),
                requests: opts.requests,
                public_tls: opts.public_tls.clone(),
                // Each gateway's console shows its own DC's replication.
                console_admin: admin_addrs
                    .get(d)
                    .and_then(|a| Origin::for_addr(scheme, *a).into_iter().next()),
            })
            .await
            .with_context(|| format!("gateway of {} failed to start", dc.id))?;
            endpoints.dcs.push(DcEndpoints {
                id: dc.id.clone(),
                http: gateway.http_addr().to_string(),
                grpc: gateway.grpc_addr().to_string(),
                admin: admin_addrs
                    .get(d)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            });
            gateways.push(gateway);
        }
        // Every gateway's console may use every DC's admin API (each still asks for an
        // admin token); no other web page may.
        let consoles: Vec<Origin> = gateways
            .iter()
            .flat_map(|g| Origin::for_addr(scheme, g.http_addr()))
            .collect();
        for ((r, listener), dc) in replicators
            .iter_mut()
            .zip(admin_listeners)
            .zip(&cluster.dcs)
        {
            r.serve_admin(listener, opts.public_tls.clone(), consoles.clone())
                .await
                .with_context(|| format!("replicator admin of {} failed to start", dc.id))?;
        }

        // Every shard's owner must answer; on a loaded machine the first handshakes can take
        // longer than one readiness check allows, so retry until a generous deadline.
        let ready_by = tokio::time::Instant::now() + READY_TIMEOUT;
        for g in &gateways {
            loop {
                match g.ready().await {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() >= ready_by => {
                        return Err(anyhow::Error::new(e).context("a gateway did not become ready"));
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        }
        write_atomically(&endpoints_path, &serde_json::to_vec_pretty(&endpoints)?)?;
        Ok(DevCluster {
            nodes,
            gateways,
            replicators,
            endpoints,
        })
    }

    /// The public endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Stops one storage node (`node` counts from 0 across the DC) while the rest keep
    /// running: for fault tests.
    pub async fn stop_node(&mut self, dc: usize, node: usize) -> anyhow::Result<()> {
        let slot = self
            .nodes
            .get_mut(dc)
            .and_then(|d| d.get_mut(node))
            .with_context(|| format!("no storage node {node} in DC {dc}"))?;
        if let Some(n) = slot.0.take() {
            n.shutdown().await?;
        }
        Ok(())
    }

    /// Starts a node stopped by [`DevCluster::stop_node`] again, on its data and address.
    pub async fn restart_node(&mut self, dc: usize, node: usize) -> anyhow::Result<()> {
        let slot = self
            .nodes
            .get_mut(dc)
            .and_then(|d| d.get_mut(node))
            .with_context(|| format!("no storage node {node} in DC {dc}"))?;
        if slot.0.is_none() {
            slot.0 = Some(StorageNode::start(slot.1.clone()).await?);
        }
        Ok(())
    }

    /// Stops gateways and replicators first, then storage nodes (flushing their stores).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for g in self.gateways {
            g.shutdown().await;
        }
        for r in self.replicators {
            r.shutdown().await;
        }
        let mut first_err = None;
        for n in self.nodes.into_iter().flatten().filter_map(|(n, _)| n) {
            if let Err(e) = n.shutdown().await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
