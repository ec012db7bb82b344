//! `aerolith-storagenode`: one storage node of a cluster described by `cluster.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;

use aerolith_common::json::Limits;
use aerolith_common::rpc::TlsMaterial;
use aerolith_common::topology::ClusterConfig;
use aerolith_storagenode::{
    DEFAULT_SCAN_BUDGET, Durability, MemoryProfile, NodeOptions, Retention, StorageNode,
};

/// Runs one AerolithDB storage node.
#[derive(Debug, Parser)]
#[command(name = "aerolith-storagenode", version)]
struct Args {
    /// Path of cluster.toml (must have a [tls] section naming this node's certificate).
    #[arg(long, env = "AEROLITH_CONFIG")]
    config: PathBuf,
    /// This node's DC id.
    #[arg(long, env = "AEROLITH_DC")]
    dc: String,
    /// This node's id within its DC.
    #[arg(long, env = "AEROLITH_NODE")]
    node: String,
    /// Directory of the node's RocksDB store.
    #[arg(long, env = "AEROLITH_DATA_DIR")]
    data_dir: PathBuf,
    /// UDP address to bind (default: the node's `rpc` address from cluster.toml).
    #[arg(long, env = "AEROLITH_LISTEN")]
    listen: Option<SocketAddr>,
    /// `durable` acknowledges a write once the WAL is synced; `relaxed` skips the sync.
    #[arg(long, value_enum, default_value = "durable")]
    durability: Durability,
    /// RocksDB memory sizing.
    #[arg(long, value_enum, default_value = "standard")]
    memory: MemoryProfile,
    /// Most records one id-ordered listing or query call examines before answering a short
    /// page (the client then continues with the cursor).
    #[arg(long, default_value_t = DEFAULT_SCAN_BUDGET as u64, value_parser = clap::value_parser!(u64).range(1..))]
    scan_budget: u64,
    /// Change-log entries each shard keeps (older ones are trimmed; a resume token older than
    /// what is kept gets `resume_token_expired`).
    #[arg(long, default_value_t = Retention::default().count, value_parser = clap::value_parser!(u64).range(1..))]
    retain_changes: u64,
    /// Seconds a change-log entry is kept at most.
    #[arg(long, default_value_t = Retention::default().age.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    retain_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    let args = Args::parse();
    let cluster = ClusterConfig::load(&args.config)?;
    let dc = cluster.dc(&args.dc)?;
    let me = dc.node(&args.node)?;
    let listen = match args.listen {
        Some(a) => a,
        None => me
            .rpc
            .parse()
            .with_context(|| format!("rpc address {:?} is not IP:port; pass --listen", me.rpc))?,
    };
    let Some(files) = &cluster.tls else {
        bail!(
            "cluster.toml has no [tls] section; a storage node needs its certificate (aerolith dev generates them)"
        );
    };
    let tls = TlsMaterial::from_files(files)?;
    let node = StorageNode::start(NodeOptions {
        data_dir: args.data_dir,
        dc: args.dc,
        node: args.node,
        shards: cluster.shards,
        listen,
        durability: args.durability,
        memory: args.memory,
        limits: Limits::default(),
        scan_budget: args.scan_budget as usize,
        retention: Retention {
            count: args.retain_changes,
            age: std::time::Duration::from_secs(args.retain_seconds),
        },
        tls,
    })
    .await?;
    println!("aerolith-storagenode listening on {}", node.addr());
    aerolith_common::signal::shutdown_signal().await;
    node.shutdown().await?;
    Ok(())
}
