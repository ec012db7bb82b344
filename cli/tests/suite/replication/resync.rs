//! Anti-entropy (`POST /admin/resync`): a record deleted behind the database's back in one
//! DC's store comes back from the other DC, and the DCs' digests match again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{converged, digests, start_two_dcs};
use aerolith_common::shard::shard_of;

async fn post(http: &reqwest::Client, url: &str, body: Value) -> (StatusCode, Value) {
    let r = http.post(url).json(&body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Deletes one document's record straight from a stopped node's RocksDB store.
fn corrupt(store: &std::path::Path, shard: u16, collection: &str, id: &str) {
    let opts = rocksdb::Options::default();
    let families = rocksdb::DB::list_cf(&opts, store).expect("a RocksDB store");
    let db = rocksdb::DB::open_cf(&opts, store, &families).expect("the store opens");
    let mut key = shard.to_be_bytes().to_vec();
    key.extend_from_slice(collection.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    let docs = db.cf_handle("docs").expect("the docs column family");
    assert!(
        db.get_cf(docs, &key).unwrap().is_some(),
        "the record is there"
    );
    db.delete_cf(docs, &key).unwrap();
    db.flush_cf(docs).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_brings_back_a_record_lost_in_one_dc() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, dc2) = start_two_dcs(dir.path()).await;
    let endpoints = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let (admin1, admin2) = (
        format!("http://{}", endpoints[0].admin),
        format!("http://{}", endpoints[1].admin),
    );
    let http = reqwest::Client::new();
    c.bulk_puts("c", 200).await;
    converged(&http, &admin1, &admin2).await;

    // Converged DCs: a pass compares every shard and repairs nothing.
    let (s, sum) = post(
        &http,
        &format!("{admin1}/admin/resync"),
        json!({"peer": "dc2"}),
    )
    .await;
    assert_eq!(s, 200, "{sum}");
    assert_eq!(sum["shards_differing"], 0, "{sum}");
    assert_eq!(sum["documents_repaired"], 0, "{sum}");
    assert!(sum["shards_compared"].as_u64().unwrap() > 0, "{sum}");

    // Lose k7 in dc1's store while its node is down.
    lose(&mut c, dir.path(), &dc1, "k7", true).await;
    let doc = format!("{dc1}/v1/collections/c/docs/k7");
    assert_ne!(digests(&http, &admin1).await, digests(&http, &admin2).await);

    // A pass from either side repairs it; here dc2's, which sends its record to dc1.
    let (s, sum) = post(
        &http,
        &format!("{admin2}/admin/resync"),
        json!({"peer": "dc1"}),
    )
    .await;
    assert_eq!(s, 200, "{sum}");
    assert_eq!(sum["shards_differing"], 1, "{sum}");
    assert_eq!(sum["ranges_differing"], 1, "{sum}");
    assert_eq!(sum["documents_repaired"], 1, "{sum}");
    assert_eq!(sum["repaired_there"], 1, "{sum}");
    let back: Value = http.get(&doc).send().await.unwrap().json().await.unwrap();
    assert_eq!(back["data"], json!({"i": 7}), "{back}");
    let from_dc2: Value = http
        .get(format!("{dc2}/v1/collections/c/docs/k7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(back["version"], from_dc2["version"]);
    assert_eq!(digests(&http, &admin1).await, digests(&http, &admin2).await);

    // Bad requests.
    let url = format!("{admin1}/admin/resync");
    assert_eq!(post(&http, &url, json!({"peer": "dc9"})).await.0, 404);
    assert_eq!(post(&http, &url, json!({"peer": "dc1"})).await.0, 400);
    assert_eq!(
        post(&http, &url, json!({"peer": "dc2", "collection": "_x"}))
            .await
            .0,
        400
    );
    assert_eq!(post(&http, &url, json!({"pear": "dc2"})).await.0, 400);
    let (s, sum) = post(&http, &url, json!({"peer": "dc2", "collection": "c"})).await;
    assert_eq!(
        (s.as_u16(), sum["documents_repaired"].as_u64()),
        (200, Some(0))
    );
    c.stop().await;
}

/// Deletes `id`'s record from its dc1 owner's store (stopped for it, then restarted), and
/// with `wait_gone` waits until dc1 answers 404 for it.
async fn lose(
    c: &mut crate::support::TestCluster,
    dir: &std::path::Path,
    dc1: &str,
    id: &str,
    wait_gone: bool,
) {
    let http = reqwest::Client::new();
    let cluster: Value = http
        .get(format!("{dc1}/v1/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shards = cluster["shards"].as_u64().unwrap() as u16;
    let shard = shard_of("c", id, shards);
    let node = shard as usize % 2;
    let cluster = c.cluster.as_mut().unwrap();
    cluster.stop_node(0, node).await.unwrap();
    corrupt(
        &dir.join("dc1").join(format!("n{}", node + 1)),
        shard,
        "c",
        id,
    );
    cluster.restart_node(0, node).await.unwrap();
    if !wait_gone {
        return;
    }
    let doc = format!("{dc1}/v1/collections/c/docs/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = http.get(&doc).send().await.unwrap().status();
        if status == 404 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dc1 still serves {id}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_pass_repairs_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start_with(aerolith_cli::dev::DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        resync_every: Some(Duration::from_secs(1)),
        ..aerolith_cli::dev::DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let dcs = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let dc1 = format!("http://{}", dcs[0].http);
    let (admin1, admin2) = (
        format!("http://{}", dcs[0].admin),
        format!("http://{}", dcs[1].admin),
    );
    c.bulk_puts("c", 50).await;
    let http = reqwest::Client::new();
    converged(&http, &admin1, &admin2).await;
    // A pass may repair it before anyone sees it gone: the proof is dc1's store, whose
    // digests match dc2's again only once k3's record is back.
    lose(&mut c, dir.path(), &dc1, "k3", false).await;
    converged(&http, &admin1, &admin2).await;
    let doc = format!("{dc1}/v1/collections/c/docs/k3");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = http.get(&doc).send().await.unwrap();
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["data"], json!({"i": 3}));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pass repaired k3"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.stop().await;
}
