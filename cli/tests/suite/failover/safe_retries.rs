//! Safe retries and fast failover (issue 21), over the wire: writes that carry a session
//! wait for the session's own writes wherever they land; a write whose outcome is unknown is
//! never sent to another DC behind its client's back, and a storage node stopping on
//! SIGTERM answers what is in flight first; idempotency keys make retries safe on every
//! protocol and across DCs; a dead node is known down fast enough that a read in flight to
//! it moves on to the next DC within its deadline. The tests of this binary take turns.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::protocols::Client;
use crate::support::start_with;
use aerolith_cli::dev::DevOptions;
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_loadtest::faults::cluster::ProcCluster;

use crate::support::TURN;

/// Ids of collection `c` in shards the first of two nodes per DC owns.
fn ids_on_first_node(c: &str, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|id| shard_of(c, id, DEFAULT_SHARDS).is_multiple_of(2))
        .take(n)
        .collect()
}

async fn post(http: &reqwest::Client, url: &str) {
    let r = http.post(url).send().await.expect("admin call");
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

/// A PUT through REST: status, session header and body.
async fn put(
    http: &reqwest::Client,
    url: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut req = http.put(url).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("PUT sent");
    let status = r.status().as_u16();
    let session = r
        .headers()
        .get("x-aerolith-session")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, session, r.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    crate::support::http::get_with(http, url, headers).await
}

/// Issue 21, item 1: a PATCH, an `If-Match` PUT and a DELETE carrying a session, sent
/// through a DC whose owner of the document died before shipping the session's write,
/// fail over to the other DC and there wait for the write instead of acting on an older
/// state: `deadline_exceeded` (never a 404 for the session's own document); once the write
/// has arrived they succeed. On all four protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_a_session_wait_for_the_sessions_writes_on_every_protocol() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let (dc1, admin1) = (
        format!("http://{}", e[0].http),
        format!("http://{}", e[0].admin),
    );
    let http = reqwest::Client::new();
    post(&http, &format!("{admin1}/admin/peers/dc2/pause")).await;

    let mut clients = Client::all(&e[0].http, &e[0].grpc).await;
    let ids = ids_on_first_node("s", "x", clients.len());
    let mut sessions = Vec::new();
    for id in &ids {
        let url = format!("{dc1}/v1/collections/s/docs/{id}");
        let (status, session, _) = put(&http, &url, json!({"a": 1}), &[]).await;
        assert_eq!(status, 201);
        sessions.push(session.expect("a session token"));
    }
    // dc1's owner of those documents dies before dc1 shipped them, and dc1's gateway knows
    // it: a read of one goes to dc2, which does not have it.
    c.cluster.as_mut().unwrap().stop_node(0, 0).await.unwrap();
    let probe = format!("{dc1}/v1/collections/s/docs/{}", ids[0]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&http, &probe, &[]).await.0 != 404 {
        assert!(
            Instant::now() < deadline,
            "dc1's gateway never failed the node over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for ((client, id), session) in clients.iter_mut().zip(&ids).zip(&sessions) {
        let name = client.name();
        client.set_session(Some(session));
        client.set_deadline_ms(2_000);
        let patched = client.patch("s", id, r#"{"b": 2}"#, None).await;
        assert_eq!(patched, Err("deadline_exceeded".into()), "{name} PATCH");
        if matches!(client, Client::Ws(_)) {
            // WebSocket requests have no deadline of their own (10 s each): one is enough.
            continue;
        }
        let version = "dc1@1:1";
        let put = client
            .put("s", Some(id), r#"{"c": 3}"#, Some(version), false)
            .await;
        assert_eq!(put, Err("deadline_exceeded".into()), "{name} If-Match PUT");
        let deleted = client.delete("s", id, None).await;
        assert_eq!(deleted, Err("deadline_exceeded".into()), "{name} DELETE");
    }
    // Once the node is back and the writes reached dc2, the session's writes go through.
    c.cluster
        .as_mut()
        .unwrap()
        .restart_node(0, 0)
        .await
        .unwrap();
    post(&http, &format!("{admin1}/admin/peers/dc2/resume")).await;
    for (client, id) in clients.iter_mut().zip(&ids) {
        let name = client.name();
        client.set_deadline_ms(20_000);
        let patched = client.patch("s", id, r#"{"b": 2}"#, None).await;
        let data = patched.unwrap_or_else(|e| panic!("{name} PATCH after: {e}"))["data"].clone();
        assert_eq!(data, json!(r#"{"a":1,"b":2}"#), "{name}");
    }
    c.stop().await;
}

/// Issue 21, item 3: a retry with the same `Idempotency-Key` answers what the first
/// request answered and writes nothing again (a create under a generated id included); the
/// same key with another request is `invalid_argument`; a retry through the other DC, once
/// the write has arrived there, is answered the same way. On all four protocols, and for
/// bulk requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_make_retries_safe_on_every_protocol_and_across_dcs() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let (dc1, dc2) = (
        format!("http://{}", e[0].http),
        format!("http://{}", e[1].http),
    );
    let http = reqwest::Client::new();
    let mut here = Client::all(&e[0].http, &e[0].grpc).await;
    let mut there = Client::all(&e[1].http, &e[1].grpc).await;
    for (n, (client, other)) in here.iter_mut().zip(there.iter_mut()).enumerate() {
        let name = client.name();
        let coll = format!("k{n}");
        // A create under a generated id, sent twice: one document, one answer.
        client.set_idempotency_key(Some("create-1"));
        let first = client
            .put(&coll, None, r#"{"v": 1}"#, None, false)
            .await
            .unwrap();
        let again = client
            .put(&coll, None, r#"{"v": 1}"#, None, false)
            .await
            .unwrap();
        assert_eq!(
            first, again,
            "{name}: a retried create answers the first create"
        );
        let (_, page) = get(&http, &format!("{dc1}/v1/collections/{coll}/docs"), &[]).await;
        assert_eq!(
            page["documents"].as_array().map(Vec::len),
            Some(1),
            "{name}: {page}"
        );
        // The same key with another request.
        let other_body = client.put(&coll, None, r#"{"v": 2}"#, None, false).await;
        assert_eq!(other_body, Err("invalid_argument".into()), "{name}");

        // A replace sent twice: the version moves once.
        client.set_idempotency_key(Some("replace-1"));
        let first = client
            .put(&coll, Some("d"), r#"{"v": 3}"#, None, false)
            .await
            .unwrap();
        let again = client
            .put(&coll, Some("d"), r#"{"v": 3}"#, None, false)
            .await
            .unwrap();
        assert_eq!(first, again, "{name}");
        client.set_idempotency_key(None);
        let now = client.get(&coll, "d").await.unwrap();
        assert_eq!(now["version"], first["version"], "{name}: written once");

        // A patch and a delete sent twice.
        client.set_idempotency_key(Some("patch-1"));
        let first = client.patch(&coll, "d", r#"{"w": 1}"#, None).await.unwrap();
        let again = client.patch(&coll, "d", r#"{"w": 1}"#, None).await.unwrap();
        assert_eq!(first, again, "{name}");
        client.set_idempotency_key(Some("delete-1"));
        assert_eq!(
            client.delete(&coll, "d", None).await,
            Ok(Value::Null),
            "{name}"
        );
        assert_eq!(
            client.delete(&coll, "d", None).await,
            Ok(Value::Null),
            "{name}: no 404"
        );

        // Across DCs: once the write has reached dc2, a retry there answers the same.
        client.set_idempotency_key(Some("cross-1"));
        let first = client
            .put(&coll, Some("e"), r#"{"v": 4}"#, None, false)
            .await
            .unwrap();
        let url = format!("{dc2}/v1/collections/{coll}/docs/e");
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&http, &url, &[]).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "{name}: the write never reached dc2"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        other.set_idempotency_key(Some("cross-1"));
        let retried = other
            .put(&coll, Some("e"), r#"{"v": 4}"#, None, false)
            .await
            .unwrap();
        assert_eq!(
            retried["version"], first["version"],
            "{name}: {retried} vs {first}"
        );
        let (_, now) = get(&http, &url, &[]).await;
        assert_eq!(
            now["version"], first["version"],
            "{name}: dc2 wrote nothing"
        );
    }

    // Bulk: each op is a write of its own under the request's key.
    let bulk = json!({"ops": [
        {"op": "put", "data": {"n": 1}},
        {"op": "put", "id": "b1", "data": {"n": 2}},
        {"op": "delete", "id": "b1"},
    ]});
    let send = async |body: &Value| {
        let r = http
            .post(format!("{dc1}/v1/collections/bulk/bulk"))
            .header("idempotency-key", "bulk-1")
            .json(body)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let (s1, first) = send(&bulk).await;
    let (s2, again) = send(&bulk).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first, again, "a retried bulk answers the first");
    assert_eq!(first["results"][2]["status"], 204, "{first}");
    let (_, page) = get(&http, &format!("{dc1}/v1/collections/bulk/docs"), &[]).await;
    assert_eq!(
        page["documents"].as_array().map(Vec::len),
        Some(1),
        "{page}"
    );
    c.stop().await;
}

/// Polls the gateway's `/metrics` until `n` RPCs of `op` are in flight.
async fn in_flight(http: &reqwest::Client, gateway: &str, op: &str, n: u64) {
    let line = format!("aerolith_rpc_in_flight{{op=\"{op}\"}} {n}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = http
            .get(format!("{gateway}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} {op} in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A two-DC cluster of processes (two nodes a DC), collection `t`, dc2's shipping to dc1
/// paused, and a session token of a dc2 write in the shard of `x`: a request through dc1
/// carrying it waits at dc1's owner of `x`, in flight.
async fn held_in_flight(
    dir: &std::path::Path,
    http: &reqwest::Client,
    x: &str,
) -> (ProcCluster, String) {
    let cluster = ProcCluster::start(dir, env!("CARGO_BIN_EXE_aerolith").as_ref(), 2, 2)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let created = put(
            http,
            &format!("{}/v1/collections/t", cluster.http[0]),
            json!({}),
            &[],
        )
        .await
        .0;
        let there = get(http, &format!("{}/v1/collections/t", cluster.http[1]), &[])
            .await
            .0;
        if matches!(created, 200 | 201) && there == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster never served collection t"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post(http, &format!("{}/admin/peers/dc1/pause", cluster.admin[1])).await;
    let shard = shard_of("t", x, DEFAULT_SHARDS);
    let y = (0..)
        .map(|i| format!("y{i}"))
        .find(|y| shard_of("t", y, DEFAULT_SHARDS) == shard)
        .unwrap();
    let url = format!("{}/v1/collections/t/docs/{y}", cluster.http[1]);
    let (status, session, _) = put(http, &url, json!({"from": "dc2"}), &[]).await;
    assert_eq!(status, 201);
    (cluster, session.expect("a session token"))
}

/// Sends, in the background, a request (a PUT of `{"v": 1}`, or a GET) carrying `session`
/// with a deadline of `ms`: it waits at the node for the session, in flight.
fn send_held(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    session: &str,
    ms: u64,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let mut req = http
        .request(method.clone(), url)
        .header("x-aerolith-session", session)
        .header("x-aerolith-timeout-ms", ms.to_string());
    if method == reqwest::Method::PUT {
        req = req.json(&json!({"v": 1}));
    }
    tokio::spawn(async move {
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

/// Issue 21, items 2 and 4: a write in flight to a storage node that is SIGKILLed answers
/// `unavailable` saying its outcome is unknown, and is not sent to the other DC; a read in
/// flight to it moves on to the other DC as soon as the node is known down (a heartbeat
/// miss, well within its 3 s deadline, long before the connection's idle timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_to_a_killed_node_is_not_retried_elsewhere_and_a_read_moves_on() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let x = ids_on_first_node("t", "x", 1).remove(0);
    let (mut cluster, session) = held_in_flight(dir.path(), &http, &x).await;
    let dc1 = cluster.http[0].clone();
    let url = format!("{dc1}/v1/collections/t/docs/{x}");
    let write = send_held(&http, reqwest::Method::PUT, &url, &session, 8000);
    in_flight(&http, &dc1, "put", 1).await;
    let read = send_held(&http, reqwest::Method::GET, &url, &session, 3000);
    in_flight(&http, &dc1, "get", 1).await;
    let owner = cluster.owner_of(0, shard_of("t", &x, DEFAULT_SHARDS));
    cluster.kill(owner);

    let (status, body) = write.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("outcome of the write is unknown"),
        "{message}"
    );
    let there = format!("{}/v1/collections/t/docs/{x}", cluster.http[1]);
    assert_eq!(
        get(&http, &there, &[]).await.0,
        404,
        "the write was sent to dc2"
    );
    // The read was served by dc2, which holds what the session saw there.
    let (status, body) = read.await.unwrap();
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

/// Issue 21, item 2: a storage node stopping on SIGTERM answers the write in flight to it
/// (here: `deadline_exceeded`, the write having waited for its session in vain, so nothing
/// was written) instead of dropping it, and the gateway does not send it to the other DC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopping_on_sigterm_answers_the_write_in_flight() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let x = ids_on_first_node("t", "x", 1).remove(0);
    let (mut cluster, session) = held_in_flight(dir.path(), &http, &x).await;
    let dc1 = cluster.http[0].clone();
    let url = format!("{dc1}/v1/collections/t/docs/{x}");
    let write = send_held(&http, reqwest::Method::PUT, &url, &session, 3000);
    in_flight(&http, &dc1, "put", 1).await;
    let owner = cluster.owner_of(0, shard_of("t", &x, DEFAULT_SHARDS));
    cluster
        .terminate(owner, Duration::from_secs(20))
        .await
        .unwrap();
    let (status, body) = write.await.unwrap();
    assert_eq!(
        (status, &body["error"]["code"]),
        (504, &json!("deadline_exceeded")),
        "{body}"
    );
    let there = format!("{}/v1/collections/t/docs/{x}", cluster.http[1]);
    assert_eq!(
        get(&http, &there, &[]).await.0,
        404,
        "the write was sent to dc2"
    );
    // The node comes back as it was.
    cluster.launch(owner).await.unwrap();
    assert!(cluster.procs[owner].running());
}

/// The gateway's count of nodes it marked down so far.
async fn failovers(http: &reqwest::Client, gateway: &str) -> u64 {
    crate::support::metrics(http, gateway)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("aerolith_failovers_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A keyed write whose deadline ends while it is in flight to a node that hangs (SIGSTOP)
/// leaves the key pinned to that node: its retry is refused while the node is known down,
/// never sent to the other DC (where it could apply a second time), and once the node is
/// back and caught up it answers the retry itself. (The gateway pins a keyed write before
/// sending it, so also a request dropped by its deadline mid-call leaves the pin.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_write_cut_short_in_flight_is_retried_only_where_it_went() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let x = ids_on_first_node("t", "x", 1).remove(0);
    let (mut cluster, session) = held_in_flight(dir.path(), &http, &x).await;
    let dc1 = cluster.http[0].clone();
    let url = format!("{dc1}/v1/collections/t/docs/{x}");
    let before = failovers(&http, &dc1).await;

    // Held at dc1's owner (waiting for the session), which then hangs: the request's
    // deadline ends while the write is in flight, before any heartbeat misses the node.
    let first = {
        let req = http
            .put(&url)
            .json(&json!({"v": 1}))
            .header("x-aerolith-session", &session)
            .header("idempotency-key", "k-cut-short")
            .header("x-aerolith-timeout-ms", "400");
        tokio::spawn(async move { req.send().await.expect("PUT sent").status().as_u16() })
    };
    in_flight(&http, &dc1, "put", 1).await;
    let owner = cluster.owner_of(0, shard_of("t", &x, DEFAULT_SHARDS));
    cluster.freeze(owner).unwrap();
    assert_eq!(first.await.unwrap(), 504);

    // Once dc1's gateway knows the node down, the retry is refused, not sent to dc2.
    let deadline = Instant::now() + Duration::from_secs(30);
    while failovers(&http, &dc1).await <= before {
        assert!(Instant::now() < deadline, "the node was never marked down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = [("idempotency-key", "k-cut-short")];
    let (status, _, body) = put(&http, &url, json!({"v": 1}), &key).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("an earlier attempt"), "{message}");
    let there = format!("{}/v1/collections/t/docs/{x}", cluster.http[1]);
    assert_eq!(get(&http, &there, &[]).await.0, 404, "sent to dc2");

    // Back and caught up with dc2 (the link was paused), the node answers the retry.
    cluster.thaw(owner).unwrap();
    post(
        &http,
        &format!("{}/admin/peers/dc1/resume", cluster.admin[1]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, body) = put(&http, &url, json!({"v": 1}), &key).await;
        if status == 201 {
            assert_eq!(body["data"], json!({"v": 1}));
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "the retry never went through: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
