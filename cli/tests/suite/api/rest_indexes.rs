//! Secondary index definitions over REST (issue 24): define, list with build state, the
//! no-op and conflicting redefinitions, the limit of 16, drop, and bad input.

use std::time::{Duration, Instant};

use crate::support::start;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lifecycle_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), 3).await;
    // Documents written before the index: the build indexes them.
    c.bulk_puts("people", 500).await;
    c.get("/v1/collections/nobody/indexes")
        .await
        .assert_error(404, "not_found");

    let def = json!({"fields": [{"path": "i"}, {"path": "address.city", "order": "desc"}]});
    let r = c
        .put_json("/v1/collections/people/indexes/by_i", &def, &[])
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["name"], "by_i");
    assert_eq!(
        r.body["fields"],
        json!([{"path": "i", "order": "asc"}, {"path": "address.city", "order": "desc"}])
    );
    assert!(
        ["building", "ready"].contains(&r.body["state"].as_str().unwrap_or("")),
        "{:?}",
        r.body
    );
    // The same definition again changes nothing; other fields under the name are refused.
    let again = c
        .put_json("/v1/collections/people/indexes/by_i", &def, &[])
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    c.put_json(
        "/v1/collections/people/indexes/by_i",
        &json!({"fields": [{"path": "other"}]}),
        &[],
    )
    .await
    .assert_error(400, "invalid_argument");

    // Every node builds its shards; the list says ready once all have.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = c.get("/v1/collections/people/indexes").await;
        assert_eq!(list.status, 200, "{:?}", list.body);
        let idx = &list.body["indexes"][0];
        assert_eq!(idx["name"], "by_i");
        if idx["state"] == "ready" {
            assert!(idx.get("progress").is_none(), "{idx:?}");
            break;
        }
        assert_eq!(idx["state"], "building");
        let p = idx["progress"].as_f64().expect("progress while building");
        assert!((0.0..=1.0).contains(&p), "{p}");
        assert!(
            Instant::now() < deadline,
            "the build never finished: {idx:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // At most 16.
    for n in 1..16 {
        let r = c
            .put_json(
                &format!("/v1/collections/people/indexes/i{n}"),
                &json!({"fields": [{"path": format!("f{n}")}]}),
                &[],
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    c.put_json(
        "/v1/collections/people/indexes/i16",
        &json!({"fields": [{"path": "f16"}]}),
        &[],
    )
    .await
    .assert_error(400, "invalid_argument");

    // Dropped: gone from the list, a second drop is 404, and the name is free again.
    assert_eq!(
        c.delete("/v1/collections/people/indexes/by_i", &[])
            .await
            .status,
        204
    );
    c.delete("/v1/collections/people/indexes/by_i", &[])
        .await
        .assert_error(404, "not_found");
    let list = c.get("/v1/collections/people/indexes").await;
    let names: Vec<&str> = list.body["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names.len(), 15);
    assert!(!names.contains(&"by_i"));
    let r = c
        .put_json(
            "/v1/collections/people/indexes/by_i",
            &json!({"fields": [{"path": "other"}]}),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);

    // Bad input.
    for (path, body) in [
        (
            "/v1/collections/people/indexes/1bad",
            json!({"fields": [{"path": "a"}]}),
        ),
        ("/v1/collections/people/indexes/x", json!({"fields": []})),
        (
            "/v1/collections/people/indexes/x",
            json!({"fields": [{"path": "_id"}]}),
        ),
        (
            "/v1/collections/people/indexes/x",
            json!({"fields": [{"path": "a", "order": "up"}]}),
        ),
        (
            "/v1/collections/people/indexes/x",
            json!({"fields": [{"path": "a"}], "unique": true}),
        ),
    ] {
        c.put_json(path, &body, &[])
            .await
            .assert_error(400, "invalid_argument");
    }
    c.delete("/v1/collections/nobody/indexes/x", &[])
        .await
        .assert_error(404, "not_found");
}
