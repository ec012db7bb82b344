//! Latency recording: one HDR histogram per operation kind (microseconds, 3 significant
//! digits, up to 10 minutes), plus failures counted by error code.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::ycsb::OpKind;

/// Latencies of the successful operations of one kind, and failures by code.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Successful operations' latencies in microseconds.
    pub hist: Histogram<u64>,
    /// Failed operations by error code.
    pub errors: BTreeMap<String, u64>,
}

impl Default for OpStats {
    fn default() -> OpStats {
        OpStats {
            hist: new_histogram(),
            errors: BTreeMap::new(),
        }
    }
}

/// A histogram of microseconds from 1 µs to 10 minutes with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// Every kind's statistics of one worker, or of a whole run once merged.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// By operation kind.
    pub ops: BTreeMap<OpKind, OpStats>,
}

impl Stats {
    /// Records one operation's outcome.
    pub fn record(&mut self, kind: OpKind, latency: Duration, outcome: Result<(), String>) {
        let s = self.ops.entry(kind).or_default();
        match outcome {
            Ok(()) => s.hist.saturating_record(latency.as_micros().max(1) as u64),
            Err(code) => *s.errors.entry(code).or_default() += 1,
        }
    }

    /// Adds another worker's statistics.
    pub fn merge(&mut self, other: &Stats) {
        for (kind, o) in &other.ops {
            let s = self.ops.entry(*kind).or_default();
            // Same bounds on both sides, so adding cannot fail.
            let _ = s.hist.add(&o.hist);
            for (code, n) in &o.errors {
                *s.errors.entry(code.clone()).or_default() += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_count_everything() {
        let mut a = Stats::default();
        a.record(OpKind::Read, Duration::from_micros(100), Ok(()));
        a.record(
            OpKind::Read,
            Duration::from_micros(5),
            Err("not_found".into()),
        );
        let mut b = Stats::default();
        b.record(OpKind::Read, Duration::from_millis(3), Ok(()));
        b.record(OpKind::Update, Duration::from_secs(2), Ok(()));
        a.merge(&b);
        let read = &a.ops[&OpKind::Read];
        assert_eq!(read.hist.len(), 2);
        assert_eq!(read.errors["not_found"], 1);
        assert!(read.hist.max() >= 2_990);
        assert_eq!(a.ops[&OpKind::Update].hist.len(), 1);
    }
}
