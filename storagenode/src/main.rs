//! `aerolith-storagenode`: one storage node of a cluster described by `cluster.toml`.

use clap::Parser;

/// Runs one AerolithDB storage node.
#[derive(Debug, Parser)]
#[command(name = "aerolith-storagenode", version)]
struct Cmd {
    #[command(flatten)]
    args: aerolith_storagenode::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    aerolith_storagenode::cli::run(Cmd::parse().args).await
}
