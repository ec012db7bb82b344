//! The versioned shard map, over the wire, in a cluster of `aerolith` processes: the
//! replicator keeps DC 1's first map (the round robin `cluster.toml` implies, epoch 1) and
//! hands it to every node. Then every node of DC 1 is handed a later map in which one shard
//! (holding nothing yet) belongs to another node, as a finished move of it would leave
//! things. The old owner refuses the shard with `not_owner`; clients never see that: the
//! gateway learns the map and goes to the new owner, for point writes and reads, bulk,
//! queries, counts and change feeds; the replicator takes the later map from the nodes
//! (the map never goes back), keeps it across a restart, and replicates the shard both
//! ways through its new owner.

use std::time::Duration;

use serde_json::{Value, json};

use aerolith_common::ErrorCode;
use aerolith_common::pb;
use aerolith_common::rpc::{PeerRole, RpcClient, TlsMaterial};
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_common::shard_map::ShardMap;
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

use super::call;
use crate::support::procs::{admin, wait_until};

const WAIT: Duration = Duration::from_secs(5);

async fn map_epochs(client: &RpcClient, addrs: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for a in addrs {
        let m = client
            .node()
            .get_shard_map(a, pb::GetShardMapRequest {}, WAIT)
            .await;
        out.push(m.map_or(0, |m| m.epoch));
    }
    out
}

fn get_req(id: &str) -> pb::GetRequest {
    pb::GetRequest {
        shard: u32::from(shard_of("m", id, DEFAULT_SHARDS)),
        collection: "m".into(),
        id: id.into(),
        session: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_shard_map_reroutes_every_caller_without_a_restart() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let aerolith = std::path::Path::new(env!("CARGO_BIN_EXE_aerolith"));
    // New stores serve at once (a new cluster), so the gateways never fail over to dc2.
    let genesis = vec!["--new-store".to_string(), "genesis".to_string()];
    let mut cluster = ProcCluster::start_with(dir.path(), aerolith, 2, 2, genesis)
        .await
        .expect("the cluster starts");
    let http = reqwest::Client::new();
    let (gw1, gw2, admin1) = (
        cluster.http[0].clone(),
        cluster.http[1].clone(),
        cluster.admin[0].clone(),
    );
    let tls = TlsMaterial::from_files(
        cluster.config.tls.as_ref().expect("certificates"),
        PeerRole::Replicator,
    )
    .expect("certificates read");
    let client = RpcClient::new(&tls).expect("rpc client");
    let dc1 = cluster.config.dcs[0].clone();
    let addrs: Vec<String> = dc1.nodes.iter().map(|n| n.rpc.clone()).collect();

    // The first map, kept by the replicator and handed to every node.
    wait_until("every dc1 node holds the first map", 30, || async {
        map_epochs(&client, &addrs).await == vec![1, 1]
    })
    .await;
    let first = admin(&admin1, "/admin/nodes").await;
    assert_eq!(first["epoch"], json!(1), "{first}");
    let n1_shards: Vec<u16> = (0..DEFAULT_SHARDS).filter(|s| s % 2 == 0).collect();
    assert_eq!(first["nodes"][0]["shards"], json!(n1_shards), "{first}");

    // A shard of n1's, with nothing written to it yet, goes to n2 at epoch 2; n2 learns
    // it first, as a move hands it out.
    let id = (0..)
        .map(|i| format!("x{i}"))
        .find(|id| shard_of("m", id, DEFAULT_SHARDS).is_multiple_of(2))
        .unwrap();
    let shard = shard_of("m", &id, DEFAULT_SHARDS);
    let later = ShardMap::initial(&dc1, DEFAULT_SHARDS).with_owner(shard, "n2");
    assert_eq!(later.epoch, 2);
    for a in addrs.iter().rev() {
        let req = pb::SetShardMapRequest {
            map: Some(later.to_pb()),
        };
        let held = client
            .node()
            .set_shard_map(a, req, WAIT)
            .await
            .expect("map");
        assert_eq!(held.epoch, 2);
    }
    // Clients never see it: the gateway, most likely still at epoch 1 (its heartbeat would
    // tell it within 250 ms), is refused by n1, learns the map and goes to n2.
    let (status, body) = call(
        &http,
        reqwest::Method::PUT,
        format!("{gw1}/v1/collections/m/docs/{id}"),
        Some(json!({"v": 1})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["origin"], json!("dc1"), "written in dc1: {body}");
    // An older map changes nothing on a node.
    let req = pb::SetShardMapRequest {
        map: Some(ShardMap::initial(&dc1, DEFAULT_SHARDS).to_pb()),
    };
    let held = client
        .node()
        .set_shard_map(&addrs[0], req, WAIT)
        .await
        .unwrap();
    assert_eq!(held.epoch, 2);
    // The old owner refuses the shard, naming the epoch.
    let refused = client
        .node()
        .get(&addrs[0], get_req(&id), WAIT)
        .await
        .expect_err("n1 refuses a shard it no longer owns");
    assert_eq!(refused.code, ErrorCode::NotOwner, "{refused}");
    assert!(refused.message.contains("epoch 2"), "{refused}");

    let on_n2 = client.node().get(&addrs[1], get_req(&id), WAIT).await;
    assert!(
        on_n2.as_ref().is_ok_and(|d| d.record.is_some()),
        "the write is on n2: {on_n2:?}"
    );
    let (status, body) = call(
        &http,
        reqwest::Method::GET,
        format!("{gw1}/v1/collections/m/docs/{id}"),
        None,
    )
    .await;
    assert_eq!((status, &body["data"]), (200, &json!({"v": 1})), "{body}");
    let ops: Vec<Value> = (0..40)
        .map(|i| json!({"op": "put", "id": format!("b{i}"), "data": {"v": i}}))
        .collect();
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{gw1}/v1/collections/m/bulk"),
        Some(json!({"ops": ops})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let failed: Vec<&Value> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| !r["error"].is_null())
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{gw1}/v1/collections/m/count"),
        Some(json!({"filter": {}})),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({"count": 41})), "{body}");
    let (status, body) = call(
        &http,
        reqwest::Method::GET,
        format!("{gw1}/v1/collections/m/changes?limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changes"].as_array().map(Vec::len), Some(41), "{body}");
    let (status, view) = call(
        &http,
        reqwest::Method::GET,
        format!("{gw1}/v1/cluster"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let n2 = &view["dcs"][0]["nodes"][1];
    assert!(
        n2["shards"].as_array().unwrap().contains(&json!(shard)),
        "{view}"
    );

    // The replicator takes the later map from the nodes, and keeps it across a restart.
    wait_until("the replicator takes the later map", 30, || async {
        admin(&admin1, "/admin/nodes").await["epoch"] == json!(2)
    })
    .await;
    let repl = cluster.of_role(Role::Replicator)[0];
    cluster.kill(repl);
    cluster.launch(repl).await.expect("replicator restarts");
    let after = admin(&admin1, "/admin/nodes").await;
    assert_eq!(after["epoch"], json!(2), "{after}");
    assert!(
        after["nodes"][1]["shards"]
            .as_array()
            .unwrap()
            .contains(&json!(shard)),
        "{after}"
    );

    // Replication goes through the new owner both ways.
    wait_until("the write reaches dc2", 60, || async {
        let url = format!("{gw2}/v1/collections/m/docs/{id}");
        call(&http, reqwest::Method::GET, url, None).await.0 == 200
    })
    .await;
    let other = (0..)
        .map(|i| format!("y{i}"))
        .find(|y| shard_of("m", y, DEFAULT_SHARDS) == shard)
        .unwrap();
    let (status, body) = call(
        &http,
        reqwest::Method::PUT,
        format!("{gw2}/v1/collections/m/docs/{other}"),
        Some(json!({"from": "dc2"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_until("dc2's write reaches dc1's new owner", 60, || async {
        let read = client.node().get(&addrs[1], get_req(&other), WAIT).await;
        read.is_ok_and(|d| d.record.is_some())
    })
    .await;
}
