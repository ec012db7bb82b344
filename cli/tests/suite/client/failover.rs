//! Failover between gateways, and a change feed (polled) and a change stream (WebSocket)
//! that survive a gateway restart, in a cluster of processes (two DCs of one storage node
//! each) where dc1's gateway is stopped and started again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aerolith_client::{CallOptions, Change, Client};
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_fail_over_and_a_feed_survives_a_restart() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let aerolith = std::path::Path::new(env!("CARGO_BIN_EXE_aerolith"));
    let mut cluster = ProcCluster::start(dir.path(), aerolith, 2, 1)
        .await
        .expect("the cluster starts");
    let gateway1 = cluster.of_role(Role::Gateway)[0];
    let (dc1, dc2) = (cluster.http[0].clone(), cluster.http[1].clone());

    let both = Client::builder()
        .endpoint(&dc1)
        .endpoint(&dc2)
        .build()
        .unwrap();
    let only_dc1 = Client::new(&dc1).unwrap();
    let docs = both.collection::<Value>("feed");
    let docs1 = only_dc1.collection::<Value>("feed");

    // The feed reads dc1's log, in small pages, in a task of its own.
    let mut feed = only_dc1
        .collection::<Value>("feed")
        .poll_changes(None)
        .page_size(3);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change<Value>>();
    let reader = tokio::spawn(async move {
        loop {
            match feed.next().await {
                Ok(c) => {
                    if tx.send(c).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("the feed gave up: {e}"),
            }
        }
    });
    // The stream pushes dc1's changes from now on, in a task of its own too.
    // It knows both gateways: while dc1's is down, dc2's refuses its dc1 token (another
    // DC's), so it keeps trying both, pausing between rounds, until dc1's is back.
    let mut stream = both.collection::<Value>("feed").changes();
    stream.start().await.expect("the stream starts");
    let (stx, mut srx) = tokio::sync::mpsc::unbounded_channel::<Change<Value>>();
    let reconnects = Arc::new(AtomicU64::new(0));
    let counted = reconnects.clone();
    let pusher = tokio::spawn(async move {
        loop {
            match stream.next().await {
                Ok(c) => {
                    counted.store(stream.reconnects(), Ordering::Relaxed);
                    if stx.send(c).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("the stream gave up: {e}"),
            }
        }
    });

    // Before: states 0..5 of doc x and docs a0..a4, through dc1.
    let mut expected: Vec<(String, i64)> = Vec::new();
    for n in 0..5 {
        docs1.put("x", &json!({"n": n})).await.unwrap();
        expected.push(("x".into(), n));
        docs1.put(&format!("a{n}"), &json!({"n": n})).await.unwrap();
        expected.push((format!("a{n}"), n));
    }
    assert_eq!(docs.get("a4").await.unwrap().data, json!({"n": 4}));
    assert_eq!(both.endpoints().preferred(), 0);

    // dc1's gateway stops: the client moves to dc2's for reads and writes, the feed waits.
    cluster
        .terminate(gateway1, Duration::from_secs(20))
        .await
        .unwrap();
    for n in 0..5 {
        docs.put(&format!("b{n}"), &json!({"n": n})).await.unwrap();
        expected.push((format!("b{n}"), n));
    }
    assert_eq!(both.endpoints().preferred(), 1, "dc2's gateway took over");
    assert_eq!(docs.get("b4").await.unwrap().data, json!({"n": 4}));
    let quick = CallOptions::default().timeout(Duration::from_secs(1));
    let err = docs1.get_with("x", &quick).await.unwrap_err();
    assert!(
        matches!(err, aerolith_client::Error::Connect { .. }),
        "a client of dc1 alone cannot reach it: {err}"
    );

    // dc1's gateway is back: more states of x through it, and the feed catches up.
    cluster.launch(gateway1).await.unwrap();
    for n in 5..10 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = docs1.put("x", &json!({"n": n})).await {
            assert!(Instant::now() < deadline, "dc1's gateway is not back: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        expected.push(("x".into(), n));
    }

    check_order(&delivered(&expected, "the feed", &mut rx).await);
    check_order(&delivered(&expected, "the stream", &mut srx).await);
    assert!(
        reconnects.load(Ordering::Relaxed) >= 1,
        "the stream reconnected after the restart"
    );
    reader.abort();
    pusher.abort();
}

/// The states each document went through, read from `recv` until every `expected` one
/// came (at least once).
async fn delivered(
    expected: &[(String, i64)],
    what: &str,
    rx: &mut UnboundedReceiver<Change<Value>>,
) -> BTreeMap<String, Vec<i64>> {
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = |seen: &BTreeMap<String, Vec<i64>>| {
        expected
            .iter()
            .filter(|(id, n)| !seen.get(id).is_some_and(|v| v.contains(n)))
            .cloned()
            .collect::<Vec<_>>()
    };
    while !missing(&seen).is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let change = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: changes never delivered: {:?}", missing(&seen)))
            .expect("it runs");
        let n = change.data.as_ref().and_then(|d| d["n"].as_i64()).unwrap();
        seen.entry(change.id).or_default().push(n);
    }
    seen
}

/// Every document's states came in the order they were written.
fn check_order(seen: &BTreeMap<String, Vec<i64>>) {
    for (id, states) in seen {
        assert!(
            states.windows(2).all(|w| w[0] <= w[1]),
            "{id}'s changes out of order: {states:?}"
        );
    }
}
