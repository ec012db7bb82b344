//! Collection lifecycle over REST: implicit and explicit creation, fixed strategies, deletion.

use crate::support::start;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    assert_eq!(
        c.get("/v1/collections").await.body,
        json!({"collections": []})
    );

    // Explicit creation: 201, then 200 when unchanged, 400 when the strategy would change.
    let r = c
        .put_json(
            "/v1/collections/people",
            &json!({"conflict_strategy": "siblings"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["name"], "people");
    assert_eq!(r.body["conflict_strategy"], "siblings");
    assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        c.put_json(
            "/v1/collections/people",
            &json!({"conflict_strategy": "siblings"}),
            &[]
        )
        .await
        .status,
        200
    );
    c.put_json(
        "/v1/collections/people",
        &json!({"conflict_strategy": "lww"}),
        &[],
    )
    .await
    .assert_error(400, "invalid_argument");
    c.put_json(
        "/v1/collections/people",
        &json!({"conflict_strategy": "newest"}),
        &[],
    )
    .await
    .assert_error(400, "invalid_argument");
    c.put_json("/v1/collections/people", &json!({"other": 1}), &[])
        .await
        .assert_error(400, "invalid_argument");
    // Without settings, an existing collection is left as it is.
    let r = c
        .send(Method::PUT, "/v1/collections/people", None, &[])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["conflict_strategy"], "siblings");
    assert_eq!(
        c.put_json("/v1/collections/people", &json!({}), &[])
            .await
            .status,
        200
    );
    // No body means default settings for a new collection.
    let r = c
        .send(Method::PUT, "/v1/collections/plain", None, &[])
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["conflict_strategy"], "lww");

    // Implicit creation by a first write, with the default strategy, fixed from then on.
    assert_eq!(
        c.put_json("/v1/collections/auto/docs/a", &json!({"x": 1}), &[])
            .await
            .status,
        201
    );
    let r = c.get("/v1/collections/auto").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["conflict_strategy"], "lww");
    assert_eq!(
        c.put_json("/v1/collections/auto", &json!({}), &[])
            .await
            .status,
        200
    );
    c.put_json(
        "/v1/collections/auto",
        &json!({"conflict_strategy": "field_merge"}),
        &[],
    )
    .await
    .assert_error(400, "invalid_argument");

    let r = c.get("/v1/collections").await;
    assert_eq!(
        r.body,
        json!({"collections": [
            {"name": "auto", "conflict_strategy": "lww"},
            {"name": "people", "conflict_strategy": "siblings"},
            {"name": "plain", "conflict_strategy": "lww"}
        ]})
    );

    // Deletion removes the collection and its documents; a later write starts it afresh,
    // and no version (ETag) of the old incarnation comes back for new content.
    let old = c
        .put_json("/v1/collections/people/docs/p1", &json!({"old": true}), &[])
        .await;
    let old_version = old.body["version"].as_str().unwrap().to_string();
    for i in 0..20 {
        c.put_json(
            &format!("/v1/collections/people/docs/p{i}"),
            &json!({"i": i}),
            &[],
        )
        .await;
    }
    assert_eq!(c.delete("/v1/collections/people", &[]).await.status, 204);
    c.get("/v1/collections/people")
        .await
        .assert_error(404, "not_found");
    c.get("/v1/collections/people/docs/p1")
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        c.get("/v1/collections/people/docs").await.body,
        json!({"documents": [], "next_cursor": null})
    );
    c.delete("/v1/collections/people", &[])
        .await
        .assert_error(404, "not_found");
    let fresh = c
        .put_json("/v1/collections/people/docs/p1", &json!({"new": true}), &[])
        .await;
    assert_eq!(fresh.status, 201);
    assert_ne!(fresh.body["version"].as_str().unwrap(), old_version);
    let stale = format!("\"{old_version}\"");
    c.put_json(
        "/v1/collections/people/docs/p1",
        &json!({}),
        &[("if-match", &stale)],
    )
    .await
    .assert_error(412, "precondition_failed");
    let r = c.get("/v1/collections/people").await;
    assert_eq!(
        r.body["conflict_strategy"], "lww",
        "recreated implicitly with defaults"
    );
    let r = c.get("/v1/collections/people/docs").await;
    assert_eq!(r.body["documents"].as_array().unwrap().len(), 1);
    c.stop().await;
}
