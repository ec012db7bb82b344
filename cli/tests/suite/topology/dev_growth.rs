//! `aerolith dev` with a larger `--nodes-per-dc` on an existing data directory (issue 25):
//! the new nodes start empty, join each DC's shard map and receive shards in the
//! background until no node owns more than ⌈shards/N⌉, with every document still served;
//! fewer nodes are refused.

use serde_json::json;

use super::until;
use crate::support::start_with;
use aerolith_cli::dev::{DevCluster, DevOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_nodes_per_dc_adds_nodes_and_rebalances() {
    let dir = tempfile::tempdir().unwrap();
    let opts = |nodes_per_dc| DevOptions {
        dcs: 2,
        nodes_per_dc,
        ..DevOptions::new(dir.path().to_path_buf())
    };
    let mut c = start_with(opts(2)).await;
    c.bulk_puts("grow", 200).await;
    c.stop().await;

    let mut c = start_with(opts(3)).await;
    let admins: Vec<String> = c
        .cluster
        .as_ref()
        .unwrap()
        .endpoints()
        .dcs
        .iter()
        .map(|d| format!("http://{}", d.admin))
        .collect();
    for admin in &admins {
        until(&c.http, admin, "the rebalance", |nodes, moves| {
            let counts: Vec<usize> = nodes["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["shards"].as_array().map_or(0, Vec::len))
                .collect();
            let idle = moves["queued"] == 0 && moves["running"] == 0;
            idle && moves["failed"] == 0 && counts.len() == 3 && counts.iter().all(|n| *n <= 22)
        })
        .await;
    }
    let count = c
        .post_json("/v1/collections/grow/count", &json!({"filter": {}}))
        .await;
    assert_eq!(count.body, json!({"count": 200}), "{:?}", count.body);
    let one = c.get("/v1/collections/grow/docs/k123").await;
    assert_eq!(one.body["data"], json!({"i": 123}), "{:?}", one.body);
    c.stop().await;

    // Shrinking takes a decommission, not a flag.
    let e = DevCluster::start(opts(2))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(e.contains("decommission"), "{e}");
}
