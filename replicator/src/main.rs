//! `aerolith-replicator`: ships one DC's changes to its peers and applies theirs.

use clap::Parser;

/// Runs one AerolithDB replicator.
#[derive(Debug, Parser)]
#[command(
    name = "aerolith-replicator",
    version,
    after_help = "Also `aerolith-replicator healthcheck http URL` and `aerolith-replicator healthcheck node --config FILE --dc DC --node N`: exit 0 if healthy, 1 if not (for container healthchecks)."
)]
struct Cmd {
    #[command(flatten)]
    args: aerolith_replicator::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    if let Some(code) = aerolith_common::healthcheck::run_if_asked("aerolith-replicator").await {
        std::process::exit(code);
    }
    aerolith_replicator::cli::run(Cmd::parse().args).await
}
