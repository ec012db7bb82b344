//! What a comparison says: a table per workload with the ratios to the ceilings and to
//! etcd, the targets as met or missed, and a latency plot per workload.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Comparison, Target};
use crate::plot::{self, Series};
use crate::ycsb::Workload;

/// One target of the issue, checked against the measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What the target asks.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
}

/// `a / b`, or 0 when b is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The comparison's tables, one per workload.
pub fn tables(c: &Comparison, workloads: &[Workload]) -> String {
    let mut out = format!("Comparison: {}\n", c.settings);
    for &w in workloads {
        let _ = writeln!(out, "\nworkload {} ({}):", w.letter(), w.title());
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}",
            "target", "ops/s", "p50 ms", "p99 ms", "errors", "/http", "/storage", "/etcd"
        );
        let base = |t: Target| c.find(t, w, false).map(|r| r.ops_per_s).unwrap_or(0.0);
        let (http, storage, etcd) = (
            base(Target::HttpCeiling),
            base(Target::StorageCeiling),
            base(Target::Etcd),
        );
        for m in c.runs.iter().filter(|m| m.workload == w) {
            let r = &m.report;
            let p50 = r
                .operations
                .iter()
                .max_by_key(|o| o.ok)
                .map(|o| o.p50_ms)
                .unwrap_or(0.0);
            let name = if m.open_loop {
                format!(
                    "{} open@{:.0}",
                    m.target.label(),
                    r.info.rate.unwrap_or(0.0)
                )
            } else {
                m.target.label().to_string()
            };
            let _ = writeln!(
                out,
                "{:<22} {:>10.0} {:>9.3} {:>9.3} {:>8} {:>9.2} {:>9.2} {:>8.2}",
                name,
                r.ops_per_s,
                p50,
                r.worst_p99_ms(),
                r.errors,
                ratio(r.ops_per_s, http),
                ratio(r.ops_per_s, storage),
                ratio(r.ops_per_s, etcd)
            );
        }
    }
    out.push_str("\n(p50 is the most frequent operation kind's; p99 the worst kind's.)\n");
    out
}

/// The targets, each met or missed.
pub fn checks(c: &Comparison) -> Vec<Check> {
    let mut checks = Vec::new();
    let closed = |t: Target, w: Workload| c.find(t, w, false);
    if let (Some(rest), Some(http)) = (
        closed(Target::AerolithRest, Workload::C),
        closed(Target::HttpCeiling, Workload::C),
    ) {
        let r = ratio(rest.ops_per_s, http.ops_per_s);
        checks.push(Check {
            target: "REST reads (workload C) at least 35% of the bare-axum ceiling".into(),
            measured: format!(
                "{:.0} / {:.0} ops/s = {:.0}%",
                rest.ops_per_s,
                http.ops_per_s,
                r * 100.0
            ),
            met: r >= 0.35,
        });
    }
    if let (Some(rest), Some(grpc)) = (
        closed(Target::AerolithRest, Workload::C),
        closed(Target::AerolithGrpc, Workload::C),
    ) {
        checks.push(Check {
            target: "gRPC reads (workload C) at least as fast as REST".into(),
            measured: format!("{:.0} vs {:.0} ops/s", grpc.ops_per_s, rest.ops_per_s),
            met: grpc.ops_per_s >= rest.ops_per_s,
        });
    }
    for w in [Workload::A, Workload::B] {
        let Some(etcd) = closed(Target::Etcd, w) else {
            continue;
        };
        for t in [Target::AerolithRest, Target::AerolithGrpc] {
            if let Some(a) = closed(t, w) {
                let r = ratio(a.ops_per_s, etcd.ops_per_s);
                checks.push(Check {
                    target: format!(
                        "workload {}: {} at least 2x etcd's throughput, at a lower p99",
                        w.letter(),
                        t.label()
                    ),
                    measured: format!(
                        "{:.2}x ({:.0} vs {:.0} ops/s), p99 {:.2} vs {:.2} ms",
                        r,
                        a.ops_per_s,
                        etcd.ops_per_s,
                        a.worst_p99_ms(),
                        etcd.worst_p99_ms()
                    ),
                    met: r >= 2.0 && a.worst_p99_ms() < etcd.worst_p99_ms(),
                });
            }
        }
    }
    for m in c.runs.iter().filter(|m| m.open_loop) {
        let p99 = m.report.worst_p99_ms();
        checks.push(Check {
            target: format!(
                "workload {}: {} p99 under 10 ms at half of saturation (open loop)",
                m.workload.letter(),
                m.target.label()
            ),
            measured: format!(
                "p99 {p99:.2} ms at {:.0} ops/s offered, {:.0} done, {} errors",
                m.report.info.rate.unwrap_or(0.0),
                m.report.ops_per_s,
                m.report.errors
            ),
            met: p99 < 10.0 && m.report.errors == 0,
        });
    }
    checks
}

/// The targets as lines of text.
pub fn checks_text(checks: &[Check]) -> String {
    let mut out = String::from("\nTargets:\n");
    for c in checks {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if c.met { "met" } else { "MISSED" },
            c.target,
            c.measured
        );
    }
    out
}

/// The latency plot of one workload: every closed-loop target's operation kinds.
pub fn plot(c: &Comparison, w: Workload) -> String {
    let series: Vec<Series<'_>> = c
        .runs
        .iter()
        .filter(|m| m.workload == w && !m.open_loop)
        .flat_map(|m| {
            m.report.operations.iter().map(move |o| Series {
                name: format!("{} {}", m.target.label(), o.op.name()),
                curve: &o.curve,
            })
        })
        .collect();
    plot::svg(
        &format!(
            "workload {} ({}): latency by percentile, closed loop",
            w.letter(),
            w.title()
        ),
        &series,
    )
}
