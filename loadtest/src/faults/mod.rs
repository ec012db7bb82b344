//! The fault-injection run (in the manner of Jepsen): start a real two-DC cluster of
//! processes, drive a workload through both gateways while the nemesis kills processes, cuts
//! the replicator link and skews a clock, heal everything, then check the history: every
//! acknowledged write is present in every DC (or superseded under the collection's `lww`
//! strategy), no acknowledged delete is undone, no session read went backwards, every write
//! acknowledged under concern `all` was at once visible in the other DC, and the DCs
//! converge (equal per-shard digests).

pub mod check;
pub mod classes;
pub mod cluster;
pub mod measure;
pub mod nemesis;
pub mod proxy;
pub mod version;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use cluster::ProcCluster;
use nemesis::{FaultRecord, Schedule};
use workload::{COLLECTION, History, Worker};

/// How to run.
#[derive(Debug, Clone)]
pub struct FaultOptions {
    /// Where data and logs go.
    pub dir: PathBuf,
    /// The `aerolith` binary the processes run.
    pub aerolith: PathBuf,
    /// Seed of every random choice (workload and nemesis).
    pub seed: u64,
    /// How long the workload and the nemesis run.
    pub duration: Duration,
    /// Quiet time before each fault.
    pub quiet: Duration,
    /// How long each fault is held.
    pub hold: Duration,
    /// Concurrent workers, spread over the DCs' gateways.
    pub workers: usize,
    /// Storage nodes per DC.
    pub nodes_per_dc: usize,
    /// How long the DCs get to converge after healing.
    pub converge_timeout: Duration,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The seed, to replay the run.
    pub seed: u64,
    /// Seconds of workload under faults.
    pub duration_s: f64,
    /// Requests sent.
    pub operations: u64,
    /// Writes and deletes acknowledged.
    pub acknowledged: u64,
    /// Requests not acknowledged (or reads not served) while faults were active.
    pub failed: u64,
    /// Session reads checked.
    pub session_reads: u64,
    /// Session reads that showed a state older than the session had seen.
    pub stale_session_reads: u64,
    /// Writes acknowledged under write concern `all` and then read in the other DC.
    pub all_writes_checked: u64,
    /// Those the other DC did not show at once.
    pub all_writes_missing: u64,
    /// Acknowledged writes missing (not present and not superseded) in some DC.
    pub lost: u64,
    /// Acknowledged deletes undone in some DC.
    pub resurrected: u64,
    /// Whether every DC reported the same per-shard digests after healing.
    pub converged: bool,
    /// Seconds from the last fault's heal to equal digests.
    pub time_to_converge_s: Option<f64>,
    /// Secondary-index entries (of the indexes defined while the workload and the faults
    /// ran) that disagree with their documents once built in every DC; `None` if the
    /// builds did not finish in time.
    pub index_mismatches: Option<u64>,
    /// The faults injected.
    pub faults: Vec<FaultRecord>,
    /// The first problems found, for the reader.
    pub problems: Vec<String>,
}

impl Summary {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.resurrected == 0
            && self.stale_session_reads == 0
            && self.all_writes_missing == 0
            && self.converged
            && self.index_mismatches == Some(0)
    }

    /// The summary as a table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| out.push_str(&format!("{k:<24} {v}\n"));
        row("seed", self.seed.to_string());
        row("duration", format!("{:.1} s", self.duration_s));
        row(
            "faults",
            self.faults
                .iter()
                .map(|f| format!("{:?}", f.kind))
                .collect::<Vec<_>>()
                .join(", "),
        );
        row("operations", self.operations.to_string());
        row("acknowledged", self.acknowledged.to_string());
        row("failed (not acked)", self.failed.to_string());
        row("session reads", self.session_reads.to_string());
        row("stale session reads", self.stale_session_reads.to_string());
        row("`all` writes checked", self.all_writes_checked.to_string());
        row("`all` writes missing", self.all_writes_missing.to_string());
        row("lost", self.lost.to_string());
        row("resurrected", self.resurrected.to_string());
        row(
            "converged",
            if self.converged { "yes" } else { "no" }.into(),
        );
        row(
            "time to converge",
            self.time_to_converge_s
                .map_or("-".into(), |t| format!("{t:.2} s")),
        );
        row(
            "index mismatches",
            self.index_mismatches
                .map_or("builds unfinished".into(), |n| n.to_string()),
        );
        for p in &self.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
        out
    }
}

/// Creates the workload's collection and waits until both DCs serve it.
async fn prepare(http: &reqwest::Client, cluster: &ProcCluster) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = |base: &str| format!("{base}/v1/collections/{COLLECTION}");
    loop {
        let created = http
            .put(url(&cluster.http[0]))
            .json(&serde_json::json!({"conflict_strategy": "lww"}))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let mut everywhere = created;
        for base in &cluster.http {
            everywhere &= http
                .get(url(base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
        }
        if everywhere {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the collection did not reach every DC within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the whole thing: cluster, workload under faults, healing, checks.
pub async fn run(opts: FaultOptions) -> anyhow::Result<Summary> {
    let mut cluster = ProcCluster::start(&opts.dir, &opts.aerolith, 2, opts.nodes_per_dc).await?;
    let http = reqwest::Client::new();
    prepare(&http, &cluster).await?;

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..opts.workers)
        .map(|n| {
            let home = n % cluster.http.len();
            let worker = Worker {
                n,
                home: cluster.http[home].clone(),
                away: cluster.http[(home + 1) % cluster.http.len()].clone(),
                seed: opts.seed.wrapping_add(n as u64),
            };
            tokio::spawn(worker.run(http.clone(), stop.clone()))
        })
        .collect();
    let schedule = Schedule {
        quiet: opts.quiet,
        hold: opts.hold,
        until: started + opts.duration,
    };
    // Indexes defined once the workload runs, so they build under writes and faults.
    let indexing = tokio::spawn(check::define_indexes(
        http.clone(),
        cluster.http[0].clone(),
        started + opts.duration / 4,
    ));
    let faults = nemesis::run(&mut cluster, opts.seed, schedule, started).await;
    stop.store(true, Ordering::Relaxed);
    let mut histories: Vec<History> = Vec::new();
    for w in workers {
        histories.push(w.await?);
    }
    let faults = faults?;
    let duration_s = started.elapsed().as_secs_f64();

    // Convergence is timed from the last fault's heal (the workload ran on meanwhile).
    let healed = faults
        .last()
        .map_or(started, |f| started + Duration::from_secs_f64(f.healed_s));
    let converged = check::converge(&http, &cluster.admin, opts.converge_timeout).await;
    let time_to_converge_s = converged.then(|| healed.elapsed().as_secs_f64());
    let found = check::final_states(&http, &cluster.http, &histories).await;
    let index_mismatches = match indexing.await {
        Ok(true) => {
            check::indexes_exact(&http, &cluster.http, &cluster.admin, opts.converge_timeout).await
        }
        _ => None,
    };

    let mut problems: Vec<String> = histories
        .iter()
        .flat_map(|h| h.stale_reads.iter().chain(&h.all_missing).cloned())
        .collect();
    problems.extend(found.problems);
    problems.truncate(20);
    Ok(Summary {
        seed: opts.seed,
        duration_s,
        operations: histories.iter().map(|h| h.operations).sum(),
        acknowledged: histories.iter().map(|h| h.acknowledged).sum(),
        failed: histories.iter().map(|h| h.failed).sum(),
        session_reads: histories.iter().map(|h| h.session_reads).sum(),
        stale_session_reads: histories.iter().map(|h| h.stale_reads.len() as u64).sum(),
        all_writes_checked: histories.iter().map(|h| h.all_checked).sum(),
        all_writes_missing: histories.iter().map(|h| h.all_missing.len() as u64).sum(),
        lost: found.lost,
        resurrected: found.resurrected,
        converged,
        time_to_converge_s,
        index_mismatches,
        faults,
        problems,
    })
}
