//! `aerolith-loadtest`: load and fault-injection runs against real AerolithDB clusters.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use aerolith_loadtest::compare::{self, CompareOptions, verdict};
use aerolith_loadtest::driver::{self, Protocol};
use aerolith_loadtest::duration::{parse_duration, parse_warmup};
use aerolith_loadtest::faults::cluster::ProcCluster;
use aerolith_loadtest::faults::{self, FaultOptions, measure};
use aerolith_loadtest::load::{self, LoadOptions};
use aerolith_loadtest::plot::{self, Series};
use aerolith_loadtest::report::RunInfo;
use aerolith_loadtest::run::{self, RunOptions};
use aerolith_loadtest::ycsb::record::Shape;
use aerolith_loadtest::ycsb::{Distribution, Spec, Workload};

/// Drives AerolithDB clusters over the wire.
#[derive(Debug, Parser)]
#[command(name = "aerolith-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where and how to reach the server.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// Base URL of the server: a gateway's HTTP port for rest, ws and graphql, its gRPC
    /// port for grpc, etcd's client URL for etcd, a connection URL for postgres
    /// (`postgresql://USER@HOST:PORT/DB`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// The protocol to drive.
    #[arg(long, value_enum, default_value = "rest")]
    protocol: Protocol,
    /// The collection holding the records (AerolithDB protocols; PostgreSQL's table).
    #[arg(long, default_value = "usertable")]
    collection: String,
    /// Records of the load phase (a run reads and updates records 0..N).
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Concurrent workers, each with its own connection.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    #[command(flatten)]
    shape: Shape,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl TargetArgs {
    fn info(&self) -> RunInfo {
        RunInfo {
            label: format!("aerolith-loadtest {}", self.protocol.name()),
            protocol: self.protocol.name().into(),
            target: self.target.clone(),
            workload: String::new(),
            records: self.records,
            threads: self.threads,
            rate: None,
            field_count: self.shape.field_count,
            field_length: self.shape.field_length,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load phase: insert records 0..N (bulk requests where the protocol has them).
    Load {
        #[command(flatten)]
        target: TargetArgs,
        /// Records per request (REST and gRPC bulk and PostgreSQL's multi-row insert take
        /// up to 500, etcd's txn 100; the others insert one at a time).
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Run a YCSB core workload against loaded records and print a table of throughput,
    /// latency percentiles and errors by code.
    Run {
        #[command(flatten)]
        target: TargetArgs,
        /// The YCSB core workload.
        #[arg(long, value_enum, default_value = "a")]
        workload: Workload,
        /// How keys are chosen, instead of the workload's own (zipfian; latest for d).
        #[arg(long, value_enum)]
        distribution: Option<Distribution>,
        /// How long operations are started (30s, 2m, 500ms).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        /// Open loop at this many operations per second, latency counted from when each
        /// operation was due; without it, a closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Write the latency-percentile plot (SVG) here.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Compare, in one run with the same client and record sizes: AerolithDB (`aerolith
    /// dev`, REST and gRPC), this machine's ceilings (a bare HTTP server; RocksDB with the
    /// storage node's options), etcd (gRPC) and PostgreSQL (a jsonb table), each workload
    /// once per round, rounds interleaved. Prints medians, ratios and the targets met or
    /// missed.
    Compare {
        /// Workloads, run in this order on every target.
        #[arg(long, value_delimiter = ',', default_value = "a,b,c")]
        workloads: Vec<Workload>,
        /// Records loaded into every target.
        #[arg(long, default_value_t = 50_000)]
        records: u64,
        /// How long each workload runs on each target.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        /// Unrecorded reads before each target's first run (0s for none).
        #[arg(long, default_value = "10s", value_parser = parse_warmup)]
        warmup: Duration,
        /// Concurrent workers of every run.
        #[arg(long, default_value_t = 16)]
        threads: usize,
        #[command(flatten)]
        shape: Shape,
        /// Datacenters of the `aerolith dev` cluster (its default is 2).
        #[arg(long, default_value_t = 2)]
        dcs: usize,
        /// `aerolith dev --port-base` (its gRPC port is P + 41971, so at most 23564); the
        /// HTTP ceiling listens at P+919, etcd at P+920 and P+921, PostgreSQL at P+922.
        #[arg(long, default_value_t = 20080)]
        port_base: u16,
        /// Rounds: each runs every workload on every target once, the targets' order
        /// rotating; tables and targets use the medians.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Skip the open-loop runs (AerolithDB at half of each protocol's throughput, etcd
        /// and PostgreSQL at REST's half).
        #[arg(long)]
        no_open_loop: bool,
        /// The `aerolith` binary (default: next to this one).
        #[arg(long)]
        aerolith: Option<PathBuf>,
        /// The `aerolith-ceiling` binary (default: next to this one).
        #[arg(long)]
        ceiling: Option<PathBuf>,
        /// The etcd binary (Debian's etcd-server package installs /usr/bin/etcd).
        #[arg(long, default_value = "etcd")]
        etcd: PathBuf,
        /// PostgreSQL's server binaries (initdb, postgres) (default: the highest version in
        /// /usr/lib/postgresql/*/bin, where Debian's postgresql package puts them).
        #[arg(long)]
        postgres_bin_dir: Option<PathBuf>,
        /// wrk, for the client check against the HTTP ceiling (skipped if not found).
        #[arg(long, default_value = "wrk")]
        wrk: PathBuf,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the summary, the JSON of every run and a plot per workload go.
        #[arg(long, default_value = "compare-results")]
        out_dir: PathBuf,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Start a two-DC cluster of `aerolith` processes, run a workload through both gateways
    /// while killing processes, cutting the replicator link and skewing a clock, then heal
    /// and check: nothing acknowledged lost, no session read stale, the DCs converged. With
    /// `--class`, run fault classes instead, each on its own cluster for `--duration`, and
    /// report per class. Exits 1 when a check fails.
    Faults {
        /// Fault classes to run instead of the mixed run (repeatable): `recreate`,
        /// `merge-deletes`, `collections`, `wiped-node`, `three-dcs`, `clock-back`, or `all`.
        #[arg(long = "class", value_name = "CLASS")]
        classes: Vec<String>,
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
/// A fault run's exit: success (its scratch directory removed) or 1 (its data and logs kept).
fn fault_exit(passed: bool, dir: &Path, temp: &Path) -> std::process::ExitCode {
    if passed {
        if dir == temp {
            let _ = std::fs::remove_dir_all(temp);
        }
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("checks failed; data and logs kept in {}", dir.display());
        std::process::ExitCode::from(1)
    }
}

fn aerolith_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    sibling(given, "aerolith")
}

/// `given`, or the program `name` next to this executable.
fn sibling(given: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name(name),
    })
}

/// Writes `bytes` to `path`, saying which file failed.
fn write_file(path: &std::path::Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    aerolith_common::telemetry::init_tracing();
    match run_command(Cli::parse().command).await {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever RUST_BACKTRACE says; 2 tells it apart from failed checks.
            eprintln!("aerolith-loadtest: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs one subcommand: exit 1 when operations or checks failed.
async fn run_command(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        Command::Load { target, batch } => {
            let connector = driver::connector(target.protocol, &target.target, &target.collection);
            let report = load::load(
                connector,
                &LoadOptions {
                    records: target.records,
                    threads: target.threads,
                    batch,
                    field_count: target.shape.field_count,
                    field_length: target.shape.field_length,
                    seed: target.seed,
                    progress: !target.quiet,
                },
                target.info(),
            )
            .await?;
            print!("{}", report.table());
            println!(
                "loaded {} records in {:.1} s: {:.0} records/s",
                target.records,
                report.seconds,
                target.records as f64 / report.seconds.max(1e-9)
            );
            if let Some(out) = &target.out {
                write_file(out, serde_json::to_vec_pretty(&report)?)?;
            }
            Ok(exit_for(report.errors))
        }
        Command::Run {
            target,
            workload,
            distribution,
            duration,
            rate,
            plot: plot_file,
        } => {
            let (fields, length) = (target.shape.field_count, target.shape.field_length);
            let mut spec = Spec::core(workload, fields, length);
            if let Some(d) = distribution {
                spec.distribution = d;
            }
            let connector = driver::connector(target.protocol, &target.target, &target.collection);
            let report = run::run(
                connector,
                &RunOptions {
                    spec,
                    records: target.records,
                    duration,
                    threads: target.threads,
                    rate,
                    seed: target.seed,
                    progress: !target.quiet,
                },
                RunInfo {
                    workload: workload.letter().into(),
                    ..target.info()
                },
            )
            .await?;
            print!("{}", report.table());
            if let Some(out) = &target.out {
                write_file(out, serde_json::to_vec_pretty(&report)?)?;
            }
            if let Some(file) = plot_file {
                let series: Vec<Series<'_>> = report
                    .operations
                    .iter()
                    .map(|o| Series {
                        name: o.op.name().into(),
                        curve: &o.curve,
                    })
                    .collect();
                let title = format!(
                    "workload {} over {} ({} threads{})",
                    workload.letter(),
                    target.protocol.name(),
                    target.threads,
                    rate.map(|r| format!(", open loop at {r:.0} ops/s"))
                        .unwrap_or_default()
                );
                write_file(&file, plot::svg(&title, &series))?;
            }
            Ok(exit_for(report.errors))
        }
        Command::Compare {
            workloads,
            records,
            duration,
            warmup,
            threads,
            shape,
            dcs,
            port_base,
            rounds,
            no_open_loop,
            aerolith,
            ceiling,
            etcd,
            postgres_bin_dir,
            wrk,
            seed,
            out_dir,
            quiet,
        } => {
            let dir = std::env::temp_dir().join(format!("aerolith-compare-{}", std::process::id()));
            let opts = CompareOptions {
                workloads: workloads.clone(),
                records,
                duration,
                warmup,
                threads,
                field_count: shape.field_count,
                field_length: shape.field_length,
                seed,
                dcs,
                port_base,
                rounds,
                open_loop: !no_open_loop,
                aerolith: aerolith_binary(aerolith)?,
                ceiling: sibling(ceiling, "aerolith-ceiling")?,
                etcd,
                postgres_bin_dir: postgres_bin_dir
                    .unwrap_or_else(compare::postgres::default_bin_dir),
                wrk: Some(wrk),
                dir: dir.clone(),
                progress: !quiet,
            };
            let result = compare::compare(&opts).await;
            let comparison = match result {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("comparison failed; logs kept in {}", dir.display());
                    return Err(e);
                }
            };
            let checks = verdict::checks(&comparison);
            let text = format!(
                "{}{}",
                verdict::tables(&comparison, &workloads),
                verdict::checks_text(&checks)
            );
            println!("\n{text}");
            std::fs::create_dir_all(&out_dir)?;
            write_file(&out_dir.join("summary.txt"), &text)?;
            write_file(
                &out_dir.join("compare.json"),
                serde_json::to_vec_pretty(&serde_json::json!({
                    "comparison": comparison,
                    "medians": verdict::summaries(&comparison),
                    "checks": checks,
                }))?,
            )?;
            for &w in &workloads {
                write_file(
                    &out_dir.join(format!("workload-{}.svg", w.letter())),
                    verdict::plot(&comparison, w),
                )?;
            }
            println!("summary, JSON and plots written to {}", out_dir.display());
            let _ = std::fs::remove_dir_all(&dir);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Faults {
            classes,
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
            if !classes.is_empty() {
                let mut chosen = Vec::new();
                for c in &classes {
                    for class in faults::classes::Class::parse(c)? {
                        if !chosen.contains(&class) {
                            chosen.push(class);
                        }
                    }
                }
                let opts = faults::classes::ClassOptions {
                    dir: dir.clone(),
                    aerolith: aerolith_binary(aerolith)?,
                    seed,
                    duration: Duration::from_secs(duration),
                    quiet: Duration::from_secs(quiet),
                    hold: Duration::from_secs(hold),
                    workers: workers.max(1),
                    converge_timeout: Duration::from_secs(converge_timeout),
                };
                let reports = faults::classes::run_all(&chosen, &opts).await?;
                print!("{}", faults::classes::table(&reports));
                if let Some(out) = out {
                    std::fs::write(&out, serde_json::to_vec_pretty(&reports)?)?;
                }
                return Ok(fault_exit(reports.iter().all(|r| r.passed()), &dir, &temp));
            }
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
            Ok(fault_exit(summary.passed(), &dir, &temp))
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

/// Exit code 1 when operations failed, so scripts notice.
fn exit_for(errors: u64) -> std::process::ExitCode {
    if errors == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("{errors} operations failed");
        std::process::ExitCode::from(1)
    }
}
