//! The client's gRPC transport (feature `grpc`) against a dev cluster: documents with the
//! session in metadata, idempotent replays and preconditions; collections, queries with
//! cursors, counts, bulk and change streams; failover past a gateway that is not there.

use std::time::Duration;

use aerolith_client::{
    BulkOp, CallOptions, ChangeOp, Client, ConflictStrategy, ErrorCode, GrpcClient, Patch, Query,
};
use futures::TryStreamExt;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start(dir.path(), 1).await;
    let session = aerolith_client::Session::new();
    let g = GrpcClient::connect(&format!("http://{}", c.grpc_addr))
        .await
        .unwrap()
        .with_session(session.clone());
    let w = g
        .put("g", "a", &json!({"v": 1}), &CallOptions::default())
        .await
        .unwrap();
    assert!(w.created);
    assert!(
        session.token().is_some(),
        "the session rides in the metadata"
    );
    // The same key again is a replay: the same version, nothing applied twice.
    let keyed = CallOptions::default().idempotency_key("grpc-key-1");
    let first = g.put("g", "b", &json!({"v": 1}), &keyed).await.unwrap();
    let again = g.put("g", "b", &json!({"v": 1}), &keyed).await.unwrap();
    assert_eq!(first.document.version, again.document.version);
    assert!(
        again.created,
        "a replay answers what the first attempt answered"
    );

    let p = g
        .patch(
            "g",
            "a",
            &Patch::Merge(json!({"w": 2})),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(p.data, json!({"v": 1, "w": 2}));
    // REST reads what gRPC wrote, byte for byte the same document.
    let rest = Client::new(&c.base).unwrap();
    assert_eq!(rest.collection::<Value>("g").get("a").await.unwrap(), p);
    // A stale version is precondition_failed; something that is no version at all is
    // invalid_argument.
    let stale = CallOptions::default().if_match(w.document.version.clone());
    let err = g.put("g", "a", &json!({}), &stale).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::PreconditionFailed), "{err}");
    let bogus = CallOptions::default().if_match("bogus");
    let err = g.put("g", "a", &json!({}), &bogus).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidArgument), "{err}");
    g.delete("g", "a", &CallOptions::default()).await.unwrap();
    let err = g.get("g", "a").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_queries_bulk_and_streams_over_grpc_with_failover() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start(dir.path(), 1).await;
    // Nothing listens on the first: every call moves on to the second.
    let g = GrpcClient::new(
        ["http://127.0.0.1:9", &format!("http://{}", c.grpc_addr)],
        None,
    )
    .unwrap()
    .with_timeout(Duration::from_secs(10));

    assert!(
        g.create_collection("gq", Some(ConflictStrategy::Siblings))
            .await
            .unwrap()
    );
    assert_eq!(g.preferred(), 1, "the live gateway answered");
    assert!(!g.create_collection("gq", None).await.unwrap());
    let info = g.get_collection("gq").await.unwrap();
    assert_eq!(info.conflict_strategy, ConflictStrategy::Siblings);
    assert!(
        g.list_collections()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == "gq")
    );
    let err = g.get_collection("nope").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let mut stream = g.changes("gq").filter(json!({"n": {"$gte": 10}}));
    stream.start().await.unwrap();
    let started = stream.token().expect("a start token").to_string();

    let ops: Vec<BulkOp> = (0..25)
        .map(|n| BulkOp::put(format!("d{n:02}"), json!({"n": n})))
        .collect();
    let results = g.bulk("gq", &ops, &CallOptions::default()).await.unwrap();
    assert_eq!(results.len(), 25);
    assert!(
        results
            .iter()
            .all(|r| r.status == 201 && r.version.is_some()),
        "{results:?}"
    );
    let stale = BulkOp::Delete {
        id: "d00".into(),
        if_match: Some("dc9@1:1".into()),
    };
    let results = g
        .bulk(
            "gq",
            &[stale, BulkOp::delete("d01")],
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        results[0].error().and_then(|e| e.code().cloned()),
        Some(ErrorCode::PreconditionFailed)
    );
    assert_eq!(results[1].status, 204);

    // Queries follow cursors page by page; REST sees the same.
    let q = Query::filter(json!({"n": {"$gte": 5}}))
        .sort("n", true)
        .limit(4);
    let ns: Vec<i64> = g
        .query("gq", q)
        .map_ok(|d| d.data["n"].as_i64().unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns, (5..25).rev().collect::<Vec<_>>());
    let page = g
        .query_page("gq", &Query::default().limit(10), None)
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 10);
    assert!(page.next_cursor.is_some());
    assert_eq!(g.count("gq", json!({"n": {"$lt": 10}})).await.unwrap(), 9);
    let rest = Client::new(&c.base).unwrap().collection::<Value>("gq");
    assert_eq!(rest.count(json!({})).await.unwrap(), 24);
    let err = g.count("gq", json!({"n": {"$near": 1}})).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidArgument), "{err}");

    // The stream saw the puts with n >= 10 and the delete (deletes always pass); documents
    // of different shards come in any order.
    let mut seen = Vec::new();
    while seen.len() < 16 {
        let change = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the stream delivers")
            .unwrap();
        seen.push((change.op, change.id));
    }
    let mut expected: Vec<(ChangeOp, String)> = (10..25)
        .map(|n| (ChangeOp::Put, format!("d{n:02}")))
        .collect();
    expected.push((ChangeOp::Delete, "d01".into()));
    seen.sort_by(|a, b| a.1.cmp(&b.1));
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(seen, expected);
    // From the start token, unfiltered: d00's put is there too.
    let mut again = g.changes("gq").since(started);
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let c = again.next().await.unwrap();
            if c.id == "d00" {
                break c;
            }
        }
    })
    .await
    .expect("the stream delivers d00");
    assert_eq!(first.data, Some(json!({"n": 0})));

    // A deleted collection ends the stream with not_found.
    g.delete_collection("gq").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.next().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(err.is_not_found(), "{err}");
    c.stop().await;
}
