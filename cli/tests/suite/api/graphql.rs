//! The GraphQL endpoint beyond the parity suite: GraphiQL, collection queries, null plus a
//! coded error for missing things, codes on the errors async-graphql raises itself (syntax,
//! validation, depth), and filtered subscriptions over `graphql-transport-ws`.

use serde_json::{Value, json};

use crate::protocols::graphql::{GraphqlFeed, first_error};
use crate::support::{TestCluster, start};

async fn graphql(c: &TestCluster, body: &str) -> Value {
    let resp = c
        .http
        .post(format!("{}/graphql", c.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.bytes().await.unwrap()).expect("a JSON response")
}

async fn run(c: &TestCluster, query: &str, variables: Value) -> Value {
    graphql(
        c,
        &json!({"query": query, "variables": variables}).to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_collections_and_coded_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;

    let page = c.get("/graphql").await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.raw).to_lowercase();
    assert!(
        html.contains("graphiql") && html.contains("/graphql/ws"),
        "{html}"
    );

    let r = run(&c, "mutation { createCollection(name: \"people\", conflictStrategy: SIBLINGS) { name conflictStrategy } }", json!({})).await;
    assert_eq!(
        r["data"]["createCollection"],
        json!({"name": "people", "conflictStrategy": "SIBLINGS"}),
        "{r}"
    );
    let r = run(
        &c,
        "mutation { createCollection(name: \"plain\") { conflictStrategy } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["data"]["createCollection"]["conflictStrategy"], "LWW",
        "{r}"
    );
    let r = run(
        &c,
        "{ collections { name conflictStrategy } collection(name: \"people\") { name } }",
        json!({}),
    )
    .await;
    let names: Vec<&Value> = r["data"]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert!(
        names.contains(&&json!("people")) && names.contains(&&json!("plain")),
        "{r}"
    );
    assert_eq!(r["data"]["collection"]["name"], "people");

    // Missing things: the nullable field is null (not `data` itself: a sibling field keeps
    // its answer) and the error carries not_found.
    let r = run(
        &c,
        "{ missing: collection(name: \"ghost\") { name } found: collection(name: \"people\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!(r["data"].get("missing"), Some(&Value::Null), "{r}");
    assert_eq!(r["data"]["found"]["name"], "people", "{r}");
    assert_eq!(first_error(&r).as_deref(), Some("not_found"), "{r}");
    let r = run(
        &c,
        "{ document(collection: \"people\", id: \"nobody\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(r["data"], json!({"document": null}), "{r}");
    assert_eq!(first_error(&r).as_deref(), Some("not_found"), "{r}");

    // Errors raised before any resolver runs are the client's: invalid_argument.
    for body in [
        "not json".to_string(),
        json!({"query": "{ collections { name "}).to_string(),
        json!({"query": "{ collections { nope } }"}).to_string(),
        json!({"query": "query($l: Int) { documents(collection: \"people\", limit: $l) { nextCursor } }", "variables": {"l": "ten"}}).to_string(),
        json!({"query": format!("{{ __schema {{ types {{ {}name{} }} }} }}", "fields { type { ".repeat(12), " } }".repeat(12))}).to_string(),
    ] {
        let r = graphql(&c, &body).await;
        assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{body} -> {r}");
    }
    // A limit outside 1..=1000 is the same invalid_argument as over REST.
    let r = run(
        &c,
        "{ documents(collection: \"people\", limit: 5000) { nextCursor } }",
        json!({}),
    )
    .await;
    assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{r}");

    // Many aliased pages, or a long batch, are refused before anything runs.
    let aliases: String = (0..20)
        .map(|i| format!("p{i}: documents(collection: \"people\", limit: 1000) {{ documents {{ id data }} nextCursor }} "))
        .collect();
    let r = run(&c, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{r}");
    let one = json!({"query": "{ collections { name } }"});
    let r = graphql(&c, &json!(vec![one.clone(); 17]).to_string()).await;
    assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{r}");
    let r = graphql(&c, &json!(vec![one; 2]).to_string()).await;
    assert_eq!(r.as_array().map(Vec::len), Some(2), "{r}");

    // A malformed deadline header is a GraphQL error too, not a REST one.
    let resp = c
        .http
        .post(format!("{}/graphql", c.base))
        .header("content-type", "application/json")
        .header("x-aerolith-timeout-ms", "soon")
        .body(json!({"query": "{ collections { name } }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{r}");

    let metrics = String::from_utf8(c.get("/metrics").await.raw).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("aerolith_requests_total")
                && l.contains(r#"protocol="graphql""#)
                && l.contains(r#"op="POST /graphql""#)),
        "{metrics}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_filter_and_end_with_a_coded_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    c.put_json("/v1/collections/subs", &json!({}), &[]).await;
    let mut feed = GraphqlFeed::connect(&c.http_addr).await;
    feed.subscribe(
        "subscription($f: JSON) { changes(collection: \"subs\", filter: $f) { op id data token } }",
        json!({"f": {"keep": true}}),
    )
    .await;
    let first = feed.next().await.expect("initial checkpoint");
    assert_eq!(first["op"], "checkpoint", "{first}");
    for (id, keep) in [("a", false), ("b", true)] {
        let r = c
            .put_json(
                &format!("/v1/collections/subs/docs/{id}"),
                &json!({"keep": keep}),
                &[],
            )
            .await;
        assert_eq!(r.status, 201);
    }
    c.delete("/v1/collections/subs/docs/a", &[]).await;
    // Order holds per document only: compare the two documents' events as a set.
    let mut got = Vec::new();
    for _ in 0..2 {
        let e = feed.next_change().await.expect("an event");
        got.push((e["op"].clone(), e["id"].clone(), e["data"].clone()));
    }
    got.sort_by_key(|e| e.1.to_string());
    assert_eq!(
        got,
        vec![
            (json!("delete"), json!("a"), Value::Null),
            (json!("put"), json!("b"), json!(r#"{"keep":true}"#)),
        ]
    );

    // Deleting the collection ends the subscription with not_found.
    let r = c.delete("/v1/collections/subs", &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(feed.next_change().await, Err("not_found".to_string()));
    c.stop().await;
}

impl GraphqlFeed {
    /// The next event that is not a checkpoint.
    async fn next_change(&mut self) -> crate::protocols::Outcome {
        loop {
            let e = self.next().await?;
            if e["op"] != "checkpoint" {
                return Ok(e);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_over_graphql() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let create = "mutation($f: [IndexFieldInput!]!) { createIndex(collection: \"gq\", name: \"by_n\", fields: $f) { name fields { path order } state } }";
    let r = run(
        &c,
        create,
        json!({"f": [{"path": "n"}, {"path": "m", "order": "desc"}]}),
    )
    .await;
    assert_eq!(
        r["data"]["createIndex"]["fields"],
        json!([{"path": "n", "order": "asc"}, {"path": "m", "order": "desc"}]),
        "{r}"
    );
    let r = run(&c, create, json!({"f": [{"path": "other"}]})).await;
    assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{r}");
    let r = run(&c, create, json!({"f": [{"path": "n", "order": "up"}]})).await;
    assert_eq!(first_error(&r).as_deref(), Some("invalid_argument"), "{r}");
    let r = run(
        &c,
        "{ collection(name: \"gq\") { name indexes { name state } } }",
        json!({}),
    )
    .await;
    let indexes = &r["data"]["collection"]["indexes"];
    assert_eq!(indexes[0]["name"], "by_n", "{r}");
    let r = run(
        &c,
        "mutation { dropIndex(collection: \"gq\", name: \"by_n\") }",
        json!({}),
    )
    .await;
    assert_eq!(r["data"]["dropIndex"], true, "{r}");
    let r = run(
        &c,
        "mutation { dropIndex(collection: \"gq\", name: \"by_n\") }",
        json!({}),
    )
    .await;
    assert_eq!(first_error(&r).as_deref(), Some("not_found"), "{r}");
    c.stop().await;
}
