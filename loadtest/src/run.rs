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
    let mut drivers = Vec::with_capacity(threads);
    for _ in 0..threads {
        drivers.push(connector.connect().await?);
    }
    let keyspace = Arc::new(Keyspace::new(opts.records));
    let live = Arc::new(Live::default());
    let not_sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + opts.duration;
    let bar = opts
        .progress
        .then(|| progress::show(info.label.clone(), opts.duration, live.clone()));
    let mut workers = Vec::with_capacity(threads);
    for (w, driver) in drivers.into_iter().enumerate() {
        let worker = Worker {
            spec: opts.spec.clone(),
            keyspace: keyspace.clone(),
            live: live.clone(),
            rng: StdRng::seed_from_u64(opts.seed.wrapping_add(w as u64)),
            chooser: KeyChooser::new(opts.spec.distribution, opts.records),
            stats: Stats::default(),
        };
        let schedule = match opts.rate {
            Some(rate) if rate > 0.0 => {
                let interval = Duration::from_secs_f64(threads as f64 / rate);
                let offset = Duration::from_secs_f64(w as f64 / rate);
                Schedule::Open {
                    next: start + offset,
                    interval,
                }
            }
            _ => Schedule::Closed,
        };
        let not_sent = not_sent.clone();
        workers.push(tokio::spawn(worker.run(driver, schedule, end, not_sent)));
    }
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(&w.await?);
    }
    if let Some(bar) = bar {
        progress::finish(bar);
    }
    let seconds = start.elapsed().as_secs_f64();
    let skipped = not_sent.load(Ordering::Relaxed);
    if skipped > 0 {
        // Attributed to reads: the loop fell so far behind that these were never sent.
        let kind = opts.spec.mix.first().map(|m| m.0).unwrap_or(OpKind::Read);
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
                        let left = (end - due).as_nanos() / interval.as_nanos().max(1);
                        not_sent.fetch_add(left as u64 + 1, Ordering::Relaxed);
                        break;
                    }
                    *next += *interval;
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
        let (fields, length) = (self.spec.field_count, self.spec.field_length);
        let outcome: OpResult;
        let begin;
        match kind {
            OpKind::Read => {
                begin = due.unwrap_or_else(Instant::now);
                outcome = driver.read(&key).await;
            }
            OpKind::Update => {
                let body = record(&mut self.rng, fields, length);
                begin = due.unwrap_or_else(Instant::now);
                outcome = driver.update(&key, &body).await;
            }
            OpKind::Insert => {
                let n = self.keyspace.claim();
                let body = record(&mut self.rng, fields, length);
                begin = due.unwrap_or_else(Instant::now);
                outcome = driver.insert(&key_of(n), &body).await;
                self.keyspace.finish(n);
            }
            OpKind::Scan => {
                let count = self.rng.random_range(1..=self.spec.max_scan.max(1));
                begin = due.unwrap_or_else(Instant::now);
                outcome = driver.scan(&key, count).await;
            }
            OpKind::ReadModifyWrite => {
                let body = record(&mut self.rng, fields, length);
                begin = due.unwrap_or_else(Instant::now);
                outcome = match driver.read(&key).await {
                    Ok(()) => driver.update(&key, &body).await,
                    Err(e) => Err(e),
                };
            }
        }
        let latency = begin.elapsed();
        self.live.count(outcome.is_err());
        self.stats
            .record(kind, latency, outcome.map_err(|e| e.code));
    }
}

/// The load phase's settings.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Records to insert (numbered 0..records).
    pub records: u64,
    /// Workers, each with its own connection.
    pub threads: usize,
    /// Records per request, capped by what the protocol takes.
    pub batch: usize,
    /// Fields per record.
    pub field_count: usize,
    /// Bytes per field.
    pub field_length: usize,
    /// Seed of the record contents.
    pub seed: u64,
    /// Draw a progress line.
    pub progress: bool,
}

/// Inserts records 0..records in batches (bulk calls where the protocol has them) and
/// reports the batches' latencies as `insert` operations of the load phase.
pub async fn load(
    connector: Arc<dyn Connector>,
    opts: &LoadOptions,
    mut info: RunInfo,
) -> anyhow::Result<Report> {
    connector.prepare().await?;
    let threads = opts.threads.max(1);
    let batch = opts.batch.clamp(1, connector.max_batch().max(1)) as u64;
    let mut drivers = Vec::with_capacity(threads);
    for _ in 0..threads {
        drivers.push(connector.connect().await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let bar = opts.progress.then(|| {
        // The bar's length is a guess: the load ends when the records are in.
        progress::show(info.label.clone(), Duration::from_secs(60), live.clone())
    });
    let mut workers = Vec::with_capacity(threads);
    for (w, driver) in drivers.into_iter().enumerate() {
        let (next, live, opts) = (next.clone(), live.clone(), opts.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(1000 + w as u64));
            let mut stats = Stats::default();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= opts.records {
                    break;
                }
                let items: Vec<(String, String)> = (first..(first + batch).min(opts.records))
                    .map(|n| {
                        (
                            key_of(n),
                            record(&mut rng, opts.field_count, opts.field_length),
                        )
                    })
                    .collect();
                let begin = Instant::now();
                let outcome = driver.insert_batch(&items).await;
                live.count(outcome.is_err());
                stats.record(OpKind::Insert, begin.elapsed(), outcome.map_err(|e| e.code));
            }
            stats
        }));
    }
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(&w.await?);
    }
    if let Some(bar) = bar {
        progress::finish(bar);
    }
    info.workload = "load".into();
    info.records = opts.records;
    Ok(Report::new(info, &stats, start.elapsed().as_secs_f64()))
}

/// Parses a duration such as `30s`, `2m`, `500ms` or `45` (seconds), for `--duration`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30s, 2m or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: the unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{s:?}: a duration must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
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

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("").is_err());
    }
}
