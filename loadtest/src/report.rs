//! A run's results: per operation kind, throughput and latency percentiles and failures by
//! code, as a table for people and as JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::{OpStats, Stats};
use crate::ycsb::OpKind;

/// The percentiles a latency curve is drawn through (the SVG plot and the JSON report).
pub const CURVE_PERCENTILES: [f64; 16] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995,
    99.9999, 100.0,
];

/// One operation kind's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpSummary {
    /// The operation kind.
    pub op: OpKind,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations by error code.
    pub errors: BTreeMap<String, u64>,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Latency percentiles of successful operations, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// 99.9th percentile (ms).
    pub p999_ms: f64,
    /// Largest latency (ms).
    pub max_ms: f64,
    /// Mean latency (ms).
    pub mean_ms: f64,
    /// (percentile, ms) points of the latency curve.
    pub curve: Vec<(f64, f64)>,
}

impl OpSummary {
    fn of(op: OpKind, s: &OpStats, seconds: f64) -> OpSummary {
        let h = &s.hist;
        let ms = |us: u64| us as f64 / 1000.0;
        let at = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_percentile(p))
            }
        };
        OpSummary {
            op,
            ok: h.len(),
            errors: s.errors.clone(),
            ops_per_s: h.len() as f64 / seconds.max(1e-9),
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            p999_ms: at(99.9),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            curve: CURVE_PERCENTILES.iter().map(|&p| (p, at(p))).collect(),
        }
    }
}

/// What was run against what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// A label for tables (`aerolith-rest`, `etcd`, ...).
    pub label: String,
    /// The protocol driven.
    pub protocol: String,
    /// The server's address.
    pub target: String,
    /// The YCSB workload (`a`..`f`), or `load`.
    pub workload: String,
    /// Records loaded before the run.
    pub records: u64,
    /// Workers (connections).
    pub threads: usize,
    /// Open-loop target rate (ops/s); none for a closed loop.
    pub rate: Option<f64>,
    /// Fields per record and bytes per field.
    pub field_count: usize,
    /// Bytes per field.
    pub field_length: usize,
}

/// The results of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What ran.
    pub info: RunInfo,
    /// Seconds measured (the run's duration, plus the drain of an open loop that fell
    /// behind).
    pub seconds: f64,
    /// Successful operations per second, all kinds.
    pub ops_per_s: f64,
    /// Successful operations, all kinds.
    pub ok: u64,
    /// Failed operations, all kinds.
    pub errors: u64,
    /// Each kind that ran.
    pub operations: Vec<OpSummary>,
}

impl Report {
    /// The report of merged statistics over `seconds`.
    pub fn new(info: RunInfo, stats: &Stats, seconds: f64) -> Report {
        let operations: Vec<OpSummary> = stats
            .ops
            .iter()
            .map(|(k, s)| OpSummary::of(*k, s, seconds))
            .collect();
        let ok = operations.iter().map(|o| o.ok).sum();
        let errors = operations
            .iter()
            .flat_map(|o| o.errors.values())
            .sum::<u64>();
        Report {
            info,
            seconds,
            ops_per_s: ok as f64 / seconds.max(1e-9),
            ok,
            errors,
            operations,
        }
    }

    /// The results of one kind, if it ran.
    pub fn op(&self, kind: OpKind) -> Option<&OpSummary> {
        self.operations.iter().find(|o| o.op == kind)
    }

    /// The p99 over the kinds that ran: the worst kind's, which is what a client that
    /// does every kind sees at least.
    pub fn worst_p99_ms(&self) -> f64 {
        self.operations.iter().map(|o| o.p99_ms).fold(0.0, f64::max)
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let i = &self.info;
        let mut out = format!(
            "{} ({}) workload {} against {}: {} records, {} threads, {}\n",
            i.label,
            i.protocol,
            i.workload,
            i.target,
            i.records,
            i.threads,
            match i.rate {
                Some(r) => format!("open loop at {r:.0} ops/s"),
                None => "closed loop".to_string(),
            }
        );
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
            "op", "ok", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for o in &self.operations {
            let errors = if o.errors.is_empty() {
                "0".to_string()
            } else {
                o.errors
                    .iter()
                    .map(|(c, n)| format!("{c}={n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = writeln!(
                out,
                "{:<18} {:>10} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}  {errors}",
                o.op.name(),
                o.ok,
                o.ops_per_s,
                o.p50_ms,
                o.p90_ms,
                o.p99_ms,
                o.p999_ms,
                o.max_ms
            );
        }
        let _ = writeln!(
            out,
            "{:<18} {:>10} {:>10.0}  over {:.1} s, {} errors",
            "total", self.ok, self.ops_per_s, self.seconds, self.errors
        );
        out
    }
}
