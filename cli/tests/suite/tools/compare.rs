//! A short comparison end to end (`aerolith-loadtest compare`'s code): `aerolith dev`, the
//! HTTP ceiling, the storage ceiling and etcd are started as processes, loaded and driven
//! with the same workload, and every run reports operations without errors. etcd comes from
//! Debian's etcd-server package (`scripts/ensure-etcd.sh`, run by `scripts/test.sh`).

use std::time::Duration;

use aerolith_loadtest::compare::{self, CompareOptions, Target, verdict};
use aerolith_loadtest::ycsb::Workload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_comparison_measures_every_target() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = CompareOptions {
        workloads: vec![Workload::B],
        records: 200,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(300),
        threads: 4,
        field_count: 4,
        field_length: 50,
        seed: 1,
        dcs: 1,
        port_base: 21180,
        open_loop: true,
        aerolith: env!("CARGO_BIN_EXE_aerolith").into(),
        ceiling: env!("CARGO_BIN_EXE_aerolith-ceiling").into(),
        etcd: "etcd".into(),
        dir: dir.path().to_path_buf(),
        progress: false,
    };
    let c = compare::compare(&opts).await.expect("the comparison runs");
    for target in [
        Target::AerolithRest,
        Target::AerolithGrpc,
        Target::HttpCeiling,
        Target::StorageCeiling,
        Target::Etcd,
    ] {
        let r = c
            .find(target, Workload::B, false)
            .unwrap_or_else(|| panic!("{target:?} measured"));
        assert!(r.ok > 0, "{target:?}");
        assert_eq!(r.errors, 0, "{target:?}: {}", r.table());
    }
    for target in [Target::AerolithRest, Target::AerolithGrpc] {
        let open = c.find(target, Workload::B, true).expect("open loop ran");
        assert_eq!(open.errors, 0, "{}", open.table());
    }
    let loaded: Vec<Target> = c.loads.iter().map(|l| l.0).collect();
    assert_eq!(
        loaded,
        [Target::AerolithRest, Target::StorageCeiling, Target::Etcd]
    );
    assert!(c.loads.iter().all(|l| l.1.errors == 0));
    // The verdict covers the A/B targets against etcd and the open-loop p99s.
    let checks = verdict::checks(&c);
    assert!(checks.iter().any(|k| k.target.contains("2x etcd")));
    assert_eq!(
        checks
            .iter()
            .filter(|k| k.target.contains("open loop"))
            .count(),
        2
    );
    let svg = verdict::plot(&c, Workload::B);
    assert!(svg.contains("etcd read") && svg.contains("storage-ceiling update"));
}
