//! The storage node as a separate process: acknowledged writes survive SIGKILL, and peers
//! without a cluster certificate are refused.

use std::time::Duration;

use aerolith_common::rpc::{Call, DevCa, Node, RpcClient};
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_common::{ErrorCode, pb};
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

use crate::support::TURN;
use crate::support::procs::{Nodes, cluster_without_replicators};

/// Calls the node until it answers (it may be starting); fails after 30 s.
async fn call_until_up<C: Call<Node>>(client: &RpcClient, addr: &str, body: C) -> C::Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .node()
            .call(addr, body.clone(), Duration::from_secs(5))
            .await
        {
            Ok(r) => return r,
            Err(e)
                if e.code == ErrorCode::Unavailable && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("call failed: {e}"),
        }
    }
}

fn put(id: &str, n: u64) -> pb::PutRequest {
    pb::PutRequest {
        after_delete_hlc: 0,
        shard: u32::from(shard_of("c", id, DEFAULT_SHARDS)),
        collection: "c".into(),
        id: id.into(),
        body: format!("{{\"n\":{n}}}").into_bytes(),
        precondition: None,
        session: Vec::new(),
        idempotency: None,
    }
}

fn get(id: &str) -> pb::GetRequest {
    pb::GetRequest {
        shard: u32::from(shard_of("c", id, DEFAULT_SHARDS)),
        collection: "c".into(),
        id: id.into(),
        session: Vec::new(),
    }
}

/// The storage node of a one-DC cluster (no replicator: nothing but the node is needed).
async fn one_node(dir: &std::path::Path) -> (ProcCluster, Nodes, usize) {
    let cluster = cluster_without_replicators(dir, 1, &[]).await;
    let nodes = Nodes::of(&cluster);
    let node = cluster.of_role(Role::Node)[0];
    (cluster, nodes, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, nodes, node) = one_node(dir.path()).await;
    let addr = nodes.addrs[0].clone();
    let mut acked = Vec::new();
    for i in 0..40 {
        let id = format!("d{i}");
        let d = call_until_up(&nodes.client, &addr, put(&id, i)).await;
        acked.push((id, d.record.expect("record").vv));
    }
    // SIGKILL right after the last acknowledgement: no flush, no clean shutdown.
    cluster.kill(node);
    cluster.launch(node).await.expect("node restarts");
    for (id, vv) in &acked {
        let rec = call_until_up(&nodes.client, &addr, get(id))
            .await
            .record
            .unwrap_or_else(|| panic!("{id} lost after SIGKILL"));
        assert!(!rec.tombstone);
        assert_eq!(&rec.vv, vv, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_cluster_certificate_are_refused() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes, _) = one_node(dir.path()).await;
    let addr = nodes.addrs[0].clone();
    let ping = pb::PingRequest {};
    let pong = call_until_up(&nodes.client, &addr, ping).await;
    assert_eq!(pong.dc, "dc1", "{pong:?}");

    let stranger_ca = DevCa::generate().unwrap();
    let stranger = RpcClient::new(&stranger_ca.issue("stranger").unwrap()).unwrap();
    let err = stranger
        .node()
        .ping(&addr, ping, Duration::from_secs(5))
        .await
        .expect_err("a certificate from another CA must be refused");
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");

    // The node still serves members.
    nodes
        .client
        .node()
        .ping(&addr, ping, Duration::from_secs(5))
        .await
        .expect("members are still served");
}
