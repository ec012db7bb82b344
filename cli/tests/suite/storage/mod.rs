//! One storage node on its own: its process surviving SIGKILL, hostile input on its
//! internal RPC, the roles that may make each call, and batched calls.

mod batched_calls;
mod hostile_rpc;
mod internal_roles;
mod process;

use aerolith_common::json::Limits;
use aerolith_common::rpc::{DevCa, PeerRole};
use aerolith_storagenode::{Durability, MemoryProfile, NodeOptions, Retention, StorageNode};

/// One durable storage node of dc1 with `shards` shards, in this process, on a loopback port,
/// presenting a certificate of `role` (a storage node's, but for tests of impostors).
async fn start_node(dir: &std::path::Path, ca: &DevCa, shards: u16, role: PeerRole) -> StorageNode {
    StorageNode::start(NodeOptions {
        data_dir: dir.join("n1"),
        dc: "dc1".into(),
        node: "n1".into(),
        shards,
        listen: "127.0.0.1:0".parse().unwrap(),
        durability: Durability::Durable,
        memory: MemoryProfile::Small,
        limits: Limits::default(),
        tls: ca.issue("dc1-n1", role).unwrap(),
        scan_budget: aerolith_storagenode::DEFAULT_SCAN_BUDGET,
        retention: Retention::default(),
        new_store: Default::default(),
        backup_dir: Some(dir.join("backups")),
    })
    .await
    .expect("storage node starts")
}

/// A node as [`start_node`] makes it, with collection `c` created, and a gateway's client
/// of it; the CA, for clients of other kinds.
async fn node_with_collection(
    dir: &std::path::Path,
    shards: u16,
) -> (StorageNode, aerolith_common::rpc::RpcClient, DevCa) {
    let ca = DevCa::generate().unwrap();
    let node = start_node(dir, &ca, shards, PeerRole::StorageNode).await;
    let client =
        aerolith_common::rpc::RpcClient::new(&ca.issue("gateway", PeerRole::Gateway).unwrap())
            .unwrap();
    let collection = aerolith_common::pb::PutCollectionRequest {
        name: "c".into(),
        ..Default::default()
    };
    client
        .node()
        .put_collection(&node.addr().to_string(), collection, WAIT)
        .await
        .expect("collection created");
    (node, client, ca)
}

/// How long the storage tests' calls wait.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
