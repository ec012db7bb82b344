//! What a comparison says: a table per workload of each target's medians over the rounds,
//! with the ratios to the ceilings and the peers, the client check against wrk, the issue's
//! targets as met or missed, and a latency plot per workload.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Comparison, Measured, Summary, Target, median};
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

/// Every (target, workload, loop) that ran, as medians: closed loops in table order, then
/// open loops.
pub fn summaries(c: &Comparison) -> Vec<Summary> {
    let mut out = Vec::new();
    for w in c.workloads() {
        for open in [false, true] {
            out.extend(Target::ALL.iter().filter_map(|&t| c.find(t, w, open)));
        }
    }
    out
}

/// The comparison's tables, one per workload, and the client check.
pub fn tables(c: &Comparison, workloads: &[Workload]) -> String {
    let mut out = format!("Comparison: {}\n", c.settings);
    let all = summaries(c);
    for &w in workloads {
        let _ = writeln!(out, "\nworkload {} ({}):", w.letter(), w.title());
        let _ = writeln!(
            out,
            "{:<25} {:>9} {:>8} {:>8} {:>7} {:>9} {:>7} {:>8} {:>6} {:>6}",
            "target",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "cpu µs/op",
            "/http",
            "/storage",
            "/etcd",
            "/pg"
        );
        let base = |t: Target| c.find(t, w, false).map(|s| s.ops_per_s).unwrap_or(0.0);
        let bases = [
            base(Target::HttpCeiling),
            base(Target::StorageCeiling),
            base(Target::Etcd),
            base(Target::Postgres),
        ];
        for s in all.iter().filter(|s| s.workload == w) {
            let name = if s.open_loop {
                format!("{} open@{:.0}", s.target.label(), s.rate.unwrap_or(0.0))
            } else {
                s.target.label().to_string()
            };
            let cpu = s
                .cpu_us_per_op
                .map(|us| format!("{us:.1}"))
                .unwrap_or_else(|| "-".into());
            // Open loops run at a chosen rate: their throughput is not a capacity.
            let ratios: Vec<String> = bases
                .iter()
                .map(|&b| {
                    if s.open_loop {
                        "-".into()
                    } else {
                        format!("{:.2}", ratio(s.ops_per_s, b))
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<25} {:>9.0} {:>8.3} {:>8.3} {:>7} {:>9} {:>7} {:>8} {:>6} {:>6}",
                name,
                s.ops_per_s,
                s.p50_ms,
                s.p99_ms,
                s.errors,
                cpu,
                ratios[0],
                ratios[1],
                ratios[2],
                ratios[3]
            );
        }
    }
    let _ = writeln!(
        out,
        "\n(Medians of {} rounds. p50 is the most frequent operation kind's, p99 the worst \
         kind's; errors are summed over the rounds; cpu is the server's, from /proc, per \
         operation; open@R rows ran open loop at R ops/s.)",
        c.rounds
    );
    out.push_str(&client_check(c));
    out
}

/// The client check: the harness's reads on the HTTP ceiling against wrk's.
fn client_check(c: &Comparison) -> String {
    if let Some(why) = &c.wrk_skipped {
        return format!("\nClient check: skipped ({why}).\n");
    }
    if c.wrk.is_empty() {
        return String::new();
    }
    let wrk = median(c.wrk.clone());
    match c.find(Target::HttpCeiling, Workload::C, false) {
        Some(client) => format!(
            "\nClient check: this harness reads {:.0} ops/s from the HTTP ceiling (workload C), \
             wrk {wrk:.0} requests/s with the same connections and request: {:.2} of wrk.\n",
            client.ops_per_s,
            ratio(client.ops_per_s, wrk)
        ),
        None => format!(
            "\nClient check: wrk {wrk:.0} requests/s on the HTTP ceiling; run workload C to \
             compare this harness with it.\n"
        ),
    }
}

/// A peer's name in the targets' wording.
fn peer_name(t: Target) -> &'static str {
    match t {
        Target::Postgres => "PostgreSQL",
        other => other.label(),
    }
}

/// The targets, each met or missed, on the medians over the rounds.
pub fn checks(c: &Comparison) -> Vec<Check> {
    let mut checks = Vec::new();
    let closed = |t: Target, w: Workload| c.find(t, w, false);
    let open = |t: Target, w: Workload| c.find(t, w, true);
    if let (Some(rest), Some(http)) = (
        closed(Target::AerolithRest, Workload::C),
        closed(Target::HttpCeiling, Workload::C),
    ) {
        let r = ratio(rest.ops_per_s, http.ops_per_s);
        checks.push(Check {
            target: "REST reads (workload C) at least 40% of the HTTP ceiling".into(),
            measured: format!(
                "{:.0} / {:.0} ops/s = {:.0}%",
                rest.ops_per_s,
                http.ops_per_s,
                r * 100.0
            ),
            met: r >= 0.40,
        });
    }
    for w in [Workload::A, Workload::B, Workload::C] {
        if let (Some(rest), Some(grpc)) = (
            closed(Target::AerolithRest, w),
            closed(Target::AerolithGrpc, w),
        ) {
            checks.push(Check {
                target: format!("workload {}: gRPC at least as fast as REST", w.letter()),
                measured: format!("{:.0} vs {:.0} ops/s", grpc.ops_per_s, rest.ops_per_s),
                met: grpc.ops_per_s >= rest.ops_per_s,
            });
        }
    }
    // Against the peers, for both protocols: (peer, workload, at least this many times its
    // throughput, and at a lower p99).
    let peer_targets = [
        (Target::Etcd, Workload::A, 2.5, true),
        (Target::Etcd, Workload::B, 2.5, true),
        (Target::Etcd, Workload::C, 2.5, true),
        (Target::Postgres, Workload::A, 1.0, false),
        (Target::Postgres, Workload::C, 0.5, false),
    ];
    for (peer, w, at_least, lower_p99) in peer_targets {
        let Some(p) = closed(peer, w) else {
            continue;
        };
        for t in [Target::AerolithRest, Target::AerolithGrpc] {
            let Some(a) = closed(t, w) else {
                continue;
            };
            let r = ratio(a.ops_per_s, p.ops_per_s);
            let mut target = format!(
                "workload {}: {} at least {at_least:.1}x {}'s throughput",
                w.letter(),
                t.label(),
                peer_name(peer)
            );
            let mut measured = format!("{r:.2}x ({:.0} vs {:.0} ops/s)", a.ops_per_s, p.ops_per_s);
            if lower_p99 {
                target.push_str(", at a lower p99 (closed loop)");
                let _ = write!(measured, ", p99 {:.2} vs {:.2} ms", a.p99_ms, p.p99_ms);
            }
            checks.push(Check {
                target,
                measured,
                met: r >= at_least && (!lower_p99 || a.p99_ms < p.p99_ms),
            });
        }
    }
    for w in [Workload::A, Workload::B, Workload::C] {
        if let (Some(a), Some(e)) = (open(Target::AerolithRest, w), open(Target::Etcd, w)) {
            checks.push(Check {
                target: format!(
                    "workload {}: aerolith-rest p99 below etcd's at the same rate (open loop)",
                    w.letter()
                ),
                measured: format!(
                    "p99 {:.2} vs {:.2} ms at {:.0} ops/s offered, {} and {} errors",
                    a.p99_ms,
                    e.p99_ms,
                    a.rate.unwrap_or(0.0),
                    a.errors,
                    e.errors
                ),
                met: a.p99_ms < e.p99_ms && a.errors == 0,
            });
        }
    }
    for w in c.workloads() {
        for t in [Target::AerolithRest, Target::AerolithGrpc] {
            let Some(s) = open(t, w) else {
                continue;
            };
            checks.push(Check {
                target: format!(
                    "workload {}: {} p99 under 5 ms at half of saturation (open loop)",
                    w.letter(),
                    t.label()
                ),
                measured: format!(
                    "p99 {:.2} ms at {:.0} ops/s offered, {:.0} done, {} errors",
                    s.p99_ms,
                    s.rate.unwrap_or(0.0),
                    s.ops_per_s,
                    s.errors
                ),
                met: s.p99_ms < 5.0 && s.errors == 0,
            });
        }
    }
    if let Some(s) = closed(Target::AerolithRest, Workload::C)
        && let Some(us) = s.cpu_us_per_op
    {
        checks.push(Check {
            target: "server CPU per read under 60 µs (aerolith-rest, workload C)".into(),
            measured: format!("{us:.1} µs per read"),
            met: us < 60.0,
        });
    }
    checks
}

/// The targets as lines of text.
pub fn checks_text(checks: &[Check]) -> String {
    let mut out = String::from("\nTargets (medians of the rounds):\n");
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

/// The run of `target` on `w` (closed loop) whose throughput is nearest its median: the
/// round a plot shows.
fn median_run(c: &Comparison, target: Target, w: Workload) -> Option<&Measured> {
    let mid = c.find(target, w, false)?.ops_per_s;
    c.runs_of(target, w, false).min_by(|a, b| {
        (a.report.ops_per_s - mid)
            .abs()
            .total_cmp(&(b.report.ops_per_s - mid).abs())
    })
}

/// The latency plot of one workload: every closed-loop target's operation kinds, each from
/// its median round.
pub fn plot(c: &Comparison, w: Workload) -> String {
    let series: Vec<Series<'_>> = Target::ALL
        .iter()
        .filter_map(|&t| median_run(c, t, w))
        .flat_map(|m| {
            m.report.operations.iter().map(move |o| Series {
                name: format!("{} {}", m.target.label(), o.op.name()),
                curve: &o.curve,
            })
        })
        .collect();
    plot::svg(
        &format!(
            "workload {} ({}): latency by percentile, closed loop, median rounds",
            w.letter(),
            w.title()
        ),
        &series,
    )
}
