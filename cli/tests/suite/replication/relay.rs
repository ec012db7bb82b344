//! Three DCs with `aerolith replicator` processes, the dc1–dc3 link cut (its fault proxies
//! drop every packet). Writers hit the same documents in every DC at once (also while
//! dc2's shipping to dc3 is paused through the admin API); all three
//! converge through dc2 (identical per-shard digests), every acknowledged write survives as
//! a sibling or is replaced by one that descends from it, deletes stay deleted, and after
//! the link heals the direct links catch up.

use crate::support::TURN;
use crate::support::procs::{
    self as support, Nodes, cluster_without_replicators, launch_replicator, wait_until,
};
use aerolith_common::pb;
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_common::version::{Causality, VersionVector};
use serde_json::Value;

/// Documents every DC writes (the same ids everywhere).
const DOCS: usize = 60;
/// Of those, deleted in dc3 once converged.
const DELETED: usize = 10;

/// Every replicator's `/admin/status`.
async fn statuses(admins: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for a in admins {
        out.push(support::admin(a, "/admin/status").await);
    }
    out
}

fn cut_pair(s: &Value, p: &Value) -> bool {
    matches!(
        (s["dc"].as_str(), p["dc"].as_str()),
        (Some("dc1"), Some("dc3")) | (Some("dc3"), Some("dc1"))
    )
}

/// Asserts that an acknowledged write is still a version of `id` in dc1, or that a version
/// descending from it (a write that had seen it) replaced it.
async fn kept_or_superseded(c: &Nodes, id: &str, written: &pb::DocRecord) {
    let rec = c.record("dc1", "t", id).await.expect("a record");
    let vv = VersionVector::from_proto(written.vv.as_ref());
    // A record with one version has no sibling list: the record is the version.
    let versions: Vec<VersionVector> = if rec.siblings.is_empty() {
        vec![VersionVector::from_proto(rec.vv.as_ref())]
    } else {
        rec.siblings
            .iter()
            .map(|s| VersionVector::from_proto(s.vv.as_ref()))
            .collect()
    };
    assert!(
        versions
            .iter()
            .any(|v| matches!(v.compare(&vv), Causality::Equal | Causality::Dominates)),
        "{id}: the write {written:?} is lost: {rec:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_dc_processes_converge_around_a_cut_link() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_without_replicators(dir.path(), 3, &[(0, 2)]).await;
    let c = Nodes::of(&cluster);
    for dc in &c.dcs {
        c.call(
            dc,
            pb::PutCollectionRequest {
                name: "t".into(),
                strategy: pb::ConflictStrategy::Siblings as i32,
                explicit: true,
                settings_hlc: 0,
                after_delete_hlc: 0,
            },
        )
        .await;
    }
    for dc in 0..3 {
        launch_replicator(&mut cluster, dc).await;
    }
    let admins = cluster.admin.clone();

    // Writers in every DC hit the same documents at once.
    let (w1, w2, w3) = tokio::join!(
        c.write("dc1", "t", 0..DOCS),
        c.write("dc2", "t", 0..DOCS),
        c.write("dc3", "t", 0..DOCS),
    );
    c.converge(DOCS as u64, 120).await;
    for (id, written) in w1.iter().chain(&w2).chain(&w3) {
        kept_or_superseded(&c, id, written).await;
    }

    // Deletes in dc3 (which supersede every sibling it holds) reach dc1 through dc2.
    for i in 0..DELETED {
        let id = format!("d{i:06}");
        c.call(
            "dc3",
            pb::DeleteRequest {
                after_delete_hlc: 0,
                shard: u32::from(shard_of("t", &id, DEFAULT_SHARDS)),
                collection: "t".into(),
                id,
                precondition: None,
                session: Vec::new(),
                idempotency: None,
            },
        )
        .await;
    }
    wait_until("the deletes to reach dc1", 120, || async {
        let rec = c.record("dc1", "t", &format!("d{:06}", DELETED - 1)).await;
        rec.is_some_and(|r| r.tombstone)
    })
    .await;
    c.converge(DOCS as u64, 120).await;
    for i in 0..DOCS {
        let rec = c.record("dc1", "t", &format!("d{i:06}")).await.unwrap();
        assert_eq!(rec.tombstone, i < DELETED, "d{i:06}");
    }

    // With dc2's shipping to dc3 paused too, dc3 is cut off; every DC writes the same
    // documents again, and after the resume they converge with nothing lost.
    let paused = support::admin_post(&admins[1], "/admin/peers/dc3/pause").await;
    assert_eq!(paused["state"], "paused", "{paused}");
    let again = DOCS..DOCS + 20;
    let (w1, w2, w3) = tokio::join!(
        c.write("dc1", "t", again.clone()),
        c.write("dc2", "t", again.clone()),
        c.write("dc3", "t", again),
    );
    let in_dc3 = c
        .record("dc3", "t", &w1[0].0)
        .await
        .expect("dc3's own write");
    assert!(
        in_dc3.siblings.iter().all(|s| s.origin != "dc1") && in_dc3.origin == "dc3",
        "a write reached dc3 while it was cut off: {in_dc3:?}"
    );
    support::admin_post(&admins[1], "/admin/peers/dc3/resume").await;
    c.converge(DOCS as u64 + 20, 120).await;
    for (id, written) in w1.iter().chain(&w2).chain(&w3) {
        kept_or_superseded(&c, id, written).await;
    }

    // The cut link is down both ways; every other link is connected and has nothing left.
    wait_until("the uncut links to drain", 60, || async {
        statuses(&admins).await.iter().all(|s| {
            s["peers"].as_array().unwrap().iter().all(|p| {
                if cut_pair(s, p) {
                    p["state"] == "disconnected"
                } else {
                    p["state"] == "connected" && p["lag_changes"] == 0
                }
            })
        })
    })
    .await;

    // Heal: the backlog on the direct link drains (all of it known at the other end) and
    // new writes take it.
    cluster.partition(0, 2, false);
    tokio::join!(
        c.write("dc1", "t", DOCS + 20..DOCS + 25),
        c.write("dc3", "t", DOCS + 25..DOCS + 30),
    );
    wait_until("every link to catch up", 120, || async {
        statuses(&admins).await.iter().all(|s| {
            s["peers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["state"] == "connected" && p["lag_changes"] == 0)
        })
    })
    .await;
    c.converge(DOCS as u64 + 30, 120).await;
}
