//! Roles in the internal RPC, over real QUIC: a gateway's certificate may read and write
//! documents but not apply forged records, forge acknowledgements, seed or back up; a
//! certificate without a role (one shared by every process, as before roles) may call
//! nothing; backups land only below the node's backup directory; and a client refuses a
//! "storage node" that presents another role's certificate.

use aerolith_common::rpc::{DevCa, PeerRole, RpcClient};
use aerolith_common::shard::shard_of;
use aerolith_common::{ErrorCode, pb};

use super::{WAIT, node_with_collection, start_node};

const SHARDS: u16 = 8;

/// What a node holds that a forged call could change: every shard's digest and every
/// applied watermark, as a replicator reads them.
async fn state(replicator: &RpcClient, addr: &str) -> (Vec<pb::ShardDigest>, Vec<pb::Watermark>) {
    let digests = replicator
        .node()
        .digest(addr, pb::DigestRequest::default(), WAIT)
        .await
        .expect("digests")
        .shards;
    let watermarks = replicator
        .node()
        .watermarks(
            addr,
            pb::WatermarksRequest {
                shards: (0..u32::from(SHARDS)).collect(),
            },
            WAIT,
        )
        .await
        .expect("watermarks")
        .watermarks;
    (digests, watermarks)
}

/// A watermark-only apply from `dc2` (no record: only the watermark moves), as a forged
/// shipment would claim.
fn forged_apply(shard: u32) -> pb::ApplyRequest {
    pb::ApplyRequest {
        shard,
        collection: "c".into(),
        id: "x".into(),
        origin_dc: "dc2".into(),
        position: Some(pb::ShardPosition {
            shard,
            epoch: 7,
            seq: 1_000,
        }),
        ..Default::default()
    }
}

fn refused<T: std::fmt::Debug>(what: &str, out: aerolith_common::Result<T>) {
    let e = out.expect_err(&format!("{what} must be refused"));
    assert_eq!(e.code, ErrorCode::PermissionDenied, "{what}: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_certificate_cannot_apply_acknowledge_seed_or_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let (node, gateway, ca) = node_with_collection(dir.path(), SHARDS).await;
    let addr = node.addr().to_string();
    let replicator =
        RpcClient::new(&ca.issue("replicator", PeerRole::Replicator).unwrap()).unwrap();
    let shard = u32::from(shard_of("c", "x", SHARDS));
    // The gateway's own calls work: a write and a read.
    let put = pb::PutRequest {
        shard,
        collection: "c".into(),
        id: "x".into(),
        body: br#"{"v":1}"#.to_vec(),
        ..Default::default()
    };
    gateway
        .node()
        .put(&addr, put, WAIT)
        .await
        .expect("a gateway writes");
    let before = state(&replicator, &addr).await;

    refused(
        "apply",
        gateway.node().apply(&addr, forged_apply(shard), WAIT).await,
    );
    let batch = pb::ApplyBatchRequest {
        applies: vec![forged_apply(shard)],
        ..Default::default()
    };
    refused(
        "apply_batch",
        gateway.node().apply_batch(&addr, batch, WAIT).await,
    );
    let acks = pb::PeerAcksRequest {
        peers: vec!["dc2".into()],
        acks: vec![pb::PeerAck {
            peer_dc: "dc2".into(),
            acked: Some(pb::ShardPosition {
                shard,
                epoch: u64::MAX,
                seq: u64::MAX,
            }),
            peer_head: None,
        }],
    };
    refused(
        "peer_acks",
        gateway.node().peer_acks(&addr, acks, WAIT).await,
    );
    let wipe = pb::SeedWriteRequest {
        shard,
        reset: true,
        ..Default::default()
    };
    refused(
        "seed_write",
        gateway.node().seed_write(&addr, wipe, WAIT).await,
    );
    let backup = pb::BackupRequest { dir: "b1".into() };
    refused("backup", gateway.node().backup(&addr, backup, WAIT).await);
    // A forbidden call cannot ride inside a batch of allowed ones.
    let smuggled = pb::RequestBatch {
        items: vec![pb::Request {
            timeout_ms: 5_000,
            body: Some(pb::request::Body::Apply(forged_apply(shard))),
        }],
    };
    refused(
        "a batch carrying apply",
        gateway.node().batch(&addr, smuggled, WAIT).await,
    );

    // Nothing changed: the same documents, tombstones and watermarks; no backup written.
    assert_eq!(state(&replicator, &addr).await, before);
    assert!(!dir.path().join("backups").join("b1").exists());
    let read = pb::GetRequest {
        shard,
        collection: "c".into(),
        id: "x".into(),
        session: vec![],
    };
    let doc = gateway
        .node()
        .get(&addr, read, WAIT)
        .await
        .expect("x reads");
    assert_eq!(doc.record.expect("x is there").body, br#"{"v":1}"#.to_vec());

    // The same apply from a replicator does move the watermark: the refusal above was the
    // role, not a malformed call.
    replicator
        .node()
        .apply(&addr, forged_apply(shard), WAIT)
        .await
        .expect("a replicator applies");
    assert_ne!(state(&replicator, &addr).await.1, before.1);

    // Backups go below the node's backup directory, and nowhere else.
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("b1").display().to_string();
    refused(
        "a backup outside the backup directory",
        replicator
            .node()
            .backup(&addr, pb::BackupRequest { dir: outside }, WAIT)
            .await,
    );
    assert!(!elsewhere.path().join("b1").exists());
    refused(
        "a backup climbing out with ..",
        replicator
            .node()
            .backup(
                &addr,
                pb::BackupRequest {
                    dir: "../b2".into(),
                },
                WAIT,
            )
            .await,
    );
    let done = replicator
        .node()
        .backup(&addr, pb::BackupRequest { dir: "b1".into() }, WAIT)
        .await
        .expect("a replicator backs up below the directory");
    assert!(
        done.dir
            .starts_with(&dir.path().join("backups").display().to_string())
    );
    assert!(dir.path().join("backups/b1/AEROLITH-BACKUP.json").is_file());
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_a_role_may_call_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, gateway, ca) = node_with_collection(dir.path(), SHARDS).await;
    let addr = node.addr().to_string();
    let (_, legacy) = ca.issue_without_role("every process").unwrap();
    let legacy = RpcClient::new(&legacy).unwrap();
    refused(
        "ping",
        legacy.node().ping(&addr, pb::PingRequest {}, WAIT).await,
    );
    let read = pb::GetRequest {
        shard: u32::from(shard_of("c", "x", SHARDS)),
        collection: "c".into(),
        id: "x".into(),
        session: vec![],
    };
    refused("get", legacy.node().get(&addr, read, WAIT).await);
    // Certified members are served as before.
    gateway
        .node()
        .ping(&addr, pb::PingRequest {}, WAIT)
        .await
        .expect("a gateway pings");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_server_with_another_roles_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    // A "storage node" that presents a gateway's certificate (a compromised gateway posing
    // as a node, to feed a replicator forged changes).
    let impostor = start_node(dir.path(), &ca, SHARDS, PeerRole::Gateway).await;
    let addr = impostor.addr().to_string();
    let replicator =
        RpcClient::new(&ca.issue("replicator", PeerRole::Replicator).unwrap()).unwrap();
    let e = replicator
        .node()
        .ping(&addr, pb::PingRequest {}, WAIT)
        .await
        .expect_err("a server without a storage node's certificate is refused");
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert!(e.message.contains("not a storage node's"), "{e}");
    impostor.shutdown().await.unwrap();
}
