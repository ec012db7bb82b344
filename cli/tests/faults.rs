//! A short fault-injection run (the `aerolith-loadtest faults` tool, fixed seed): a two-DC
//! cluster of `aerolith` processes takes writes, overwrites, deletes and session reads
//! through both gateways while a storage node, a replicator and a gateway are SIGKILLed and
//! restarted, the replicator link is cut and a node's clock is skewed. Afterwards nothing
//! acknowledged may be lost, no session read may have gone backwards, every `all` write
//! must have been visible in the other DC once acknowledged, and the DCs converge.

use std::time::Duration;

use aerolith_loadtest::faults::{self, FaultOptions};

/// One cluster at a time: they share two cores.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_nothing_and_converge() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let summary = faults::run(FaultOptions {
        dir: dir.path().to_path_buf(),
        aerolith: env!("CARGO_BIN_EXE_aerolith").into(),
        seed: 7,
        duration: Duration::from_secs(45),
        quiet: Duration::from_secs(2),
        hold: Duration::from_secs(4),
        workers: 4,
        nodes_per_dc: 2,
        converge_timeout: Duration::from_secs(90),
    })
    .await
    .expect("the fault run completes");
    println!("{}", summary.table());
    let kinds: std::collections::BTreeSet<String> = summary
        .faults
        .iter()
        .map(|f| format!("{:?}", f.kind))
        .collect();
    assert_eq!(
        kinds.len(),
        5,
        "every kind of fault was injected: {kinds:?}"
    );
    assert!(
        summary.acknowledged > 100,
        "the workload made progress: {summary:?}"
    );
    assert!(
        summary.session_reads > 100,
        "session reads were checked: {summary:?}"
    );
    assert_eq!(summary.lost, 0, "{:?}", summary.problems);
    assert_eq!(summary.resurrected, 0, "{:?}", summary.problems);
    assert_eq!(summary.stale_session_reads, 0, "{:?}", summary.problems);
    assert!(
        summary.all_writes_checked > 10,
        "`all` writes were checked: {summary:?}"
    );
    assert_eq!(summary.all_writes_missing, 0, "{:?}", summary.problems);
    assert!(summary.converged, "the DCs converged");
    assert_eq!(
        summary.index_mismatches,
        Some(0),
        "the indexes defined during the faults agree with their documents"
    );
}

/// Every fault class of issue 20 (`aerolith-loadtest faults --class all`, fixed seed), each
/// on its own cluster: nothing lost, no delete resurrected, no collection split between DCs,
/// no stale session read or unconfirmed `all` write, and every class converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_class_loses_nothing_and_converges() {
    use aerolith_loadtest::faults::classes::{self, ClassOptions};
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ClassOptions {
        dir: dir.path().to_path_buf(),
        aerolith: env!("CARGO_BIN_EXE_aerolith").into(),
        seed: 7,
        duration: Duration::from_secs(15),
        quiet: Duration::from_secs(2),
        hold: Duration::from_secs(3),
        workers: 4,
        converge_timeout: Duration::from_secs(90),
    };
    let reports = classes::run_all(&classes::ALL, &opts)
        .await
        .expect("the classes run");
    println!("{}", classes::table(&reports));
    assert_eq!(reports.len(), classes::ALL.len());
    for r in &reports {
        assert!(!r.faults.is_empty(), "{:?}: no fault injected", r.class);
        assert!(r.acknowledged > 20, "{:?} made progress: {r:?}", r.class);
        assert!(r.passed(), "{:?}: {:?}", r.class, r.problems);
    }
}
