//! The comparison: the same client, workloads and record sizes against AerolithDB (`aerolith
//! dev`, REST and gRPC), the machine's ceilings (an HTTP server that does no work, RocksDB
//! with no server) and etcd, one after the other in one run, then the ratios and the
//! issue's targets checked against them.

pub mod service;
pub mod verdict;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::driver::{self, Connector, Protocol};
use crate::load::{self, LoadOptions};
use crate::report::{Report, RunInfo};
use crate::run::{self, RunOptions};
use crate::ycsb::{Spec, Workload};
use service::{Service, http_ok};

/// A comparison's settings.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Workloads, run in this order on every target.
    pub workloads: Vec<Workload>,
    /// Records loaded into every target.
    pub records: u64,
    /// How long each workload runs on each target.
    pub duration: Duration,
    /// Reads (workload C, not recorded) before a target's first measured run, so every
    /// target starts with warm connections and caches.
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
    /// `aerolith dev --port-base`; the ceiling and etcd listen just above it.
    pub port_base: u16,
    /// Also run AerolithDB open-loop at half of each closed-loop throughput.
    pub open_loop: bool,
    /// The `aerolith` binary.
    pub aerolith: PathBuf,
    /// The `aerolith-ceiling` binary.
    pub ceiling: PathBuf,
    /// The `etcd` binary.
    pub etcd: PathBuf,
    /// Scratch directory for data and logs.
    pub dir: PathBuf,
    /// Draw progress lines.
    pub progress: bool,
}

/// Who answered a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// etcd over its HTTP/JSON API.
    Etcd,
}

impl Target {
    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Target::AerolithRest => "aerolith-rest",
            Target::AerolithGrpc => "aerolith-grpc",
            Target::HttpCeiling => "http-ceiling",
            Target::StorageCeiling => "storage-ceiling",
            Target::Etcd => "etcd",
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
    /// Closed loop, or open loop at half the closed loop's throughput.
    pub open_loop: bool,
    /// The run's results.
    pub report: Report,
}

/// Everything a comparison measured.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Records, threads, duration and sizes, for the record.
    pub settings: String,
    /// Each target's load phase.
    pub loads: Vec<(Target, Report)>,
    /// Every run.
    pub runs: Vec<Measured>,
}

impl Comparison {
    /// The run of a target and workload.
    pub fn find(&self, target: Target, workload: Workload, open_loop: bool) -> Option<&Report> {
        self.runs
            .iter()
            .find(|m| m.target == target && m.workload == workload && m.open_loop == open_loop)
            .map(|m| &m.report)
    }
}

/// Runs the comparison.
pub async fn compare(opts: &CompareOptions) -> anyhow::Result<Comparison> {
    anyhow::ensure!(
        (1024..=23564).contains(&opts.port_base),
        "--port-base must be 1024 to 23564 (the dev cluster's gRPC port is P + 41971)"
    );
    std::fs::create_dir_all(&opts.dir)?;
    let mut out = Comparison {
        settings: format!(
            "{} records of {} fields x {} bytes, {} threads, {:?} per run after {:?} of warm-up reads, workloads {}",
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
                .join(",")
        ),
        loads: Vec::new(),
        runs: Vec::new(),
    };
    aerolith(opts, &mut out).await.context("AerolithDB")?;
    http_ceiling(opts, &mut out).await.context("HTTP ceiling")?;
    storage_ceiling(opts, &mut out)
        .await
        .context("storage ceiling")?;
    etcd(opts, &mut out).await.context("etcd")?;
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

/// Runs one workload through `connector`, closed loop or open loop at `rate`.
async fn measure(
    opts: &CompareOptions,
    connector: Arc<dyn Connector>,
    info: RunInfo,
    workload: Workload,
    rate: Option<f64>,
) -> anyhow::Result<Report> {
    let info = RunInfo {
        workload: workload.letter().into(),
        ..info
    };
    let report = run::run(connector, &run_options(opts, workload, rate), info).await?;
    print!("{}", report.table());
    Ok(report)
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

/// AerolithDB through `aerolith dev`: load over REST, then each workload over REST and
/// gRPC (and open loop at half the closed loop's throughput). Which protocol goes first
/// alternates by workload, so neither always finds the cluster fresher.
async fn aerolith(opts: &CompareOptions, out: &mut Comparison) -> anyhow::Result<()> {
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
    let collection = "usertable";
    let rest = driver::connector(Protocol::Rest, &rest_url, collection);
    let grpc = driver::connector(Protocol::Grpc, &grpc_url, collection);
    let rest_info = info(opts, Target::AerolithRest, Protocol::Rest, &rest_url);
    let grpc_info = info(opts, Target::AerolithGrpc, Protocol::Grpc, &grpc_url);
    out.loads.push((
        Target::AerolithRest,
        load_records(opts, rest.clone(), rest_info.clone()).await?,
    ));
    warm_up(opts, rest.clone(), rest_info.clone()).await?;
    for (i, &w) in opts.workloads.iter().enumerate() {
        let mut order = [
            (Target::AerolithRest, &rest, &rest_info),
            (Target::AerolithGrpc, &grpc, &grpc_info),
        ];
        if i % 2 == 1 {
            order.reverse();
        }
        for (target, connector, info) in order {
            let closed = measure(opts, connector.clone(), info.clone(), w, None).await?;
            let half = closed.ops_per_s / 2.0;
            out.runs.push(Measured {
                target,
                workload: w,
                open_loop: false,
                report: closed,
            });
            if opts.open_loop && half >= 1.0 {
                let open = measure(opts, connector.clone(), info.clone(), w, Some(half)).await?;
                out.runs.push(Measured {
                    target,
                    workload: w,
                    open_loop: true,
                    report: open,
                });
            }
        }
    }
    drop(dev);
    Ok(())
}

/// The HTTP ceiling: every workload over REST against a server that answers at once.
async fn http_ceiling(opts: &CompareOptions, out: &mut Comparison) -> anyhow::Result<()> {
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
    let rest = driver::connector(Protocol::Rest, &url, "usertable");
    let info = info(opts, Target::HttpCeiling, Protocol::Rest, &url);
    warm_up(opts, rest.clone(), info.clone()).await?;
    for &w in &opts.workloads {
        let report = measure(opts, rest.clone(), info.clone(), w, None).await?;
        out.runs.push(Measured {
            target: Target::HttpCeiling,
            workload: w,
            open_loop: false,
            report,
        });
    }
    drop(server);
    Ok(())
}

/// The storage ceiling: `aerolith-ceiling storage` loads and runs every workload in its own
/// process, and hands back its reports.
async fn storage_ceiling(opts: &CompareOptions, out: &mut Comparison) -> anyhow::Result<()> {
    let reports_file = opts.dir.join("storage-ceiling.json");
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
            report,
        });
    }
    let _ = std::fs::remove_dir_all(opts.dir.join("storage-ceiling"));
    Ok(())
}

/// etcd, a single member on loopback with its defaults (an fsync per commit), driven
/// through its HTTP/JSON API.
async fn etcd(opts: &CompareOptions, out: &mut Comparison) -> anyhow::Result<()> {
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
    let etcd = driver::connector(Protocol::Etcd, &client, "");
    let info = info(opts, Target::Etcd, Protocol::Etcd, &client);
    out.loads.push((
        Target::Etcd,
        load_records(opts, etcd.clone(), info.clone()).await?,
    ));
    warm_up(opts, etcd.clone(), info.clone()).await?;
    for &w in &opts.workloads {
        let report = measure(opts, etcd.clone(), info.clone(), w, None).await?;
        out.runs.push(Measured {
            target: Target::Etcd,
            workload: w,
            open_loop: false,
            report,
        });
    }
    drop(server);
    Ok(())
}
