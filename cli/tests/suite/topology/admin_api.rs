//! The admin API that grows and shrinks a DC (issue 25; API.md "Replicator admin"), over
//! the wire against `aerolith dev` (two DCs of two nodes): bad requests get their codes;
//! decommissioning a node moves all its shards to the other one while the data stays
//! readable, writable and countable, and a feed token from before the moves resumes after
//! them with every change; adding it back and rebalancing splits them again.

use serde_json::{Value, json};

use super::{call, until};
use crate::support::start_with;
use aerolith_cli::dev::DevOptions;

/// Reads collection `g`'s feed from `since` to its end: the ids of the changes and the token
/// to resume from.
async fn drain(c: &crate::support::TestCluster, since: Option<&str>) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut token = since.map(str::to_string);
    loop {
        let from = token
            .as_deref()
            .map_or(String::new(), |t| format!("&since={t}"));
        let page = c
            .get(&format!("/v1/collections/g/changes?limit=1000{from}"))
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let changes = page.body["changes"].as_array().cloned().unwrap_or_default();
        ids.extend(
            changes
                .iter()
                .filter_map(|e| e["id"].as_str().map(str::to_string)),
        );
        token = page.body["next"].as_str().map(str::to_string);
        if changes.is_empty() {
            return (ids, token.unwrap_or_default());
        }
    }
}

fn owned(nodes: &Value, id: &str) -> Option<usize> {
    nodes["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["shards"].as_array().map(Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_and_add_back_keep_every_document_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let admin = format!(
        "http://{}",
        c.cluster.as_ref().unwrap().endpoints().dcs[0].admin
    );
    let http = c.http.clone();
    use reqwest::Method as M;

    let (status, nodes) = call(&http, M::GET, format!("{admin}/admin/nodes"), None).await;
    assert_eq!(status, 200, "{nodes}");
    assert_eq!(nodes["epoch"], json!(1));
    assert_eq!(nodes["moving"], json!([]));
    assert_eq!(nodes["nodes"][0]["state"], json!("active"));
    let n1_rpc = nodes["nodes"][0]["rpc"].as_str().unwrap().to_string();
    let n2_rpc = nodes["nodes"][1]["rpc"].as_str().unwrap().to_string();

    // Bad requests.
    let add = |body: Value| call(&http, M::POST, format!("{admin}/admin/nodes"), Some(body));
    let (s, b) = add(json!({"id": "no spaces", "rpc": n1_rpc})).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (400, &json!("invalid_argument")),
        "{b}"
    );
    let (s, b) = add(json!({"id": "n9"})).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = add(json!({"id": "n9", "rpc": "127.0.0.1:1"})).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (503, &json!("unavailable")),
        "{b}"
    );
    let (s, b) = add(json!({"id": "n9", "rpc": n1_rpc})).await;
    assert_eq!(s, 400, "the node at that address is n1: {b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("n1"),
        "{b}"
    );
    let (s, b) = add(json!({"id": "n1", "rpc": n1_rpc})).await;
    assert_eq!(s, 200, "already listed: {b}");
    let (s, b) = call(
        &http,
        M::POST,
        format!("{admin}/admin/nodes/n7/decommission"),
        None,
    )
    .await;
    assert_eq!((s, &b["error"]["code"]), (404, &json!("not_found")), "{b}");
    let (s, b) = call(&http, M::POST, format!("{admin}/admin/rebalance"), None).await;
    assert_eq!((s, &b["moves"]), (202, &json!([])), "balanced already: {b}");

    // Data in every shard, and a feed token from before any move.
    c.bulk_puts("g", 300).await;
    let (ids, before_moves) = drain(&c, None).await;
    assert_eq!(ids.len(), 300);

    // Decommission n2: its shards move to n1, every document stays served.
    let (s, b) = call(
        &http,
        M::POST,
        format!("{admin}/admin/nodes/n2/decommission"),
        None,
    )
    .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["moves"].as_array().map(Vec::len), Some(32), "{b}");
    // Writes while the shards move: each is acknowledged once, wherever its shard is.
    for i in 0..40 {
        let r = c
            .put_json(
                &format!("/v1/collections/g/docs/during{i}"),
                &json!({"i": i}),
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "during{i}: {:?}", r.body);
    }
    let (s, b) = call(
        &http,
        M::POST,
        format!("{admin}/admin/nodes/n1/decommission"),
        None,
    )
    .await;
    assert_eq!(s, 400, "the last node that stays cannot leave: {b}");
    until(&http, &admin, "n2 to leave the map", |nodes, _| {
        owned(nodes, "n2").is_none()
    })
    .await;
    let (_, moves) = call(&http, M::GET, format!("{admin}/admin/moves"), None).await;
    assert_eq!(moves["done"], json!(32), "{moves}");
    assert!(
        moves["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["copied"].as_u64() > Some(0) && m["pause_ms"].is_u64()),
        "{moves}"
    );
    let count = c
        .post_json("/v1/collections/g/count", &json!({"filter": {}}))
        .await;
    assert_eq!(count.body, json!({"count": 340}), "{:?}", count.body);
    for i in [0, 7, 150, 299] {
        let r = c.get(&format!("/v1/collections/g/docs/k{i}")).await;
        assert_eq!(r.status, 200, "k{i}: {:?}", r.body);
    }
    let r = c
        .put_json("/v1/collections/g/docs/after", &json!({"i": -1}), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The token from before the moves resumes after them with every change since.
    let (ids, _) = drain(&c, Some(&before_moves)).await;
    for want in (0..40)
        .map(|i| format!("during{i}"))
        .chain(["after".to_string()])
    {
        assert!(
            ids.contains(&want),
            "{want} missing from the resumed feed: {ids:?}"
        );
    }

    // Added back: it answers as n2 at its address; a rebalance gives it half.
    let (s, b) = add(json!({"id": "n2", "rpc": n2_rpc})).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = call(&http, M::POST, format!("{admin}/admin/rebalance"), None).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["moves"].as_array().map(Vec::len), Some(32), "{b}");
    until(&http, &admin, "the rebalance", |nodes, moves| {
        moves["queued"] == 0 && moves["running"] == 0 && owned(nodes, "n2") == Some(32)
    })
    .await;
    let count = c
        .post_json("/v1/collections/g/count", &json!({"filter": {}}))
        .await;
    assert_eq!(count.body, json!({"count": 341}), "{:?}", count.body);
    let r = c.get("/v1/collections/g/docs/after").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    c.stop().await;
}
