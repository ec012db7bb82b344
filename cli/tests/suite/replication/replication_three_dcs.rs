//! Three DCs where the dc1–dc3 replicator link goes through a fault proxy that drops every
//! packet: changes still reach every DC through dc2 (which forwards what it applies), all
//! three converge to identical per-shard digests, and nothing loops. Then the link heals.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestCluster;
use aerolith_cli::dev::{DevOptions, LinkRoute};
use aerolith_loadtest::faults::proxy::UdpProxy;

struct Dc {
    http: String,
    admin: String,
}

async fn get_json(c: &TestCluster, url: String) -> (u16, Value) {
    let r = c.http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(c: &TestCluster, dc: &Dc, collection: &str, id: &str, body: Value) {
    let r = c
        .http
        .put(format!("{}/v1/collections/{collection}/docs/{id}", dc.http))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "put {id}: {}", r.status());
}

/// Every shard's digest as one DC's replicator reports it.
async fn digests(c: &TestCluster, dc: &Dc) -> Value {
    let (status, body) = get_json(c, format!("{}/admin/digests", dc.admin)).await;
    assert_eq!(status, 200, "{body}");
    body["shards"].clone()
}

/// Waits until every DC reports the same digests for every shard and `check` holds.
async fn converge(c: &TestCluster, dcs: &[Dc], what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut all = Vec::new();
        for dc in dcs {
            all.push(digests(c, dc).await);
        }
        if all.windows(2).all(|w| w[0] == w[1]) {
            return all.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the DCs did not converge: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One document through one DC (404 as `None`).
async fn doc(c: &TestCluster, dc: &Dc, collection: &str, id: &str) -> Option<Value> {
    let (status, body) = get_json(
        c,
        format!("{}/v1/collections/{collection}/docs/{id}", dc.http),
    )
    .await;
    match status {
        200 => Some(body),
        404 => None,
        s => panic!("get {id}: {s} {body}"),
    }
}

/// Waits until `dc` holds `id` in `collection` (it may arrive only by forwarding).
async fn arrives(c: &TestCluster, dc: &Dc, collection: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while doc(c, dc, collection, id).await.is_none() {
        assert!(Instant::now() < deadline, "{id} never reached {}", dc.http);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pauses or resumes every DC's shipping to every peer (`action` is `pause` or `resume`).
async fn shipping(c: &TestCluster, dcs: &[Dc], action: &str) {
    for (i, dc) in dcs.iter().enumerate() {
        for peer in (1..=dcs.len()).filter(|p| *p != i + 1) {
            let r = c
                .http
                .post(format!("{}/admin/peers/dc{peer}/{action}", dc.admin))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{action} dc{peer} at {}", dc.admin);
        }
    }
}

/// Every replicator's status, peer by peer.
async fn statuses(c: &TestCluster, dcs: &[Dc]) -> Vec<Value> {
    let mut out = Vec::new();
    for dc in dcs {
        let (status, body) = get_json(c, format!("{}/admin/status", dc.admin)).await;
        assert_eq!(status, 200, "{body}");
        out.push(body);
    }
    out
}

/// Changes shipped by all replicators together (their acknowledged `sent` counts).
async fn total_sent(c: &TestCluster, dcs: &[Dc]) -> f64 {
    statuses(c, dcs)
        .await
        .iter()
        .flat_map(|s| s["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["sent"].as_f64())
        .sum()
}

/// Three DCs of `nodes` storage nodes each, the dc1–dc3 replicator link (both ways)
/// through a fault proxy that drops everything while the returned flag is set (it starts
/// set).
async fn with_dc1_dc3_cut(
    dir: &std::path::Path,
    nodes: usize,
) -> (TestCluster, Vec<Dc>, Arc<AtomicBool>) {
    let cut = Arc::new(AtomicBool::new(true));
    let flag = cut.clone();
    let route = LinkRoute(Arc::new(move |from: &str, to: &str, real| {
        if matches!((from, to), ("dc1", "dc3") | ("dc3", "dc1")) {
            UdpProxy::start(real, flag.clone())
                .expect("fault proxy")
                .addr()
        } else {
            real
        }
    }));
    let c = crate::support::start_with(DevOptions {
        dcs: 3,
        nodes_per_dc: nodes,
        link_route: Some(route),
        ..DevOptions::new(dir.to_path_buf())
    })
    .await;
    let dcs: Vec<Dc> = c
        .cluster
        .as_ref()
        .unwrap()
        .endpoints()
        .dcs
        .iter()
        .map(|d| Dc {
            http: format!("http://{}", d.http),
            admin: format!("http://{}", d.admin),
        })
        .collect();
    (c, dcs, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_dcs_converge_through_the_third_while_one_link_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dcs, cut) = with_dc1_dc3_cut(dir.path(), 1).await;
    let (dc1, dc2, dc3) = (&dcs[0], &dcs[1], &dcs[2]);

    for strategy in ["lww", "siblings", "field_merge"] {
        let coll = format!("t_{strategy}");
        let r = c
            .http
            .put(format!("{}/v1/collections/{coll}", dc1.http))
            .json(&json!({"conflict_strategy": strategy}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        // dc3 learns of the collection only through dc2.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = get_json(&c, format!("{}/v1/collections/{coll}", dc3.http)).await;
            if status == 200 {
                assert_eq!(body["conflict_strategy"], strategy);
                break;
            }
            assert!(Instant::now() < deadline, "{coll} never reached dc3");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for i in 0..10 {
            put(
                &c,
                dc1,
                &coll,
                &format!("a{i}"),
                json!({"from": "dc1", "i": i}),
            )
            .await;
            put(
                &c,
                dc3,
                &coll,
                &format!("c{i}"),
                json!({"from": "dc3", "i": i}),
            )
            .await;
        }
        // The same document in all three DCs, provably concurrent: no DC ships meanwhile.
        shipping(&c, &dcs, "pause").await;
        tokio::join!(
            put(&c, dc1, &coll, "x", json!({"one": 1, "who": "dc1"})),
            put(&c, dc2, &coll, "x", json!({"two": 2, "who": "dc2"})),
            put(&c, dc3, &coll, "x", json!({"three": 3, "who": "dc3"})),
        );
        shipping(&c, &dcs, "resume").await;
        // A delete in dc1 of a document dc1 only knows through dc2.
        arrives(&c, dc1, &coll, "c0").await;
        let r = c
            .http
            .delete(format!("{}/v1/collections/{coll}/docs/c0", dc1.http))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        converge(&c, &dcs, &coll).await;

        // Every acknowledged write is there in every DC, or superseded as the strategy says.
        for dc in &dcs {
            for i in 0..10 {
                let a = doc(&c, dc, &coll, &format!("a{i}")).await.expect("a doc");
                assert_eq!(a["data"], json!({"from": "dc1", "i": i}));
                let cdoc = doc(&c, dc, &coll, &format!("c{i}")).await;
                if i == 0 {
                    assert!(cdoc.is_none(), "c0 stays deleted in {}", dc.http);
                } else {
                    assert_eq!(cdoc.expect("c doc")["data"], json!({"from": "dc3", "i": i}));
                }
            }
            let x = doc(&c, dc, &coll, "x").await.expect("x");
            match strategy {
                "siblings" => {
                    let mut whos: Vec<Value> = std::iter::once(x["data"]["who"].clone())
                        .chain(
                            x["conflicts"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|s| s["data"]["who"].clone()),
                        )
                        .collect();
                    whos.sort_by_key(|v| v.to_string());
                    assert_eq!(whos, vec![json!("dc1"), json!("dc2"), json!("dc3")], "{x}");
                }
                "field_merge" => {
                    for (field, value) in [("one", 1), ("two", 2), ("three", 3)] {
                        assert_eq!(x["data"][field], value, "{x}");
                    }
                }
                _ => assert!(x["data"]["who"].is_string(), "{x}"),
            }
        }
    }

    // A collection deleted in dc3 disappears everywhere, documents and all, although no
    // document is written after the deletion (settings replicate by themselves).
    put(&c, dc1, "doomed", "d", json!({"v": 1})).await;
    arrives(&c, dc3, "doomed", "d").await;
    let r = c
        .http
        .delete(format!("{}/v1/collections/doomed", dc3.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for dc in &dcs {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get_json(&c, format!("{}/v1/collections/doomed", dc.http))
            .await
            .0
            != 404
        {
            assert!(Instant::now() < deadline, "doomed survives in {}", dc.http);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(doc(&c, dc, "doomed", "d").await.is_none());
    }
    converge(&c, &dcs, "after the collection delete").await;

    // Nothing loops: with everything converged, shipping goes quiet and no peer lags.
    crate::support::settles("shipping", || total_sent(&c, &dcs)).await;
    for s in statuses(&c, &dcs).await {
        for p in s["peers"].as_array().unwrap() {
            let cut_peer = matches!(
                (s["dc"].as_str(), p["dc"].as_str()),
                (Some("dc1"), Some("dc3")) | (Some("dc3"), Some("dc1"))
            );
            if cut_peer {
                assert_eq!(p["state"], "disconnected", "{s}");
            } else {
                assert_eq!(p["lag_changes"], 0, "{s}");
                assert_eq!(p["state"], "connected", "{s}");
            }
        }
    }

    // Heal the link: the backlog dc1 and dc3 kept for each other drains (every change of it
    // is already known there), new writes flow directly, and all stay converged.
    cut.store(false, std::sync::atomic::Ordering::Relaxed);
    put(&c, dc1, "t_lww", "after", json!({"healed": true})).await;
    put(&c, dc3, "t_lww", "after3", json!({"healed": true})).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = statuses(&c, &dcs).await;
        let lagging: Vec<&Value> = all
            .iter()
            .flat_map(|s| s["peers"].as_array().unwrap())
            .filter(|p| p["lag_changes"] != 0 || p["state"] != "connected")
            .collect();
        if lagging.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "links did not catch up after healing: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    converge(&c, &dcs, "after healing").await;
    for dc in &dcs {
        assert!(doc(&c, dc, "t_lww", "after").await.is_some());
        assert!(doc(&c, dc, "t_lww", "after3").await.is_some());
    }
    c.stop().await;
}

/// Session reads and write concern `all` count a write as covered once it reached a DC by
/// any path (DESIGN.md "Change feeds, sessions and failover together"): with the dc1–dc3
/// link cut, dc1's writes reach dc3 only as copies forwarded by dc2, and dc3 still serves
/// session reads of them and confirms `all` writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_all_writes_count_copies_forwarded_through_a_third_dc() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dcs, _cut) = with_dc1_dc3_cut(dir.path(), 2).await;
    let (dc1, dc3) = (&dcs[0], &dcs[2]);
    put(&c, dc1, "s", "warm", json!({"v": 0})).await;
    arrives(&c, dc3, "s", "warm").await;

    for i in 0..8 {
        // A write acknowledged under `all`: every DC, dc3 included, holds it by then.
        let id = format!("all{i}");
        let r = c
            .http
            .put(format!("{}/v1/collections/s/docs/{id}", dc1.http))
            .header("x-aerolith-write-concern", "all")
            .header("x-aerolith-timeout-ms", "20000")
            .json(&json!({"i": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let got = doc(&c, dc3, "s", &id).await;
        assert_eq!(got.map(|d| d["data"].clone()), Some(json!({"i": i})));

        // A session's own write, read through dc3 with the session token.
        let id = format!("sess{i}");
        let r = c
            .http
            .put(format!("{}/v1/collections/s/docs/{id}", dc1.http))
            .json(&json!({"i": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let session = r.headers()["x-aerolith-session"]
            .to_str()
            .unwrap()
            .to_string();
        let r = c
            .http
            .get(format!("{}/v1/collections/s/docs/{id}", dc3.http))
            .header("x-aerolith-session", &session)
            .header("x-aerolith-timeout-ms", "20000")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "session read through dc3: {body}");
        assert_eq!(body["data"], json!({"i": i}));
    }
    c.stop().await;
}
