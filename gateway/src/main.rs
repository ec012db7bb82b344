//! `aerolith-gateway`: the public endpoints (REST, GraphQL, WebSocket, gRPC) of one DC.

use clap::Parser;

/// Runs one AerolithDB gateway.
#[derive(Debug, Parser)]
#[command(name = "aerolith-gateway", version)]
struct Cmd {
    #[command(flatten)]
    args: aerolith_gateway::cli::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aerolith_common::telemetry::init_tracing();
    aerolith_gateway::cli::run(Cmd::parse().args).await
}
