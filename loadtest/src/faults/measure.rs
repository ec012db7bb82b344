//! Timings of recovery on a real cluster of processes, for `docs/BENCHMARKS.md`:
//! - failover time: from SIGKILL of a storage node to the first successful write of one of
//!   its shards through the same DC's gateway;
//! - convergence time: from healing a partition of the replicator link (held while both
//!   DCs took writes) to equal per-shard digests in both DCs.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};

use super::check;
use super::cluster::{ProcCluster, Role};

/// The collection the measurements write.
const COLLECTION: &str = "timings";

/// One run's measurements, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Each failover run: kill to first successful write through the same gateway.
    pub failover_s: Vec<f64>,
    /// Each partition run: heal to equal digests.
    pub converge_s: Vec<f64>,
    /// Writes each DC took during each partition.
    pub writes_during_partition: Vec<u64>,
}

/// The median of some values (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// An id of [`COLLECTION`] whose shard the DC's node `node` (of `nodes`) owns.
fn id_on_node(node: usize, nodes: usize, n: u64) -> String {
    (0u64..)
        .map(|i| format!("k{n}-{i}"))
        .find(|id| shard_of(COLLECTION, id, DEFAULT_SHARDS) as usize % nodes == node)
        .unwrap_or_default()
}

/// PUTs a document; `Ok` when acknowledged, else what went wrong (status and code).
async fn try_put(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    timeout: Duration,
) -> Result<(), String> {
    let r = http
        .put(format!("{base}/v1/collections/{COLLECTION}/docs/{id}"))
        .header("x-aerolith-timeout-ms", timeout.as_millis().to_string())
        .timeout(timeout + Duration::from_millis(500))
        .json(&json!({"at": id}))
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = r.status();
    if status.is_success() {
        return Ok(());
    }
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    Err(format!("{status} {}", body["error"]["message"]))
}

async fn put(http: &reqwest::Client, base: &str, id: &str, timeout: Duration) -> bool {
    try_put(http, base, id, timeout).await.is_ok()
}

/// Kills dc1's first node `runs` times; each time measures how long until a write of one of
/// its shards through dc1's gateway succeeds, then restarts it and waits until dc1's
/// gateway writes through it again (a version that starts with dc1's entry).
pub async fn failover(
    cluster: &mut ProcCluster,
    http: &reqwest::Client,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let nodes = cluster.of_role(Role::Node);
    let victim = nodes[0];
    let per_dc = nodes.iter().filter(|i| cluster.procs[**i].dc == 0).count();
    let gw = cluster.http[0].clone();
    let mut out = Vec::new();
    for run in 0..runs as u64 {
        // Warm: the gateway has a connection to the victim.
        let warm = id_on_node(0, per_dc, run * 1000);
        anyhow::ensure!(
            put(http, &gw, &warm, Duration::from_secs(10)).await,
            "warm-up write failed"
        );
        let killed = Instant::now();
        cluster.kill(victim);
        let mut n = 1;
        loop {
            let id = id_on_node(0, per_dc, run * 1000 + n);
            n += 1;
            match try_put(http, &gw, &id, Duration::from_secs(10)).await {
                Ok(()) => break,
                Err(e) => tracing::info!(
                    after_s = killed.elapsed().as_secs_f64(),
                    error = %e,
                    "write after the kill failed"
                ),
            }
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(120),
                "no write succeeded within 120 s of the kill"
            );
        }
        out.push(killed.elapsed().as_secs_f64());
        cluster.launch(victim).await?;
        // Failed back: a fresh document of the victim's shards is written by dc1 again.
        let back = Instant::now();
        loop {
            let id = id_on_node(0, per_dc, run * 1000 + 500 + n);
            n += 1;
            let r = http
                .put(format!("{gw}/v1/collections/{COLLECTION}/docs/{id}"))
                .json(&json!({"at": id}))
                .send()
                .await;
            let v = match r {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|b| b["version"].as_str().map(str::to_string)),
                Err(_) => None,
            };
            if v.is_some_and(|v| v.starts_with(&format!("{}@", cluster.dcs[0]))) {
                break;
            }
            anyhow::ensure!(
                back.elapsed() < Duration::from_secs(120),
                "dc1 did not fail back within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(out)
}

/// Cuts the replicator link for `hold` `runs` times while both DCs take writes (a few
/// writers each, overlapping ids so there are conflicts), heals it, and measures the time
/// until both DCs report equal digests. Returns the times and the writes per partition.
pub async fn partition(
    cluster: &ProcCluster,
    http: &reqwest::Client,
    runs: usize,
    hold: Duration,
) -> anyhow::Result<(Vec<f64>, Vec<u64>)> {
    let mut times = Vec::new();
    let mut writes = Vec::new();
    for run in 0..runs {
        cluster.partition(0, 1, true);
        let until = Instant::now() + hold;
        let writers = cluster.http.iter().enumerate().flat_map(|(d, base)| {
            (0..4).map(move |w| {
                let base = base.clone();
                let http = http.clone();
                async move {
                    let mut n = 0u64;
                    let mut ok = 0u64;
                    while Instant::now() < until {
                        // Half the ids are shared between the DCs: concurrent versions.
                        let id = if n.is_multiple_of(2) {
                            format!("p{run}-{w}-{n}")
                        } else {
                            format!("p{run}-{d}-{w}-{n}")
                        };
                        n += 1;
                        if put(&http, &base, &id, Duration::from_secs(5)).await {
                            ok += 1;
                        }
                    }
                    ok
                }
            })
        });
        let total: u64 = futures::future::join_all(writers).await.into_iter().sum();
        writes.push(total);
        cluster.partition(0, 1, false);
        let healed = Instant::now();
        anyhow::ensure!(
            check::converge(http, &cluster.admin, Duration::from_secs(300)).await,
            "the DCs did not converge within 300 s of healing"
        );
        times.push(healed.elapsed().as_secs_f64());
    }
    Ok((times, writes))
}
