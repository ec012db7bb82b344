//! `aerolith-loadtest`: load and fault-injection runs against real AerolithDB clusters.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use aerolith_loadtest::faults::cluster::ProcCluster;
use aerolith_loadtest::faults::{self, FaultOptions, measure};

/// Drives AerolithDB clusters over the wire.
#[derive(Debug, Parser)]
#[command(name = "aerolith-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a two-DC cluster of `aerolith` processes, run a workload through both gateways
    /// while killing processes, cutting the replicator link and skewing a clock, then heal
    /// and check: nothing acknowledged lost, no session read stale, the DCs converged.
    /// Exits 1 when a check fails.
    Faults {
        /// Seed of every random choice; the same seed replays the same schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds of workload under faults.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Seconds of quiet before each fault.
        #[arg(long, default_value_t = 2)]
        quiet: u64,
        /// Seconds each fault is held before it is healed.
        #[arg(long, default_value_t = 4)]
        hold: u64,
        /// Concurrent workers, alternating between the DCs' gateways.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Storage nodes per DC.
        #[arg(long, default_value_t = 2)]
        nodes_per_dc: usize,
        /// Seconds the DCs get to converge after healing.
        #[arg(long, default_value_t = 120)]
        converge_timeout: u64,
        /// Directory for the cluster's data and logs (default: a fresh temporary one,
        /// removed afterwards unless a check fails).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The `aerolith` binary to run (default: next to this one).
        #[arg(long)]
        aerolith: Option<PathBuf>,
        /// Also write the summary as JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure recovery on a two-DC cluster of `aerolith` processes: failover time (SIGKILL
    /// of a storage node to the first successful write of its shards through the same
    /// gateway) and convergence time after a partition of the replicator link (heal to
    /// equal digests), each repeated; prints every run and the medians.
    Timings {
        /// Failover runs.
        #[arg(long, default_value_t = 5)]
        failovers: usize,
        /// Partition runs.
        #[arg(long, default_value_t = 3)]
        partitions: usize,
        /// Seconds each partition is held while both DCs take writes.
        #[arg(long, default_value_t = 30)]
        partition_secs: u64,
        /// Storage nodes per DC.
        #[arg(long, default_value_t = 2)]
        nodes_per_dc: usize,
        /// The `aerolith` binary to run (default: next to this one).
        #[arg(long)]
        aerolith: Option<PathBuf>,
        /// Also write the timings as JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The `aerolith` binary: `given`, or the one next to this executable.
fn aerolith_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("aerolith"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    aerolith_common::telemetry::init_tracing();
    match Cli::parse().command {
        Command::Faults {
            seed,
            duration,
            quiet,
            hold,
            workers,
            nodes_per_dc,
            converge_timeout,
            dir,
            aerolith,
            out,
        } => {
            let temp = std::env::temp_dir().join(format!("aerolith-faults-{}", std::process::id()));
            let dir = dir.unwrap_or_else(|| temp.clone());
            let summary = faults::run(FaultOptions {
                dir: dir.clone(),
                aerolith: aerolith_binary(aerolith)?,
                seed,
                duration: Duration::from_secs(duration),
                quiet: Duration::from_secs(quiet),
                hold: Duration::from_secs(hold),
                workers: workers.max(1),
                nodes_per_dc: nodes_per_dc.max(1),
                converge_timeout: Duration::from_secs(converge_timeout),
            })
            .await?;
            print!("{}", summary.table());
            if let Some(out) = out {
                std::fs::write(&out, serde_json::to_vec_pretty(&summary)?)?;
            }
            if summary.passed() {
                if dir == temp {
                    let _ = std::fs::remove_dir_all(&temp);
                }
                Ok(std::process::ExitCode::SUCCESS)
            } else {
                eprintln!("checks failed; data and logs kept in {}", dir.display());
                Ok(std::process::ExitCode::from(1))
            }
        }
        Command::Timings {
            failovers,
            partitions,
            partition_secs,
            nodes_per_dc,
            aerolith,
            out,
        } => {
            let dir = std::env::temp_dir().join(format!("aerolith-timings-{}", std::process::id()));
            let mut cluster =
                ProcCluster::start(&dir, &aerolith_binary(aerolith)?, 2, nodes_per_dc.max(1))
                    .await?;
            let http = reqwest::Client::new();
            let failover_s = measure::failover(&mut cluster, &http, failovers).await?;
            for (i, t) in failover_s.iter().enumerate() {
                println!("failover run {}: {t:.3} s", i + 1);
            }
            println!("failover median: {:.3} s", measure::median(&failover_s));
            let (converge_s, writes) = measure::partition(
                &cluster,
                &http,
                partitions,
                Duration::from_secs(partition_secs),
            )
            .await?;
            for (i, (t, w)) in converge_s.iter().zip(&writes).enumerate() {
                println!(
                    "partition run {}: {w} writes during {partition_secs} s, converged {t:.3} s after healing",
                    i + 1
                );
            }
            println!("convergence median: {:.3} s", measure::median(&converge_s));
            let timings = measure::Timings {
                failover_s,
                converge_s,
                writes_during_partition: writes,
            };
            if let Some(out) = out {
                std::fs::write(&out, serde_json::to_vec_pretty(&timings)?)?;
            }
            drop(cluster);
            let _ = std::fs::remove_dir_all(&dir);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
