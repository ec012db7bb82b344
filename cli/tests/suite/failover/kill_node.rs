//! Failover with a real kill: in a two-DC cluster of `aerolith` processes, dc1's first
//! storage node is SIGKILLed. Writes and reads of its shards through dc1's gateway keep
//! succeeding (served by dc2's owners), and so do queries and listings over every shard; once
//! the node is restarted and has caught up, dc1 serves its shards again and holds what was
//! written meanwhile.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use aerolith_common::pb;
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

const WAIT: Duration = Duration::from_secs(2);

/// Ids of collection `k` whose shards dc1's first node (of two) owns.
fn ids_on_first_node(prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|id| shard_of("k", id, DEFAULT_SHARDS).is_multiple_of(2))
        .take(n)
        .collect()
}

async fn put(http: &reqwest::Client, base: &str, id: &str) -> (u16, Value) {
    let r = http
        .put(format!("{base}/v1/collections/k/docs/{id}"))
        .header("x-aerolith-timeout-ms", "3000")
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, base: &str, id: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}/v1/collections/k/docs/{id}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_fails_its_shards_over_and_back() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let aerolith = std::path::Path::new(env!("CARGO_BIN_EXE_aerolith"));
    let mut cluster = ProcCluster::start(dir.path(), aerolith, 2, 2)
        .await
        .expect("the cluster starts");
    let http = reqwest::Client::new();
    let dc1 = cluster.http[0].clone();
    let before = ids_on_first_node("before", 5);
    for id in &before {
        let (status, body) = put(&http, &dc1, id).await;
        assert!(matches!(status, 200 | 201), "{id}: {status} {body}");
    }
    // Shipped to dc2 before the kill (a `local` write still on its only disk would wait for
    // the node's return, as API.md's durability paragraph says).
    // Asked of dc2's owner itself: dc2's gateway would answer from dc1 while dc2's nodes
    // wait for their replicator's first decision (a new store serves nothing until then).
    let nodes = crate::support::procs::Nodes::of(&cluster);
    let rpc = nodes.client.node();
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &before {
        let req = pb::GetRequest {
            shard: u32::from(shard_of("k", id, DEFAULT_SHARDS)),
            collection: "k".into(),
            id: id.clone(),
            session: Vec::new(),
        };
        loop {
            let read = rpc.get(nodes.node("dc2"), req.clone(), WAIT);
            if read.await.is_ok_and(|d| d.record.is_some()) {
                break;
            }
            assert!(Instant::now() < deadline, "{id} did not reach dc2");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let victim = cluster.of_role(Role::Node)[0];
    assert_eq!(cluster.procs[victim].name, "dc1-n1");
    cluster.kill(victim);
    // The gateway notices within the RPC idle timeout; until then a call may time out.
    let during = ids_on_first_node("during", 20);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(put(&http, &dc1, &during[0]).await.0, 200 | 201) {
        assert!(
            Instant::now() < deadline,
            "no write succeeded after the kill"
        );
    }
    // From then on every write and read of the dead node's shards succeeds, through dc2.
    for id in &during[1..] {
        let (status, body) = put(&http, &dc1, id).await;
        assert_eq!(status, 201, "{body}");
        assert!(
            body["version"].as_str().unwrap().starts_with("dc2@"),
            "{body}"
        );
    }
    for id in before.iter().chain(&during) {
        let (status, body) = get(&http, &dc1, id).await;
        assert_eq!((status, &body["data"]), (200, &json!({"id": id})));
    }
    // Queries and listings cover every shard, the dead node's included.
    let query = http
        .post(format!("{dc1}/v1/collections/k/query"))
        .json(&json!({"filter": {}, "limit": 1000}));
    let list = http.get(format!("{dc1}/v1/collections/k/docs?limit=1000"));
    for req in [query, list] {
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        let n = page["documents"].as_array().map(Vec::len);
        assert_eq!(n, Some(before.len() + during.len()), "{page}");
    }
    // Ready: every shard still has a reachable owner.
    let ready = http.get(format!("{dc1}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    // Back and caught up: dc1 writes its shards itself again.
    cluster.launch(victim).await.expect("the node restarts");
    let after = ids_on_first_node("after", 200);
    let mut i = 0;
    loop {
        let (status, body) = put(&http, &dc1, &after[i]).await;
        assert_eq!(status, 201, "{body}");
        if body["version"].as_str().unwrap().starts_with("dc1@") {
            break;
        }
        i += 1;
        assert!(i < after.len(), "dc1 never served its shards again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &during {
        assert_eq!(
            get(&http, &dc1, id).await.0,
            200,
            "{id} is held by dc1 again"
        );
    }
}
