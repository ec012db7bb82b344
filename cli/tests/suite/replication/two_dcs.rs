//! Cross-DC replication in a two-DC dev cluster: each DC's writes reach the other, and
//! concurrent writes to the same documents converge to identical records under every
//! conflict strategy (compared document by document, versions included).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestCluster;

/// Every document of a collection through one DC's gateway, in id order.
async fn all_docs(c: &TestCluster, base: &str, collection: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/collections/{collection}/docs?limit=1000");
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let page: Value = c.http.get(url).send().await.unwrap().json().await.unwrap();
        out.extend(page["documents"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

/// Waits until both DCs list identical documents (ids, versions, data, conflicts), with
/// at least `at_least` of them; fails after 60 s.
async fn converged(
    c: &TestCluster,
    dc1: &str,
    dc2: &str,
    collection: &str,
    at_least: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (
            all_docs(c, dc1, collection).await,
            all_docs(c, dc2, collection).await,
        );
        if a == b && a.len() >= at_least {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "{collection} did not converge:\ndc1 {a:?}\ndc2 {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put(c: &TestCluster, base: &str, collection: &str, id: &str, body: Value) {
    let r = c
        .http
        .put(format!("{base}/v1/collections/{collection}/docs/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dcs_converge_under_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, dc2) = crate::support::start_two_dcs(dir.path()).await;
    let dcs = c.cluster.as_ref().unwrap().endpoints().dcs.clone();

    for strategy in ["lww", "siblings", "field_merge"] {
        let coll = format!("people_{strategy}");
        let r = c
            .http
            .put(format!("{dc1}/v1/collections/{coll}"))
            .json(&json!({"conflict_strategy": strategy}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        // Each DC writes its own documents, and both write the same ones at once.
        for i in 0..20 {
            put(
                &c,
                &dc1,
                &coll,
                &format!("a{i}"),
                json!({"from": "dc1", "i": i}),
            )
            .await;
            put(
                &c,
                &dc2,
                &coll,
                &format!("b{i}"),
                json!({"from": "dc2", "i": i}),
            )
            .await;
        }
        let both = ["x", "y", "z"].map(|id| {
            let (c, dc1, dc2, coll) = (&c, dc1.clone(), dc2.clone(), coll.clone());
            async move {
                tokio::join!(
                    put(c, &dc1, &coll, id, json!({"one": 1, "shared": "dc1"})),
                    put(c, &dc2, &coll, id, json!({"two": 2, "shared": "dc2"})),
                );
            }
        });
        futures::future::join_all(both).await;
        let docs = converged(&c, &dc1, &dc2, &coll, 43).await;
        assert_eq!(docs.len(), 43, "{strategy}");

        // The collection's settings replicated with the data.
        let settings: Value = c
            .http
            .get(format!("{dc2}/v1/collections/{coll}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(settings["conflict_strategy"], strategy);

        // A delete in one DC reaches the other.
        let r = c
            .http
            .delete(format!("{dc2}/v1/collections/{coll}/docs/a0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let docs = converged(&c, &dc1, &dc2, &coll, 42).await;
        assert!(
            docs.iter().all(|d| d["id"] != "a0"),
            "{strategy}: a0 stays deleted"
        );
    }

    // Nothing loops: once converged, shipping stops (an apply that changes nothing writes
    // no change, so an echo dies after one round trip).
    let last = crate::support::settles("shipping", || shipped(&c, &dc1)).await;
    assert!(last > 0.0, "nothing was counted as shipped");
    admin_api(
        &c,
        &dc1,
        &dc2,
        &format!("http://{}", dcs[0].admin),
        &format!("http://{}", dcs[1].admin),
    )
    .await;
    c.stop().await;
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The replicator admin API of dc1: status, pause and resume, conflicts, errors.
async fn admin_api(c: &TestCluster, dc1: &str, dc2: &str, admin: &str, admin2: &str) {
    let status = |c: &TestCluster| {
        let url = format!("{admin}/admin/status");
        let http = c.http.clone();
        async move { json_of(http.get(url).send().await.unwrap()).await.1 }
    };
    let s = status(c).await;
    assert_eq!(s["dc"], "dc1", "{s}");
    let peer = &s["peers"][0];
    assert_eq!(
        (&peer["dc"], &peer["state"], &peer["lag_changes"]),
        (&json!("dc2"), &json!("connected"), &json!(0)),
        "{s}"
    );
    assert!(
        peer["sent"].as_u64().unwrap() > 0 && peer["applied"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert!(
        peer["last_applied_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{s}"
    );

    // Paused, dc1's writes pile up: nothing read after the pause is shipped.
    let (code, body) = json_of(
        c.http
            .post(format!("{admin}/admin/peers/dc2/pause"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, &body["state"]), (200, &json!("paused")), "{body}");
    // Both DCs write the same documents meanwhile; dc2's still reach dc1.
    let n = 5;
    for i in 1..=n {
        let id = format!("p{i}");
        tokio::join!(
            put(c, dc1, "paused", &id, json!({"n": i, "by": "dc1"})),
            put(c, dc2, "paused", &id, json!({"n": i, "by": "dc2"})),
        );
    }
    // A collection written and deleted while paused: its document change is passed over
    // when shipping resumes, yet dc2's watermark must still cover it (lag returns to 0).
    put(c, dc1, "fleeting", "f", json!({"n": 1})).await;
    let r = c
        .http
        .delete(format!("{dc1}/v1/collections/fleeting"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let s = status(c).await;
    assert_eq!(s["peers"][0]["state"], "paused", "{s}");
    assert!(
        s["peers"][0]["lag_changes"].as_u64().unwrap_or(0) >= n as u64,
        "{s}"
    );
    assert!(s["peers"][0]["lag_ms"].as_u64().is_some(), "{s}");
    let (_, held) = json_of(
        c.http
            .get(format!("{dc2}/v1/collections/paused/docs/p{n}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(held["data"]["by"], "dc2", "a paused peer receives nothing");
    let (code, _) = json_of(
        c.http
            .post(format!("{admin}/admin/peers/dc2/resume"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(c).await;
        if s["peers"][0]["lag_changes"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "lag never returns to 0: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c
        .http
        .get(format!("{dc2}/v1/collections/fleeting"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the deletion replicated");
    // Each acknowledged write is there or lost to the other under LWW, the same in both DCs,
    // and every shard's digest matches.
    for d in converged(c, dc1, dc2, "paused", n).await {
        assert!(
            ["dc1", "dc2"].contains(&d["data"]["by"].as_str().unwrap_or("")),
            "{d}"
        );
    }
    let digests = |admin: String| {
        let http = c.http.clone();
        async move {
            json_of(
                http.get(format!("{admin}/admin/digests"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
            .1
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (
            digests(admin.to_string()).await,
            digests(admin2.to_string()).await,
        );
        assert_eq!((&a["dc"], &b["dc"]), (&json!("dc1"), &json!("dc2")));
        if a["shards"] == b["shards"] {
            break;
        }
        assert!(Instant::now() < deadline, "digests differ:\n{a}\n{b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (code, body) = json_of(
        c.http
            .get(format!("{admin}/admin/conflicts?limit=5"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["conflicts"].as_array().is_some_and(|l| l.len() <= 5),
        "{body}"
    );
    for (method, path, want_status, want_code) in [
        ("GET", "/admin/conflicts?limit=0", 400, "invalid_argument"),
        ("POST", "/admin/peers/dc9/pause", 404, "not_found"),
        ("POST", "/admin/resync", 400, "invalid_argument"),
        ("GET", "/admin/nope", 404, "not_found"),
    ] {
        let req = match method {
            "GET" => c.http.get(format!("{admin}{path}")),
            _ => c.http.post(format!("{admin}{path}")),
        };
        let (code, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(
            (code, &body["error"]["code"]),
            (want_status, &json!(want_code)),
            "{path}: {body}"
        );
    }
    let metrics = metrics_page(c, admin).await;
    for series in [
        "aerolith_replication_shipped_total{",
        "aerolith_replication_applied_total{",
        r#"aerolith_replication_conflicts_total{peer="dc2",strategy="lww"}"#,
        r#"aerolith_replication_conflicts_total{peer="dc2",strategy="siblings"}"#,
        r#"aerolith_replication_conflicts_total{peer="dc2",strategy="field_merge"}"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    // Lag gauges per peer are refreshed in the background.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = metrics_page(c, admin).await;
        if metrics.contains(r#"aerolith_replication_lag_changes{peer="dc2"}"#)
            && metrics.contains(r#"aerolith_replication_lag_ms{peer="dc2"}"#)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no lag gauges:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `/metrics` page served at `base`.
async fn metrics_page(c: &TestCluster, base: &str) -> String {
    c.http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Changes shipped so far by every replicator of the process.
async fn shipped(c: &TestCluster, base: &str) -> f64 {
    metrics_page(c, base)
        .await
        .lines()
        .filter(|l| l.starts_with("aerolith_replication_shipped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
