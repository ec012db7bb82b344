//! The storage node's command line (`aerolith-storagenode`, `aerolith node`): flags and the
//! run loop.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};

use aerolith_common::json::Limits;
use aerolith_common::rpc::{PeerRole, TlsMaterial};
use aerolith_common::topology::ClusterConfig;

use crate::{
    DEFAULT_SCAN_BUDGET, Durability, MemoryProfile, NewStore, NodeOptions, Retention, StorageNode,
};

/// Runs one AerolithDB storage node.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Path of cluster.toml (must have a [tls] section naming this node's certificate).
    #[arg(long, env = "AEROLITH_CONFIG")]
    pub config: PathBuf,
    /// This node's DC id.
    #[arg(long, env = "AEROLITH_DC")]
    pub dc: String,
    /// This node's id within its DC.
    #[arg(long, env = "AEROLITH_NODE")]
    pub node: String,
    /// Directory of the node's RocksDB store.
    #[arg(long, env = "AEROLITH_DATA_DIR")]
    pub data_dir: PathBuf,
    /// UDP address to bind (default: the node's `rpc` address from cluster.toml).
    #[arg(long, env = "AEROLITH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `durable` acknowledges a write once the WAL is synced; `relaxed` skips the sync.
    #[arg(long, value_enum, default_value = "durable")]
    pub durability: Durability,
    /// RocksDB memory sizing.
    #[arg(long, value_enum, default_value = "standard")]
    pub memory: MemoryProfile,
    /// Most records one id-ordered listing or query call examines before answering a short
    /// page (the client then continues with the cursor).
    #[arg(long, default_value_t = DEFAULT_SCAN_BUDGET as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub scan_budget: u64,
    /// Change-log entries each shard keeps (older ones are trimmed; a resume token older than
    /// what is kept gets `resume_token_expired`).
    #[arg(long, default_value_t = Retention::default().count, value_parser = clap::value_parser!(u64).range(1..))]
    pub retain_changes: u64,
    /// Seconds a change-log entry is kept at most.
    #[arg(long, default_value_t = Retention::default().age.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub retain_seconds: u64,
    /// Change-log entries each shard keeps at most while a peer DC has not acknowledged them;
    /// a peer left further behind must be rebuilt (`needs_rebuild` in `/admin/status`).
    #[arg(long, default_value_t = Retention::default().hard_cap, value_parser = clap::value_parser!(u64).range(1..))]
    pub retain_changes_hard_cap: u64,
    /// Seconds a tombstone (a deleted document's record) is kept at least after the delete
    /// (counted from its timestamp); it also stays until every peer DC acknowledged it.
    #[arg(long, default_value_t = Retention::default().tombstone_grace.as_secs())]
    pub tombstone_grace_seconds: u64,
    /// Seconds an idempotency key (`Idempotency-Key`) is remembered after its write: a retry
    /// with the key within it answers what the write answered and writes nothing again.
    #[arg(long, default_value_t = Retention::default().idempotency.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idempotency_retention_seconds: u64,
    /// When the data directory holds no store yet: `auto` (the default) serves nothing until
    /// the DC's replicator has checked the peer DCs, then is seeded from them if one holds
    /// data of the node's shards (a lost disk) or starts empty if none does (a new cluster);
    /// `genesis` starts it empty at once; `seed` always waits to be copied from a peer DC. In
    /// a single-DC cluster `auto` is `genesis` (there is nothing to copy from).
    #[arg(long, value_enum, env = "AEROLITH_NEW_STORE", default_value = "auto")]
    pub new_store: NewStore,
    /// The directory this node writes backups below (`POST /admin/backup`'s `dir` is a path
    /// relative to it, or an absolute one inside it); without it the node refuses backups.
    #[arg(long, env = "AEROLITH_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Fault testing only: shifts this node's wall clock by MS milliseconds (negative: behind),
    /// to check how the cluster copes with a skewed clock.
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "MS"
    )]
    pub clock_offset_ms: i64,
}

/// Runs a storage node until SIGINT or SIGTERM, then shuts it down cleanly.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = args.clock_offset_ms,
            "clock offset in force (fault testing)"
        );
        aerolith_common::time::set_clock_offset_ms(args.clock_offset_ms);
    }
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
    let tls = TlsMaterial::from_files(files, PeerRole::StorageNode)?;
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
            hard_cap: args.retain_changes_hard_cap,
            tombstone_grace: std::time::Duration::from_secs(args.tombstone_grace_seconds),
            idempotency: std::time::Duration::from_secs(args.idempotency_retention_seconds),
        },
        new_store: match args.new_store {
            NewStore::Auto if cluster.dcs.len() < 2 => NewStore::Genesis,
            other => other,
        },
        backup_dir: args.backup_dir,
        tls,
    })
    .await?;
    println!("aerolith-storagenode listening on {}", node.addr());
    aerolith_common::signal::shutdown_signal().await;
    node.shutdown().await?;
    Ok(())
}
