//! Indexed queries over the wire (issue 24): two DCs of three nodes, random documents written
//! in both DCs (concurrent versions of the same ids, deletes, `lww` and `siblings`
//! collections), then random filters and sorts answered page by page, first without
//! indexes and then with five of them, each time exactly as a brute-force evaluation of
//! API.md's rules over the converged documents answers; `count` agrees, and `explain` shows
//! the indexes in use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use super::query::{QueryCase, body, brute_force, query_case, run_paged};
use crate::support::{TestCluster, start_with};
use aerolith_cli::dev::DevOptions;

/// The indexes of every case: single fields both ways, a compound, a nested path and an
/// array field.
const INDEXES: [(&str, &[(&str, &str)]); 5] = [
    ("by_a", &[("a", "asc")]),
    ("by_b", &[("b", "desc")]),
    ("by_a_b", &[("a", "asc"), ("b", "asc")]),
    ("by_na", &[("n.a", "asc")]),
    ("by_tags", &[("tags", "asc")]),
];

/// Writes `docs` to one DC with bulk requests; deletes `gone`.
async fn write(
    c: &TestCluster,
    collection: &str,
    docs: &[(String, Map<String, Value>)],
    gone: &[String],
) {
    super::query::load(c, collection, docs).await;
    for id in gone {
        let r = c
            .delete(&format!("/v1/collections/{collection}/docs/{id}"), &[])
            .await;
        assert!(r.status == 204 || r.status == 404, "{:?}", r.body);
    }
}

/// Every document of a collection in one DC, by listing: (id, version, data).
async fn listing(c: &TestCluster, collection: &str) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = c
            .get(&format!(
                "/v1/collections/{collection}/docs?limit=1000{cursor}"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for d in r.body["documents"].as_array().cloned().unwrap_or_default() {
            out.push((
                d["id"].as_str().unwrap_or_default().to_owned(),
                d["version"].as_str().unwrap_or_default().to_owned(),
                d["data"].clone(),
            ));
        }
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

/// The documents both DCs hold once they agree (the replicators have shipped everything).
async fn converged(dcs: &[&TestCluster; 2], collection: &str) -> Vec<(String, Map<String, Value>)> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let a = listing(dcs[0], collection).await;
        let b = listing(dcs[1], collection).await;
        if a == b {
            return a
                .into_iter()
                .map(|(id, _, d)| (id, d.as_object().cloned().unwrap_or_default()))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the DCs never agreed on {collection}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Defines the indexes in DC 1 and waits until both DCs report every one ready.
async fn index(dcs: &[&TestCluster; 2], collection: &str) {
    for (name, fields) in INDEXES {
        let fields: Vec<Value> = fields
            .iter()
            .map(|(p, o)| json!({"path": p, "order": o}))
            .collect();
        let r = dcs[0]
            .put_json(
                &format!("/v1/collections/{collection}/indexes/{name}"),
                &json!({ "fields": fields }),
                &[],
            )
            .await;
        assert!(r.status == 202 || r.status == 200, "{:?}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for dc in dcs {
        loop {
            let r = dc
                .get(&format!("/v1/collections/{collection}/indexes"))
                .await;
            let states: Vec<Value> = r.body["indexes"]
                .as_array()
                .map(|l| l.iter().map(|i| i["state"].clone()).collect())
                .unwrap_or_default();
            if states.len() == INDEXES.len() && states.iter().all(|s| s == "ready") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "indexes never ready: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The gateway plans with an index only once it has seen it built on every node;
        // until then it scans (correctly). Waiting for a query on an indexed field to use
        // one makes the count of queries served by indexes below independent of how fast
        // the gateway learns, which once left it short under load.
        let probe = json!({"filter": {"a": 0}, "limit": 1, "explain": true});
        loop {
            let r = dc
                .post_json(&format!("/v1/collections/{collection}/query"), &probe)
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let plan = r.body["plan"].as_array().cloned().unwrap_or_default();
            if plan.iter().any(|s| s["index"].is_string()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "an equality on an indexed field never used an index: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The first page's plan and the count of a query, in one DC.
async fn plan_and_count(c: &TestCluster, collection: &str, q: &QueryCase) -> (Vec<Value>, u64) {
    let mut body = json!({"limit": q.limit, "explain": true});
    if let Some(f) = &q.filter {
        body["filter"] = f.clone();
    }
    if let Some(s) = &q.sort {
        body["sort"] = s.clone();
    }
    let r = c
        .post_json(&format!("/v1/collections/{collection}/query"), &body)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let plan = r.body["plan"].as_array().cloned().expect("a plan");
    let count = c
        .post_json(
            &format!("/v1/collections/{collection}/count"),
            &json!({"filter": q.filter}),
        )
        .await;
    assert_eq!(count.status, 200, "{:?}", count.body);
    (plan, count.body["count"].as_u64().expect("a count"))
}

#[test]
fn indexed_queries_equal_brute_force_in_both_dcs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = rt.block_on(start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 3,
        ..DevOptions::new(dir.path().to_path_buf())
    }));
    let dc2 = {
        let e = &c.cluster.as_ref().expect("running").endpoints().dcs[1];
        TestCluster {
            cluster: None,
            base: format!("http://{}", e.http),
            http_addr: e.http.clone(),
            grpc_addr: e.grpc.clone(),
            http: reqwest::Client::new(),
        }
    };
    let case_no = AtomicUsize::new(0);
    let used = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 6,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(body(), 40..120),
        prop::collection::vec(body(), 10..40),
        prop::collection::vec(query_case(), 8),
    );
    let result = runner.run(&strategy, |(first, second, queries)| {
        let n = case_no.fetch_add(1, Ordering::Relaxed);
        let collection = format!("ix{n}");
        let dcs = [&c, &dc2];
        rt.block_on(async {
            // Odd cases keep concurrent versions as siblings; the index follows `data`.
            if n % 2 == 1 {
                let r = c
                    .put_json(
                        &format!("/v1/collections/{collection}"),
                        &json!({"conflict_strategy": "siblings"}),
                        &[],
                    )
                    .await;
                assert_eq!(r.status, 201, "{:?}", r.body);
            }
            let ids =
                |docs: Vec<Map<String, Value>>, from: usize| -> Vec<(String, Map<String, Value>)> {
                    docs.into_iter()
                        .enumerate()
                        .map(|(i, b)| (format!("d{:03}", i + from), b))
                        .collect()
                };
            let ones = ids(first, 0);
            // DC 2 writes other versions of the first ids (concurrently with DC 1's), and
            // deletes some that DC 1 writes.
            let twos = ids(second, 0);
            let gone: Vec<String> = (0..ones.len())
                .step_by(7)
                .map(|i| format!("d{i:03}"))
                .collect();
            tokio::join!(
                write(&c, &collection, &ones, &[]),
                write(&dc2, &collection, &twos, &gone),
            );
            let docs = converged(&dcs, &collection).await;
            for phase in ["without indexes", "with indexes"] {
                if phase == "with indexes" {
                    index(&dcs, &collection).await;
                }
                for q in &queries {
                    let want = brute_force(&docs, q);
                    for (dc, name) in dcs.iter().zip(["dc1", "dc2"]) {
                        let got = run_paged(dc, &collection, q, docs.len() + 5)
                            .await
                            .map_err(TestCaseError::fail)?;
                        prop_assert_eq!(&got, &want, "{} {} query {:?}", phase, name, q);
                        let (plan, count) = plan_and_count(dc, &collection, q).await;
                        prop_assert_eq!(
                            count as usize,
                            want.len(),
                            "{} {} count {:?}",
                            phase,
                            name,
                            q
                        );
                        prop_assert_eq!(plan.len(), 3, "one step per node: {:?}", plan);
                        let indexed = plan.iter().filter(|s| s["index"].is_string()).count();
                        if phase == "without indexes" {
                            prop_assert_eq!(indexed, 0, "{:?}", plan);
                        } else if indexed > 0 {
                            used.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok(())
        })
    });
    rt.block_on(c.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        used.load(Ordering::Relaxed) >= 8,
        "indexes served only {} queries",
        used.load(Ordering::Relaxed)
    );
}
