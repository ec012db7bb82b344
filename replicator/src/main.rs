//! `aerolith-replicator`: ships one DC's changes to its peers and applies theirs.

use clap::Parser;

/// Runs one AerolithDB replicator.
#[derive(Debug, Parser)]
#[command(name = "aerolith-replicator", version)]
struct Cmd {
    #[command(flatten)]
    args: aerolith_replicator::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    aerolith_replicator::cli::run(Cmd::parse().args).await
}
