//! Batched node calls over real QUIC: a batch's items are each answered in their place with
//! their own result or error, and concurrent calls through one client travel in batches yet
//! get exactly the answers they would have got alone.

use std::sync::Arc;

use aerolith_common::pb;
use aerolith_common::rpc::RpcClient;
use aerolith_common::shard::shard_of;
use aerolith_storagenode::StorageNode;
use pb::request::Body as Req;
use pb::response::Body as Resp;

const SHARDS: u16 = 8;
use super::WAIT;

fn put(id: &str, body: &str) -> pb::PutRequest {
    pb::PutRequest {
        shard: u32::from(shard_of("c", id, SHARDS)),
        collection: "c".into(),
        id: id.into(),
        body: body.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn get(id: &str) -> pb::GetRequest {
    pb::GetRequest {
        shard: u32::from(shard_of("c", id, SHARDS)),
        collection: "c".into(),
        id: id.into(),
        session: vec![],
    }
}

fn item(body: Req) -> pb::Request {
    pb::Request {
        timeout_ms: 5_000,
        body: Some(body),
    }
}

/// A node with collection `c` holding `keep` = {"v":1} and `gone` = {"v":2}, and a client.
async fn node_with_documents(dir: &std::path::Path) -> (StorageNode, RpcClient, String) {
    let (node, client, _) = super::node_with_collection(dir, SHARDS).await;
    let addr = node.addr().to_string();
    for (id, body) in [("keep", r#"{"v":1}"#), ("gone", r#"{"v":2}"#)] {
        client
            .node()
            .put(&addr, put(id, body), WAIT)
            .await
            .expect("document written");
    }
    (node, client, addr)
}

fn code(resp: &pb::Response) -> &str {
    match &resp.body {
        Some(Resp::Error(e)) => &e.code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

fn doc(resp: &pb::Response) -> &pb::DocResponse {
    match &resp.body {
        Some(Resp::Doc(d)) => d,
        other => panic!("expected a document answer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_call_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, client, addr) = node_with_documents(dir.path()).await;
    let stale = pb::PutRequest {
        precondition: Some(pb::Precondition {
            if_match: "1-not-a-version-it-has".into(),
            ..Default::default()
        }),
        ..put("keep", r#"{"v":9}"#)
    };
    let patch_missing = pb::PatchRequest {
        shard: u32::from(shard_of("c", "missing", SHARDS)),
        collection: "c".into(),
        id: "missing".into(),
        kind: pb::PatchKind::Merge as i32,
        patch: br#"{"v":4}"#.to_vec(),
        ..Default::default()
    };
    let delete = pb::DeleteRequest {
        shard: u32::from(shard_of("c", "gone", SHARDS)),
        collection: "c".into(),
        id: "gone".into(),
        ..Default::default()
    };
    let items = vec![
        item(Req::Put(put("new", r#"{"v":3}"#))),
        item(Req::Get(get("keep"))),
        item(Req::Put(stale)),
        item(Req::Get(get("missing"))),
        item(Req::Batch(pb::RequestBatch { items: vec![] })),
        pb::Request {
            timeout_ms: 5_000,
            body: None,
        },
        item(Req::Ping(pb::PingRequest {})),
        item(Req::Delete(delete)),
        item(Req::Patch(patch_missing)),
    ];
    let answers = client
        .node()
        .batch(&addr, pb::RequestBatch { items }, WAIT)
        .await
        .expect("the batch is answered")
        .items;
    assert_eq!(answers.len(), 9, "{answers:?}");
    assert!(doc(&answers[0]).created);
    let kept = doc(&answers[1]).record.as_ref().expect("keep is there");
    assert_eq!(kept.body, br#"{"v":1}"#.to_vec());
    assert_eq!(code(&answers[2]), "precondition_failed");
    assert!(doc(&answers[3]).record.is_none(), "{:?}", answers[3]);
    assert_eq!(code(&answers[4]), "invalid_argument");
    assert_eq!(code(&answers[5]), "invalid_argument");
    // Only point reads and document writes travel in batches.
    assert_eq!(code(&answers[6]), "invalid_argument");
    assert!(
        doc(&answers[7])
            .record
            .as_ref()
            .is_some_and(|r| r.tombstone)
    );
    assert_eq!(code(&answers[8]), "not_found");

    // What the batch wrote is durable and visible; what it refused changed nothing.
    let read = |id: &'static str| {
        let client = &client;
        let addr = addr.clone();
        async move {
            client
                .node()
                .get(&addr, get(id), WAIT)
                .await
                .unwrap()
                .record
        }
    };
    assert_eq!(read("new").await.unwrap().body, br#"{"v":3}"#.to_vec());
    assert_eq!(read("keep").await.unwrap().body, br#"{"v":1}"#.to_vec());
    assert!(read("gone").await.is_none_or(|r| r.tombstone));
}

/// On one thread every call below is queued before the first batch goes out, so the calls
/// surely travel in batches; each must still get its own answer.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_calls_travel_in_batches_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, client, addr) = node_with_documents(dir.path()).await;
    let client = Arc::new(client);
    let before = client.batched_calls();
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let (client, addr) = (client.clone(), addr.clone());
        tasks.push(tokio::spawn(async move {
            let node = client.node();
            match i % 3 {
                0 => {
                    let id = format!("d{i}");
                    let written = node.put(&addr, put(&id, &format!(r#"{{"i":{i}}}"#)), WAIT);
                    let written = written.await.expect("a plain put succeeds");
                    assert!(written.created, "d{i}");
                    assert_eq!(written.id, id, "each call gets its own answer");
                    let body = written.record.expect("the written record").body;
                    assert_eq!(body, format!(r#"{{"i":{i}}}"#).into_bytes());
                }
                1 => {
                    let stale = pb::PutRequest {
                        precondition: Some(pb::Precondition {
                            if_none_match_any: true,
                            ..Default::default()
                        }),
                        ..put("keep", r#"{"v":0}"#)
                    };
                    let refused = node.put(&addr, stale, WAIT).await;
                    let e = refused.expect_err("keep exists: If-None-Match * refuses");
                    assert_eq!(e.code.as_str(), "already_exists");
                }
                _ => {
                    let read = node.get(&addr, get("keep"), WAIT).await.expect("a read");
                    let body = read.record.expect("keep is there").body;
                    assert_eq!(body, br#"{"v":1}"#.to_vec());
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("every call got its own answer");
    }
    assert!(
        client.batched_calls() - before >= 100,
        "calls queued behind a batch in flight go as the next batch ({} batched)",
        client.batched_calls() - before
    );
    let node = client.node();
    for i in (0..300u32).step_by(3) {
        let read = node.get(&addr, get(&format!("d{i}")), WAIT);
        let body = read.await.unwrap().record.expect("written").body;
        assert_eq!(body, format!(r#"{{"i":{i}}}"#).into_bytes());
    }
}
