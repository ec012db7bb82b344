//! The gateway's command line (`aerolith-gateway`, `aerolith gateway`): flags and the
//! run loop.

use crate::{Gateway, GatewayOptions};
use aerolith_common::json::Limits;
use aerolith_common::rpc::{PeerRole, TlsMaterial};
use aerolith_common::topology::ClusterConfig;
use anyhow::bail;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Runs one AerolithDB gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Path of cluster.toml (must have a [tls] section naming this gateway's certificate).
    #[arg(long, env = "AEROLITH_CONFIG")]
    pub config: PathBuf,
    /// The DC this gateway serves.
    #[arg(long, env = "AEROLITH_DC")]
    pub dc: String,
    /// TCP address of the HTTP server (REST, GraphQL, WebSocket).
    #[arg(long, env = "AEROLITH_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// TCP address of the gRPC server.
    #[arg(long, env = "AEROLITH_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    /// Frames a WebSocket connection may have queued before its client counts as a slow
    /// consumer and is disconnected (it resumes from its last token).
    #[arg(long, default_value_t = crate::ws::DEFAULT_QUEUE_FRAMES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_queue_frames: u64,
    /// Seconds between WebSocket pings; a client silent for three intervals is disconnected.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_heartbeat_seconds: u64,
    /// Tokens (API.md "Authentication"), and whether to serve beyond loopback without them.
    #[command(flatten)]
    pub auth: aerolith_common::auth::AuthArgs,
    /// Request rate and concurrency limits.
    #[command(flatten)]
    pub requests: crate::admission::RequestLimits,
    /// TLS on the public ports.
    #[command(flatten)]
    pub tls: aerolith_common::https::TlsArgs,
    /// The replicator admin API (`scheme://host:port`, as the browser reaches it) that the
    /// web console may use for its replication view; that replicator must name this
    /// gateway's origin with `--console-origin`. Without it the console has no admin view.
    #[arg(long, env = "AEROLITH_CONSOLE_ADMIN", value_name = "ORIGIN")]
    pub console_admin: Option<aerolith_common::origin::Origin>,
}

/// Runs a gateway until SIGINT or SIGTERM, then drains and stops it.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // Exposure is checked first: nothing starts that could serve without authentication.
    let tokens = args
        .auth
        .tokens_for(&[args.http_listen, args.grpc_listen])?;
    let cluster = ClusterConfig::load(&args.config)?;
    let Some(files) = &cluster.tls else {
        bail!(
            "cluster.toml has no [tls] section; a gateway needs its certificate (aerolith dev generates them)"
        );
    };
    let tls = TlsMaterial::from_files(files, PeerRole::Gateway)?;
    let public_tls = args.tls.load()?;
    let scheme = if public_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let gateway = Gateway::start(GatewayOptions {
        cluster,
        dc: args.dc,
        http_listen: args.http_listen,
        grpc_listen: args.grpc_listen,
        tls,
        limits: Limits::default(),
        ws_queue_frames: usize::try_from(args.ws_queue_frames).unwrap_or(usize::MAX),
        ws_heartbeat: std::time::Duration::from_secs(args.ws_heartbeat_seconds),
        tokens,
        requests: args.requests,
        public_tls,
        console_admin: args.console_admin,
    })
    .await?;
    println!(
        "aerolith-gateway listening on {scheme}://{} and grpc://{}",
        gateway.http_addr(),
        gateway.grpc_addr()
    );
    aerolith_common::signal::shutdown_signal().await;
    gateway.shutdown().await;
    Ok(())
}
