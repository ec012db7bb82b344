//! AerolithDB replicator (DESIGN.md "Replicator"): one per DC. It ships every local shard's
//! change log to each peer DC's replicator and applies what the peers ship through the local
//! storage nodes, which merge by version vector and record watermarks.

pub mod acks;
pub mod admin;
mod admin_cors;
mod admin_nodes;
pub mod backup;
pub mod checkpoint;
pub mod cli;
pub mod failover;
pub mod lag;
pub mod moves;
pub mod per_node;
pub mod receiver;
pub mod resync;
pub mod seed;
pub mod settings;
pub mod shard_map;
pub mod shipper;
pub mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

use aerolith_common::rpc::{RpcClient, RpcServer, TlsMaterial};
use aerolith_common::topology::ClusterConfig;
use aerolith_common::{Error, Result};

use checkpoint::CheckpointFile;
use failover::DcStates;
use receiver::{Receiver, ShipService};
pub use shipper::{Peer, PeerLink};
use stats::Stats;

/// Largest frame a shipment may be (a 4 MiB batch of changes, with room to spare).
const MAX_FRAME: usize = 32 * 1024 * 1024;

/// Everything a replicator needs to start.
#[derive(Debug, Clone)]
pub struct ReplicatorOptions {
    /// The deployment.
    pub cluster: ClusterConfig,
    /// This replicator's DC.
    pub dc: String,
    /// UDP address of its QUIC RPC endpoint (port 0 picks one).
    pub listen: SocketAddr,
    /// Certificate material for the internal RPC (mutual TLS).
    pub tls: TlsMaterial,
    /// Where checkpoints live.
    pub data_dir: PathBuf,
    /// The tokens the admin API asks for (admin role); empty: auth off.
    pub tokens: aerolith_common::auth::Tokens,
    /// How often anti-entropy compares this DC with each peer; `None`: only on request.
    pub resync_every: Option<std::time::Duration>,
    /// Records an anti-entropy pass may scan a second (0: unpaced).
    pub resync_rate: u64,
}

/// A running replicator.
pub struct Replicator {
    opts: ReplicatorOptions,
    server: RpcServer,
    addr: SocketAddr,
    client: Arc<RpcClient>,
    links: Vec<Arc<PeerLink>>,
    stats: Arc<Stats>,
    states: Arc<DcStates>,
    /// Every DC's shard map; this replicator keeps the local one.
    maps: Arc<aerolith_common::shard_map::ShardMaps>,
    map_store: shard_map::MapStore,
    mover: Arc<moves::Mover>,
    tasks: Vec<JoinHandle<()>>,
}

/// The QUIC stateless-reset key, kept across restarts in the data directory.
fn reset_key(dir: &std::path::Path) -> Result<[u8; 32]> {
    let path = dir.join("reset.key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    std::fs::write(&path, key).map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    Ok(key)
}

impl Replicator {
    /// Starts receiving: binds the RPC endpoint and applies what peers ship.
    pub async fn bind(opts: ReplicatorOptions) -> Result<Replicator> {
        std::fs::create_dir_all(&opts.data_dir).map_err(|e| {
            Error::internal(format!("cannot create {}: {e}", opts.data_dir.display()))
        })?;
        let dc = opts.cluster.dc(&opts.dc)?.clone();
        let client = Arc::new(RpcClient::new(&opts.tls)?);
        let states = Arc::new(DcStates::load(&opts.data_dir)?);
        let stats = Arc::new(Stats::default());
        let map_store = shard_map::MapStore::new(&opts.data_dir);
        let maps = shard_map::open(&map_store, &opts.cluster, &dc, &client).await?;
        let mover = Arc::new(moves::Mover::open(
            &opts.data_dir,
            client.clone(),
            maps.clone(),
            map_store.clone(),
            dc.clone(),
        )?);
        let receiver = Arc::new(Receiver::new(
            dc.clone(),
            opts.cluster.shards,
            maps.clone(),
            client.clone(),
            stats.clone(),
        ));
        let server = RpcServer::bind(
            opts.listen,
            &opts.tls,
            Arc::new(ShipService::new(receiver, states.clone(), dc)),
            MAX_FRAME,
            &reset_key(&opts.data_dir)?,
        )?;
        let addr = server.local_addr()?;
        tracing::info!(dc = %opts.dc, %addr, "replicator receiving");
        Ok(Replicator {
            opts,
            server,
            addr,
            client,
            links: Vec::new(),
            stats,
            states,
            maps,
            map_store,
            mover,
            tasks: Vec::new(),
        })
    }

    /// Starts shipping this DC's changes to `peer`, from its persisted checkpoint.
    pub fn ship_to(&mut self, peer: Peer) -> Result<()> {
        if peer.dc == self.opts.dc {
            return Err(Error::invalid("a DC does not ship to itself"));
        }
        let file = CheckpointFile::new(&self.opts.data_dir, &peer.dc);
        let link = Arc::new(PeerLink::open(peer, file)?);
        let local = self.opts.cluster.dc(&self.opts.dc)?.clone();
        let (maps, client, ship) = (self.maps.clone(), self.client.clone(), link.clone());
        self.tasks.push(tokio::spawn(per_node::for_each_node(
            self.maps.clone(),
            local.id.clone(),
            move |node| {
                shipper::ship_node(
                    ship.clone(),
                    maps.clone(),
                    local.id.clone(),
                    node,
                    client.clone(),
                )
            },
        )));
        self.links.push(link);
        Ok(())
    }

    /// What the admin API and the background loops share.
    fn admin_state(&self) -> Result<admin::AdminState> {
        Ok(admin::AdminState {
            local: self.opts.cluster.dc(&self.opts.dc)?.clone(),
            shards: self.opts.cluster.shards,
            links: self.links.clone(),
            stats: self.stats.clone(),
            client: self.client.clone(),
            metrics: aerolith_common::telemetry::prometheus(),
            dcs: self.opts.cluster.dcs.iter().map(|d| d.id.clone()).collect(),
            states: self.states.clone(),
            peers: self
                .links
                .iter()
                .map(|l| (l.peer.dc.clone(), l.peer.addr.clone()))
                .collect(),
            tokens: Arc::new(self.opts.tokens.clone()),
            peer_dcs: self
                .opts
                .cluster
                .dcs
                .iter()
                .filter(|d| d.id != self.opts.dc)
                .cloned()
                .collect(),
            resync_rate: self.opts.resync_rate,
            maps: self.maps.clone(),
            mover: self.mover.clone(),
            console_origins: Default::default(),
        })
    }

    /// Starts the background loops (call once, after every `ship_to`): seeding new stores,
    /// collection settings convergence, acknowledgement reports, DC states, the lag gauges
    /// and, if configured, periodic anti-entropy.
    pub fn start_loops(&mut self) -> Result<()> {
        let state = self.admin_state()?;
        if let Some(every) = self.opts.resync_every {
            self.tasks.push(tokio::spawn(resync::every(
                self.client.clone(),
                self.maps.clone(),
                state.local.clone(),
                state.peer_dcs.clone(),
                state.shards,
                every,
                state.resync_rate,
            )));
        }
        self.tasks.push(tokio::spawn(settings::keep_converged(
            self.client.clone(),
            self.maps.clone(),
            state.local.clone(),
        )));
        self.tasks.push(tokio::spawn(seed::keep_seeding(
            self.client.clone(),
            self.maps.clone(),
            state.local.clone(),
            state.peer_dcs.clone(),
        )));
        self.tasks.push(tokio::spawn(self.mover.clone().run()));
        self.tasks.push(tokio::spawn(shard_map::keep_handing_out(
            self.client.clone(),
            self.maps.clone(),
            self.map_store.clone(),
            self.opts.cluster.clone(),
            state.local.clone(),
        )));
        self.tasks.push(tokio::spawn(acks::keep_reporting(
            self.client.clone(),
            self.maps.clone(),
            self.opts.cluster.clone(),
            state.local.clone(),
            self.links.clone(),
        )));
        self.tasks.push(tokio::spawn(failover::keep_spreading(
            self.states.clone(),
            self.client.clone(),
            state.local.clone(),
            state.peers.clone(),
        )));
        self.tasks.push(tokio::spawn(lag::track(state)));
        Ok(())
    }

    /// Serves the admin API on `listener` (see [`admin::bind`]), over TLS when `tls` is
    /// given, to the CLI and to the web consoles served from `console_origins`; returns its
    /// address.
    pub async fn serve_admin(
        &mut self,
        listener: tokio::net::TcpListener,
        tls: Option<aerolith_common::https::PublicTls>,
        console_origins: Vec<aerolith_common::origin::Origin>,
    ) -> Result<SocketAddr> {
        let bound = listener.local_addr().map_err(Error::internal)?;
        let mut state = self.admin_state()?;
        state.console_origins = Arc::new(console_origins);
        let scheme = if tls.is_some() { "https" } else { "http" };
        self.tasks
            .push(tokio::spawn(admin::serve(listener, state, tls)));
        tracing::info!(dc = %self.opts.dc, %bound, scheme, "replicator admin serving");
        Ok(bound)
    }

    /// The DC's shard moves (adding, decommissioning, rebalancing).
    pub fn mover(&self) -> &Arc<moves::Mover> {
        &self.mover
    }

    /// The RPC address peers ship to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The links to the peers it ships to.
    pub fn links(&self) -> &[Arc<PeerLink>] {
        &self.links
    }

    /// Stops shipping and receiving. Checkpoints are already durable.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.server.shutdown().await;
        self.client.close();
    }
}
