//! A running storage node: its store plus the RPC server in front of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aerolith_common::json::Limits;
use aerolith_common::rpc::frame::DEFAULT_MAX_FRAME;
use aerolith_common::rpc::{RpcServer, TlsMaterial};
use aerolith_common::{Error, Result};

use crate::changes::Retention;
use crate::engine::MemoryProfile;
use crate::service::NodeService;
use crate::store::{Durability, NewStore, Store, StoreConfig};

/// Everything a storage node needs to start.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Directory of this node's RocksDB store.
    pub data_dir: PathBuf,
    /// This node's DC.
    pub dc: String,
    /// This node's id within its DC.
    pub node: String,
    /// Number of virtual shards of the cluster.
    pub shards: u16,
    /// UDP address the QUIC endpoint binds (port 0 picks one).
    pub listen: SocketAddr,
    /// Acknowledgement rule for writes.
    pub durability: Durability,
    /// RocksDB memory sizing.
    pub memory: MemoryProfile,
    /// Document body limits.
    pub limits: Limits,
    /// Certificate material for mutual TLS.
    pub tls: TlsMaterial,
    /// Most records one id-ordered listing or query examines before answering a short page.
    pub scan_budget: usize,
    /// How much of each shard's change log to keep.
    pub retention: Retention,
    /// What to do when the store does not exist yet.
    pub new_store: NewStore,
    /// The directory backups are written below (`None`: backups are refused).
    pub backup_dir: Option<PathBuf>,
}

/// A started storage node.
pub struct StorageNode {
    server: RpcServer,
    trimmer: tokio::task::JoinHandle<()>,
    builder: tokio::task::JoinHandle<()>,
    stats: tokio::task::JoinHandle<()>,
    store: Arc<Store>,
    addr: SocketAddr,
}

impl StorageNode {
    /// Opens the store and starts serving.
    pub async fn start(opts: NodeOptions) -> Result<StorageNode> {
        let cfg = StoreConfig {
            path: opts.data_dir.clone(),
            dc: opts.dc.clone(),
            node: opts.node.clone(),
            shards: opts.shards,
            durability: opts.durability,
            memory: opts.memory,
            limits: opts.limits,
            retention: opts.retention,
            new_store: opts.new_store,
        };
        let store = tokio::task::spawn_blocking(move || Store::open(&cfg))
            .await
            .map_err(Error::internal)??;
        let store = Arc::new(store);
        let service = Arc::new(
            NodeService::new(store.clone(), opts.node.clone(), opts.scan_budget)
                .with_backup_dir(opts.backup_dir.clone()),
        );
        let server = RpcServer::bind(
            opts.listen,
            &opts.tls,
            service,
            DEFAULT_MAX_FRAME,
            store.reset_key(),
        )?;
        let addr = server.local_addr()?;
        tracing::info!(dc = %opts.dc, node = %opts.node, %addr, "storage node serving");
        Ok(StorageNode {
            server,
            trimmer: tokio::spawn(trim_by_age(store.clone())),
            builder: tokio::spawn(build_indexes(store.clone())),
            stats: tokio::spawn(report_engine_stats(
                store.clone(),
                opts.dc.clone(),
                opts.node.clone(),
            )),
            store,
            addr,
        })
    }

    /// The RPC address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store (for in-process inspection by the launcher).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops serving, waits for in-flight work, flushes and closes the store.
    pub async fn shutdown(self) -> Result<()> {
        self.trimmer.abort();
        let _ = self.trimmer.await;
        self.builder.abort();
        let _ = self.builder.await;
        self.stats.abort();
        let _ = self.stats.await;
        self.server.shutdown().await;
        let store = self.store;
        // In-flight requests hold the store; wait (bounded) so the RocksDB lock is released
        // when this returns and the directory can be reopened.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&store) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::task::spawn_blocking(move || {
            let r = store.close();
            drop(store);
            r
        })
        .await
        .map_err(Error::internal)?
    }
}

/// Publishes RocksDB's counters as metrics every second (`aerolith_wal_syncs_total`: the
/// benchmarks divide it by the writes acknowledged meanwhile).
async fn report_engine_stats(store: Arc<Store>, dc: String, node: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Looked up each time: the process may install its recorder after the node starts.
        metrics::counter!("aerolith_wal_syncs_total", "dc" => dc.clone(), "node" => node.clone())
            .absolute(store.wal_syncs());
    }
}

/// Builds the indexes still building, a chunk at a time on the blocking pool, and looks
/// for new ones every second once none is left; every so often, removes the entries of
/// indexes that are no longer live.
async fn build_indexes(store: Arc<Store>) {
    let mut swept = tokio::time::Instant::now();
    loop {
        let s = store.clone();
        let left = match tokio::task::spawn_blocking(move || s.build_indexes()).await {
            Ok(Ok(left)) => left,
            Ok(Err(e)) => {
                tracing::warn!(error = %e.message, "index build failed; retrying");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "index build task failed; retrying");
                false
            }
        };
        if !left {
            if swept.elapsed() >= SWEEP_EVERY {
                swept = tokio::time::Instant::now();
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.collect_dropped_indexes()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e.message, "index sweep failed"),
                    Err(e) => tracing::warn!(error = %e, "index sweep task failed"),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// How often the entries of dropped indexes are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Trims change-log entries older than the retention age and collects tombstones, every so
/// often.
async fn trim_by_age(store: Arc<Store>) {
    let Retention {
        age,
        tombstone_grace,
        ..
    } = store.retention();
    let every =
        (age.min(tombstone_grace) / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
        let s = store.clone();
        let grace = tombstone_grace.as_millis() as u64;
        let collect = move || {
            s.trim_older_than(cutoff)?;
            s.purge_idempotency(now_ms)?;
            s.collect_tombstones(now_ms, grace).map(|_| ())
        };
        match tokio::task::spawn_blocking(collect).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e.message, "change-log trim failed"),
            Err(e) => tracing::warn!(error = %e, "change-log trim task failed"),
        }
    }
}
