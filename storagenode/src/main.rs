//! `aerolith-storagenode`: one storage node of a cluster described by `cluster.toml`.

use clap::Parser;

/// Runs one AerolithDB storage node.
#[derive(Debug, Parser)]
#[command(
    name = "aerolith-storagenode",
    version,
    after_help = "Also `aerolith-storagenode healthcheck http URL` and `aerolith-storagenode healthcheck node --config FILE --dc DC --node N`: exit 0 if healthy, 1 if not (for container healthchecks)."
)]
struct Cmd {
    #[command(flatten)]
    args: aerolith_storagenode::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    if let Some(code) = aerolith_common::healthcheck::run_if_asked("aerolith-storagenode").await {
        std::process::exit(code);
    }
    aerolith_storagenode::cli::run(Cmd::parse().args).await
}
