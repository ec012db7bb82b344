//! `aerolith`: the developer cluster and (later) client commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use aerolith_cli::dev::{DevCluster, DevOptions};
use aerolith_cli::{certs, client};
use aerolith_common::healthcheck;
use aerolith_storagenode::Durability;

/// mimalloc instead of the system allocator: a same-run A/B measured it faster on the
/// request path (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// AerolithDB command-line tool.
#[derive(Debug, Parser)]
#[command(name = "aerolith", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The client commands' endpoints, token and output format.
    #[command(flatten)]
    client: client::Global,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole cluster in this process on loopback (storage nodes, gateways, replicators).
    Dev {
        /// Data directory, kept across restarts.
        #[arg(long, default_value = "./aerolith-data")]
        data_dir: PathBuf,
        /// Number of datacenters (1 to 9), each a full copy, with replicators between them.
        #[arg(long, default_value_t = 2)]
        dcs: usize,
        /// Storage nodes per datacenter.
        #[arg(long, default_value_t = 3)]
        nodes_per_dc: usize,
        /// Virtual shards, a power of two from 16 to 4096; fixed when the data directory is
        /// created (a restart with another count is refused).
        #[arg(long, default_value_t = aerolith_common::shard::DEFAULT_SHARDS)]
        shards: u16,
        /// Moves every default port (REST 8080, gRPC 50051, admin 9090) by P - 8080.
        #[arg(long, default_value_t = 8080)]
        port_base: u16,
        /// `durable` acknowledges writes once the WAL is synced; `relaxed` skips the sync.
        #[arg(long, value_enum, default_value = "durable")]
        durability: Durability,
        /// Tokens every gateway and replicator admin API asks for (auth stays off without).
        #[command(flatten)]
        auth: aerolith_common::auth::TokenArgs,
        /// Every gateway's request rate and concurrency limits.
        #[command(flatten)]
        requests: aerolith_gateway::admission::RequestLimits,
        /// TLS on every gateway's HTTP and gRPC ports.
        #[command(flatten)]
        tls: aerolith_common::https::TlsArgs,
    },
    /// Run one storage node of a cluster described by cluster.toml (as `aerolith-storagenode`).
    Node(aerolith_storagenode::cli::Args),
    /// Run one gateway of a cluster described by cluster.toml (as `aerolith-gateway`).
    Gateway(aerolith_gateway::cli::Args),
    /// Run one DC's replicator of a cluster described by cluster.toml (as
    /// `aerolith-replicator`).
    Replicator(aerolith_replicator::cli::Args),
    /// Write the internal RPC's certificates for a cluster.toml cluster into DIR: ca.pem and
    /// one certificate and key per role (storagenode, gateway, replicator .pem/.key; kept if
    /// all exist; an error if only some do).
    Certs {
        /// Directory for the files (created if missing).
        #[arg(long, env = "AEROLITH_CERTS_DIR")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
        /// Also write DIR/tokens: a random read, write and admin API token (`ROLE TOKEN`
        /// lines, for `--auth-tokens`), kept if it exists.
        #[arg(long)]
        tokens: bool,
        /// Also write a TLS certificate for the public ports (gateway HTTP and gRPC, the
        /// replicator admin API) valid for these comma-separated DNS names and addresses:
        /// DIR/public.pem and public.key (for `--tls-cert`/`--tls-key`), signed by a CA of
        /// their own, DIR/public-ca.pem, for clients to trust (`--ca`).
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        public_names: Vec<String>,
    },
    /// Put a storage node's backup (one node's directory of `aerolith backup`) in place of
    /// its data directory, with the node stopped. At its next start the node takes a new
    /// actor epoch and, by default, is re-seeded from a peer DC; `--as-is` serves the
    /// backup's own data instead (only when no DC holds the data any more).
    Restore {
        /// The node's backup directory.
        #[arg(long)]
        from: PathBuf,
        /// The node's data directory (`aerolith dev`: <data-dir>/<dc>/<node>).
        #[arg(long)]
        data_dir: PathBuf,
        /// Move an existing store in the data directory aside (it is never deleted).
        #[arg(long)]
        replace: bool,
        /// Serve the backup's data as it is, under a new epoch, instead of a peer's copy.
        #[arg(long)]
        as_is: bool,
    },
    /// Exit 0 if a process is healthy, 1 (with one line saying why) if not: for container
    /// healthchecks.
    Healthcheck {
        #[command(subcommand)]
        probe: healthcheck::Probe,
    },
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    aerolith_common::telemetry::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev {
            data_dir,
            dcs,
            nodes_per_dc,
            shards,
            port_base,
            durability,
            auth,
            requests,
            tls,
        } => match auth.load().and_then(|t| Ok((t, tls.load()?))) {
            Ok((tokens, public_tls)) => {
                run_dev(DevOptions {
                    dcs,
                    nodes_per_dc,
                    shards,
                    port_base: Some(port_base),
                    durability,
                    tokens,
                    requests,
                    public_tls,
                    ..DevOptions::new(data_dir)
                })
                .await
            }
            Err(e) => Err(anyhow::anyhow!(e.message)),
        },
        Command::Node(args) => aerolith_storagenode::cli::run(args).await,
        Command::Gateway(args) => aerolith_gateway::cli::run(args).await,
        Command::Replicator(args) => aerolith_replicator::cli::run(args).await,
        Command::Certs {
            out,
            force,
            tokens,
            public_names,
        } => certs_command(&out, force, tokens, &public_names),
        Command::Restore {
            from,
            data_dir,
            replace,
            as_is,
        } => restore_command(&from, &data_dir, replace, as_is),
        Command::Healthcheck { probe } => healthcheck::probe(probe)
            .await
            .map_err(|e| anyhow::anyhow!(e.message)),
        Command::Client(command) => {
            return match client::run(command, cli.client).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(f) => {
                    eprintln!("aerolith: {f}");
                    std::process::ExitCode::from(f.exit)
                }
            };
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aerolith: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `aerolith restore`.
fn restore_command(
    from: &std::path::Path,
    data_dir: &std::path::Path,
    replace: bool,
    as_is: bool,
) -> anyhow::Result<()> {
    use aerolith_storagenode::Restored;
    let mode = if as_is {
        Restored::AsIs
    } else {
        Restored::Seed
    };
    let done = aerolith_cli::restore::restore(from, data_dir, mode, replace)?;
    if let Some(aside) = &done.moved_aside {
        println!("moved the old store aside to {}", aside.display());
    }
    println!(
        "restored {} files into {}; at its next start the node takes a new actor epoch and {}",
        done.files,
        data_dir.display(),
        match mode {
            Restored::Seed => "is re-seeded from a peer DC",
            Restored::AsIs => "serves the backup's data",
        }
    );
    Ok(())
}

/// `aerolith certs`: the certificates, and the tokens file when asked for.
fn certs_command(
    out: &std::path::Path,
    force: bool,
    tokens: bool,
    public_names: &[String],
) -> anyhow::Result<()> {
    match certs::write(out, force)? {
        certs::Outcome::Created => {
            println!("wrote {} to {}", certs::FILES.join(", "), out.display())
        }
        certs::Outcome::Kept => println!("kept the certificates already in {}", out.display()),
    }
    if !public_names.is_empty() {
        match certs::write_public(out, public_names, force)? {
            certs::Outcome::Created => {
                println!(
                    "wrote {} to {}",
                    certs::PUBLIC_FILES.join(", "),
                    out.display()
                )
            }
            certs::Outcome::Kept => {
                println!("kept the public certificate already in {}", out.display())
            }
        }
    }
    if tokens {
        if certs::write_tokens(out, force)? {
            println!("wrote {} to {}", certs::TOKENS_FILE, out.display());
        } else {
            println!("kept the tokens already in {}", out.display());
        }
    }
    Ok(())
}

async fn run_dev(opts: DevOptions) -> anyhow::Result<()> {
    let data_dir = opts.data_dir.clone();
    if opts.tokens.is_empty() {
        tracing::warn!(
            "no auth tokens configured: authentication is off (dev mode, loopback only)"
        );
    }
    let cluster = DevCluster::start(opts).await?;
    println!(
        "AerolithDB dev cluster ready (data in {})",
        data_dir.display()
    );
    for dc in &cluster.endpoints().dcs {
        println!("  {}: REST http://{}", dc.id, dc.http);
    }
    println!(
        "endpoints written to {}",
        data_dir.join("endpoints.json").display()
    );
    println!("Ctrl-C to stop.");
    aerolith_common::signal::shutdown_signal().await;
    println!("shutting down");
    cluster.shutdown().await
}
