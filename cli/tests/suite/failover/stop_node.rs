//! Failover: with one storage node of dc1 stopped, reads and writes of its shards through
//! dc1's gateway keep succeeding, served by the shards' owners in dc2; once the node is
//! back and has caught up, dc1 serves them again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};

/// A document id of `collection` whose shard dc1's second node (index 1 of 2) owns.
fn id_on_second_node(collection: &str, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|id| shard_of(collection, id, DEFAULT_SHARDS) % 2 == 1)
        .expect("some id lands there")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_local_node_fails_its_shards_over_to_the_next_dc() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, dc2) = crate::support::start_two_dcs(dir.path()).await;
    let get = |base: &str, id: &str| {
        let url = format!("{base}/v1/collections/f/docs/{id}");
        let http = c.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let before = id_on_second_node("f", "before");
    let r = c
        .http
        .put(format!("{dc1}/v1/collections/f/docs/{before}"))
        .json(&json!({"when": "before"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&dc2, &before).await.0 != 200 {
        assert!(Instant::now() < deadline, "{before} never reached dc2");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    c.cluster.as_mut().unwrap().stop_node(0, 1).await.unwrap();
    let killed = Instant::now();

    // Writes of the dead node's shards through dc1's gateway succeed again within seconds.
    let during = id_on_second_node("f", "during");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .http
            .put(format!("{dc1}/v1/collections/f/docs/{during}"))
            .json(&json!({"when": "during"}))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break;
        }
        assert_eq!(r.status(), 503, "only unavailable while failing over");
        assert!(Instant::now() < deadline, "writes never failed over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "failover: first successful write {} ms after the node stopped",
        killed.elapsed().as_millis()
    );
    // Reads of those shards too, old and new documents, through dc1's gateway.
    let (status, doc) = get(&dc1, &before).await;
    assert_eq!((status, &doc["data"]), (200, &json!({"when": "before"})));
    let (status, doc) = get(&dc1, &during).await;
    assert_eq!((status, &doc["data"]), (200, &json!({"when": "during"})));
    assert!(
        doc["version"].as_str().is_some_and(|v| v.contains("dc2@")),
        "the write was taken by dc2: {doc}"
    );
    // Many writes and reads in a row, all served.
    for i in 0..20 {
        let id = id_on_second_node("f", &format!("more{i}_"));
        let r = c
            .http
            .put(format!("{dc1}/v1/collections/f/docs/{id}"))
            .json(&json!({"i": i}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        assert_eq!(get(&dc1, &id).await.0, 200);
    }

    // Bulk writes of those shards are routed to dc2's owners too.
    let ops: Vec<Value> = (0..10)
        .map(|i| json!({"op": "put", "id": id_on_second_node("f", &format!("bulk{i}_")), "data": {"i": i}}))
        .collect();
    let r = c
        .http
        .post(format!("{dc1}/v1/collections/f/bulk"))
        .json(&json!({ "ops": ops }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    for item in body["results"].as_array().unwrap() {
        assert_eq!(item["status"], 201, "{body}");
    }

    // The node returns: once it has caught up, dc1 takes that shard's writes again, and
    // what dc2 took meanwhile reads the same through it.
    c.cluster
        .as_mut()
        .unwrap()
        .restart_node(0, 1)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    loop {
        n += 1;
        let id = id_on_second_node("f", &format!("after{n}_"));
        let r = c
            .http
            .put(format!("{dc1}/v1/collections/f/docs/{id}"))
            .json(&json!({"n": n}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let version = r.json::<Value>().await.unwrap()["version"].clone();
        if version.as_str().is_some_and(|v| v.starts_with("dc1@")) {
            break;
        }
        assert!(Instant::now() < deadline, "never failed back: {version}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, doc) = get(&dc1, &during).await;
    assert_eq!((status, &doc["data"]), (200, &json!({"when": "during"})));
    c.stop().await;
}
