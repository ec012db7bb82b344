//! `aerolith-ceiling`: the ceilings `aerolith-loadtest compare` measures AerolithDB against,
//! the HTTP limit (a server that does no work) and the storage limit (RocksDB with the
//! storage node's options, no server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use aerolith_cli::ceiling;
use aerolith_loadtest::duration::{parse_duration, parse_warmup};
use aerolith_loadtest::load::{self, LoadOptions};
use aerolith_loadtest::report::{Report, RunInfo};
use aerolith_loadtest::run::{self, RunOptions};
use aerolith_loadtest::ycsb::record::Shape;
use aerolith_loadtest::ycsb::{Spec, Workload};
use aerolith_storagenode::{Durability, MemoryProfile};

/// Measures this machine's ceilings for AerolithDB's load tests.
#[derive(Debug, Parser)]
#[command(name = "aerolith-ceiling", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every HTTP request with the same document until stopped.
    Http {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18999")]
        listen: SocketAddr,
        #[command(flatten)]
        shape: Shape,
    },
    /// Load records into a fresh RocksDB store and run YCSB workloads on it directly.
    Storage {
        /// Directory of the store (created; removed first if it exists).
        #[arg(long)]
        dir: PathBuf,
        /// Records to load.
        #[arg(long, default_value_t = 10_000)]
        records: u64,
        /// Workloads to run, in order, on the same store.
        #[arg(long, value_delimiter = ',', default_value = "a,b,c")]
        workloads: Vec<Workload>,
        /// How long each workload runs (30s, 2m, ...).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        /// Unrecorded reads (workload C) before the first workload.
        #[arg(long, default_value = "0s", value_parser = parse_warmup)]
        warmup: Duration,
        /// Concurrent workers, each on its own thread.
        #[arg(long, default_value_t = 16)]
        threads: usize,
        #[command(flatten)]
        shape: Shape,
        /// The storage node's memory profile to open the store with (`aerolith dev` uses
        /// small).
        #[arg(long, value_enum, default_value = "small")]
        memory: MemoryProfile,
        /// `durable` syncs the WAL before each write returns, as the storage node does.
        #[arg(long, value_enum, default_value = "durable")]
        durability: Durability,
        /// Seed of the random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the reports (the load, then each workload) as a JSON array here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    aerolith_common::telemetry::init_tracing();
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Http { .. } => 2,
        // Storage calls block their thread: one thread per worker, plus one.
        Command::Storage { threads, .. } => threads.max(&1) + 1,
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run_command(cli.command)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aerolith-ceiling: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Http { listen, shape } => ceiling::http::serve(listen, shape).await,
        Command::Storage {
            dir,
            records,
            workloads,
            duration,
            warmup,
            threads,
            shape,
            memory,
            durability,
            seed,
            out,
        } => {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let connector = std::sync::Arc::new(ceiling::storage::StorageConnector::open(
                &dir, memory, durability,
            )?);
            let Shape {
                field_count,
                field_length,
            } = shape;
            let info = RunInfo {
                label: "storage-ceiling".into(),
                protocol: "rocksdb".into(),
                target: dir.display().to_string(),
                workload: String::new(),
                records,
                threads,
                rate: None,
                field_count,
                field_length,
            };
            let mut reports: Vec<Report> = Vec::new();
            let loaded = load::load(
                connector.clone(),
                &LoadOptions {
                    records,
                    threads,
                    batch: 500,
                    field_count,
                    field_length,
                    seed,
                    progress: false,
                },
                info.clone(),
            )
            .await?;
            print!("{}", loaded.table());
            reports.push(loaded);
            let base = RunOptions {
                spec: Spec::core(Workload::C, field_count, field_length),
                records,
                duration,
                threads,
                rate: None,
                seed,
                progress: false,
            };
            run::warm_up(connector.clone(), &base, warmup, info.clone()).await?;
            for workload in workloads {
                let report = run::run(
                    connector.clone(),
                    &RunOptions {
                        spec: Spec::core(workload, field_count, field_length),
                        ..base.clone()
                    },
                    RunInfo {
                        workload: workload.letter().into(),
                        ..info.clone()
                    },
                )
                .await?;
                print!("{}", report.table());
                reports.push(report);
            }
            if let Some(out) = out {
                std::fs::write(out, serde_json::to_vec_pretty(&reports)?)?;
            }
            Ok(())
        }
    }
}
