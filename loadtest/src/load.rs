//! The load phase: records 0..N inserted in batches, through bulk calls where the protocol
//! has them, by T workers each with its own connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::driver::Connector;
use crate::progress::{self, Live};
use crate::report::{Report, RunInfo};
use crate::stats::Stats;
use crate::ycsb::OpKind;
use crate::ycsb::keyspace::key_of;
use crate::ycsb::record::record;

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
