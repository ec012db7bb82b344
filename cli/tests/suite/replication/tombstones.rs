//! Tombstone collection (DESIGN.md "Tombstones"): a delete's record goes once every peer
//! acknowledged it *and* this DC has merged every peer write that could be concurrent with
//! it. The resurrection scenario: a write concurrent with a delete, still in flight when
//! the delete is acknowledged, must not bring the document back in one DC only.
//! (A test binary of its own: it reads the process's metrics.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{converged, digests, records, start_with};
use aerolith_cli::dev::DevOptions;
use aerolith_storagenode::Retention;

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The process-wide count of tombstone collection passes (every node's), from `/metrics`.
async fn passes(http: &reqwest::Client, admin: &str) -> u64 {
    crate::support::metrics(http, admin)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("aerolith_tombstone_passes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_when_its_delete_is_acknowledged_does_not_resurrect_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        retention: Retention {
            tombstone_grace: Duration::ZERO,
            ..Retention::default()
        },
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let (dc1, dc2) = (
        format!("http://{}", e[0].http),
        format!("http://{}", e[1].http),
    );
    let (admin1, admin2) = (
        format!("http://{}", e[0].admin),
        format!("http://{}", e[1].admin),
    );
    let http = reqwest::Client::new();
    let doc = |base: &str, id: &str| format!("{base}/v1/collections/c/docs/{id}");

    // A plain delete: once both DCs hold the tombstone and nothing of dc2's is unmerged,
    // the tombstone is collected in both DCs and the document stays gone.
    for id in ["x", "y"] {
        let r = http
            .put(doc(&dc1, id))
            .json(&json!({"v": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    converged(&http, &admin1, &admin2).await;
    let before = records(&digests(&http, &admin1).await);
    assert_eq!(before, 2);
    let r = http.delete(doc(&dc1, "y")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    until("y's tombstone is collected in both DCs", async || {
        records(&digests(&http, &admin1).await) == 1 && records(&digests(&http, &admin2).await) == 1
    })
    .await;
    assert_eq!(get(&http, &doc(&dc2, "y")).await.0, 404);

    // The race: dc2 stops shipping to dc1, writes x, and dc1 deletes x a moment later (a
    // later timestamp: under last-writer-wins the delete wins in both DCs).
    let r = http
        .post(format!("{admin2}/admin/peers/dc1/pause"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = http
        .put(doc(&dc2, "x"))
        .json(&json!({"v": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(5)).await; // a later HLC, not a wait for an event
    let r = http.delete(doc(&dc1, "x")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    // dc2 receives and acknowledges the delete, which wins there.
    until("dc2 applies the delete", async || {
        get(&http, &doc(&dc2, "x")).await.0 == 404
    })
    .await;
    until("dc1 sees dc2 caught up", async || {
        let (_, s) = get(&http, &format!("{admin1}/admin/status")).await;
        s["peers"][0]["lag_changes"] == json!(0)
    })
    .await;
    // Several collection passes of every node run with that acknowledgement in hand; the
    // tombstone must stay, because dc2's concurrent write has not reached dc1 yet.
    let seen = passes(&http, &admin1).await;
    until("collection passes run", async || {
        passes(&http, &admin1).await >= seen + 16
    })
    .await;
    assert_eq!(
        records(&digests(&http, &admin1).await),
        1,
        "dc1 collected x's tombstone while dc2's concurrent write was still in flight"
    );

    // The write arrives, is merged against the tombstone (which wins), and then the
    // tombstone goes: x is gone in both DCs, which agree.
    let r = http
        .post(format!("{admin2}/admin/peers/dc1/resume"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    until("x's tombstone is collected in both DCs", async || {
        records(&digests(&http, &admin1).await) == 0 && records(&digests(&http, &admin2).await) == 0
    })
    .await;
    for base in [&dc1, &dc2] {
        let (s, body) = get(&http, &doc(base, "x")).await;
        assert_eq!(s, 404, "x came back in {base}: {body}");
    }
    // And the DCs stay that way (a late re-delivery changes nothing).
    converged(&http, &admin1, &admin2).await;
    c.stop().await;
}
