//! Every operation of the client against a one-DC dev cluster, typed, with the error codes
//! the server answers mapped onto `ErrorCode`.

use std::time::Duration;

use aerolith_client::{
    BulkOp, CallOptions, Client, ConflictStrategy, ErrorCode, Patch, Query, WriteConcern,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
}

fn user(name: &str, age: u32) -> User {
    User {
        name: name.into(),
        age,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start(dir.path(), 2).await;
    let client = Client::new(&c.base).unwrap();

    // Collections.
    assert!(
        client
            .create_collection("users", Some(ConflictStrategy::Siblings))
            .await
            .unwrap()
    );
    assert!(!client.create_collection("users", None).await.unwrap());
    let info = client.get_collection("users").await.unwrap();
    assert_eq!(info.conflict_strategy, ConflictStrategy::Siblings);
    assert!(info.created_at.is_some());
    let err = client
        .create_collection("users", Some(ConflictStrategy::Lww))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidArgument), "{err}");
    let names: Vec<String> = client
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&"users".to_string()), "{names:?}");
    let err = client.get_collection("nope").await.unwrap_err();
    assert_eq!(
        (err.code(), err.status()),
        (Some(&ErrorCode::NotFound), Some(404))
    );

    // Documents, typed.
    let users = client.collection::<User>("users");
    let w = users.put("ada", &user("Ada", 36)).await.unwrap();
    assert!(w.created);
    assert_eq!(w.document.data, user("Ada", 36));
    let w2 = users.put("ada", &user("Ada", 37)).await.unwrap();
    assert!(!w2.created);
    let got = users.get("ada").await.unwrap();
    assert_eq!((got.data.age, &got.version), (37, &w2.document.version));
    assert!(users.find("nobody").await.unwrap().is_none());

    // Preconditions and their codes.
    let stale = CallOptions::default().if_match(w.document.version.clone());
    let err = users
        .put_with("ada", &user("Ada", 1), &stale)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::PreconditionFailed), "{err}");
    let create_only = CallOptions::default().if_none_match();
    let err = users
        .put_with("ada", &user("Ada", 1), &create_only)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::AlreadyExists), "{err}");
    let current = CallOptions::default()
        .if_match(got.version.clone())
        .write_concern(WriteConcern::All)
        .timeout(Duration::from_secs(5));
    users
        .put_with("ada", &user("Ada", 38), &current)
        .await
        .unwrap();

    // Patches: merge and JSON Patch (a failed `test` is precondition_failed).
    let p = users
        .patch("ada", &Patch::Merge(json!({"age": 39})))
        .await
        .unwrap();
    assert_eq!(p.data, user("Ada", 39));
    let p = users
        .patch(
            "ada",
            &Patch::Json(json!([{"op": "replace", "path": "/name", "value": "Lovelace"}])),
        )
        .await
        .unwrap();
    assert_eq!(p.data, user("Lovelace", 39));
    let err = users
        .patch(
            "ada",
            &Patch::Json(json!([{"op": "test", "path": "/age", "value": 1}])),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::PreconditionFailed), "{err}");

    // Generated ids, and data the type cannot hold is a decode error, not a panic.
    let made = users.insert(&user("Grace", 45)).await.unwrap();
    assert_eq!(users.get(&made.id).await.unwrap().data, user("Grace", 45));
    let raw = client.collection::<Value>("users");
    raw.put("odd", &json!({"name": 5})).await.unwrap();
    let err = users.get("odd").await.unwrap_err();
    assert!(
        matches!(err, aerolith_client::Error::Decode { .. }),
        "{err}"
    );
    raw.delete("odd").await.unwrap();

    // Bulk, with one op failing on its own.
    let mut ops: Vec<BulkOp> = (0..7)
        .map(|i| BulkOp::put(format!("u{i}"), json!({"name": format!("n{i}"), "age": i})))
        .collect();
    ops.push(BulkOp::Delete {
        id: "missing".into(),
        if_match: None,
    });
    let results = users.bulk(&ops).await.unwrap();
    assert_eq!(results.len(), 8);
    assert!(results[..7].iter().all(|r| r.status == 201), "{results:?}");
    assert_eq!(
        results[7].error().and_then(|e| e.code().cloned()),
        Some(ErrorCode::NotFound)
    );

    // Queries as streams that follow cursors over pages of 2.
    let q = Query::filter(json!({"age": {"$lt": 7}}))
        .sort("age", true)
        .limit(2);
    let ages: Vec<u32> = users
        .query(q)
        .map_ok(|d| d.data.age)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ages, vec![6, 5, 4, 3, 2, 1, 0]);
    let page = users
        .query_page(&Query::default().limit(3), None)
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 3);
    assert!(page.next_cursor.is_some());
    let raw_page = raw
        .query_page(&Query::default().limit(1).projection(["name"]), None)
        .await
        .unwrap();
    assert_eq!(raw_page.documents[0].data.as_object().unwrap().len(), 1);
    let ids: Vec<String> = users.list().map_ok(|d| d.id).try_collect().await.unwrap();
    assert_eq!(ids.len(), 9, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "listed by id: {ids:?}");
    assert_eq!(users.count(json!({"age": {"$gte": 5}})).await.unwrap(), 4);
    let err = users
        .count(json!({"age": {"$bogus": 1}}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidArgument), "{err}");

    // The change feed from the start holds every write, in order per document (read as
    // JSON: the feed also holds "odd", which no `User` can hold).
    let mut feed = raw.poll_changes(None);
    let mut ada = Vec::new();
    while ada.len() < 5 {
        let change = tokio::time::timeout(Duration::from_secs(30), feed.next())
            .await
            .expect("the feed delivers")
            .unwrap();
        if change.id == "ada" {
            let user = change.data.map(serde_json::from_value::<User>);
            ada.push(user.transpose().unwrap().map(|u| (u.name, u.age)));
        }
    }
    assert_eq!(ada[0], Some(("Ada".into(), 36)));
    assert_eq!(ada[4], Some(("Lovelace".into(), 39)));
    assert!(feed.token().is_some());

    // Deletes, then the collection itself.
    users.delete("ada").await.unwrap();
    let err = users.delete("ada").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    client.delete_collection("users").await.unwrap();
    let err = client.get_collection("users").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // A deadline the server cannot take is its invalid_argument... and a client deadline
    // is sent as X-Aerolith-Timeout-Ms: a session read that cannot be covered runs out.
    let short = CallOptions::default().timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let foreign = aerolith_client::Session::from_token("not-a-token");
    let err = client
        .with_session(foreign)
        .collection::<Value>("users")
        .get_with("x", &short)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InvalidArgument), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_sent_and_its_absence_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start_with_tokens(
        dir.path(),
        "read:reader-secret-0123456789,write:writer-secret-0123456789",
        Default::default(),
    )
    .await;
    let anonymous = Client::new(&c.base).unwrap();
    let err = anonymous.list_collections().await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Unauthenticated), "{err}");
    let reader = Client::builder()
        .endpoint(&c.base)
        .token("reader-secret-0123456789")
        .build()
        .unwrap();
    reader.list_collections().await.unwrap();
    let err = reader
        .collection::<Value>("t")
        .put("a", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::PermissionDenied), "{err}");
    c.stop().await;
}
