//! A running storage node: its store plus the RPC server in front of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aerolith_common::json::Limits;
use aerolith_common::rpc::frame::DEFAULT_MAX_FRAME;
use aerolith_common::rpc::{RpcServer, TlsMaterial};
use aerolith_common::{Error, Result};

use crate::engine::MemoryProfile;
use crate::service::NodeService;
use crate::store::{Durability, Store, StoreConfig};

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
}

/// A started storage node.
pub struct StorageNode {
    server: RpcServer,
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
        };
        let store = tokio::task::spawn_blocking(move || Store::open(&cfg))
            .await
            .map_err(Error::internal)??;
        let store = Arc::new(store);
        let service = Arc::new(NodeService::new(
            store.clone(),
            opts.node.clone(),
            opts.scan_budget,
        ));
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
