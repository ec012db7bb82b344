//! A short comparison end to end (`aerolith-loadtest compare`'s code): `aerolith dev`, the
//! HTTP ceiling, the storage ceiling, etcd and PostgreSQL are started as processes, loaded
//! and driven with the same workloads over two interleaved rounds, and every run reports
//! operations without errors. etcd and PostgreSQL come from Debian's packages
//! (`scripts/ensure-etcd.sh` and `scripts/ensure-postgres.sh`, run by `scripts/test.sh`);
//! wrk is used only if it happens to be installed.

use std::time::Duration;

use aerolith_loadtest::compare::{self, CompareOptions, Target, verdict};
use aerolith_loadtest::ycsb::Workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_comparison_measures_every_target() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = CompareOptions {
        workloads: vec![Workload::B, Workload::C],
        records: 200,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(300),
        threads: 4,
        field_count: 4,
        field_length: 50,
        seed: 1,
        dcs: 1,
        port_base: 21180,
        rounds: 2,
        open_loop: true,
        aerolith: env!("CARGO_BIN_EXE_aerolith").into(),
        ceiling: env!("CARGO_BIN_EXE_aerolith-ceiling").into(),
        etcd: "etcd".into(),
        postgres_bin_dir: compare::postgres::default_bin_dir(),
        wrk: Some("wrk".into()),
        dir: dir.path().to_path_buf(),
        progress: false,
    };
    let c = compare::compare(&opts).await.expect("the comparison runs");
    assert_eq!(c.rounds, 2);
    for w in [Workload::B, Workload::C] {
        for target in Target::ALL {
            let runs: Vec<_> = c.runs_of(target, w, false).collect();
            assert_eq!(runs.len(), 2, "{target:?} {w:?}: one run per round");
            for m in &runs {
                assert!(m.report.ok > 0, "{target:?}: {}", m.report.table());
                assert_eq!(m.report.errors, 0, "{target:?}: {}", m.report.table());
            }
            let s = c.find(target, w, false).expect("medians");
            assert_eq!((s.runs, s.errors), (2, 0));
            assert!(s.ops_per_s > 0.0 && s.p99_ms > 0.0, "{s:?}");
            // Every server's CPU comes from /proc; the storage ceiling has no server.
            assert_eq!(
                s.cpu_us_per_op.is_some(),
                target != Target::StorageCeiling,
                "{s:?}"
            );
        }
        // Open loop: AerolithDB at its own half rates, the peers at REST's.
        let rest = c
            .find(Target::AerolithRest, w, true)
            .expect("open loop ran");
        for target in [Target::AerolithGrpc, Target::Etcd, Target::Postgres] {
            let open = c.find(target, w, true).expect("open loop ran");
            assert_eq!(open.errors, 0, "{open:?}");
            if target != Target::AerolithGrpc {
                assert_eq!(open.rate, rest.rate, "{target:?} at REST's rate");
            }
        }
    }
    // Each round's order is rotated: the first runs of the two rounds are different targets.
    let firsts: Vec<Target> = (0..2)
        .filter_map(|r| c.runs.iter().find(|m| m.round == r).map(|m| m.target))
        .collect();
    assert_eq!(firsts.len(), 2);
    assert_ne!(firsts[0], firsts[1]);
    let loaded: Vec<Target> = c.loads.iter().map(|l| l.0).collect();
    for target in [Target::AerolithRest, Target::Etcd, Target::Postgres] {
        assert_eq!(loaded.iter().filter(|&&t| t == target).count(), 1);
    }
    assert_eq!(
        loaded
            .iter()
            .filter(|&&t| t == Target::StorageCeiling)
            .count(),
        2,
        "the storage ceiling loads in each round"
    );
    assert!(c.loads.iter().all(|l| l.1.errors == 0));
    // The verdict: the peers' throughput and p99 checks, the open-loop p99s, the CPU.
    let checks = verdict::checks(&c);
    let count = |s: &str| checks.iter().filter(|k| k.target.contains(s)).count();
    assert_eq!(count("2.5x etcd"), 4);
    assert_eq!(count("below etcd's at the same rate"), 2);
    assert_eq!(count("PostgreSQL's throughput"), 2);
    assert_eq!(count("under 5 ms at half of saturation"), 4);
    assert_eq!(count("server CPU per read"), 1);
    let text = verdict::tables(&c, &opts.workloads);
    assert!(text.contains("postgres open@") && text.contains("Client check"));
    let svg = verdict::plot(&c, Workload::B);
    assert!(svg.contains("etcd read") && svg.contains("postgres update"));
    assert!(svg.contains("storage-ceiling update"));
}
