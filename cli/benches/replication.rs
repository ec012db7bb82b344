//! Replication between two one-node DCs on loopback (every storage node, gateway and
//! replicator an `aerolith` process, durable defaults):
//!
//! - **lag**: a steady write load into dc1; for each write, the time from its commit in dc1
//!   (its HLC) to its arrival in dc2's change log, read by a long-poll tail of dc2's node.
//!   The baseline is the latency of the same writes in dc1.
//! - **catch-up**: a backlog written into dc1 before its replicator starts, then the time
//!   until dc1's replicator reports no lag (changes/s). The baseline is the rate at which
//!   dc1's node took the same backlog as bulk writes.
//!
//! Run: `cargo bench --workspace --bench replication` (options after `--`: `--rate N`
//! writes per second, `--seconds N`, `--backlog N`).

#[path = "../tests/suite/support/procs.rs"]
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use aerolith_common::hlc;
use aerolith_common::pb;
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_common::time::now_ms;
use support::{Nodes, cluster_without_replicators, launch_replicator, peer_status, wait_until};

struct Options {
    rate: u64,
    seconds: u64,
    backlog: usize,
}

fn options() -> Options {
    let mut o = Options {
        rate: 200,
        seconds: 30,
        backlog: 100_000,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match (pair[0].as_str(), pair[1].parse::<u64>().ok()) {
            ("--rate", Some(n)) => o.rate = n.max(1),
            ("--seconds", Some(n)) => o.seconds = n.max(1),
            ("--backlog", Some(n)) => o.backlog = n as usize,
            _ => {}
        }
    }
    o
}

/// The `q`-quantile of sorted samples.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Heads of every shard of `dc`'s node: where a tail starts.
async fn heads(c: &Nodes, dc: &str) -> Vec<pb::ShardPosition> {
    let req = pb::ChangeHeadsRequest {
        shards: (0..u32::from(DEFAULT_SHARDS)).collect(),
    };
    c.call(dc, req).await.heads
}

async fn lag(o: &Options) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cluster = cluster_without_replicators(dir.path(), 2, &[]).await;
    let c = Nodes::of(&cluster);
    launch_replicator(&mut cluster, 1).await;
    launch_replicator(&mut cluster, 0).await;
    let dc1 = cluster.admin[0].clone();
    // Warm up: the collection's settings and the QUIC connections exist before timing.
    c.write("dc1", "lag", 0..1).await;
    wait_until("the warm-up write", 60, || async {
        peer_status(&dc1).await["lag_changes"] == 0
    })
    .await;

    let total = (o.rate * o.seconds) as usize;
    let from = heads(&c, "dc2").await;
    let tail = {
        let client = c.client.clone();
        let node = c.node("dc2").to_string();
        tokio::spawn(async move {
            let mut from = from;
            let mut lags = Vec::with_capacity(total);
            while lags.len() < total {
                let req = pb::ReadChangesRequest {
                    collection: "lag".into(),
                    from: from.clone(),
                    limit: 1000,
                    wait_ms: 1000,
                    max_bytes: 4 << 20,
                    ..Default::default()
                };
                let changes = client
                    .node()
                    .read_changes(&node, req, Duration::from_secs(10))
                    .await
                    .expect("tail of dc2");
                let arrived = now_ms();
                for e in changes.events {
                    if let Some(r) = e.event.and_then(|e| e.record) {
                        lags.push(arrived.saturating_sub(hlc::wall_ms(r.hlc)) as f64);
                    }
                }
                from = changes.through;
            }
            lags
        })
    };

    let node = c.node("dc1");
    let mut put_ms = Vec::with_capacity(total);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / o.rate as u32);
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let id = format!("w{i:07}");
        let req = pb::PutRequest {
            after_delete_hlc: 0,
            shard: u32::from(shard_of("lag", &id, DEFAULT_SHARDS)),
            collection: "lag".into(),
            id,
            body: format!("{{\"i\":{i}}}").into_bytes(),
            precondition: None,
            session: Vec::new(),
            idempotency: None,
        };
        let t = Instant::now();
        c.client
            .node()
            .put(node, req, Duration::from_secs(10))
            .await
            .expect("put");
        put_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let lags = sorted(tail.await.expect("tail"));
    let put_ms = sorted(put_ms);
    println!(
        "lag: {total} writes at {rate:.0}/s; dc1 write (baseline) median {:.2} ms p99 {:.2} ms; \
         dc1 commit -> dc2 log median {:.1} ms p99 {:.1} ms max {:.1} ms ({:.1}x the write median)",
        quantile(&put_ms, 0.5),
        quantile(&put_ms, 0.99),
        quantile(&lags, 0.5),
        quantile(&lags, 0.99),
        quantile(&lags, 1.0),
        quantile(&lags, 0.5) / quantile(&put_ms, 0.5),
    );
}

async fn catch_up(o: &Options) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cluster = cluster_without_replicators(dir.path(), 2, &[]).await;
    let c = Nodes::of(&cluster);
    let t = Instant::now();
    c.write("dc1", "backlog", 0..o.backlog).await;
    let write_s = t.elapsed().as_secs_f64();
    launch_replicator(&mut cluster, 1).await;
    let t = Instant::now();
    launch_replicator(&mut cluster, 0).await;
    let dc1 = cluster.admin[0].clone();
    wait_until("the backlog to drain", 3600, || async {
        let s = peer_status(&dc1).await;
        s["lag_changes"] == 0 && s["state"] == "connected"
    })
    .await;
    let ship_s = t.elapsed().as_secs_f64();
    assert_eq!(c.digests("dc1").await, c.digests("dc2").await, "converged");
    let ingest = o.backlog as f64 / write_s;
    let shipped = o.backlog as f64 / ship_s;
    println!(
        "catch-up: {} changes; dc1 bulk ingest (baseline) {write_s:.1} s = {ingest:.0}/s; \
         replicated to dc2 in {ship_s:.1} s = {shipped:.0} changes/s ({:.2}x ingest)",
        o.backlog,
        shipped / ingest,
    );
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        lag(&o).await;
        catch_up(&o).await;
    });
}
