//! `POST /v1/collections/{c}/query` over the wire against a three-node cluster: random
//! documents and queries checked against a brute-force evaluation, cursor stability while
//! documents change, and error answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::support::{TestCluster, start, start_with_budget};
use aerolith_common::query::{Filter, compare_docs, parse_projection, parse_sort, project};

/// A number spelled as JSON (kept exactly as written: `1.0` stays `1.0`).
fn num(text: &'static str) -> Value {
    serde_json::from_str(text).expect("a JSON number")
}

fn leaf() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec!["-1", "0", "1", "1.0", "1.5", "2", "2e0", "-0.5", "3"])
            .prop_map(num),
        prop::sample::select(vec!["", "a", "ab", "abc", "b", "B"]).prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> + Clone {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(vec!["a", "b"]), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.into(), v)).collect())),
        ]
    })
}

/// A body: each field may be missing; `n` is usually an object so dotted paths reach in.
pub(super) fn body() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(value()),
        proptest::option::of(leaf()),
        proptest::option::of(prop_oneof![
            3 => proptest::option::of(value()).prop_map(|a| {
                let mut m = Map::new();
                if let Some(a) = a {
                    m.insert("a".into(), a);
                }
                Value::Object(m)
            }),
            1 => leaf(),
        ]),
        proptest::option::of(prop::collection::vec(leaf(), 0..4).prop_map(Value::Array)),
    )
        .prop_map(|(a, b, n, tags)| {
            let mut m = Map::new();
            for (k, v) in [("a", a), ("b", b), ("n", n), ("tags", tags)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            m
        })
}

const PATHS: [&str; 6] = ["a", "b", "n.a", "tags", "_id", "missing"];

fn id_operand() -> impl Strategy<Value = Value> + Clone {
    (0..120u32).prop_map(|i| json!(format!("d{i:03}")))
}

/// One field condition: implicit equality or one operator.
fn condition() -> impl Strategy<Value = Value> {
    let ops = |v: BoxedStrategy<Value>| {
        prop_oneof![
            v.clone(),
            v.clone().prop_map(|v| json!({"$eq": v})),
            v.clone().prop_map(|v| json!({"$ne": v})),
            v.clone().prop_map(|v| json!({"$gt": v})),
            v.clone().prop_map(|v| json!({"$gte": v})),
            v.clone().prop_map(|v| json!({"$lt": v})),
            v.clone().prop_map(|v| json!({"$lte": v})),
            (v.clone(), v.clone()).prop_map(|(lo, hi)| json!({"$gte": lo, "$lt": hi})),
            prop::collection::vec(v.clone(), 0..3).prop_map(|v| json!({"$in": v})),
            prop::collection::vec(v, 0..3).prop_map(|v| json!({"$nin": v})),
            any::<bool>().prop_map(|b| json!({"$exists": b})),
            prop::sample::select(vec!["", "a", "ab", "d0"]).prop_map(|p| json!({"$prefix": p})),
            prop::sample::select(vec!["^a", "b$", "a.", "(?i)^b", "d0[0-4]"])
                .prop_map(|p| json!({"$regex": p})),
        ]
    };
    prop_oneof![
        (prop::sample::select(PATHS.to_vec()), ops(value().boxed()))
            .prop_map(|(p, c)| json!({ p: c })),
        ops(id_operand().boxed()).prop_map(|c| json!({ "_id": c })),
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    condition().prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$and": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$or": v})),
            inner.prop_map(|f| json!({"$not": f})),
        ]
    })
}

fn sort() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(PATHS.to_vec()), any::<bool>()), 0..3).prop_map(
        |keys| {
            Value::Array(
                keys.into_iter()
                    .map(
                        |(f, desc)| json!({"field": f, "order": if desc { "desc" } else { "asc" }}),
                    )
                    .collect(),
            )
        },
    )
}

fn projection() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(
        prop::sample::subsequence(vec!["a", "n.a", "n", "tags", "_id"], 0..3)
            .prop_map(|p| json!(p)),
    )
}

/// A random query: filter (or none), sort (or none), page size, projection.
#[derive(Debug, Clone)]
pub(super) struct QueryCase {
    pub(super) filter: Option<Value>,
    pub(super) sort: Option<Value>,
    pub(super) limit: u32,
    pub(super) projection: Option<Value>,
}

pub(super) fn query_case() -> impl Strategy<Value = QueryCase> {
    (
        proptest::option::weighted(0.85, filter()),
        proptest::option::weighted(0.7, sort()),
        1..30u32,
        projection(),
    )
        .prop_map(|(filter, sort, limit, projection)| QueryCase {
            filter,
            sort,
            limit,
            projection,
        })
}

/// The ids and data the query should return, computed over every document.
pub(super) fn brute_force(
    docs: &[(String, Map<String, Value>)],
    q: &QueryCase,
) -> Vec<(String, Value)> {
    let filter = Filter::parse(q.filter.as_ref().unwrap_or(&json!({}))).expect("valid filter");
    let keys = parse_sort(q.sort.as_ref().unwrap_or(&json!([]))).expect("valid sort");
    let mut hits: Vec<&(String, Map<String, Value>)> = docs
        .iter()
        .filter(|(id, d)| filter.matches(id, d))
        .collect();
    hits.sort_by(|a, b| compare_docs(&keys, (&a.0, &a.1), (&b.0, &b.1)));
    let paths = q
        .projection
        .as_ref()
        .map(|p| parse_projection(p).expect("valid projection"));
    hits.into_iter()
        .map(|(id, d)| {
            let data = match &paths {
                Some(p) => project(p, d),
                None => d.clone(),
            };
            (id.clone(), Value::Object(data))
        })
        .collect()
}

/// Pages through a query, returning every (id, data) in the order received.
pub(super) async fn run_paged(
    c: &TestCluster,
    collection: &str,
    q: &QueryCase,
    max_pages: usize,
) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..max_pages {
        let mut body = json!({"limit": q.limit, "cursor": cursor});
        for (k, v) in [
            ("filter", &q.filter),
            ("sort", &q.sort),
            ("projection", &q.projection),
        ] {
            if let Some(v) = v {
                body[k] = v.clone();
            }
        }
        let r = c
            .post_json(&format!("/v1/collections/{collection}/query"), &body)
            .await;
        if r.status != 200 {
            return Err(format!("status {} for {body}: {}", r.status, r.body));
        }
        let docs = r.body["documents"].as_array().cloned().unwrap_or_default();
        if docs.len() > q.limit as usize {
            return Err(format!("{} documents over limit {}", docs.len(), q.limit));
        }
        out.extend(docs.into_iter().map(|d| {
            (
                d["id"].as_str().unwrap_or_default().to_string(),
                d["data"].clone(),
            )
        }));
        cursor = r.body["next_cursor"].clone();
        if cursor.is_null() {
            return Ok(out);
        }
    }
    Err(format!("no end after {max_pages} pages"))
}

/// Writes `docs` into `collection` with one bulk request.
pub(super) async fn load(c: &TestCluster, collection: &str, docs: &[(String, Map<String, Value>)]) {
    for chunk in docs.chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|(id, d)| json!({"op": "put", "id": id, "data": d}))
            .collect();
        let r = c
            .post_json(
                &format!("/v1/collections/{collection}/bulk"),
                &json!({ "ops": ops }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        for res in r.body["results"].as_array().expect("results") {
            assert!(res["status"] == 201 || res["status"] == 200, "{res}");
        }
    }
}

#[test]
fn paged_queries_equal_a_brute_force_evaluation() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    // A tiny scan budget makes nodes answer short id-ordered pages all the time, which is
    // what bounds the gateway's merge; sorted queries are unaffected by it.
    let mut c = rt.block_on(start_with_budget(dir.path(), 3, 7));
    let case_no = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 16,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(body(), 30..120),
        prop::collection::vec(query_case(), 8),
    );
    let result = runner.run(&strategy, |(bodies, queries)| {
        let collection = format!("p{}", case_no.fetch_add(1, Ordering::Relaxed));
        let docs: Vec<(String, Map<String, Value>)> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, b)| (format!("d{i:03}"), b))
            .collect();
        rt.block_on(async {
            load(&c, &collection, &docs).await;
            for q in &queries {
                let want = brute_force(&docs, q);
                let got = run_paged(&c, &collection, q, docs.len() + 5)
                    .await
                    .map_err(TestCaseError::fail)?;
                prop_assert_eq!(&got, &want, "query {:?}", q);
            }
            Ok(())
        })
    });
    rt.block_on(c.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The ids of a page, in order.
fn ids_of(page: &Value) -> Vec<String> {
    page["documents"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .filter_map(|d| d["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_example_query_with_sort_projection_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let people = [
        ("p1", "Ada", json!(36), "active", "Oslo"),
        ("p2", "Bo", json!(17), "active", "Oslo"),
        ("p3", "Cy", json!(52), "active", "Lima"),
        ("p4", "Di", json!(44), "gone", "Lima"),
        ("p5", "Ed", json!(18), "active", "Oslo"),
        ("p7", "Gu", json!(20), "active", "Rome"),
        ("p6", "Fa", num("18.0"), "active", "Lima"),
    ]
    .map(|(id, name, age, status, city)| {
        (
            id,
            json!({"name": name, "age": age, "status": status, "address": {"city": city}}),
        )
    });
    for (id, d) in &people {
        let r = c
            .put_json(&format!("/v1/collections/people/docs/{id}"), d, &[])
            .await;
        assert_eq!(r.status, 201);
    }
    let query = |cursor: Value| {
        json!({
            "filter": {"age": {"$gte": 18}, "status": "active", "address.city": {"$in": ["Oslo", "Lima"]}},
            "sort": [{"field": "age", "order": "desc"}], "limit": 2, "cursor": cursor,
            "projection": ["name", "address.city"]
        })
    };
    let r = c
        .post_json("/v1/collections/people/query", &query(Value::Null))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = &r.body["documents"];
    assert_eq!(page[0]["id"], "p3");
    assert_eq!(
        page[0]["data"],
        json!({"name": "Cy", "address": {"city": "Lima"}})
    );
    assert_eq!(page[0]["collection"], "people");
    assert!(page[0]["version"].is_string());
    assert_eq!(page[1]["id"], "p1");
    let cursor = r.body["next_cursor"].clone();
    assert!(cursor.is_string());
    let r = c
        .post_json("/v1/collections/people/query", &query(cursor))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // 18.0 equals 18; the tie is broken by id.
    assert_eq!(ids_of(&r.body), ["p5", "p6"]);
    let cursor = r.body["next_cursor"].clone();
    if !cursor.is_null() {
        let r = c
            .post_json("/v1/collections/people/query", &query(cursor))
            .await;
        assert_eq!(r.body, json!({"documents": [], "next_cursor": null}));
    }

    // `_id` range scan with a limit.
    let r = c
        .post_json(
            "/v1/collections/people/query",
            &json!({"filter": {"_id": {"$gt": "p2"}}, "limit": 2}),
        )
        .await;
    assert_eq!(ids_of(&r.body), ["p3", "p4"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_stay_stable_while_documents_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    // Documents k000..k299 never change; m000..m099 are rewritten, deleted and re-created
    // between pages, and new ones appear.
    let mut docs = Vec::new();
    for i in 0..300 {
        docs.push((format!("k{i:03}"), json!({"n": i % 17, "stable": true})));
    }
    for i in 0..100 {
        docs.push((format!("m{i:03}"), json!({"n": i % 17, "stable": false})));
    }
    let maps: Vec<(String, Map<String, Value>)> = docs
        .iter()
        .map(|(id, d)| (id.clone(), d.as_object().cloned().unwrap_or_default()))
        .collect();
    load(&c, "churn", &maps).await;

    for sort in [json!([{"field": "n", "order": "desc"}]), json!([])] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cursor = Value::Null;
        let mut round = 0u32;
        loop {
            let r = c
                .post_json(
                    "/v1/collections/churn/query",
                    &json!({"sort": sort, "limit": 25, "cursor": cursor}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            for d in r.body["documents"].as_array().unwrap() {
                *seen
                    .entry(d["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            cursor = r.body["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
            // Churn: move some documents to other sort positions, delete some, add some.
            round += 1;
            let mut ops = Vec::new();
            for j in 0..10 {
                let i = (round * 7 + j * 13) % 100;
                ops.push(json!({"op": "put", "id": format!("m{i:03}"), "data": {"n": (i + round) % 17, "stable": false}}));
            }
            ops.push(json!({"op": "delete", "id": format!("m{:03}", (round * 3) % 100)}));
            ops.push(
                json!({"op": "put", "id": format!("new{round:03}"), "data": {"n": round % 17}}),
            );
            let r = c
                .post_json("/v1/collections/churn/bulk", &json!({"ops": ops}))
                .await;
            assert_eq!(r.status, 200);
        }
        for i in 0..300 {
            let id = format!("k{i:03}");
            assert_eq!(seen.get(&id), Some(&1), "{id} with sort {sort}");
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let cases = [
        (json!({"filter": {"age": {"$gte": 1, "$foo": 2}}}), "$foo"),
        (json!({"filter": {"$nor": []}}), "$nor"),
        (json!({"filter": {"a": {"$in": 5}}}), "$in"),
        (json!({"filter": {"$and": []}}), "$and"),
        (json!({"filter": {"a": {"$regex": "("}}}), "$regex"),
        (json!({"filter": [1]}), "filter"),
        (json!({"sort": [{"field": "a", "order": "up"}]}), "order"),
        (json!({"sort": {"field": "a"}}), "sort"),
        (json!({"projection": "a"}), "projection"),
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 1001}), "limit"),
        (json!({"cursor": "not-a-cursor"}), "cursor"),
        (json!({"filtre": {}}), "filtre"),
    ];
    for (body, needle) in cases {
        let r = c.post_json("/v1/collections/any/query", &body).await;
        r.assert_error(400, "invalid_argument");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg:?} should name {needle}");
    }
    // A cursor of a query with a different number of sort keys is refused.
    for i in 0..3 {
        c.put_json(
            &format!("/v1/collections/any/docs/x{i}"),
            &json!({"a": i}),
            &[],
        )
        .await;
    }
    let r = c
        .post_json(
            "/v1/collections/any/query",
            &json!({"sort": [{"field": "a"}], "limit": 1}),
        )
        .await;
    let cursor = r.body["next_cursor"].clone();
    assert!(cursor.is_string());
    let r = c
        .post_json(
            "/v1/collections/any/query",
            &json!({"limit": 1, "cursor": cursor}),
        )
        .await;
    r.assert_error(400, "invalid_argument");
    // A query of an unknown collection is an empty page, like a listing.
    let r = c
        .post_json("/v1/collections/nothing/query", &json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"documents": [], "next_cursor": null}));
    c.stop().await;
}
