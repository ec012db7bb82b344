//! REST document operations against a three-node cluster, over the wire.

use crate::support::start;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_every_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let p = "/v1/collections/users/docs/u1";

    // Create, then replace.
    let r = c.put_json(p, &json!({"name": "Ada", "age": 36}), &[]).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["collection"], "users");
    assert_eq!(r.body["id"], "u1");
    assert_eq!(r.body["origin"], "dc1");
    assert_eq!(r.body["data"], json!({"age": 36, "name": "Ada"}));
    assert!(r.body.get("conflicts").is_none());
    let v1 = r.body["version"].as_str().unwrap().to_string();
    assert_eq!(r.header("etag"), Some(format!("\"{v1}\"")));
    let updated = r.body["updated_at"].as_str().unwrap();
    assert_eq!(updated.len(), 24, "{updated}");
    assert!(updated.ends_with('Z'));

    let r = c.put_json(p, &json!({"name": "Ada", "age": 37}), &[]).await;
    assert_eq!(r.status, 200);
    let v2 = r.body["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);

    // GET, and If-None-Match on GET.
    let r = c.get(p).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["age"], 37);
    assert_eq!(r.body["version"], v2.as_str());
    let quoted = format!("\"{v2}\"");
    let r = c.get_with(p, &[("if-none-match", &quoted)]).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(quoted.clone()));
    let stale = format!("\"{v1}\"");
    assert_eq!(
        c.get_with(p, &[("if-none-match", &stale)]).await.status,
        200
    );

    // If-Match: stale fails, current (quoted or bare) and * succeed.
    c.put_json(p, &json!({"x": 1}), &[("if-match", &stale)])
        .await
        .assert_error(412, "precondition_failed");
    let r = c
        .put_json(p, &json!({"x": 2}), &[("if-match", &quoted)])
        .await;
    assert_eq!(r.status, 200);
    let v3 = r.body["version"].as_str().unwrap().to_string();
    let r = c.put_json(p, &json!({"x": 3}), &[("if-match", &v3)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.put_json(p, &json!({"x": 4}), &[("if-match", "*")])
            .await
            .status,
        200
    );
    // A value that is not a version cannot name one: refused, not merely unmatched.
    c.put_json(p, &json!({"x": 4}), &[("if-match", "garbage")])
        .await
        .assert_error(400, "invalid_argument");

    // If-Match on a missing document is 412; If-Match: * too.
    let missing = "/v1/collections/users/docs/nobody";
    c.put_json(missing, &json!({}), &[("if-match", &quoted)])
        .await
        .assert_error(412, "precondition_failed");
    c.put_json(missing, &json!({}), &[("if-match", "*")])
        .await
        .assert_error(412, "precondition_failed");

    // If-None-Match: * creates once, then already_exists.
    let fresh = "/v1/collections/users/docs/fresh";
    assert_eq!(
        c.put_json(fresh, &json!({"a": 1}), &[("if-none-match", "*")])
            .await
            .status,
        201
    );
    c.put_json(fresh, &json!({"a": 2}), &[("if-none-match", "*")])
        .await
        .assert_error(412, "already_exists");

    // Delete: stale If-Match fails, then 204, then the document is gone.
    let cur = c.get(fresh).await.body["version"]
        .as_str()
        .unwrap()
        .to_string();
    c.delete(fresh, &[("if-match", "\"dc1@1:99\"")])
        .await
        .assert_error(412, "precondition_failed");
    assert_eq!(c.delete(fresh, &[("if-match", &cur)]).await.status, 204);
    c.get(fresh).await.assert_error(404, "not_found");
    c.delete(fresh, &[]).await.assert_error(404, "not_found");
    // 404 is checked before If-Match.
    c.delete(fresh, &[("if-match", &cur)])
        .await
        .assert_error(404, "not_found");
    c.put_json(fresh, &json!({}), &[("if-match", &cur)])
        .await
        .assert_error(412, "precondition_failed");
    // If-None-Match: * succeeds over a deleted document, with a version past the tombstone.
    let r = c
        .put_json(fresh, &json!({"a": 3}), &[("if-none-match", "*")])
        .await;
    assert_eq!(r.status, 201);
    assert_ne!(r.body["version"].as_str().unwrap(), cur);

    // POST generates a UUIDv7 id and a Location.
    let r = c
        .post_json("/v1/collections/users/docs", &json!({"n": 1}))
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "UUIDv7: {id}");
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/collections/users/docs/{id}"))
    );
    assert!(r.header("etag").is_some());
    assert_eq!(
        c.get(&format!("/v1/collections/users/docs/{id}"))
            .await
            .body["data"],
        json!({"n": 1})
    );

    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_patch_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let p = "/v1/collections/things/docs/t1";
    c.put_json(p, &json!({"a": 1, "b": {"c": 2, "d": 3}, "list": [1]}), &[])
        .await;

    let r = c
        .patch(
            p,
            "application/merge-patch+json",
            &json!({"a": null, "b": {"c": 9}, "e": "new"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["data"],
        json!({"b": {"c": 9, "d": 3}, "e": "new", "list": [1]})
    );
    let v = r.body["version"].as_str().unwrap().to_string();
    assert_eq!(r.header("etag"), Some(format!("\"{v}\"")));

    let ops = json!([
        {"op": "test", "path": "/e", "value": "new"},
        {"op": "add", "path": "/list/-", "value": 2},
        {"op": "remove", "path": "/b/d"}
    ]);
    let r = c
        .patch(p, "application/json-patch+json", &ops, &[("if-match", &v)])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["data"],
        json!({"b": {"c": 9}, "e": "new", "list": [1, 2]})
    );

    // Stale If-Match, failed test, bad operations, wrong content type.
    c.patch(
        p,
        "application/merge-patch+json",
        &json!({"a": 1}),
        &[("if-match", &v)],
    )
    .await
    .assert_error(412, "precondition_failed");
    c.patch(
        p,
        "application/json-patch+json",
        &json!([{"op": "test", "path": "/e", "value": "old"}]),
        &[],
    )
    .await
    .assert_error(412, "precondition_failed");
    c.patch(
        p,
        "application/json-patch+json",
        &json!([{"op": "remove", "path": "/nope"}]),
        &[],
    )
    .await
    .assert_error(400, "invalid_argument");
    c.patch(p, "application/json-patch+json", &json!({"op": "add"}), &[])
        .await
        .assert_error(400, "invalid_argument");
    c.patch(p, "application/merge-patch+json", &json!([1, 2]), &[])
        .await
        .assert_error(400, "invalid_argument");
    c.patch(p, "text/plain", &json!({"a": 1}), &[])
        .await
        .assert_error(400, "invalid_argument");
    // A failed patch changed nothing.
    assert_eq!(
        c.get(p).await.body["data"],
        json!({"b": {"c": 9}, "e": "new", "list": [1, 2]})
    );

    // Missing document: 404, checked before If-Match.
    let missing = "/v1/collections/things/docs/none";
    c.patch(
        missing,
        "application/merge-patch+json",
        &json!({"a": 1}),
        &[],
    )
    .await
    .assert_error(404, "not_found");
    c.patch(
        missing,
        "application/merge-patch+json",
        &json!({"a": 1}),
        &[("if-match", &v)],
    )
    .await
    .assert_error(404, "not_found");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_thousands_by_pages_covers_every_shard_once_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let n = 3000usize;
    let mut ids: Vec<String> = (0..n)
        .map(|i| format!("doc-{:05}", (i * 7919) % 100_000))
        .collect();
    let client = c.http.clone();
    let base = c.base.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ids.chunks(n / 8) {
        let chunk = chunk.to_vec();
        let client = client.clone();
        let base = base.clone();
        tasks.spawn(async move {
            for id in chunk {
                let r = client
                    .put(format!("{base}/v1/collections/many/docs/{id}"))
                    .header("content-type", "application/json")
                    .body(format!("{{\"id\":\"{id}\"}}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // Some deletions, so pages skip tombstones too.
    for id in ids.iter().step_by(10).take(50) {
        assert_eq!(
            c.delete(&format!("/v1/collections/many/docs/{id}"), &[])
                .await
                .status,
            204
        );
    }
    let deleted: std::collections::HashSet<String> =
        ids.iter().step_by(10).take(50).cloned().collect();
    ids.retain(|i| !deleted.contains(i));
    ids.sort();

    for limit in [1000usize, 137] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/v1/collections/many/docs?limit={limit}");
            if let Some(cur) = &cursor {
                path.push_str(&format!("&cursor={cur}"));
            }
            let r = c.get(&path).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let docs = r.body["documents"].as_array().unwrap();
            assert!(docs.len() <= limit);
            for d in docs {
                assert_eq!(d["data"]["id"], d["id"]);
                seen.push(d["id"].as_str().unwrap().to_string());
            }
            pages += 1;
            match r.body["next_cursor"].as_str() {
                Some(cur) => cursor = Some(cur.to_string()),
                None => {
                    assert!(r.body["next_cursor"].is_null());
                    break;
                }
            }
            assert!(pages < 1000, "listing does not terminate");
        }
        assert_eq!(
            seen, ids,
            "limit {limit}: every document exactly once, in id order"
        );
    }

    // A collection that does not exist lists as empty.
    let r = c.get("/v1/collections/nothing/docs").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"documents": [], "next_cursor": null}));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_of_the_storage_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut versions = Vec::new();
    for i in 0..50 {
        let r = c
            .put_json(
                &format!("/v1/collections/keep/docs/k{i}"),
                &json!({"i": i, "big": 12345678901234567890u64}),
                &[],
            )
            .await;
        assert_eq!(r.status, 201);
        versions.push(r.body["version"].as_str().unwrap().to_string());
    }
    c.put_json(
        "/v1/collections/strategy",
        &json!({"conflict_strategy": "siblings"}),
        &[],
    )
    .await;
    assert_eq!(
        c.delete("/v1/collections/keep/docs/k0", &[]).await.status,
        204
    );
    c.stop().await;

    let mut c = start(dir.path(), 3).await;
    c.get("/v1/collections/keep/docs/k0")
        .await
        .assert_error(404, "not_found");
    for (i, version) in versions.iter().enumerate().skip(1) {
        let r = c.get(&format!("/v1/collections/keep/docs/k{i}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["version"], version.as_str());
        assert_eq!(r.body["data"]["big"].to_string(), "12345678901234567890");
    }
    // Writes after the restart continue the version vector.
    let r = c
        .put_json(
            "/v1/collections/keep/docs/k1",
            &json!({"i": 1}),
            &[("if-match", &versions[1])],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.get("/v1/collections/strategy").await.body["conflict_strategy"],
        "siblings"
    );
    c.stop().await;

    // The data directory remembers its topology.
    let err = aerolith_cli::dev::DevCluster::start(aerolith_cli::dev::DevOptions {
        nodes_per_dc: 2,
        ..aerolith_cli::dev::DevOptions::new(dir.path().to_path_buf())
    })
    .await
    .err()
    .expect("topology change refused");
    assert!(err.to_string().contains("--nodes-per-dc 3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_report_per_op_results_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut ops = vec![
        json!({"op": "put", "id": "a", "data": {"n": 1}}),
        json!({"op": "put", "data": {"generated": true}}),
        json!({"op": "patch", "id": "a", "patch": {"m": 2}}),
        json!({"op": "patch", "id": "a", "patch": [{"op": "replace", "path": "/n", "value": 5}]}),
        json!({"op": "put", "id": "b", "data": {"n": 2}, "if_match": "dc1@1:9"}),
        json!({"op": "delete", "id": "missing"}),
        json!({"op": "put", "id": "bad id", "data": {}}),
        json!({"op": "frobnicate", "id": "c"}),
        json!({"op": "put", "id": "d", "data": {"n": 4}}),
        json!({"op": "delete", "id": "d"}),
        json!({"op": "put", "id": "d", "data": {"n": 44}}),
        // The put-or-create rule of single writes: no id, no If-Match.
        json!({"op": "put", "data": {"n": 5}, "if_match": "*"}),
    ];
    // Many ids, so every node gets a share of the ops.
    for i in 0..60 {
        ops.push(json!({"op": "put", "id": format!("many{i}"), "data": {"i": i}}));
    }
    let r = c
        .post_json("/v1/collections/b/bulk", &json!({ "ops": ops }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res.len(), ops.len());
    let status: Vec<u64> = res
        .iter()
        .take(12)
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        status,
        vec![201, 201, 200, 200, 412, 404, 400, 400, 201, 204, 201, 400]
    );
    assert_eq!(res[11]["error"]["code"], "invalid_argument");
    assert_eq!(res[0]["id"], "a");
    assert_eq!(res[4]["error"]["code"], "precondition_failed");
    assert_eq!(res[5]["error"]["code"], "not_found");
    assert_eq!(res[6]["error"]["code"], "invalid_argument");
    assert!(res[9].get("version").is_none());
    let generated = res[1]["id"].as_str().unwrap();
    assert_eq!(
        c.get(&format!("/v1/collections/b/docs/{generated}"))
            .await
            .body["data"],
        json!({"generated": true})
    );
    // Ops on one id applied in order.
    let a = c.get("/v1/collections/b/docs/a").await;
    assert_eq!(a.body["data"], json!({"m": 2, "n": 5}));
    assert_eq!(a.body["version"], res[3]["version"]);
    assert_eq!(
        c.get("/v1/collections/b/docs/d").await.body["data"],
        json!({"n": 44})
    );
    c.get("/v1/collections/b/docs/b")
        .await
        .assert_error(404, "not_found");
    for (i, item) in res.iter().enumerate().skip(12) {
        assert_eq!(item["status"], 201);
        assert_eq!(item["id"], format!("many{}", i - 12));
    }

    // Whole-request errors.
    let too_many: Vec<_> = (0..1001)
        .map(|i| json!({"op": "delete", "id": format!("x{i}")}))
        .collect();
    c.post_json("/v1/collections/b/bulk", &json!({ "ops": too_many }))
        .await
        .assert_error(400, "invalid_argument");
    c.post_json("/v1/collections/b/bulk", &json!([1]))
        .await
        .assert_error(400, "invalid_argument");
    c.post_json("/v1/collections/b/bulk", &json!({"ops": 1}))
        .await
        .assert_error(400, "invalid_argument");
    c.post_json("/v1/collections/b/bulk", &json!({"ops": [], "x": 1}))
        .await
        .assert_error(400, "invalid_argument");
    let r = c
        .post_json("/v1/collections/b/bulk", &json!({"ops": []}))
        .await;
    assert_eq!(r.body, json!({"results": []}));
    c.stop().await;
}
