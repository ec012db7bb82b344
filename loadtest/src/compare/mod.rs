//! The comparison: the same client, workloads and record sizes against AerolithDB (`aerolith
//! dev`, REST and gRPC), the machine's ceilings (an HTTP server that does no work, RocksDB
//! with no server) and two peers (etcd over its gRPC API, PostgreSQL with a `jsonb` table).
//! Every server is started and loaded once; then, round after round, every target runs every
//! workload once, the targets' order rotating between rounds, and the tables and the issue's
//! targets use each figure's median over the rounds.

pub mod cpu;
pub mod postgres;
pub mod service;
pub mod verdict;
pub mod wrk;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::driver::{self, Connector, Protocol};
use crate::load::{self, LoadOptions};
use crate::report::{Report, RunInfo};
use crate::run::{self, RunOptions};
use crate::ycsb::keyspace::key_of;
use crate::ycsb::{Spec, Workload};
use service::{Service, http_ok};

/// A comparison's settings.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Workloads, run in this order on every target.
    pub workloads: Vec<Workload>,
    /// Records loaded into every target.
    pub records: u64,
    /// How long each workload runs on each target in each round.
    pub duration: Duration,
    /// Reads (workload C, not recorded) on every target before the first round, so every
    /// target starts with warm caches.
    pub warmup: Duration,
    /// Workers (connections) of every run.
    pub threads: usize,
    /// Fields per record.
    pub field_count: usize,
    /// Bytes per field.
    pub field_length: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Datacenters of the `aerolith dev` cluster.
    pub dcs: usize,
    /// `aerolith dev --port-base`; the ceiling, etcd and PostgreSQL listen just above it.
    pub port_base: u16,
    /// Rounds: every (target, workload) pair runs once per round; figures are medians.
    pub rounds: usize,
    /// Also run open loop: AerolithDB at half of each protocol's closed-loop throughput,
    /// etcd and PostgreSQL at REST's half.
    pub open_loop: bool,
    /// The `aerolith` binary.
    pub aerolith: PathBuf,
    /// The `aerolith-ceiling` binary.
    pub ceiling: PathBuf,
    /// The `etcd` binary.
    pub etcd: PathBuf,
    /// The directory holding PostgreSQL's `initdb` and `postgres`.
    pub postgres_bin_dir: PathBuf,
    /// The `wrk` binary for the client check (skipped when it is not found); none to skip.
    pub wrk: Option<PathBuf>,
    /// Scratch directory for data and logs.
    pub dir: PathBuf,
    /// Draw progress lines.
    pub progress: bool,
}

/// Who answered a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// AerolithDB's gateway over REST.
    AerolithRest,
    /// AerolithDB's gateway over gRPC.
    AerolithGrpc,
    /// The bare HTTP server (REST driver).
    HttpCeiling,
    /// RocksDB with the storage node's options, no server.
    StorageCeiling,
    /// etcd over its native gRPC API.
    Etcd,
    /// PostgreSQL, a `jsonb` table, over its wire protocol.
    Postgres,
}

impl Target {
    /// Every target, in table order.
    pub const ALL: [Target; 6] = [
        Target::AerolithRest,
        Target::AerolithGrpc,
        Target::HttpCeiling,
        Target::StorageCeiling,
        Target::Etcd,
        Target::Postgres,
    ];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Target::AerolithRest => "aerolith-rest",
            Target::AerolithGrpc => "aerolith-grpc",
            Target::HttpCeiling => "http-ceiling",
            Target::StorageCeiling => "storage-ceiling",
            Target::Etcd => "etcd",
            Target::Postgres => "postgres",
        }
    }
}

/// One run of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Who answered.
    pub target: Target,
    /// Which workload.
    pub workload: Workload,
    /// Closed loop, or open loop at half of a closed loop's throughput.
    pub open_loop: bool,
    /// The round (from 0).
    pub round: usize,
    /// The server's CPU time (its process and descendants, from `/proc`) per successful
    /// operation, in µs; none for the storage ceiling, which runs with its client.
    pub server_cpu_us_per_op: Option<f64>,
    /// The run's results.
    pub report: Report,
}

/// One (target, workload, loop) over the rounds: each figure is the median of the runs'.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Who answered.
    pub target: Target,
    /// Which workload.
    pub workload: Workload,
    /// Closed or open loop.
    pub open_loop: bool,
    /// Runs the medians are over.
    pub runs: usize,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// The p50 of each run's most frequent operation kind (ms).
    pub p50_ms: f64,
    /// The p99 of each run's worst operation kind (ms).
    pub p99_ms: f64,
    /// The offered rate of an open loop (ops/s).
    pub rate: Option<f64>,
    /// Server CPU per operation (µs), over the runs that measured it.
    pub cpu_us_per_op: Option<f64>,
    /// Successful operations, all runs together.
    pub ok: u64,
    /// Failed operations, all runs together.
    pub errors: u64,
}

/// Everything a comparison measured.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Records, threads, duration and sizes, for the record.
    pub settings: String,
    /// Rounds run.
    pub rounds: usize,
    /// Each target's load phase (the storage ceiling's once per round).
    pub loads: Vec<(Target, Report)>,
    /// Every run of every round.
    pub runs: Vec<Measured>,
    /// wrk's requests per second on the HTTP ceiling, one per round; empty when wrk did
    /// not run.
    pub wrk: Vec<f64>,
    /// Why the client check did not run, if it did not.
    pub wrk_skipped: Option<String>,
}

/// The median of `values` (the mean of the middle two for an even count); 0 if empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The p50 of a report's most frequent operation kind (ms).
pub fn main_p50_ms(r: &Report) -> f64 {
    r.operations
        .iter()
        .max_by_key(|o| o.ok)
        .map(|o| o.p50_ms)
        .unwrap_or(0.0)
}

impl Comparison {
    /// Every run of a target and workload, closed or open loop, in round order.
    pub fn runs_of(
        &self,
        target: Target,
        workload: Workload,
        open_loop: bool,
    ) -> impl Iterator<Item = &Measured> {
        self.runs.iter().filter(move |m| {
            m.target == target && m.workload == workload && m.open_loop == open_loop
        })
    }

    /// The medians over the rounds of a target and workload, if it ran.
    pub fn find(&self, target: Target, workload: Workload, open_loop: bool) -> Option<Summary> {
        let runs: Vec<&Measured> = self.runs_of(target, workload, open_loop).collect();
        if runs.is_empty() {
            return None;
        }
        let of = |f: &dyn Fn(&Measured) -> f64| median(runs.iter().map(|m| f(m)).collect());
        let cpu: Vec<f64> = runs.iter().filter_map(|m| m.server_cpu_us_per_op).collect();
        let rates: Vec<f64> = runs.iter().filter_map(|m| m.report.info.rate).collect();
        Some(Summary {
            target,
            workload,
            open_loop,
            runs: runs.len(),
            ops_per_s: of(&|m| m.report.ops_per_s),
            p50_ms: of(&|m| main_p50_ms(&m.report)),
            p99_ms: of(&|m| m.report.worst_p99_ms()),
            rate: (!rates.is_empty()).then(|| median(rates)),
            cpu_us_per_op: (!cpu.is_empty()).then(|| median(cpu)),
            ok: runs.iter().map(|m| m.report.ok).sum(),
            errors: runs.iter().map(|m| m.report.errors).sum(),
        })
    }

    /// The workloads that ran, in their order.
    pub fn workloads(&self) -> Vec<Workload> {
        let mut out = Vec::new();
        for m in &self.runs {
            if !out.contains(&m.workload) {
                out.push(m.workload);
            }
        }
        out
    }
}

/// The collection (PostgreSQL: the table) holding the records on every target.
const COLLECTION: &str = "usertable";

/// A server target the harness drives over the wire.
struct Peer {
    target: Target,
    connector: Arc<dyn Connector>,
    info: RunInfo,
    /// The server's process, whose CPU time is read around every run.
    pid: Option<u32>,
}

impl Peer {
    /// `target`, served by process `pid`, reached over `protocol` at `url`.
    fn new(opts: &CompareOptions, target: Target, protocol: Protocol, url: &str, pid: u32) -> Peer {
        Peer {
            target,
            connector: driver::connector(protocol, url, COLLECTION),
            info: info(opts, target, protocol, url),
            pid: Some(pid),
        }
    }
}

/// The order of the targets in `round`: rotated by an even share of the list per round,
/// so no target always goes first (or right after the same neighbour).
fn order(round: usize, rounds: usize) -> Vec<Target> {
    let mut order = Target::ALL.to_vec();
    let n = order.len();
    order.rotate_left(round * n / rounds.max(1) % n);
    order
}

/// Runs the comparison.
pub async fn compare(opts: &CompareOptions) -> anyhow::Result<Comparison> {
    anyhow::ensure!(
        (1024..=23564).contains(&opts.port_base),
        "--port-base must be 1024 to 23564 (the dev cluster's gRPC port is P + 41971)"
    );
    anyhow::ensure!(opts.rounds >= 1, "--rounds must be at least 1");
    std::fs::create_dir_all(&opts.dir)?;
    let mut out = Comparison {
        settings: format!(
            "{} records of {} fields x {} bytes, {} threads, {:?} per run after {:?} of warm-up reads, workloads {}, medians of {} rounds",
            opts.records,
            opts.field_count,
            opts.field_length,
            opts.threads,
            opts.duration,
            opts.warmup,
            opts.workloads
                .iter()
                .map(|w| w.letter())
                .collect::<Vec<_>>()
                .join(","),
            opts.rounds
        ),
        rounds: opts.rounds,
        loads: Vec::new(),
        runs: Vec::new(),
        wrk: Vec::new(),
        wrk_skipped: None,
    };
    // Every server runs for the whole comparison (stopped when `services` is dropped), so
    // rounds can interleave them.
    let mut services = Vec::new();
    let mut peers = Vec::new();
    services.push(
        start_aerolith(opts, &mut peers)
            .await
            .context("AerolithDB")?,
    );
    let (ceiling, ceiling_url) = start_http_ceiling(opts, &mut peers)
        .await
        .context("HTTP ceiling")?;
    services.push(ceiling);
    services.push(start_etcd(opts, &mut peers).await.context("etcd")?);
    services.push(
        start_postgres(opts, &mut peers)
            .await
            .context("PostgreSQL")?,
    );
    for p in &peers {
        if matches!(
            p.target,
            Target::AerolithRest | Target::Etcd | Target::Postgres
        ) {
            let report = load_records(opts, p.connector.clone(), p.info.clone())
                .await
                .with_context(|| format!("loading {}", p.target.label()))?;
            out.loads.push((p.target, report));
        }
    }
    for p in &peers {
        warm_up(opts, p.connector.clone(), p.info.clone())
            .await
            .with_context(|| format!("warming up {}", p.target.label()))?;
    }
    let wrk = opts.wrk.as_deref().and_then(|w| {
        let found = wrk::find(w);
        if found.is_none() {
            println!("wrk not found: client check skipped");
            out.wrk_skipped = Some(format!("{} not found", w.display()));
        }
        found
    });
    for round in 0..opts.rounds {
        println!("\n=== round {} of {} ===", round + 1, opts.rounds);
        let order = order(round, opts.rounds);
        // This round's closed-loop throughput of each (target, workload).
        let mut closed: HashMap<(Target, Workload), f64> = HashMap::new();
        for &target in &order {
            if target == Target::StorageCeiling {
                storage_ceiling(opts, round, &mut out)
                    .await
                    .context("storage ceiling")?;
                continue;
            }
            let Some(peer) = peers.iter().find(|p| p.target == target) else {
                continue;
            };
            for &w in &opts.workloads {
                let m = measure(opts, peer, w, None, round).await?;
                closed.insert((target, w), m.report.ops_per_s);
                out.runs.push(m);
            }
            if target == Target::HttpCeiling
                && let Some(wrk) = &wrk
            {
                // The URL of the REST driver's read of record 0.
                let url = format!(
                    "{ceiling_url}/v1/collections/{COLLECTION}/docs/{}",
                    key_of(0)
                );
                let rps = wrk::run(wrk, &url, opts.threads, opts.duration)
                    .await
                    .context("wrk on the HTTP ceiling")?;
                println!("wrk on the HTTP ceiling: {rps:.0} requests/s");
                out.wrk.push(rps);
            }
        }
        if !opts.open_loop {
            continue;
        }
        for &target in &order {
            // AerolithDB at half of each protocol's own saturation; the peers at REST's
            // rate, so their p99s compare with AerolithDB's at the same load.
            let basis = match target {
                Target::AerolithRest | Target::Etcd | Target::Postgres => Target::AerolithRest,
                Target::AerolithGrpc => Target::AerolithGrpc,
                Target::HttpCeiling | Target::StorageCeiling => continue,
            };
            let Some(peer) = peers.iter().find(|p| p.target == target) else {
                continue;
            };
            for &w in &opts.workloads {
                let half = closed.get(&(basis, w)).copied().unwrap_or(0.0) / 2.0;
                if half >= 1.0 {
                    let m = measure(opts, peer, w, Some(half), round).await?;
                    out.runs.push(m);
                }
            }
        }
    }
    drop(services);
    Ok(out)
}

/// The report header of a run against `target`.
fn info(opts: &CompareOptions, target: Target, protocol: Protocol, url: &str) -> RunInfo {
    RunInfo {
        label: target.label().into(),
        protocol: protocol.name().into(),
        target: url.into(),
        workload: String::new(),
        records: opts.records,
        threads: opts.threads,
        rate: None,
        field_count: opts.field_count,
        field_length: opts.field_length,
    }
}

/// Loads the records through `connector`.
async fn load_records(
    opts: &CompareOptions,
    connector: Arc<dyn Connector>,
    info: RunInfo,
) -> anyhow::Result<Report> {
    let report = load::load(
        connector,
        &LoadOptions {
            records: opts.records,
            threads: opts.threads,
            batch: 500,
            field_count: opts.field_count,
            field_length: opts.field_length,
            seed: opts.seed,
            progress: opts.progress,
        },
        info,
    )
    .await?;
    print!("{}", report.table());
    Ok(report)
}

/// The run settings of `workload` on every target.
fn run_options(opts: &CompareOptions, workload: Workload, rate: Option<f64>) -> RunOptions {
    RunOptions {
        spec: Spec::core(workload, opts.field_count, opts.field_length),
        records: opts.records,
        duration: opts.duration,
        threads: opts.threads,
        rate,
        seed: opts.seed,
        progress: opts.progress,
    }
}

/// Runs one workload on `peer`, closed loop or open loop at `rate`, with the server's CPU
/// time read from `/proc` before and after (the run's connection set-up included, which
/// is a few milliseconds against seconds of operations).
async fn measure(
    opts: &CompareOptions,
    peer: &Peer,
    workload: Workload,
    rate: Option<f64>,
    round: usize,
) -> anyhow::Result<Measured> {
    let info = RunInfo {
        workload: workload.letter().into(),
        ..peer.info.clone()
    };
    let before = peer.pid.and_then(cpu::tree_cpu);
    let report = run::run(
        peer.connector.clone(),
        &run_options(opts, workload, rate),
        info,
    )
    .await
    .with_context(|| format!("{} workload {}", peer.target.label(), workload.letter()))?;
    let after = peer.pid.and_then(cpu::tree_cpu);
    let cpu = match (before, after) {
        (Some(b), Some(a)) if report.ok > 0 => {
            Some(a.saturating_sub(b).as_secs_f64() * 1e6 / report.ok as f64)
        }
        _ => None,
    };
    print!("{}", report.table());
    if let Some(us) = cpu {
        println!("server CPU: {us:.1} µs per operation");
    }
    Ok(Measured {
        target: peer.target,
        workload,
        open_loop: rate.is_some(),
        round,
        server_cpu_us_per_op: cpu,
        report,
    })
}

/// Reads for `opts.warmup` through `connector`, not recorded.
async fn warm_up(
    opts: &CompareOptions,
    connector: Arc<dyn Connector>,
    info: RunInfo,
) -> anyhow::Result<()> {
    run::warm_up(
        connector,
        &run_options(opts, Workload::C, None),
        opts.warmup,
        info,
    )
    .await
}

/// Starts `aerolith dev`: one server, driven over REST and over gRPC.
async fn start_aerolith(opts: &CompareOptions, peers: &mut Vec<Peer>) -> anyhow::Result<Service> {
    let data = opts.dir.join("aerolith-data");
    let _ = std::fs::remove_dir_all(&data);
    let args: Vec<String> = vec![
        "dev".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--dcs".into(),
        opts.dcs.to_string(),
        "--port-base".into(),
        opts.port_base.to_string(),
    ];
    let mut dev = Service::spawn("aerolith-dev", &opts.aerolith, &args, &opts.dir)?;
    let endpoints = data.join("endpoints.json");
    dev.wait_ready(|| {
        let ready = endpoints.exists();
        async move { ready }
    })
    .await?;
    let shift = i32::from(opts.port_base) - 8080;
    let rest_url = format!("http://127.0.0.1:{}", opts.port_base);
    let grpc_url = format!("http://127.0.0.1:{}", 50051 + shift);
    let pid = dev.pid();
    peers.push(Peer::new(
        opts,
        Target::AerolithRest,
        Protocol::Rest,
        &rest_url,
        pid,
    ));
    peers.push(Peer::new(
        opts,
        Target::AerolithGrpc,
        Protocol::Grpc,
        &grpc_url,
        pid,
    ));
    Ok(dev)
}

/// Starts the HTTP ceiling, a server that answers every request at once, driven over REST;
/// returns it and its URL.
async fn start_http_ceiling(
    opts: &CompareOptions,
    peers: &mut Vec<Peer>,
) -> anyhow::Result<(Service, String)> {
    let addr = format!("127.0.0.1:{}", opts.port_base + 919);
    let args = vec![
        "http".to_string(),
        "--listen".into(),
        addr.clone(),
        "--field-count".into(),
        opts.field_count.to_string(),
        "--field-length".into(),
        opts.field_length.to_string(),
    ];
    let mut server = Service::spawn("http-ceiling", &opts.ceiling, &args, &opts.dir)?;
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();
    let probe = format!("{url}/healthz");
    server.wait_ready(|| http_ok(&http, &probe)).await?;
    let pid = server.pid();
    peers.push(Peer::new(
        opts,
        Target::HttpCeiling,
        Protocol::Rest,
        &url,
        pid,
    ));
    Ok((server, url))
}

/// The storage ceiling, one round: `aerolith-ceiling storage` loads and runs every workload
/// in its own process, and hands back its reports.
async fn storage_ceiling(
    opts: &CompareOptions,
    round: usize,
    out: &mut Comparison,
) -> anyhow::Result<()> {
    let reports_file = opts.dir.join(format!("storage-ceiling-{round}.json"));
    let workloads: Vec<&str> = opts.workloads.iter().map(|w| w.letter()).collect();
    let args = vec![
        "storage".to_string(),
        "--dir".into(),
        opts.dir.join("storage-ceiling").display().to_string(),
        "--records".into(),
        opts.records.to_string(),
        "--workloads".into(),
        workloads.join(","),
        "--duration".into(),
        format!("{}ms", opts.duration.as_millis()),
        "--warmup".into(),
        format!("{}ms", opts.warmup.as_millis()),
        "--threads".into(),
        opts.threads.to_string(),
        "--field-count".into(),
        opts.field_count.to_string(),
        "--field-length".into(),
        opts.field_length.to_string(),
        "--seed".into(),
        opts.seed.to_string(),
        "--out".into(),
        reports_file.display().to_string(),
    ];
    println!(
        "storage ceiling: running {} in aerolith-ceiling",
        workloads.join(",")
    );
    let ceiling = Service::spawn("storage-ceiling", &opts.ceiling, &args, &opts.dir)?;
    let budget = opts.duration * (opts.workloads.len() as u32 + 1) + Duration::from_secs(600);
    ceiling.wait_exit(budget).await?;
    let reports: Vec<Report> = serde_json::from_slice(&std::fs::read(&reports_file)?)?;
    let mut reports = reports.into_iter();
    if let Some(loaded) = reports.next() {
        print!("{}", loaded.table());
        out.loads.push((Target::StorageCeiling, loaded));
    }
    for (report, &w) in reports.zip(&opts.workloads) {
        print!("{}", report.table());
        out.runs.push(Measured {
            target: Target::StorageCeiling,
            workload: w,
            open_loop: false,
            round,
            server_cpu_us_per_op: None,
            report,
        });
    }
    let _ = std::fs::remove_dir_all(opts.dir.join("storage-ceiling"));
    Ok(())
}

/// Starts etcd, a single member on loopback with its defaults (an fsync per commit),
/// driven through its gRPC API.
async fn start_etcd(opts: &CompareOptions, peers: &mut Vec<Peer>) -> anyhow::Result<Service> {
    let data = opts.dir.join("etcd-data");
    let _ = std::fs::remove_dir_all(&data);
    let client = format!("http://127.0.0.1:{}", opts.port_base + 920);
    let peer = format!("http://127.0.0.1:{}", opts.port_base + 921);
    let args = vec![
        "--name".to_string(),
        "loadtest".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client.clone(),
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("loadtest={peer}"),
    ];
    let mut server = Service::spawn("etcd", &opts.etcd, &args, &opts.dir)?;
    let http = reqwest::Client::new();
    let probe = format!("{client}/health");
    server.wait_ready(|| http_ok(&http, &probe)).await?;
    let pid = server.pid();
    peers.push(Peer::new(opts, Target::Etcd, Protocol::Etcd, &client, pid));
    Ok(server)
}

/// Starts PostgreSQL on P+922 (see [`postgres::start`]), a `usertable` of `jsonb`.
async fn start_postgres(opts: &CompareOptions, peers: &mut Vec<Peer>) -> anyhow::Result<Service> {
    let pg = postgres::start(&opts.postgres_bin_dir, &opts.dir, opts.port_base + 922).await?;
    let pid = pg.service.pid();
    peers.push(Peer::new(
        opts,
        Target::Postgres,
        Protocol::Postgres,
        &pg.url,
        pid,
    ));
    Ok(pg.service)
}

/// The entries of `dir` named by a number (processes in /proc, versions of a program), with
/// that number; none if `dir` cannot be read.
pub(crate) fn numbered_entries(dir: &str) -> Vec<(u32, std::fs::DirEntry)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn no_target_always_goes_first() {
        let firsts: Vec<Target> = (0..3).map(|r| order(r, 3)[0]).collect();
        assert_eq!(
            firsts,
            [Target::AerolithRest, Target::HttpCeiling, Target::Etcd]
        );
        assert_eq!(order(1, 2)[0], Target::StorageCeiling);
        assert_eq!(order(0, 1), Target::ALL);
    }
}
