//! Replication correctness under the faults that once broke it (docs/CONSISTENCY.md): a
//! version counter reused after its tombstone was collected, a `field_merge` delete that
//! left fields it had not seen, a collection deletion cut short, a storage node restarted
//! on an empty disk, and a clock stepped back at a restart. Each test drives the cluster
//! over the wire only; the ones that kill, wipe or restart a process run a cluster of
//! `aerolith` processes. The tests of this binary take turns (one cluster at a time).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{converged, digests, start_with};
use aerolith_cli::dev::DevOptions;
use aerolith_common::rpc::{PeerRole, RpcClient, TlsMaterial};
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};
use aerolith_storagenode::Retention;

use crate::support::TURN;
use crate::support::http::send;

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    send(http, reqwest::Method::GET, url, None, &[]).await
}

async fn put(http: &reqwest::Client, url: &str, body: Value) -> u16 {
    send(http, reqwest::Method::PUT, url, Some(body), &[])
        .await
        .0
}

async fn post(http: &reqwest::Client, url: &str) -> u16 {
    send(http, reqwest::Method::POST, url, None, &[]).await.0
}

async fn delete(http: &reqwest::Client, url: &str) -> u16 {
    send(http, reqwest::Method::DELETE, url, None, &[]).await.0
}

async fn merge_patch(http: &reqwest::Client, url: &str, patch: Value) -> u16 {
    merge_patch_body(http, url, patch).await.0
}

async fn merge_patch_body(http: &reqwest::Client, url: &str, patch: Value) -> (u16, Value) {
    let r = http
        .patch(url)
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .expect("request sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits (up to 60 s) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records (documents and tombstones) of one shard, from a DC's digests.
async fn shard_records(http: &reqwest::Client, admin: &str, shard: u16) -> u64 {
    digests(http, admin).await[shard as usize]["records"]
        .as_u64()
        .unwrap_or(0)
}

/// A two-DC dev cluster of two nodes a DC: the HTTP and admin base URLs of each DC.
async fn two_dcs(
    dir: &std::path::Path,
    retention: Retention,
) -> (crate::support::TestCluster, [String; 4]) {
    let c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        retention,
        ..DevOptions::new(dir.to_path_buf())
    })
    .await;
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let urls = [
        format!("http://{}", e[0].http),
        format!("http://{}", e[1].http),
        format!("http://{}", e[0].admin),
        format!("http://{}", e[1].admin),
    ];
    (c, urls)
}

/// Issue 20, item 1: after dc1 collected a document's tombstone, a re-create in dc1 must
/// still dominate the tombstone dc2 holds (no counter of dc1's is issued twice), and an
/// anti-entropy pass must not let the old tombstone delete it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_recreated_after_its_tombstone_was_collected_reaches_every_dc() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let grace = Retention {
        tombstone_grace: Duration::ZERO,
        ..Retention::default()
    };
    let (mut c, [dc1, dc2, admin1, admin2]) = two_dcs(dir.path(), grace).await;
    let http = reqwest::Client::new();
    let doc = |base: &str, id: &str| format!("{base}/v1/collections/re/docs/{id}");

    // The scenario needs dc2 to still hold the tombstone when dc1 has collected it: dc1
    // stops shipping to dc2 right after the delete reached dc2 and writes on in the shard,
    // so dc2 cannot cover dc1's log head. If dc2 was quicker and collected anyway, the
    // attempt is repeated with another document.
    let mut used = Vec::new();
    let (x, shard) = loop {
        assert!(
            used.len() < 5,
            "dc2 collected the tombstone first every time"
        );
        // A document in a shard no earlier attempt wrote to, so its records are this
        // attempt's alone.
        let (x, shard) = (0..)
            .map(|i| format!("x{i}"))
            .map(|x| {
                let s = shard_of("re", &x, DEFAULT_SHARDS);
                (x, s)
            })
            .find(|(_, s)| !used.contains(s))
            .unwrap();
        used.push(shard);
        assert_eq!(put(&http, &doc(&dc1, &x), json!({"v": 1})).await, 201);
        assert_eq!(delete(&http, &doc(&dc1, &x)).await, 204);
        until("dc2 acknowledges the delete", async || {
            let status = get(&http, &format!("{admin1}/admin/status")).await.1;
            status["peers"][0]["lag_changes"] == json!(0)
        })
        .await;
        assert_eq!(
            post(&http, &format!("{admin1}/admin/peers/dc2/pause")).await,
            200
        );
        let filler = (0..)
            .map(|i| format!("f{i}"))
            .find(|id| shard_of("re", id, DEFAULT_SHARDS) == shard)
            .unwrap();
        assert_eq!(put(&http, &doc(&dc1, &filler), json!({"f": 1})).await, 201);
        if shard_records(&http, &admin2, shard).await == 1 {
            break (x, shard);
        }
        assert_eq!(
            post(&http, &format!("{admin1}/admin/peers/dc2/resume")).await,
            200
        );
    };
    // dc1 collects its tombstone (dc2 acknowledged it before the pause): the filler alone
    // is left in the shard, while dc2 still holds the tombstone.
    until("dc1 collects the tombstone", async || {
        shard_records(&http, &admin1, shard).await == 1
    })
    .await;
    assert_eq!(shard_records(&http, &admin2, shard).await, 1);

    // The re-create is acknowledged in dc1 and must reach dc2 over its tombstone.
    assert_eq!(put(&http, &doc(&dc1, &x), json!({"v": 2})).await, 201);
    assert_eq!(
        post(&http, &format!("{admin1}/admin/peers/dc2/resume")).await,
        200
    );
    until("the re-created document reaches dc2", async || {
        get(&http, &doc(&dc2, &x)).await.1["data"] == json!({"v": 2})
    })
    .await;
    converged(&http, &admin1, &admin2).await;
    // An anti-entropy pass changes nothing now: the newer write stays in both DCs.
    let (status, summary) = send(
        &http,
        reqwest::Method::POST,
        &format!("{admin1}/admin/resync"),
        Some(json!({"peer": "dc2"})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    for base in [&dc1, &dc2] {
        let (s, body) = get(&http, &doc(base, &x)).await;
        assert_eq!((s, body["data"].clone()), (200, json!({"v": 2})), "{base}");
    }
    c.stop().await;
}

/// Issue 20, item 2: a `field_merge` delete removes fields its DC had not seen (written
/// before the delete elsewhere); a field written after the delete brings the document back
/// with that field alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_merge_delete_wins_over_earlier_fields_it_had_not_seen() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut c, [dc1, dc2, admin1, admin2]) = two_dcs(dir.path(), Retention::default()).await;
    let http = reqwest::Client::new();
    let coll = |base: &str| format!("{base}/v1/collections/fm");
    let doc = |base: &str, id: &str| format!("{base}/v1/collections/fm/docs/{id}");
    assert_eq!(
        put(
            &http,
            &coll(&dc1),
            json!({"conflict_strategy": "field_merge"})
        )
        .await,
        201
    );
    let links = async |action: &str| {
        for (admin, peer) in [(&admin1, "dc2"), (&admin2, "dc1")] {
            let url = format!("{admin}/admin/peers/{peer}/{action}");
            assert_eq!(post(&http, &url).await, 200, "{url}");
        }
    };
    for id in ["d", "e"] {
        assert_eq!(put(&http, &doc(&dc1, id), json!({"a": 1})).await, 201);
        until("the document reaches dc2", async || {
            get(&http, &doc(&dc2, id)).await.0 == 200
        })
        .await;
    }

    // dc2 adds z, then dc1 (not knowing z) deletes the document.
    links("pause").await;
    assert_eq!(
        merge_patch(&http, &doc(&dc2, "d"), json!({"z": 1})).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(5)).await; // a later HLC, not a wait for an event
    assert_eq!(delete(&http, &doc(&dc1, "d")).await, 204);
    // dc1 deletes e, then dc2 (not knowing of the delete) writes z into it.
    assert_eq!(delete(&http, &doc(&dc1, "e")).await, 204);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        merge_patch(&http, &doc(&dc2, "e"), json!({"z": 2})).await,
        200
    );
    links("resume").await;
    converged(&http, &admin1, &admin2).await;
    for base in [&dc1, &dc2] {
        let (s, body) = get(&http, &doc(base, "d")).await;
        assert_eq!(s, 404, "d outlived its delete in {base}: {body}");
        let (s, body) = get(&http, &doc(base, "e")).await;
        assert_eq!((s, body["data"].clone()), (200, json!({"z": 2})), "{base}");
    }
    c.stop().await;
}

/// Issue 20, item 3: a collection deletion that reached only one of a DC's nodes (the
/// gateway that sent it died after its first call, simulated by sending that one call
/// ourselves over the internal RPC) is finished by the cluster itself: every node of every
/// DC ends on the deletion, and nothing of the deleted incarnation is visible again, also
/// after the collection is created anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_deletion_cut_short_still_reaches_every_node() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let cluster = proc_cluster(dir.path(), &http).await;
    let (dc1, dc2) = (cluster.http[0].clone(), cluster.http[1].clone());
    let coll = |base: &str| format!("{base}/v1/collections/gone");
    let doc = |base: &str, i: usize| format!("{base}/v1/collections/gone/docs/g{i}");
    assert_eq!(put(&http, &coll(&dc1), json!({})).await, 201);
    for i in 0..16 {
        assert_eq!(put(&http, &doc(&dc1, i), json!({"i": i})).await, 201);
    }
    converge(&http, &cluster.admin).await;

    // The deletion reaches dc1's first node only.
    let client = delete_on_first_node(&cluster, "gone").await;

    // Without a client retry, every node of both DCs ends on the deletion.
    for base in [&dc1, &dc2] {
        until("the deletion reaches every node", async || {
            if get(&http, &coll(base)).await.0 != 404 {
                return false;
            }
            for i in 0..16 {
                if get(&http, &doc(base, i)).await.0 != 404 {
                    return false;
                }
            }
            true
        })
        .await;
    }
    converge(&http, &cluster.admin).await;

    // A new incarnation starts empty everywhere.
    assert_eq!(put(&http, &coll(&dc2), json!({})).await, 201);
    assert_eq!(put(&http, &doc(&dc2, 0), json!({"new": true})).await, 201);
    converge(&http, &cluster.admin).await;
    for base in [&dc1, &dc2] {
        let (_, page) = get(&http, &format!("{}/docs?limit=100", coll(base))).await;
        let ids: Vec<&str> = page["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["id"].as_str())
            .collect();
        assert_eq!(ids, ["g0"], "{base}: {page}");
        assert_eq!(
            get(&http, &doc(base, 0)).await.1["data"],
            json!({"new": true})
        );
    }
    client.close();
}

/// Found by the `collections` fault class: a document written after its collection was
/// deleted, through a gateway whose owner of the document's shard is down, fails over to a
/// DC the deletion has not reached yet. It must land in the incarnation after the deletion
/// (the gateway hands the DC's newest deletion along), not in the deleted one, where the
/// deletion would remove it on arrival: an acknowledged write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failed_over_after_its_collection_was_deleted_is_not_lost() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut c, [dc1, dc2, admin1, admin2]) = two_dcs(dir.path(), Retention::default()).await;
    let http = reqwest::Client::new();
    // Ids in shards dc1's first node owns (two nodes a DC).
    let on_first = |coll: &str, prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|id| shard_of(coll, id, DEFAULT_SHARDS).is_multiple_of(2))
            .unwrap()
    };
    let (id, bulk_id, probe) = (on_first("c", "n"), on_first("c", "b"), on_first("p", "q"));
    let doc = |base: &str, coll: &str, id: &str| format!("{base}/v1/collections/{coll}/docs/{id}");
    assert_eq!(
        put(&http, &format!("{dc1}/v1/collections/c"), json!({})).await,
        201
    );
    assert_eq!(
        put(&http, &format!("{dc1}/v1/collections/p"), json!({})).await,
        201
    );
    assert_eq!(
        put(&http, &doc(&dc1, "c", "old"), json!({"old": true})).await,
        201
    );
    until("dc2 holds collection c's first incarnation", async || {
        get(&http, &doc(&dc2, "c", "old")).await.0 == 200
            && get(&http, &format!("{dc2}/v1/collections/p")).await.0 == 200
    })
    .await;

    // dc1 deletes the collection; dc2 does not hear of it yet.
    assert_eq!(
        post(&http, &format!("{admin1}/admin/peers/dc2/pause")).await,
        200
    );
    assert_eq!(delete(&http, &format!("{dc1}/v1/collections/c")).await, 204);
    // dc1's owner of the document's shard dies, and dc1's gateway knows it: a document only
    // dc1 holds reads as missing (dc2 answers).
    assert_eq!(put(&http, &doc(&dc1, "p", &probe), json!({})).await, 201);
    c.cluster.as_mut().unwrap().stop_node(0, 0).await.unwrap();
    until("dc1's gateway fails the node over", async || {
        get(&http, &doc(&dc1, "p", &probe)).await.0 == 404
    })
    .await;

    // Writes after the deletion, served by dc2: a bulk put and a PUT.
    let ops = json!({"ops": [{"op": "put", "id": bulk_id, "data": {"n": 2}}]});
    let (status, body) = send(
        &http,
        reqwest::Method::POST,
        &format!("{dc1}/v1/collections/c/bulk"),
        Some(ops),
        &[],
    )
    .await;
    assert_eq!((status, &body["results"][0]["status"]), (200, &json!(201)));
    assert_eq!(put(&http, &doc(&dc1, "c", &id), json!({"n": 1})).await, 201);
    c.cluster
        .as_mut()
        .unwrap()
        .restart_node(0, 0)
        .await
        .unwrap();
    assert_eq!(
        post(&http, &format!("{admin1}/admin/peers/dc2/resume")).await,
        200
    );

    // The deletion reaches dc2 and the write reaches dc1: the write stands in both, the
    // document written before the deletion in neither.
    for base in [&dc1, &dc2] {
        until("the writes after the deletion stand", async || {
            let (status, body) = get(&http, &doc(base, "c", &id)).await;
            let (bulk_status, _) = get(&http, &doc(base, "c", &bulk_id)).await;
            status == 200 && body["data"] == json!({"n": 1}) && bulk_status == 200
        })
        .await;
    }
    converged(&http, &admin1, &admin2).await;
    for base in [&dc1, &dc2] {
        let (status, body) = get(&http, &doc(base, "c", &id)).await;
        assert_eq!((status, &body["data"]), (200, &json!({"n": 1})), "{base}");
        let (status, body) = get(&http, &doc(base, "c", &bulk_id)).await;
        assert_eq!((status, &body["data"]), (200, &json!({"n": 2})), "{base}");
        assert_eq!(get(&http, &doc(base, "c", "old")).await.0, 404, "{base}");
    }
    c.stop().await;
}

/// A two-DC cluster of `aerolith` processes (two nodes a DC, default flags) with collection
/// `k` created and served in both DCs.
/// A write a node takes before a deletion of its collection, recorded elsewhere in the DC,
/// reaches it (the deletion was cut short at the DC's first node and the replicator that
/// would spread it hangs) is newer than the deletion and acknowledged after it: when the
/// deletion arrives it removes only what was written before it, and every DC ends with
/// the collection alive again holding exactly the later documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_acknowledged_after_a_deletion_outlives_its_late_arrival() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut cluster = proc_cluster(dir.path(), &http).await;
    let (dc1, dc2) = (cluster.http[0].clone(), cluster.http[1].clone());
    let coll = |base: &str| format!("{base}/v1/collections/late");
    let doc = |base: &str, id: &str| format!("{base}/v1/collections/late/docs/{id}");
    assert_eq!(put(&http, &coll(&dc1), json!({})).await, 201);
    for i in 0..8 {
        let url = doc(&dc1, &format!("old{i}"));
        assert_eq!(put(&http, &url, json!({"i": i})).await, 201);
    }
    converge(&http, &cluster.admin).await;

    let replicator = cluster
        .procs
        .iter()
        .position(|p| p.role == Role::Replicator && p.dc == 0)
        .expect("dc1's replicator");
    cluster.freeze(replicator).unwrap();
    let client = delete_on_first_node(&cluster, "late").await;
    // Acknowledged after the deletion, on every node of dc1 (the other one still holds
    // the old incarnation).
    let new: Vec<String> = (0..16).map(|i| format!("new{i}")).collect();
    for id in &new {
        assert_eq!(put(&http, &doc(&dc1, id), json!({"id": id})).await, 201);
    }
    cluster.thaw(replicator).unwrap();

    for base in [&dc1, &dc2] {
        until("every DC holds exactly the later documents", async || {
            let (status, page) = get(&http, &format!("{}/docs?limit=100", coll(base))).await;
            let mut ids: Vec<String> = page["documents"]
                .as_array()
                .map(|docs| {
                    docs.iter()
                        .filter_map(|d| d["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            let mut want = new.clone();
            want.sort();
            status == 200 && ids == want
        })
        .await;
    }
    converge(&http, &cluster.admin).await;
    for base in [&dc1, &dc2] {
        assert_eq!(get(&http, &coll(base)).await.0, 200, "{base}");
        for i in 0..8 {
            let url = doc(base, &format!("old{i}"));
            assert_eq!(get(&http, &url).await.0, 404, "{url}");
        }
        for id in &new {
            assert_eq!(
                get(&http, &doc(base, id)).await.1["data"],
                json!({"id": id})
            );
        }
    }
    client.close();
}

/// Waits until every DC of `admin`'s replicators holds the same documents.
async fn converge(http: &reqwest::Client, admin: &[String]) {
    assert!(
        aerolith_loadtest::faults::check::converge(http, admin, Duration::from_secs(60)).await,
        "the DCs never converged"
    );
}

/// Deletes a collection on dc1's first node only, over the internal RPC, as a deletion
/// cut short after its first call leaves it; the client, to close at the end.
async fn delete_on_first_node(cluster: &ProcCluster, name: &str) -> RpcClient {
    let tls = cluster.config.tls.as_ref().expect("certificates");
    let client = RpcClient::new(&TlsMaterial::from_files(tls, PeerRole::Gateway).unwrap()).unwrap();
    let first = &cluster.config.dcs[0].nodes[0].rpc;
    let req = aerolith_common::pb::DeleteCollectionRequest {
        name: name.into(),
        hlc: 0,
    };
    client
        .node()
        .delete_collection(first, req, Duration::from_secs(10))
        .await
        .unwrap();
    client
}

async fn proc_cluster(dir: &std::path::Path, http: &reqwest::Client) -> ProcCluster {
    let cluster = ProcCluster::start(dir, env!("CARGO_BIN_EXE_aerolith").as_ref(), 2, 2)
        .await
        .expect("cluster starts");
    // A new cluster starts with no extra step: each node's replicator finds no data in the
    // peer DC and lets it serve its empty store.
    until("both DCs serve collection k", async || {
        let created = send(
            http,
            reqwest::Method::PUT,
            &format!("{}/v1/collections/k", cluster.http[0]),
            Some(json!({"conflict_strategy": "field_merge"})),
            &[],
        )
        .await
        .0;
        let mut everywhere = matches!(created, 200 | 201);
        for base in &cluster.http {
            everywhere &= get(http, &format!("{base}/v1/collections/k")).await.0 == 200;
        }
        everywhere
    })
    .await;
    cluster
}

/// A new cluster's stores wait for their replicator's decision before they serve (issue
/// 20, item 4); until then a gateway is not ready, as its writes would fail: readiness
/// means every shard has an owner that serves it, not merely one that answers a ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_is_not_ready_while_no_owner_serves_its_shards() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut cluster = ProcCluster::prepare(
        dir.path(),
        env!("CARGO_BIN_EXE_aerolith").as_ref(),
        2,
        1,
        Vec::new(),
    )
    .unwrap();
    // Nodes and gateways only: no replicator decides whether the new stores may serve.
    for role in [Role::Node, Role::Gateway] {
        for i in cluster.of_role(role) {
            cluster.launch(i).await.unwrap();
        }
    }
    let dc1 = cluster.http[0].clone();
    let doc = format!("{dc1}/v1/collections/k/docs/d");
    assert_eq!(put(&http, &doc, json!({"i": 1})).await, 503);
    let (status, body) = get(&http, &format!("{dc1}/readyz")).await;
    assert_eq!(status, 503, "ready while a write fails: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");

    for i in cluster.of_role(Role::Replicator) {
        cluster.launch(i).await.unwrap();
    }
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    assert_eq!(put(&http, &doc, json!({"i": 1})).await, 201);
}

/// Issue 20, item 4: a storage node restarted on an empty data directory with default
/// flags does not serve an empty store: it is seeded from the peer DC, never answers 404
/// for a document the cluster holds, and its later writes reach the peer DC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_an_empty_disk_is_seeded_not_served_empty() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut cluster = proc_cluster(dir.path(), &http).await;
    let (dc1, dc2) = (cluster.http[0].clone(), cluster.http[1].clone());
    let doc = |base: &str, i: usize| format!("{base}/v1/collections/k/docs/d{i}");
    for i in 0..24 {
        assert_eq!(put(&http, &doc(&dc1, i), json!({"i": i})).await, 201);
    }
    converge(&http, &cluster.admin).await;

    // dc1's first node loses its disk and comes back with default flags.
    let n1 = cluster.of_role(Role::Node)[0];
    cluster.wipe(n1).unwrap();
    cluster.launch(n1).await.unwrap();
    // Every read through dc1 finds every document (served by dc2 until the node is seeded).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for i in 0..24 {
            let (s, body) = get(&http, &doc(&dc1, i)).await;
            assert_ne!(s, 404, "d{i} was lost: {body}");
        }
        if aerolith_loadtest::faults::check::converge(&http, &cluster.admin, Duration::from_secs(1))
            .await
        {
            break;
        }
        assert!(Instant::now() < deadline, "the wiped node was never seeded");
    }
    for i in 0..24 {
        let (s, body) = get(&http, &doc(&dc1, i)).await;
        assert_eq!((s, body["data"].clone()), (200, json!({"i": i})));
    }
    // Its new writes are not taken for old ones by the peer DC.
    let on_n1: Vec<usize> = (0..24)
        .filter(|i| cluster.owner_of(0, shard_of("k", &format!("d{i}"), DEFAULT_SHARDS)) == n1)
        .collect();
    assert!(!on_n1.is_empty());
    for &i in &on_n1 {
        assert_eq!(
            put(&http, &doc(&dc1, i), json!({"i": i, "after": true})).await,
            200
        );
    }
    converge(&http, &cluster.admin).await;
    for &i in &on_n1 {
        let (s, body) = get(&http, &doc(&dc2, i)).await;
        assert_eq!(
            (s, body["data"].clone()),
            (200, json!({"i": i, "after": true}))
        );
    }
}

/// Issue 20, item 6: a node restarted with its clock stepped back keeps stamping above
/// what it stamped before, so its later write of a field is not lost to an older one when
/// the DCs merge, and `updated_at` never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_back_at_a_restart_does_not_lose_a_newer_write() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut cluster = proc_cluster(dir.path(), &http).await;
    let (dc1, dc2) = (cluster.http[0].clone(), cluster.http[1].clone());
    let (admin1, admin2) = (cluster.admin[0].clone(), cluster.admin[1].clone());
    let url = |base: &str| format!("{base}/v1/collections/k/docs/t");
    assert_eq!(put(&http, &url(&dc1), json!({"a": 1, "b": 1})).await, 201);
    until("t reaches dc2", async || {
        get(&http, &url(&dc2)).await.0 == 200
    })
    .await;
    let before = get(&http, &url(&dc1)).await.1["updated_at"].clone();

    for (admin, peer) in [(&admin1, "dc2"), (&admin2, "dc1")] {
        assert_eq!(
            post(&http, &format!("{admin}/admin/peers/{peer}/pause")).await,
            200
        );
    }
    // dc2 writes b; then dc1's owner of t restarts with its clock 30 s behind and writes a.
    assert_eq!(merge_patch(&http, &url(&dc2), json!({"b": 2})).await, 200);
    let owner = cluster.owner_of(0, shard_of("k", "t", DEFAULT_SHARDS));
    cluster
        .restart(owner, vec!["--clock-offset-ms=-30000".into()])
        .await
        .unwrap();
    // A fresh gateway, so the write goes to the restarted node rather than failing over
    // (the old one saw the restart drop its connection and failed the node over).
    let gateway = cluster
        .of_role(Role::Gateway)
        .into_iter()
        .find(|i| cluster.procs[*i].dc == 0)
        .unwrap();
    cluster.restart(gateway, Vec::new()).await.unwrap();
    let (status, written) = merge_patch_body(&http, &url(&dc1), json!({"a": 2})).await;
    assert_eq!(
        (status, written["origin"].clone()),
        (200, json!("dc1")),
        "{written}"
    );
    let (_, after) = get(&http, &url(&dc1)).await;
    assert!(
        after["updated_at"].as_str() >= before.as_str(),
        "updated_at went back: {before} then {}",
        after["updated_at"]
    );
    for (admin, peer) in [(&admin1, "dc2"), (&admin2, "dc1")] {
        assert_eq!(
            post(&http, &format!("{admin}/admin/peers/{peer}/resume")).await,
            200
        );
    }
    converge(&http, &cluster.admin).await;
    for base in [&dc1, &dc2] {
        let (s, body) = get(&http, &url(base)).await;
        assert_eq!(
            (s, body["data"].clone()),
            (200, json!({"a": 2, "b": 2})),
            "{base}"
        );
    }
}
