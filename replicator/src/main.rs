//! `aerolith-replicator`: ships one DC's changes to its peers and applies theirs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;

use aerolith_common::rpc::TlsMaterial;
use aerolith_common::topology::ClusterConfig;
use aerolith_replicator::{Peer, Replicator, ReplicatorOptions};

/// Runs one AerolithDB replicator.
#[derive(Debug, Parser)]
#[command(name = "aerolith-replicator", version)]
struct Args {
    /// Path of cluster.toml (must have a [tls] section naming this replicator's certificate).
    #[arg(long, env = "AEROLITH_CONFIG")]
    config: PathBuf,
    /// The DC this replicator serves.
    #[arg(long, env = "AEROLITH_DC")]
    dc: String,
    /// UDP address of the QUIC endpoint peers ship to.
    #[arg(
        long,
        env = "AEROLITH_REPLICATOR_LISTEN",
        default_value = "127.0.0.1:7400"
    )]
    listen: SocketAddr,
    /// TCP address of the admin HTTP API.
    #[arg(long, env = "AEROLITH_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Where shipping checkpoints are kept.
    #[arg(
        long,
        env = "AEROLITH_DATA_DIR",
        default_value = "./aerolith-replicator"
    )]
    data_dir: PathBuf,
    /// A peer DC's replicator, as `DC=HOST:PORT`; repeat for each peer.
    #[arg(long = "peer", value_name = "DC=HOST:PORT")]
    peers: Vec<String>,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    let args = Args::parse();
    let cluster = ClusterConfig::load(&args.config)?;
    let Some(files) = &cluster.tls else {
        bail!("cluster.toml has no [tls] section; a replicator needs its certificate");
    };
    let tls = TlsMaterial::from_files(files)?;
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
    })
    .await?;
    for p in peers {
        replicator.ship_to(p)?;
    }
    let admin = replicator.serve_admin(args.admin_listen).await?;
    println!(
        "aerolith-replicator listening on {} (admin http://{admin})",
        replicator.addr()
    );
    aerolith_common::signal::shutdown_signal().await;
    replicator.shutdown().await;
    Ok(())
}
