//! The load-test harness against a dev cluster, over the wire: a few seconds of every YCSB
//! workload over REST, and of the insert, read, update and scan paths over gRPC, WebSocket
//! and GraphQL. Every operation must succeed; the figures themselves are not asserted.

use std::sync::Arc;
use std::time::Duration;

use aerolith_loadtest::driver::{self, Connector, Protocol};
use aerolith_loadtest::load::{self, LoadOptions};
use aerolith_loadtest::report::{Report, RunInfo};
use aerolith_loadtest::run::{self, RunOptions};
use aerolith_loadtest::ycsb::{Spec, Workload};

const RECORDS: u64 = 300;

fn info(protocol: Protocol, target: &str) -> RunInfo {
    RunInfo {
        label: format!("smoke-{}", protocol.name()),
        protocol: protocol.name().into(),
        target: target.into(),
        workload: String::new(),
        records: RECORDS,
        threads: 4,
        rate: None,
        field_count: 4,
        field_length: 50,
    }
}

async fn load_records(connector: Arc<dyn Connector>, protocol: Protocol, target: &str) {
    let report = load::load(
        connector,
        &LoadOptions {
            records: RECORDS,
            threads: 4,
            batch: 100,
            field_count: 4,
            field_length: 50,
            seed: 1,
            progress: false,
        },
        info(protocol, target),
    )
    .await
    .expect("load runs");
    print!("{}", report.table());
    assert_eq!(report.errors, 0, "load over {protocol:?}");
    assert!(report.ok > 0);
}

async fn run_workload(
    connector: Arc<dyn Connector>,
    protocol: Protocol,
    target: &str,
    workload: Workload,
    rate: Option<f64>,
) -> Report {
    let spec = Spec::core(workload, 4, 50);
    let report = run::run(
        connector,
        &RunOptions {
            spec: spec.clone(),
            records: RECORDS,
            duration: Duration::from_millis(1500),
            threads: 4,
            rate,
            seed: 1,
            progress: false,
        },
        RunInfo {
            workload: workload.letter().into(),
            ..info(protocol, target)
        },
    )
    .await
    .expect("run completes");
    print!("{}", report.table());
    assert_eq!(report.errors, 0, "{protocol:?} workload {workload:?}");
    // Every kind of the mix ran (B's 5% updates and D/E's 5% inserts included).
    for (kind, _) in &spec.mix {
        let op = report
            .op(*kind)
            .unwrap_or_else(|| panic!("{protocol:?} {workload:?}: no {kind:?} ran"));
        assert!(op.ok > 0, "{protocol:?} {workload:?} {kind:?}");
        assert!(op.p50_ms > 0.0 && op.max_ms >= op.p99_ms);
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_over_rest_and_every_driver_works() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let c = crate::support::start(dir.path(), 3).await;
    let rest_url = c.base.clone();
    let grpc_url = format!("http://{}", c.grpc_addr);

    let rest = driver::connector(Protocol::Rest, &rest_url, "usertable");
    load_records(rest.clone(), Protocol::Rest, &rest_url).await;
    for w in Workload::ALL {
        run_workload(rest.clone(), Protocol::Rest, &rest_url, w, None).await;
    }
    // Open loop: every due operation is sent and succeeds.
    let open = run_workload(
        rest.clone(),
        Protocol::Rest,
        &rest_url,
        Workload::B,
        Some(200.0),
    )
    .await;
    assert!(
        open.ok >= 250,
        "an open loop at 200/s for 1.5 s sends ~300: {}",
        open.ok
    );

    // Each other protocol loads its own collection, then reads, updates, scans and inserts.
    for (protocol, url, collection) in [
        (Protocol::Grpc, &grpc_url, "ycsb_grpc"),
        (Protocol::Ws, &rest_url, "ycsb_ws"),
        (Protocol::Graphql, &rest_url, "ycsb_graphql"),
    ] {
        let connector = driver::connector(protocol, url, collection);
        load_records(connector.clone(), protocol, url).await;
        for w in [Workload::A, Workload::E] {
            run_workload(connector.clone(), protocol, url, w, None).await;
        }
    }

    // The records the drivers wrote are real documents: a REST read of a loaded key.
    let key = aerolith_loadtest::ycsb::keyspace::key_of(7);
    for collection in ["usertable", "ycsb_grpc", "ycsb_ws", "ycsb_graphql"] {
        let got = c
            .get(&format!("/v1/collections/{collection}/docs/{key}"))
            .await;
        assert_eq!(got.status, 200, "{collection}");
        assert_eq!(got.body["data"]["field3"].as_str().map(str::len), Some(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_record_is_counted_as_not_found() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let c = crate::support::start(dir.path(), 1).await;
    // Nothing loaded: every read of workload C misses.
    let rest = driver::connector(Protocol::Rest, &c.base, "empty");
    let report = run::run(
        rest,
        &RunOptions {
            spec: Spec::core(Workload::C, 4, 50),
            records: RECORDS,
            duration: Duration::from_millis(300),
            threads: 2,
            rate: None,
            seed: 1,
            progress: false,
        },
        info(Protocol::Rest, &c.base),
    )
    .await
    .expect("run completes");
    assert_eq!(report.ok, 0);
    assert!(report.errors > 0);
    let read = report
        .op(aerolith_loadtest::ycsb::OpKind::Read)
        .expect("reads ran");
    assert_eq!(read.errors.keys().collect::<Vec<_>>(), ["not_found"]);
}
