//! Running a workload: T workers, each with its own connection, in a closed loop (the next
//! operation starts when the last one ends) or an open loop (operations are due on a fixed
//! schedule, and latency counts from when each was due, so a stall shows up as the queue it
//! causes instead of hiding it: no coordinated omission). Also the load phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::driver::{Connector, Driver, OpResult};
use crate::progress::{self, Live};
use crate::report::{Report, RunInfo};
use crate::stats::Stats;
use crate::ycsb::generator::KeyChooser;
use crate::ycsb::keyspace::{Keyspace, key_of};
use crate::ycsb::record::record;
use crate::ycsb::{OpKind, Spec};

/// How long an open loop that fell behind may keep draining operations that were due
/// before the end; the ones still not sent are counted as `not_sent` errors.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// One run's settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The workload.
    pub spec: Spec,
    /// Records loaded before (numbered 0..records).
    pub records: u64,
    /// How long operations are started.
    pub duration: Duration,
    /// Workers, each with its own connection.
    pub threads: usize,
    /// Open loop at this many operations per second (all workers together); none for a
    /// closed loop.
    pub rate: Option<f64>,
    /// Seed of the workers' random choices.
    pub seed: u64,
    /// Draw a progress line.
    pub progress: bool,
}

/// Runs a workload and reports it; `info` describes the target for the report.
pub async fn run(
    connector: Arc<dyn Connector>,
    opts: &RunOptions,
    mut info: RunInfo,
) -> anyhow::Result<Report> {
    anyhow::ensure!(opts.records > 0, "--records must be at least 1");
    let threads = opts.threads.max(1);
    let interval = match opts.rate {
        None => None,
        Some(rate) => {
            anyhow::ensure!(
                rate.is_finite() && rate >= 0.001,
                "--rate must be a number of operations per second, at least 0.001"
            );
            // At most one operation per microsecond per worker: the timer cannot do better.
            Some(Duration::from_secs_f64(threads as f64 / rate).max(Duration::from_micros(1)))
        }
    };
    // Everything that takes time is done before the clock starts: connections (a first
    // read on each, so lazily connecting protocols connect now too) and key choosers
    // (workload D's computes a zeta constant over all records).
    let keyspace = Arc::new(Keyspace::new(opts.records));
    let live = Arc::new(Live::default());
    let mut workers = Vec::with_capacity(threads);
    for w in 0..threads {
        let driver = connector.connect().await?;
        let _ = driver.read(&key_of(0)).await;
        let worker = Worker {
            spec: opts.spec.clone(),
            keyspace: keyspace.clone(),
            live: live.clone(),
            rng: StdRng::seed_from_u64(opts.seed.wrapping_add(w as u64)),
            chooser: KeyChooser::new(opts.spec.distribution, opts.records, opts.spec.inserts()),
            stats: Stats::default(),
        };
        workers.push((worker, driver));
    }
    let not_sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + opts.duration;
    let bar = opts
        .progress
        .then(|| progress::show(info.label.clone(), opts.duration, live.clone()));
    let mut running = Vec::with_capacity(threads);
    for (w, (worker, driver)) in workers.into_iter().enumerate() {
        let schedule = match interval {
            // Worker w's operations are due at start + (w + i * threads) / rate: together
            // the workers issue `rate` evenly spaced operations per second.
            Some(interval) => Schedule::Open {
                next: start + interval.mul_f64(w as f64 / threads as f64),
                interval,
            },
            None => Schedule::Closed,
        };
        running.push(tokio::spawn(worker.run(
            driver,
            schedule,
            end,
            not_sent.clone(),
        )));
    }
    let mut stats = Stats::default();
    for w in running {
        stats.merge(&w.await?);
    }
    if let Some(bar) = bar {
        progress::finish(bar);
    }
    let seconds = start.elapsed().as_secs_f64();
    let skipped = not_sent.load(Ordering::Relaxed);
    if skipped > 0 {
        // The loop fell so far behind that these were due but never sent; they are
        // charged to the workload's main operation kind so the report shows them.
        let kind = opts
            .spec
            .mix
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|m| m.0)
            .unwrap_or(OpKind::Read);
        stats
            .ops
            .entry(kind)
            .or_default()
            .errors
            .insert("not_sent".into(), skipped);
    }
    info.rate = opts.rate;
    Ok(Report::new(info, &stats, seconds))
}

/// Unrecorded reads (workload C) for `duration`, so a target's connections and caches are
/// warm before its measured runs.
pub async fn warm_up(
    connector: Arc<dyn Connector>,
    opts: &RunOptions,
    duration: Duration,
    info: RunInfo,
) -> anyhow::Result<()> {
    if duration.is_zero() {
        return Ok(());
    }
    let spec = Spec::core(
        crate::ycsb::Workload::C,
        opts.spec.field_count,
        opts.spec.field_length,
    );
    let warm = RunOptions {
        spec,
        duration,
        rate: None,
        seed: opts.seed.wrapping_add(7),
        progress: false,
        ..opts.clone()
    };
    run(
        connector,
        &warm,
        RunInfo {
            workload: "warm-up".into(),
            ..info
        },
    )
    .await?;
    Ok(())
}

/// When a worker starts its operations.
enum Schedule {
    /// Each as soon as the last one ends.
    Closed,
    /// Each at its due time, `interval` apart.
    Open { next: Instant, interval: Duration },
}

/// One worker's state.
struct Worker {
    spec: Spec,
    keyspace: Arc<Keyspace>,
    live: Arc<Live>,
    rng: StdRng,
    chooser: KeyChooser,
    stats: Stats,
}

impl Worker {
    /// Runs operations until `end`. In an open loop each operation is due at its slot
    /// and its latency counts from then, however late it is sent: a stall shows up as
    /// the queue behind it (no coordinated omission). Operations already due keep going
    /// out after `end` for up to `DRAIN_LIMIT`; any left are counted in `not_sent`.
    async fn run(
        mut self,
        driver: Box<dyn Driver>,
        mut schedule: Schedule,
        end: Instant,
        not_sent: Arc<AtomicU64>,
    ) -> Stats {
        loop {
            let due = match &mut schedule {
                Schedule::Closed => {
                    if Instant::now() >= end {
                        break;
                    }
                    None
                }
                Schedule::Open { next, interval } => {
                    let due = *next;
                    if due >= end {
                        break;
                    }
                    if Instant::now() > end + DRAIN_LIMIT {
                        // Slots due..end, `due` included.
                        let left = (end - due).as_nanos().div_ceil(interval.as_nanos().max(1));
                        not_sent.fetch_add(left as u64, Ordering::Relaxed);
                        break;
                    }
                    *next += *interval;
                    // tokio's timer fires on millisecond ticks, so a sleeping worker may
                    // wake up to ~1 ms after `due`: open-loop latencies err high by that
                    // much, never low.
                    tokio::time::sleep_until(due.into()).await;
                    Some(due)
                }
            };
            self.one(&*driver, due).await;
        }
        self.stats
    }

    /// Chooses and performs one operation, recording its latency from `due` (open loop) or
    /// from when it was sent (closed loop).
    async fn one(&mut self, driver: &dyn Driver, due: Option<Instant>) {
        let kind = self.spec.pick(self.rng.random());
        let limit = self.keyspace.limit();
        let key = key_of(self.chooser.next(&mut self.rng, limit));
        // What the operation needs is drawn before its clock starts.
        let body = matches!(
            kind,
            OpKind::Update | OpKind::Insert | OpKind::ReadModifyWrite
        )
        .then(|| record(&mut self.rng, self.spec.field_count, self.spec.field_length));
        let body = body.as_deref().unwrap_or_default();
        let count = match kind {
            OpKind::Scan => self.rng.random_range(1..=self.spec.max_scan.max(1)),
            _ => 0,
        };
        let inserted = (kind == OpKind::Insert).then(|| self.keyspace.claim());
        let key = inserted.map(key_of).unwrap_or(key);
        let begin = due.unwrap_or_else(Instant::now);
        let outcome: OpResult = match kind {
            OpKind::Read => driver.read(&key).await,
            OpKind::Update => driver.update(&key, body).await,
            OpKind::Insert => driver.insert(&key, body).await,
            OpKind::Scan => driver.scan(&key, count).await,
            OpKind::ReadModifyWrite => match driver.read(&key).await {
                Ok(()) => driver.update(&key, body).await,
                Err(e) => Err(e),
            },
        };
        if let Some(n) = inserted {
            self.keyspace.finish(n);
        }
        let latency = begin.elapsed();
        self.live.count(outcome.is_err());
        self.stats
            .record(kind, latency, outcome.map_err(|e| e.code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Connector;
    use crate::ycsb::Workload;
    use futures::future::BoxFuture;

    /// A server that takes `delay` for every operation.
    struct Slow {
        delay: Duration,
    }

    impl Driver for Slow {
        fn read<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, OpResult> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(())
            })
        }
        fn update<'a>(&'a self, _key: &'a str, _record: &'a str) -> BoxFuture<'a, OpResult> {
            self.read("")
        }
        fn scan<'a>(&'a self, _start: &'a str, _count: usize) -> BoxFuture<'a, OpResult> {
            self.read("")
        }
    }

    impl Connector for Slow {
        fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
            let delay = self.delay;
            Box::pin(async move { Ok(Box::new(Slow { delay }) as Box<dyn Driver>) })
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            label: "slow".into(),
            protocol: "test".into(),
            target: "none".into(),
            workload: "c".into(),
            records: 10,
            threads: 1,
            rate: None,
            field_count: 1,
            field_length: 1,
        }
    }

    #[tokio::test]
    async fn an_open_loop_that_falls_behind_counts_the_queue_in_its_latency() {
        // One worker, 20 ms per read, asked for 100 reads/s: it can do 50/s, so read i
        // (due at i x 10 ms) ends no earlier than (i + 1) x 20 ms. Over 1 s the last due read
        // (i = 99) has waited at least 1 s, which a closed loop would never show.
        let connector = Arc::new(Slow {
            delay: Duration::from_millis(20),
        });
        let mut opts = RunOptions {
            spec: Spec::core(Workload::C, 1, 1),
            records: 10,
            duration: Duration::from_secs(1),
            threads: 1,
            rate: Some(100.0),
            seed: 1,
            progress: false,
        };
        let open = run(connector.clone(), &opts, info()).await.unwrap();
        let read = open.op(OpKind::Read).unwrap();
        assert_eq!(read.ok, 100, "every due read is sent, late ones included");
        assert!(read.max_ms >= 1000.0, "max {} ms", read.max_ms);
        assert!(read.p50_ms >= 500.0, "p50 {} ms", read.p50_ms);

        opts.rate = None;
        let closed = run(connector, &opts, info()).await.unwrap();
        let read = closed.op(OpKind::Read).unwrap();
        assert!(read.p50_ms >= 20.0 && read.ok <= 50, "{read:?}");
    }
}
