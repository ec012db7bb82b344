//! The cross-protocol parity suite: one table of scenarios, run through a REST, a GraphQL, a
//! WebSocket and a gRPC client against the same three-node cluster, must give identical
//! outcomes (API.md: "the same semantics, error codes and resume tokens"); and a document
//! written through any protocol reads byte-identically through the other three.

use std::time::Duration;

use serde_json::{Value, json};

use crate::protocols::{Client, Outcome};
use crate::support::http::gateway_to_nowhere;
use crate::support::{start, start_with_retention};
use aerolith_storagenode::Retention;

/// Values that 64-bit integers, number spellings, escapes and key order must survive.
const TRICKY: &str = r#"{"zeta": 1, "big": 18446744073709551615, "neg": -9223372036854775808,
    "dec": 1.50, "exp": 1e400, "s": "é\u0000\"\\", "nested": {"b": [1, {"z": null, "a": true}]},
    "Alpha": [], "empty": {}}"#;

/// One step's outcome with what legitimately differs between runs (versions, times, tokens,
/// cursors, the run's own collection name) masked; everything else must match exactly.
fn mask(outcome: &Outcome, collection: &str) -> Outcome {
    fn walk(v: &mut Value, collection: &str) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    match (k.as_str(), &*x) {
                        ("version" | "updated_at" | "token" | "next_cursor", Value::String(s)) => {
                            assert!(!s.is_empty(), "empty {k}");
                            *x = json!(format!("<{k}>"));
                        }
                        ("collection" | "name", Value::String(s)) if s.starts_with(collection) => {
                            *x = json!(format!("<collection>{}", &s[collection.len()..]));
                        }
                        _ => walk(x, collection),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, collection)),
            _ => {}
        }
    }
    outcome.clone().map(|mut v| {
        walk(&mut v, collection);
        v
    })
}

/// The version of a document outcome.
fn version(o: &Outcome) -> String {
    o.as_ref().expect("a document")["version"]
        .as_str()
        .expect("a version")
        .to_string()
}

/// The scenario table, run through one client on its own collection; each step is labelled.
async fn scenario(c: &mut Client, coll: &str) -> Vec<(&'static str, Outcome)> {
    let mut t: Vec<(&'static str, Outcome)> = Vec::new();
    let data = r#"{"name": "Ada", "age": 36, "tags": ["x"], "addr": {"city": "Oslo"}}"#;

    // Collections.
    t.push((
        "create collection",
        c.create_collection(coll, Some("lww")).await,
    ));
    t.push((
        "create again, same settings",
        c.create_collection(coll, None).await,
    ));
    t.push((
        "create again, other strategy",
        c.create_collection(coll, Some("siblings")).await,
    ));
    t.push((
        "reserved collection name",
        c.create_collection("_system", None).await,
    ));
    let siblings = format!("{coll}_s");
    t.push((
        "create a siblings collection",
        c.create_collection(&siblings, Some("siblings")).await,
    ));
    t.push((
        "create it again without settings",
        c.create_collection(&siblings, None).await,
    ));

    // Put, get, preconditions.
    let v1 = c.put(coll, Some("a"), data, None, false).await;
    t.push(("put", v1.clone()));
    let got = c.get(coll, "a").await;
    assert_eq!(got, v1, "{}: get returns what put returned", c.name());
    t.push(("get", got));
    let v2 = c
        .put(
            coll,
            Some("a"),
            r#"{"name": "Ada", "age": 37}"#,
            Some(&version(&v1)),
            false,
        )
        .await;
    t.push(("put with the current version", v2.clone()));
    t.push((
        "put with a stale version",
        c.put(coll, Some("a"), "{}", Some(&version(&v1)), false)
            .await,
    ));
    t.push((
        "put if-match on a missing document",
        c.put(coll, Some("nope"), "{}", Some(&version(&v1)), false)
            .await,
    ));
    t.push((
        "create with if-none-match",
        c.put(coll, Some("b"), data, None, true).await,
    ));
    t.push((
        "create with if-none-match again",
        c.put(coll, Some("b"), data, None, true).await,
    ));
    let generated = c.put(coll, None, r#"{"gen": true}"#, None, false).await;
    let id = generated
        .as_ref()
        .map(|d| d["id"].as_str().unwrap_or("").to_string());
    assert!(
        id.as_ref()
            .is_ok_and(|id| id.len() == 36 && id.as_bytes()[14] == b'7'),
        "{}: a generated id is a UUIDv7: {id:?}",
        c.name()
    );
    t.push((
        "put without an id",
        generated.map(|mut d| {
            d["id"] = json!("<generated>");
            d
        }),
    ));

    // Patches.
    t.push((
        "merge patch",
        c.patch(
            coll,
            "a",
            r#"{"age": null, "city": "Lima", "n": 7.0}"#,
            None,
        )
        .await,
    ));
    t.push((
        "merge patch with a stale version",
        c.patch(coll, "a", r#"{"x": 1}"#, Some(&version(&v2))).await,
    ));
    t.push((
        "JSON Patch",
        c.patch(
            coll,
            "a",
            r#"[{"op": "add", "path": "/tags", "value": [1, 2]}]"#,
            None,
        )
        .await,
    ));
    t.push((
        "JSON Patch with a failing test",
        c.patch(
            coll,
            "a",
            r#"[{"op": "test", "path": "/name", "value": "Bob"}]"#,
            None,
        )
        .await,
    ));
    t.push((
        "patch a missing document",
        c.patch(coll, "missing", r#"{"x": 1}"#, None).await,
    ));

    // Deletes.
    t.push((
        "delete with a stale version",
        c.delete(coll, "a", Some(&version(&v1))).await,
    ));
    t.push(("delete", c.delete(coll, "b", None).await));
    t.push(("get after delete", c.get(coll, "b").await));
    t.push(("delete again", c.delete(coll, "b", None).await));
    t.push((
        "recreate over a deleted document with if-none-match",
        c.put(coll, Some("b"), "{}", None, true).await,
    ));

    // Errors a client can cause.
    t.push(("bad document id", c.get(coll, "bad id!").await));
    t.push(("bad collection name", c.get("9lives", "a").await));
    t.push((
        "body not an object",
        c.put(coll, Some("c"), "[1, 2]", None, false).await,
    ));
    t.push((
        "body too deep",
        c.put(
            coll,
            Some("c"),
            &format!("{}1{}", r#"{"a":"#.repeat(70), "}".repeat(70)),
            None,
            false,
        )
        .await,
    ));
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(1024 * 1024 + 16));
    t.push((
        "body over 1 MiB",
        c.put(coll, Some("c"), &big, None, false).await,
    ));
    t.push((
        "unknown query operator",
        c.query(coll, &json!({"filter": {"a": {"$near": 1}}})).await,
    ));
    t.push(("query limit 0", c.query(coll, &json!({"limit": 0})).await));
    t.push((
        "query limit 1001",
        c.query(coll, &json!({"limit": 1001})).await,
    ));
    t.push((
        "malformed cursor",
        c.query(coll, &json!({"cursor": "garbage"})).await,
    ));
    t.push((
        "malformed resume token",
        c.watch(coll, Some("not-a-token"))
            .await
            .map(|_| Value::Null),
    ));

    // A query with filter, sort, projection and two pages.
    for i in 0..5 {
        let d = format!(
            r#"{{"n": {i}, "g": {}, "name": "q{i}", "extra": [{i}]}}"#,
            i % 2
        );
        c.put(coll, Some(&format!("q{i}")), &d, None, false)
            .await
            .expect("query data");
    }
    let q = json!({"filter": {"g": 0, "n": {"$gte": 0}}, "sort": [{"field": "n", "order": "desc"}],
        "limit": 2, "projection": ["n", "name"]});
    let first = c.query(coll, &q).await;
    t.push(("query, first page", first.clone()));
    let cursor = first
        .as_ref()
        .ok()
        .and_then(|p| p["next_cursor"].as_str().map(String::from));
    let mut q2 = q.clone();
    q2["cursor"] = json!(cursor.expect("a second page"));
    let second = c.query(coll, &q2).await;
    t.push(("query, second page", second.clone()));
    if let Some(cursor) = second.as_ref().ok().and_then(|p| p["next_cursor"].as_str()) {
        let mut q3 = q.clone();
        q3["cursor"] = json!(cursor);
        t.push(("query, third page", c.query(coll, &q3).await));
    }

    // Counts, and a plan (reduced to what does not depend on where each protocol's own
    // collection's documents fall: the indexes used, and the records read in all).
    t.push(("count", c.count(coll, &json!({"g": 0})).await));
    t.push(("count everything", c.count(coll, &Value::Null).await));
    t.push((
        "count with a bad filter",
        c.count(coll, &json!({"a": {"$near": 1}})).await,
    ));
    let explained = c
        .query(coll, &json!({"filter": {"g": 1}, "explain": true}))
        .await
        .map(|p| {
            let steps = p["plan"].as_array().cloned().unwrap_or_default();
            json!({
                "documents": p["documents"],
                "indexes": steps.iter().map(|s| s["index"].clone()).collect::<Vec<_>>(),
                "examined": steps.iter().filter_map(|s| s["examined"].as_u64()).sum::<u64>(),
            })
        });
    t.push(("query with explain", explained));

    // A watch, interrupted and resumed by token. Order is guaranteed per document only, so
    // the resumed events (three documents) are compared sorted.
    let mut feed = c.watch(coll, None).await.expect("watch opens");
    let start = feed.next().await;
    t.push(("watch starts with a checkpoint", start));
    c.put(coll, Some("w1"), r#"{"w": 1}"#, None, false)
        .await
        .expect("w1");
    let first_event = feed.next_change().await;
    t.push(("watch, first event", first_event.clone()));
    c.put(coll, Some("w2"), r#"{"w": 2}"#, None, false)
        .await
        .expect("w2");
    drop(feed);
    c.put(coll, Some("w3"), r#"{"w": 3}"#, None, false)
        .await
        .expect("w3");
    c.delete(coll, "w1", None).await.expect("delete w1");
    let token = first_event.expect("an event")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut resumed = c.watch(coll, Some(&token)).await.expect("watch resumes");
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(mask(&resumed.next_change().await, coll));
    }
    events.sort_by_key(|e| format!("{e:?}"));
    for (label, e) in [
        "resumed watch, event 1",
        "resumed watch, event 2",
        "resumed watch, event 3",
    ]
    .into_iter()
    .zip(events)
    {
        t.push((label, e));
    }

    t.into_iter()
        .map(|(label, o)| (label, mask(&o, coll)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_gives_the_same_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path(), 3).await;
    let mut clients = Client::all(&cluster.http_addr, &cluster.grpc_addr).await;
    let mut transcripts = Vec::new();
    for c in &mut clients {
        let coll = format!("parity_{}", c.name().to_lowercase());
        transcripts.push((c.name(), scenario(c, &coll).await));
    }
    let (reference_name, reference) = &transcripts[0];
    // The reference itself must show the outcomes API.md asks for.
    let codes: Vec<(&str, Option<&str>)> = reference
        .iter()
        .map(|(l, o)| (*l, o.as_ref().err().map(String::as_str)))
        .collect();
    for (label, want) in [
        ("create again, other strategy", "invalid_argument"),
        ("reserved collection name", "invalid_argument"),
        ("put with a stale version", "precondition_failed"),
        ("put if-match on a missing document", "precondition_failed"),
        ("create with if-none-match again", "already_exists"),
        ("merge patch with a stale version", "precondition_failed"),
        ("JSON Patch with a failing test", "precondition_failed"),
        ("patch a missing document", "not_found"),
        ("delete with a stale version", "precondition_failed"),
        ("get after delete", "not_found"),
        ("delete again", "not_found"),
        ("bad document id", "invalid_argument"),
        ("bad collection name", "invalid_argument"),
        ("body not an object", "invalid_argument"),
        ("body too deep", "invalid_argument"),
        ("body over 1 MiB", "payload_too_large"),
        ("unknown query operator", "invalid_argument"),
        ("query limit 0", "invalid_argument"),
        ("query limit 1001", "invalid_argument"),
        ("malformed cursor", "invalid_argument"),
        ("malformed resume token", "invalid_argument"),
    ] {
        let got = codes.iter().find(|(l, _)| *l == label).map(|(_, c)| *c);
        assert_eq!(got, Some(Some(want)), "{reference_name}: {label}");
    }
    let page = |label: &str| {
        reference
            .iter()
            .find(|(l, _)| *l == label)
            .and_then(|(_, o)| o.clone().ok())
            .unwrap()
    };
    assert_eq!(
        page("create it again without settings")["conflict_strategy"],
        "siblings"
    );
    let names = |p: Value| -> Vec<Value> {
        p["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["data"].clone())
            .collect()
    };
    assert_eq!(
        names(page("query, first page")),
        vec![
            json!(r#"{"n":4,"name":"q4"}"#),
            json!(r#"{"n":2,"name":"q2"}"#)
        ]
    );
    assert_eq!(
        names(page("query, second page")),
        vec![json!(r#"{"n":0,"name":"q0"}"#)]
    );
    let resumed: Vec<(Value, Value)> = [
        "resumed watch, event 1",
        "resumed watch, event 2",
        "resumed watch, event 3",
    ]
    .iter()
    .map(|l| {
        let e = page(l);
        (e["op"].clone(), e["id"].clone())
    })
    .collect();
    assert_eq!(
        resumed,
        vec![
            (json!("delete"), json!("w1")),
            (json!("put"), json!("w2")),
            (json!("put"), json!("w3"))
        ]
    );

    for (name, transcript) in &transcripts[1..] {
        assert_eq!(transcript.len(), reference.len(), "{name}: number of steps");
        for ((label, want), (_, got)) in reference.iter().zip(transcript) {
            assert_eq!(
                got, want,
                "{name} differs from {reference_name} at \"{label}\""
            );
        }
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_written_through_one_protocol_reads_byte_identically_through_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(dir.path(), 3).await;
    let mut clients = Client::all(&cluster.http_addr, &cluster.grpc_addr).await;
    for w in 0..clients.len() {
        let id = format!("by_{}", clients[w].name().to_lowercase());
        let written = clients[w]
            .put("shared", Some(&id), TRICKY, None, false)
            .await
            .expect("put");
        let data = written["data"].as_str().unwrap().to_string();
        assert!(
            data.contains("18446744073709551615") && data.contains("-9223372036854775808"),
            "{data}"
        );
        assert!(
            data.contains("1.50") && data.contains("1e+400"),
            "numbers as written (exponents get a sign): {data}"
        );
        assert!(
            data.starts_with(r#"{"Alpha":[],"big":"#),
            "keys in byte order: {data}"
        );
        for r in &mut clients {
            let read = r.get("shared", &id).await;
            assert_eq!(
                read.as_ref(),
                Ok(&written),
                "{} reads what {id} wrote",
                r.name()
            );
            let page = r
                .query("shared", &json!({"filter": {"_id": id}}))
                .await
                .expect("query");
            assert_eq!(
                page["documents"][0],
                written,
                "{} queries what {id} wrote",
                r.name()
            );
        }
    }
    // The change feed carries the same bytes through every protocol.
    let mut events = Vec::new();
    for c in &mut clients {
        let mut feed = c.watch("shared", None).await.expect("watch");
        feed.next().await.expect("initial checkpoint");
        events.push(feed);
    }
    clients[3]
        .patch(
            "shared",
            "by_grpc",
            r#"{"added": 12345678901234567890}"#,
            None,
        )
        .await
        .expect("patch");
    let want = clients[0].get("shared", "by_grpc").await.expect("get");
    for (feed, c) in events.iter_mut().zip(&clients) {
        let e = feed.next_change().await.expect("event");
        assert_eq!(
            (&e["op"], &e["id"], &e["version"]),
            (&json!("put"), &json!("by_grpc"), &want["version"]),
            "{}",
            c.name()
        );
        assert_eq!(e["data"], want["data"], "{}: event data", c.name());
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_answers_resume_token_expired_for_trimmed_history() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        count: 2,
        age: Duration::from_secs(3600),
        ..Default::default()
    };
    let mut cluster = start_with_retention(dir.path(), 3, retention).await;
    let mut clients = Client::all(&cluster.http_addr, &cluster.grpc_addr).await;
    let mut feed = clients[0].watch("t", None).await.expect("watch");
    let token = feed.next().await.expect("checkpoint")["token"]
        .as_str()
        .unwrap()
        .to_string();
    drop(feed);
    // 64 shards keep 2 (+1 slack) entries each: 640 writes trim every shard's early history.
    cluster.bulk_puts("t", 640).await;
    for c in &mut clients {
        let outcome = match c.watch("t", Some(&token)).await {
            Err(code) => Err(code),
            Ok(mut feed) => feed.next_change().await,
        };
        assert_eq!(
            outcome,
            Err("resume_token_expired".to_string()),
            "{}",
            c.name()
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_deadlines_and_unreachable_nodes_give_the_same_codes() {
    let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Each protocol gets a fresh gateway, so its first call meets a node it never reached.
    for which in 0..4 {
        let gateway = gateway_to_nowhere(&blackhole).await;
        let (http, grpc) = (
            gateway.http_addr().to_string(),
            gateway.grpc_addr().to_string(),
        );
        let mut client = Client::all(&http, &grpc).await.swap_remove(which);
        let deadline_set = match &mut client {
            Client::Rest(c) => {
                c.deadline_ms = Some(1000);
                true
            }
            Client::Graphql(c) => {
                c.deadline_ms = Some(1000);
                true
            }
            Client::Grpc(c) => {
                c.deadline = Some(Duration::from_millis(1000));
                true
            }
            // WebSocket requests have no deadline of their own: they get the default 10 s.
            Client::Ws(_) => false,
        };
        if deadline_set {
            // The first call either runs out of time dialling, or finds the node already
            // marked down by the gateway's heartbeat (a miss within 600 ms of the start).
            let outcome = client.get("c", "x").await;
            assert!(
                outcome == Err("deadline_exceeded".into()) || outcome == Err("unavailable".into()),
                "{}: {outcome:?}",
                client.name()
            );
        } else {
            // Learn that the node is unreachable first, as the other clients did.
            let mut rest = Client::all(&http, &grpc).await.swap_remove(0);
            if let Client::Rest(c) = &mut rest {
                c.deadline_ms = Some(300);
            }
            let _ = rest.get("c", "x").await;
        }
        // Once the gateway has given up on the node it answers unavailable without waiting.
        // Whether a given call finds it re-dialling (and runs out of time instead) depends on
        // its backoff, so retry until unavailable shows, accepting only those two codes.
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let outcome = client.get("c", "x").await;
            if outcome == Err("unavailable".into()) {
                break;
            }
            assert_eq!(
                outcome,
                Err("deadline_exceeded".into()),
                "{}",
                client.name()
            );
            assert!(
                std::time::Instant::now() < give_up,
                "{}: never unavailable",
                client.name()
            );
        }
        gateway.shutdown().await;
    }
}
