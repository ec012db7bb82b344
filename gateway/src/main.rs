//! `aerolith-gateway`: the public endpoints (REST, GraphQL, WebSocket, gRPC) of one DC.

use clap::Parser;

/// Runs one AerolithDB gateway.
#[derive(Debug, Parser)]
#[command(
    name = "aerolith-gateway",
    version,
    after_help = "Also `aerolith-gateway healthcheck http URL` and `aerolith-gateway healthcheck node --config FILE --dc DC --node N`: exit 0 if healthy, 1 if not (for container healthchecks)."
)]
struct Cmd {
    #[command(flatten)]
    args: aerolith_gateway::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    if let Some(code) = aerolith_common::healthcheck::run_if_asked("aerolith-gateway").await {
        std::process::exit(code);
    }
    aerolith_gateway::cli::run(Cmd::parse().args).await
}
