//! The replicator's command line (`aerolith-replicator`, `aerolith replicator`): flags
//! and the run loop.

use crate::{Peer, Replicator, ReplicatorOptions};
use aerolith_common::rpc::{PeerRole, TlsMaterial};
use aerolith_common::topology::ClusterConfig;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Runs one AerolithDB replicator.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Path of cluster.toml (must have a [tls] section naming this replicator's certificate).
    #[arg(long, env = "AEROLITH_CONFIG")]
    pub config: PathBuf,
    /// The DC this replicator serves.
    #[arg(long, env = "AEROLITH_DC")]
    pub dc: String,
    /// UDP address of the QUIC endpoint peers ship to.
    #[arg(
        long,
        env = "AEROLITH_REPLICATOR_LISTEN",
        default_value = "127.0.0.1:7400"
    )]
    pub listen: SocketAddr,
    /// TCP address of the admin HTTP API.
    #[arg(long, env = "AEROLITH_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Where shipping checkpoints are kept.
    #[arg(
        long,
        env = "AEROLITH_DATA_DIR",
        default_value = "./aerolith-replicator"
    )]
    pub data_dir: PathBuf,
    /// A peer DC's replicator, as `DC=HOST:PORT`; repeat for each peer (or list them,
    /// comma-separated, in AEROLITH_PEERS).
    #[arg(
        long = "peer",
        env = "AEROLITH_PEERS",
        value_delimiter = ',',
        value_name = "DC=HOST:PORT"
    )]
    pub peers: Vec<String>,
    /// Seconds between anti-entropy passes against every peer (0: only on
    /// `POST /admin/resync`).
    #[arg(long, env = "AEROLITH_RESYNC_EVERY_SECONDS", default_value_t = 3600)]
    pub resync_every_seconds: u64,
    /// Records an anti-entropy pass may scan a second on each side (0: unpaced), so a pass
    /// does not starve foreground traffic.
    #[arg(long, env = "AEROLITH_RESYNC_RECORDS_PER_SECOND", default_value_t = crate::resync::DEFAULT_RECORDS_PER_SECOND)]
    pub resync_records_per_second: u64,
    /// Tokens for the admin API (the `admin` role), and whether to serve it beyond loopback
    /// without them.
    #[command(flatten)]
    pub auth: aerolith_common::auth::AuthArgs,
    /// TLS on the admin API.
    #[command(flatten)]
    pub tls: aerolith_common::https::TlsArgs,
    /// The origin (`scheme://host:port`) of a gateway whose web console may use this admin
    /// API from the browser; repeat for each (or list them, comma-separated, in
    /// AEROLITH_CONSOLE_ORIGINS). Requests from any other web page are refused.
    #[arg(
        long = "console-origin",
        env = "AEROLITH_CONSOLE_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub console_origins: Vec<aerolith_common::origin::Origin>,
}

fn peer(s: &str) -> anyhow::Result<Peer> {
    let (dc, addr) = s
        .split_once('=')
        .with_context(|| format!("--peer {s:?} is not DC=HOST:PORT"))?;
    aerolith_common::name::validate_dc(dc)?;
    Ok(Peer {
        dc: dc.to_string(),
        addr: addr.to_string(),
    })
}

/// Runs a replicator until SIGINT or SIGTERM, then stops it (checkpoints are durable).
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Exposure is checked first: nothing starts that could serve without authentication.
    let tokens = args.auth.tokens_for(&[args.admin_listen])?;
    let admin_tls = args.tls.load()?;
    let cluster = ClusterConfig::load(&args.config)?;
    let Some(files) = &cluster.tls else {
        bail!("cluster.toml has no [tls] section; a replicator needs its certificate");
    };
    let tls = TlsMaterial::from_files(files, PeerRole::Replicator)?;
    let peers = args
        .peers
        .iter()
        .map(|p| peer(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut replicator = Replicator::bind(ReplicatorOptions {
        cluster,
        dc: args.dc,
        listen: args.listen,
        tls,
        data_dir: args.data_dir,
        tokens,
        resync_every: (args.resync_every_seconds > 0)
            .then(|| std::time::Duration::from_secs(args.resync_every_seconds)),
        resync_rate: args.resync_records_per_second,
    })
    .await?;
    for p in peers {
        replicator.ship_to(p)?;
    }
    replicator.start_loops()?;
    let scheme = if admin_tls.is_some() { "https" } else { "http" };
    let listener = crate::admin::bind(args.admin_listen).await?;
    let admin = replicator
        .serve_admin(listener, admin_tls, args.console_origins)
        .await?;
    println!(
        "aerolith-replicator listening on {} (admin {scheme}://{admin})",
        replicator.addr()
    );
    aerolith_common::signal::shutdown_signal().await;
    replicator.shutdown().await;
    Ok(())
}
