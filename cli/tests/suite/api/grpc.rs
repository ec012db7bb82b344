//! The gRPC endpoint beyond the parity suite: server reflection (v1 and v1alpha) lists the
//! services so that `grpcurl -plaintext HOST:PORT list` works, `grpc.health.v1` answers,
//! and bulk writes, collection deletes and deadlines behave as API.md says.

use std::time::Duration;

use futures::stream;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::protocols::grpc::{Grpc, code_of};
use crate::support::start;
use aerolith_proto::v1 as api;

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects")
}

/// Lists services through one version of the reflection API (v1 and v1alpha generate the
/// same types in different modules).
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = ServerReflectionClient::new($channel)
            .server_reflection_info(stream::iter(vec![req]))
            .await
            .expect("reflection answers")
            .into_inner();
        match replies
            .message()
            .await
            .unwrap()
            .and_then(|r| r.message_response)
        {
            Some(MessageResponse::ListServicesResponse(l)) => l
                .service
                .into_iter()
                .map(|s| s.name)
                .collect::<Vec<String>>(),
            other => panic!("unexpected reflection reply {other:?}"),
        }
    }};
}

/// The services a reflection client lists, through v1 or v1alpha.
async fn listed_services(addr: &str, v1: bool) -> Vec<String> {
    let ch = channel(addr).await;
    if v1 {
        list_services!(v1, ch)
    } else {
        list_services!(v1alpha, ch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    for v1 in [true, false] {
        let services = listed_services(&c.grpc_addr, v1).await;
        for want in ["aerolith.v1.Documents", "grpc.health.v1.Health"] {
            assert!(services.iter().any(|s| s == want), "v1={v1}: {services:?}");
        }
    }
    // Health follows readiness, checked in the background: wait for the first check.
    let mut health = HealthClient::new(channel(&c.grpc_addr).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for service in ["", "aerolith.v1.Documents"] {
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health answers")
                .into_inner()
                .status;
            if status == ServingStatus::Serving as i32 {
                break;
            }
            assert_eq!(status, ServingStatus::NotServing as i32, "{service:?}");
            assert!(
                std::time::Instant::now() < deadline,
                "{service:?} never served"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_collections_and_deadlines_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut client = Grpc::connect(&c.grpc_addr).await.client();

    let op = |op: &str, id: &str, data: &str, patch: &str| api::BulkOp {
        op: op.into(),
        id: id.into(),
        data_json: data.into(),
        patch_json: patch.into(),
        if_match: String::new(),
    };
    let results = client
        .bulk_write(api::BulkWriteRequest {
            collection: "bulk".into(),
            ops: vec![
                op("put", "a", r#"{"n": 1}"#, ""),
                op("patch", "a", "", r#"{"m": 2}"#),
                op("put", "", r#"{"gen": true}"#, ""),
                op("delete", "missing", "", ""),
                op("upsert", "x", "{}", ""),
            ],
        })
        .await
        .expect("bulk answers")
        .into_inner()
        .results;
    let statuses: Vec<u32> = results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![201, 200, 201, 404, 400]);
    assert!(results[2].id.as_ref().is_some_and(|id| id.len() == 36));
    assert_eq!(
        results[3].error.as_ref().map(|e| e.code.as_str()),
        Some("not_found")
    );
    let doc = client
        .get_document(api::GetDocumentRequest {
            collection: "bulk".into(),
            id: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(doc.data_json, r#"{"m":2,"n":1}"#);
    assert_eq!(Some(doc.version), results[1].version);

    // Malformed JSON in any op fails the whole request, as a malformed REST body does.
    let status = client
        .bulk_write(api::BulkWriteRequest {
            collection: "bulk".into(),
            ops: vec![op("put", "b", "{", "")],
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), "invalid_argument");

    let listed = client
        .list_collections(api::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert!(
        listed
            .iter()
            .any(|c| c.name == "bulk" && c.conflict_strategy == "lww")
    );
    let got = client
        .get_collection(api::GetCollectionRequest {
            name: "bulk".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.created_at.ends_with('Z'), "{got:?}");
    client
        .delete_collection(api::DeleteCollectionRequest {
            name: "bulk".into(),
        })
        .await
        .expect("collection deleted");
    let status = client
        .get_collection(api::GetCollectionRequest {
            name: "bulk".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), "not_found");

    // A malformed grpc-timeout is the client's error.
    let mut req = tonic::Request::new(api::ListCollectionsRequest {});
    req.metadata_mut()
        .insert("grpc-timeout", "soon".parse().unwrap());
    let status = client.list_collections(req).await.unwrap_err();
    assert_eq!(code_of(&status), "invalid_argument");
    // Calls are counted beside REST's, by method and code.
    let metrics = String::from_utf8(c.get("/metrics").await.raw).unwrap();
    for want in [
        r#"op="BulkWrite",code="ok""#,
        r#"op="GetCollection",code="not_found""#,
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("aerolith_requests_total")
                    && l.contains(r#"protocol="grpc""#)
                    && l.contains(want)),
            "{want} in\n{metrics}"
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_payload_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut client = Grpc::connect(&c.grpc_addr).await.client();
    let huge = format!(r#"{{"blob": "{}"}}"#, "x".repeat(21 * 1024 * 1024));
    let status = client
        .put_document(api::PutDocumentRequest {
            collection: "big".into(),
            id: "x".into(),
            data_json: huge,
            if_match: String::new(),
            if_none_match: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&status), "payload_too_large");
    c.stop().await;
}

/// The next change of a watch, skipping checkpoints; `Err` with the code that ended it.
async fn next_change(
    stream: &mut tonic::Streaming<api::WatchResponse>,
) -> Result<api::ChangeEvent, String> {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the watch answers within 20 s");
        match item.map_err(|s| code_of(&s))?.and_then(|m| m.item) {
            Some(api::watch_response::Item::Event(e)) => return Ok(e),
            Some(api::watch_response::Item::Checkpoint(_)) => continue,
            None => return Err("<stream ended>".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_filters_and_ends_on_collection_delete_and_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut client = Grpc::connect(&c.grpc_addr).await.client();
    let watch = |collection: &str| api::WatchRequest {
        collection: collection.into(),
        filter_json: r#"{"keep": true}"#.into(),
        since: String::new(),
    };
    let mut filtered = client.watch(watch("w")).await.unwrap().into_inner();
    let mut other = client.watch(watch("stays")).await.unwrap().into_inner();
    for (id, keep) in [("a", false), ("b", true)] {
        let r = c
            .put_json(
                &format!("/v1/collections/w/docs/{id}"),
                &serde_json::json!({"keep": keep}),
                &[],
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let e = next_change(&mut filtered).await.expect("the matching put");
    assert_eq!((e.op.as_str(), e.id.as_str()), ("put", "b"));
    assert_eq!(e.data_json.as_deref(), Some(r#"{"keep":true}"#));

    let r = c.delete("/v1/collections/w", &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        next_change(&mut filtered).await.map(|e| e.id),
        Err("not_found".into())
    );

    // Shutting the gateway down ends open watches with unavailable.
    let stop = tokio::spawn(async move { c.stop().await });
    assert_eq!(
        next_change(&mut other).await.map(|e| e.id),
        Err("unavailable".into())
    );
    stop.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut client = Grpc::connect(&c.grpc_addr).await.client();
    let field = |path: &str, order: &str| api::IndexField {
        path: path.into(),
        order: order.into(),
    };
    let create = |fields: Vec<api::IndexField>| api::CreateIndexRequest {
        collection: "g".into(),
        name: "by_n".into(),
        fields,
    };
    let r = client
        .create_index(create(vec![field("n", ""), field("m", "desc")]))
        .await
        .expect("index defined")
        .into_inner();
    assert!(r.created);
    let index = r.index.expect("the index");
    assert_eq!(index.fields, vec![field("n", "asc"), field("m", "desc")]);
    let again = client
        .create_index(create(vec![field("n", "asc"), field("m", "desc")]))
        .await
        .expect("the same definition")
        .into_inner();
    assert!(!again.created);
    let other = client
        .create_index(create(vec![field("x", "")]))
        .await
        .expect_err("other fields under the name");
    assert_eq!(code_of(&other), "invalid_argument");
    let bad = client
        .create_index(create(vec![field("n", "up")]))
        .await
        .expect_err("an unknown order");
    assert_eq!(code_of(&bad), "invalid_argument");
    let list = client
        .list_indexes(api::ListIndexesRequest {
            collection: "g".into(),
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(list.indexes.len(), 1);
    assert!(["building", "ready"].contains(&list.indexes[0].state.as_str()));
    client
        .drop_index(api::DropIndexRequest {
            collection: "g".into(),
            name: "by_n".into(),
        })
        .await
        .expect("dropped");
    let gone = client
        .drop_index(api::DropIndexRequest {
            collection: "g".into(),
            name: "by_n".into(),
        })
        .await
        .expect_err("dropped already");
    assert_eq!(code_of(&gone), "not_found");
    c.stop().await;
}
