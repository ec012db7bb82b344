//! The WebSocket endpoint, `GET /v1/ws`, over the wire against a three-node cluster:
//! subscriptions that survive a reconnect with every write in per-document order, filters,
//! expired and foreign tokens, checkpoints on quiet feeds, tokens shared with the polled
//! REST feed, request ops, and the answers to bad or oversized frames.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::support::{Reply, TestCluster, start, start_with_retention};
use aerolith_common::version::{Causality, VersionVector};
use aerolith_gateway::ops::Positions;
use aerolith_storagenode::Retention;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a frame that is due may take to arrive.
const FRAME_WAIT: Duration = Duration::from_secs(10);

fn ws_url(c: &TestCluster) -> String {
    format!("{}/v1/ws", c.base.replacen("http://", "ws://", 1))
}

async fn connect_url(url: &str) -> Ws {
    let (ws, resp) = connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 101, "upgrade answer");
    ws
}

async fn connect(c: &TestCluster) -> Ws {
    connect_url(&ws_url(c)).await
}

/// Sends one JSON text frame.
async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .unwrap_or_else(|e| panic!("sending {frame}: {e}"));
}

/// The next data or close message within `within`, skipping WebSocket-level pings and
/// pongs; `None` when `within` runs out.
async fn next_message(ws: &mut Ws, within: Duration) -> Option<Message> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) => panic!("the connection ended without a close frame"),
            Ok(Some(Err(e))) => panic!("websocket error: {e}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(m))) => return Some(m),
        }
    }
}

/// The next frame as JSON; panics on a timeout, a close, a binary frame or text that is
/// not JSON.
async fn recv(ws: &mut Ws, within: Duration) -> Value {
    match next_message(ws, within).await {
        None => panic!("no frame within {within:?}"),
        Some(Message::Text(t)) => serde_json::from_str(t.as_str())
            .unwrap_or_else(|e| panic!("a text frame that is not JSON ({e}): {t}")),
        Some(other) => panic!("expected a JSON text frame, got {other:?}"),
    }
}

/// The next frame other than a checkpoint; asserts that it is `what`.
async fn expect_frame(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let f = recv(ws, FRAME_WAIT).await;
        if f["type"] == "checkpoint" {
            continue;
        }
        assert!(pred(&f), "expected {what}, got frame {f}");
        return f;
    }
}

/// Reads frames until `done` holds for all the frames read so far (checked after each
/// one); returns them. Panics at the deadline, listing the frames read.
async fn collect_until(
    ws: &mut Ws,
    within: Duration,
    what: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_message(ws, left).await {
            None => panic!(
                "waited {within:?} for {what}; {} frames seen, the last ones: {:#?}",
                frames.len(),
                &frames[frames.len().saturating_sub(20)..]
            ),
            Some(Message::Text(t)) => {
                let f: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("a text frame that is not JSON ({e}): {t}"));
                frames.push(f);
                if done(&frames) {
                    return frames;
                }
            }
            Some(other) => panic!(
                "waiting for {what}: got {other:?} after frames {:#?}",
                &frames[frames.len().saturating_sub(20)..]
            ),
        }
    }
}

/// Reads frames until one matches `pred`; returns all the frames read, that one last.
async fn wait_for(
    ws: &mut Ws,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    collect_until(ws, within, what, |fs| pred(fs.last().unwrap())).await
}

/// Subscribes and waits for `subscribed`; returns its token.
async fn subscribe(
    ws: &mut Ws,
    sub: &str,
    collection: &str,
    filter: Option<Value>,
    since: Option<&str>,
) -> String {
    let mut frame = json!({"type": "subscribe", "sub": sub, "collection": collection});
    if let Some(f) = filter {
        frame["filter"] = f;
    }
    if let Some(t) = since {
        frame["since"] = json!(t);
    }
    send(ws, frame).await;
    let f = expect_frame(ws, &format!("subscribed for {sub}"), |f| {
        f["type"] == "subscribed" && f["sub"] == sub
    })
    .await;
    f["token"]
        .as_str()
        .unwrap_or_else(|| panic!("subscribed without a token: {f}"))
        .to_string()
}

/// Asserts an `error` frame for `key` (`sub` or `req`) `id` with `code` and a message.
fn assert_error_frame(f: &Value, key: &str, id: Option<&str>, code: &str) {
    assert_eq!(f["type"], "error", "{f}");
    if let Some(id) = id {
        assert_eq!(f[key], id, "{key} of {f}");
    }
    assert_eq!(f["error"]["code"], code, "code of {f}");
    assert!(f["error"]["message"].is_string(), "message of {f}");
}

/// Asserts the event fields of a `change` frame.
fn assert_change_shape(f: &Value, sub: &str, collection: &str) {
    assert_eq!(f["type"], "change", "{f}");
    assert_eq!(f["sub"], sub, "{f}");
    assert_eq!(f["collection"], collection, "{f}");
    assert!(f["id"].is_string(), "{f}");
    assert!(
        VersionVector::parse(f["version"].as_str().unwrap_or("")).is_ok(),
        "version of {f}"
    );
    assert!(f["updated_at"].is_string(), "{f}");
    assert_eq!(f["origin"], "dc1", "{f}");
    assert!(f["token"].is_string(), "{f}");
    match f["op"].as_str() {
        Some("put") => assert!(f["data"].is_object(), "{f}"),
        Some("delete") => assert!(f["data"].is_null(), "{f}"),
        _ => panic!("op of {f}"),
    }
}

fn is_change(f: &Value, sub: &str, id: &str) -> bool {
    f["type"] == "change" && f["sub"] == sub && f["id"] == id
}

fn etag(r: &Reply) -> String {
    r.header("etag")
        .unwrap_or_else(|| panic!("no ETag: {} {}", r.status, r.body))
        .trim_matches('"')
        .to_string()
}

fn vv(version: &str) -> VersionVector {
    VersionVector::parse(version).unwrap_or_else(|e| panic!("version {version:?}: {e}"))
}

/// Polls the REST feed from `since` until a poll returns nothing.
async fn rest_drain(
    c: &TestCluster,
    collection: &str,
    since: Option<&str>,
) -> (Vec<Value>, String) {
    let mut out = Vec::new();
    let mut token = since.map(str::to_string);
    loop {
        let path = match &token {
            Some(t) => format!("/v1/collections/{collection}/changes?limit=1000&since={t}"),
            None => format!("/v1/collections/{collection}/changes?limit=1000"),
        };
        let r = c.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let changes = r.body["changes"].as_array().cloned().unwrap_or_default();
        let next = r.body["next"].as_str().expect("next token").to_string();
        if changes.is_empty() {
            return (out, next);
        }
        out.extend(changes);
        token = Some(next);
    }
}

// ---------------------------------------------------------------------------------------
// 1. Every write, across a reconnect, in per-document order.

const FEED: &str = "wsfeed";
const WRITERS: u64 = 4;
const BULKS_PER_WRITER: u64 = 25;
const OPS_PER_BULK: u64 = 100;
const IDS: u64 = 500;
/// The subscriber drops its first connection after this many change frames.
const SWITCH_AFTER: usize = 5000;

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One acknowledged write: the id and the new version (`None` for a delete, which answers
/// no version).
type Write = (String, Option<String>);

/// Writes `BULKS_PER_WRITER` bulk requests of puts, merge patches and deletes over `IDS`
/// ids; returns the writes that took effect (a patch or delete of a missing document is
/// a 404 and changes nothing).
async fn writer(http: reqwest::Client, base: String, w: u64) -> Vec<Write> {
    let mut done = Vec::new();
    for b in 0..BULKS_PER_WRITER {
        let mut ops = Vec::new();
        for j in 0..OPS_PER_BULK {
            let k = b * OPS_PER_BULK + j;
            let r = mix((w << 32) | k);
            let id = format!("d{:03}", r % IDS);
            ops.push(match (r >> 32) % 10 {
                0..=6 => json!({"op": "put", "id": id, "data": {"w": w, "k": k}}),
                7 | 8 => json!({"op": "patch", "id": id, "patch": {"p": k}}),
                _ => json!({"op": "delete", "id": id}),
            });
        }
        let resp = http
            .post(format!("{base}/v1/collections/{FEED}/bulk"))
            .json(&json!({ "ops": ops }))
            .send()
            .await
            .expect("bulk sent");
        assert_eq!(resp.status(), 200, "bulk of writer {w}");
        let body: Value = resp.json().await.expect("bulk answer");
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), ops.len(), "{body}");
        for (op, res) in ops.iter().zip(results) {
            let id = op["id"].as_str().unwrap().to_string();
            assert_eq!(res["id"], id.as_str(), "{res}");
            let version = || Some(res["version"].as_str().expect("version").to_string());
            match (op["op"].as_str().unwrap(), res["status"].as_u64()) {
                ("put", Some(200 | 201)) | ("patch", Some(200)) => done.push((id, version())),
                ("delete", Some(204)) => done.push((id, None)),
                ("patch" | "delete", Some(404)) => {}
                _ => panic!("{op} answered {res}"),
            }
        }
    }
    done
}

/// Subscribes to `FEED`; forwards every change frame with its connection number; after
/// `switch_after` changes drops the first connection and resubscribes with the last token
/// it saw (also after a slow-consumer error, as API.md allows).
async fn subscriber(
    url: String,
    switch_after: usize,
    tx: mpsc::UnboundedSender<(usize, Value)>,
    ready: oneshot::Sender<()>,
) -> Result<(), String> {
    let mut ready = Some(ready);
    let mut since: Option<String> = None;
    let mut conn = 0;
    loop {
        conn += 1;
        let mut ws = connect_url(&url).await;
        let mut frame = json!({"type": "subscribe", "sub": "s1", "collection": FEED});
        if let Some(t) = &since {
            frame["since"] = json!(t);
        }
        send(&mut ws, frame).await;
        let f = recv(&mut ws, FRAME_WAIT).await;
        if f["type"] != "subscribed" || f["sub"] != "s1" || !f["token"].is_string() {
            return Err(format!("connection {conn}: expected subscribed, got {f}"));
        }
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        let mut count = 0;
        loop {
            let m = match ws.next().await {
                Some(Ok(m)) => m,
                other => return Err(format!("connection {conn} ended: {other:?}")),
            };
            let f: Value = match m {
                Message::Text(t) => serde_json::from_str(t.as_str())
                    .map_err(|e| format!("connection {conn}: not JSON ({e}): {t}"))?,
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return Err(format!("connection {conn}: unexpected {other:?}")),
            };
            match f["type"].as_str() {
                Some("change") => {
                    let token = f["token"]
                        .as_str()
                        .ok_or_else(|| format!("connection {conn}: change without token: {f}"))?;
                    since = Some(token.to_string());
                    count += 1;
                    if tx.send((conn, f)).is_err() {
                        return Ok(());
                    }
                    if conn == 1 && count >= switch_after {
                        break;
                    }
                }
                Some("checkpoint") if f["sub"] == "s1" && f["token"].is_string() => {
                    since = Some(f["token"].as_str().unwrap().to_string());
                }
                Some("error") if f["error"]["code"] == "rate_limited" => {
                    eprintln!("connection {conn}: slow consumer after {count} changes: {f}");
                    break;
                }
                _ => return Err(format!("connection {conn}: unexpected frame {f}")),
            }
        }
        // Dropped without a close handshake, as a client that loses its network would.
        drop(ws);
    }
}

struct Event {
    conn: usize,
    id: String,
    version: String,
    op: String,
    data: Value,
}

/// What the writers did, and what the subscriber has yet to show.
struct Expected {
    successes: usize,
    puts: HashSet<(String, String)>,
    deletes: HashMap<String, usize>,
    missing_puts: HashSet<(String, String)>,
    missing_deletes: HashMap<String, usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resubscriber_sees_every_write_in_per_document_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut sub = tokio::spawn(subscriber(ws_url(&c), SWITCH_AFTER, tx, ready_tx));
    tokio::time::timeout(FRAME_WAIT, ready_rx)
        .await
        .expect("subscribed in time")
        .expect("subscriber ready");

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(c.http.clone(), c.base.clone(), w)))
        .collect();
    let mut writers = Box::pin(futures::future::join_all(writers));

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut events: Vec<Event> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut deletes_seen: HashMap<String, HashSet<String>> = HashMap::new();
    let mut expected: Option<Expected> = None;
    loop {
        if let Some(e) = &expected
            && e.missing_puts.is_empty()
            && e.missing_deletes.is_empty()
        {
            break;
        }
        tokio::select! {
            done = &mut writers, if expected.is_none() => {
                let mut e = Expected {
                    successes: 0,
                    puts: HashSet::new(),
                    deletes: HashMap::new(),
                    missing_puts: HashSet::new(),
                    missing_deletes: HashMap::new(),
                };
                for (id, version) in done.into_iter().flat_map(|r| r.expect("writer")) {
                    e.successes += 1;
                    match version {
                        Some(v) => {
                            assert!(e.puts.insert((id, v.clone())), "version {v} twice");
                        }
                        None => *e.deletes.entry(id).or_default() += 1,
                    }
                }
                assert!(e.successes >= 8000, "only {} writes took effect", e.successes);
                e.missing_puts = e.puts.difference(&seen).cloned().collect();
                for (id, n) in &e.deletes {
                    let have = deletes_seen.get(id).map_or(0, |s| s.len());
                    if have < *n {
                        e.missing_deletes.insert(id.clone(), n - have);
                    }
                }
                expected = Some(e);
            }
            ev = rx.recv() => {
                let Some((conn, f)) = ev else {
                    let r = (&mut sub).await;
                    panic!("the subscriber stopped: {r:?}");
                };
                assert_change_shape(&f, "s1", FEED);
                let id = f["id"].as_str().unwrap().to_string();
                let version = f["version"].as_str().unwrap().to_string();
                let op = f["op"].as_str().unwrap().to_string();
                let new = seen.insert((id.clone(), version.clone()));
                if new && op == "delete" {
                    deletes_seen.entry(id.clone()).or_default().insert(version.clone());
                }
                if let Some(e) = &mut expected && new {
                    if op == "delete" {
                        if let Some(n) = e.missing_deletes.get_mut(&id) {
                            *n -= 1;
                            if *n == 0 {
                                e.missing_deletes.remove(&id);
                            }
                        }
                    } else {
                        e.missing_puts.remove(&(id.clone(), version.clone()));
                    }
                }
                events.push(Event { conn, id, version, op, data: f["data"].clone() });
            }
            _ = tokio::time::sleep_until(deadline) => {
                let per_conn = events.iter().fold(HashMap::new(), |mut m: HashMap<usize, usize>, e| {
                    *m.entry(e.conn).or_default() += 1;
                    m
                });
                match &expected {
                    None => panic!(
                        "the writers did not finish in 120 s; change frames per connection: {per_conn:?}"
                    ),
                    Some(e) => panic!(
                        "after 120 s: {} of {} acknowledged puts/patches never arrived (e.g. {:?}); \
                         deletes missing for {} ids (e.g. {:?}); change frames per connection: {per_conn:?}",
                        e.missing_puts.len(),
                        e.puts.len(),
                        e.missing_puts.iter().take(5).collect::<Vec<_>>(),
                        e.missing_deletes.len(),
                        e.missing_deletes.iter().take(5).collect::<Vec<_>>(),
                    ),
                }
            }
        }
    }
    sub.abort();
    let e = expected.unwrap();

    // The union holds each acknowledged write exactly once (duplicates aside) and nothing else.
    for (id, version) in &seen {
        let ev = events
            .iter()
            .find(|ev| &ev.id == id && &ev.version == version)
            .unwrap();
        if ev.op == "put" {
            assert!(
                e.puts.contains(&(id.clone(), version.clone())),
                "a put event {id} {version} that no write made"
            );
        }
    }
    for (id, n) in &e.deletes {
        assert_eq!(
            deletes_seen.get(id).map_or(0, |s| s.len()),
            *n,
            "delete events of {id}"
        );
    }
    assert_eq!(seen.len(), e.successes, "distinct (id, version) events");

    // The subscriber really read across a reconnect.
    let first = events.iter().filter(|ev| ev.conn == 1).count();
    let later = events.len() - first;
    assert!(
        first >= SWITCH_AFTER,
        "{first} events on the first connection"
    );
    assert!(
        later > 0,
        "no event after the reconnect ({first} before it)"
    );
    eprintln!(
        "{} writes; {first} change frames before the reconnect, {later} after; {} duplicates",
        e.successes,
        events.len() - seen.len()
    );

    // Per-document order on every connection: each version descends from the one before.
    let mut last: HashMap<(usize, &str), &Event> = HashMap::new();
    for ev in &events {
        if let Some(prev) = last.get(&(ev.conn, ev.id.as_str())) {
            let rel = vv(&ev.version).compare(&vv(&prev.version));
            assert!(
                matches!(rel, Causality::Dominates | Causality::Equal),
                "connection {}: {} arrived as {} {} after {} {} ({rel:?})",
                ev.conn,
                ev.id,
                ev.op,
                ev.version,
                prev.op,
                prev.version
            );
        }
        last.insert((ev.conn, ev.id.as_str()), ev);
    }

    // The latest event of each document is its final state, as REST reads it.
    let mut latest: HashMap<&str, &Event> = HashMap::new();
    for ev in &events {
        let newer = match latest.get(ev.id.as_str()) {
            None => true,
            Some(p) => vv(&ev.version).compare(&vv(&p.version)) == Causality::Dominates,
        };
        if newer {
            latest.insert(ev.id.as_str(), ev);
        }
    }
    let mut live: HashMap<String, Value> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(k) => format!("/v1/collections/{FEED}/docs?limit=1000&cursor={k}"),
            None => format!("/v1/collections/{FEED}/docs?limit=1000"),
        };
        let r = c.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for d in r.body["documents"].as_array().unwrap() {
            live.insert(d["id"].as_str().unwrap().to_string(), d.clone());
        }
        match r.body["next_cursor"].as_str() {
            Some(k) => cursor = Some(k.to_string()),
            None => break,
        }
    }
    for (id, d) in &live {
        let ev = latest
            .get(id.as_str())
            .unwrap_or_else(|| panic!("no event for live document {id}"));
        assert_eq!(ev.op, "put", "latest event of live document {id}");
        assert_eq!(ev.version, d["version"].as_str().unwrap(), "{id}");
        assert_eq!(ev.data, d["data"], "{id}");
    }
    for (id, ev) in &latest {
        if !live.contains_key(*id) {
            assert_eq!(ev.op, "delete", "latest event of deleted document {id}");
            let r = c.get(&format!("/v1/collections/{FEED}/docs/{id}")).await;
            r.assert_error(404, "not_found");
        }
    }
    c.stop().await;
}

// ---------------------------------------------------------------------------------------
// 2. Filters.

/// One write through REST; returns the new version (`None` for a delete).
async fn rest_write(c: &TestCluster, collection: &str, id: &str, write: &Value) -> Option<String> {
    let path = format!("/v1/collections/{collection}/docs/{id}");
    let r = match write.get("merge") {
        Some(p) => c.patch(&path, "application/merge-patch+json", p, &[]).await,
        None if write.is_null() => c.delete(&path, &[]).await,
        None => c.put_json(&path, write, &[]).await,
    };
    assert!(
        r.status.is_success(),
        "{id} {write}: {} {}",
        r.status,
        r.body
    );
    (r.status != 204).then(|| etag(&r))
}

/// An expected change: op, version if known, data for puts.
type WantedChange<'a> = (&'a str, Option<String>, Option<Value>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_subscription_sees_matching_puts_and_every_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut ws = connect(&c).await;
    subscribe(&mut ws, "fa", "kinds", Some(json!({"kind": "a"})), None).await;
    subscribe(&mut ws, "all", "kinds", None, None).await;

    // Per document: writes (a body to put, {"merge": patch}, or null to delete) and whether
    // the filtered subscription must see each.
    let plan: Vec<(&str, Vec<(Value, bool)>)> = vec![
        (
            "f1",
            vec![
                (json!({"kind": "a", "n": 1}), true),
                (json!({"merge": {"kind": "b"}}), false),
                (Value::Null, true),
            ],
        ),
        (
            "f2",
            vec![
                (json!({"kind": "b", "n": 2}), false),
                (json!({"merge": {"kind": "a"}}), true),
            ],
        ),
        (
            "f3",
            vec![
                (json!({"kind": "b"}), false),
                (json!({"kind": "b", "x": 1}), false),
                (Value::Null, true),
            ],
        ),
        (
            "f4",
            vec![
                (json!({"kind": "a"}), true),
                (json!({"kind": "c"}), false),
                (json!({"kind": "a", "m": 1}), true),
            ],
        ),
        (
            "f5",
            vec![(json!({"other": "a"}), false), (json!({"kind": "a"}), true)],
        ),
    ];
    // (id, op, version if known, data for puts)
    let mut want_fa: HashMap<&str, Vec<WantedChange>> = HashMap::new();
    let mut writes = 0;
    for (id, steps) in &plan {
        let mut data = json!({});
        for (w, matches) in steps {
            let version = rest_write(&c, "kinds", id, w).await;
            writes += 1;
            let op = if w.is_null() { "delete" } else { "put" };
            match w.get("merge") {
                Some(p) => {
                    for (k, v) in p.as_object().unwrap() {
                        data[k] = v.clone();
                    }
                }
                None => data = w.clone(),
            }
            if *matches {
                want_fa.entry(id).or_default().push((
                    op,
                    version,
                    (op == "put").then(|| data.clone()),
                ));
            }
        }
    }

    // Per-document order means that once each document's last expected event is in, any
    // earlier event that should have been filtered out would have shown up already.
    let frames = collect_until(
        &mut ws,
        Duration::from_secs(30),
        "every write on `all` and the last expected event of each document on `fa`",
        |fs| {
            let all = fs
                .iter()
                .filter(|f| f["type"] == "change" && f["sub"] == "all")
                .count();
            all >= writes
                && want_fa.iter().all(|(id, want)| {
                    let (op, version, _) = want.last().unwrap();
                    fs.iter().any(|f| {
                        is_change(f, "fa", id)
                            && f["op"] == *op
                            && version.as_ref().is_none_or(|v| f["version"] == v.as_str())
                    })
                })
        },
    )
    .await;

    let mut got_fa: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut got_all: HashSet<(String, String)> = HashSet::new();
    for f in &frames {
        match f["type"].as_str() {
            Some("checkpoint") => continue,
            Some("change") => {}
            _ => panic!("unexpected frame {f}"),
        }
        let sub = f["sub"].as_str().unwrap_or("");
        assert!(sub == "fa" || sub == "all", "{f}");
        assert_change_shape(f, sub, "kinds");
        if sub == "all" {
            got_all.insert((f["id"].to_string(), f["version"].to_string()));
            continue;
        }
        let (id, _) = plan
            .iter()
            .find(|(id, _)| f["id"] == *id)
            .unwrap_or_else(|| panic!("unknown id in {f}"));
        let list = got_fa.entry(id).or_default();
        // At-least-once: an immediate repeat is a duplicate, not a new event.
        if list.last().is_none_or(|l| l["version"] != f["version"]) {
            list.push(f);
        }
    }
    assert_eq!(got_all.len(), writes, "the unfiltered subscription");
    for (id, want) in &want_fa {
        let got = got_fa.get(id).cloned().unwrap_or_default();
        let shown: Vec<String> = got.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{id} on `fa`: got {shown:#?}, want {want:?}"
        );
        for (f, (op, version, data)) in got.iter().zip(want) {
            assert_eq!(f["op"], *op, "{id}: {f}");
            if let Some(v) = version {
                assert_eq!(f["version"], v.as_str(), "{id}: {f}");
            }
            if let Some(d) = data {
                // A patch arrives with the full new data.
                assert_eq!(&f["data"], d, "{id}: {f}");
            }
        }
    }
    c.stop().await;
}

// ---------------------------------------------------------------------------------------
// 3. Expired and bad tokens.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_resume_token_is_an_error_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with_retention(
        dir.path(),
        3,
        Retention {
            count: 2,
            age: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .await;
    let (_, token) = rest_drain(&c, "t", None).await;
    // 64 shards keep 2 (+1 slack) entries each: 640 writes trim every shard's early history.
    c.bulk_puts("t", 640).await;
    // The polled feed agrees that the token has expired.
    c.get(&format!("/v1/collections/t/changes?since={token}"))
        .await
        .assert_error(410, "resume_token_expired");

    let mut ws = connect(&c).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "sub": "old", "collection": "t", "since": token}),
    )
    .await;
    // The subscribe is answered by the error (API.md does not say whether a `subscribed` may
    // come first; one is tolerated), and no change is delivered for it.
    let frames = wait_for(&mut ws, FRAME_WAIT, "an error for `old`", |f| {
        f["type"] == "error"
    })
    .await;
    assert_error_frame(
        frames.last().unwrap(),
        "sub",
        Some("old"),
        "resume_token_expired",
    );
    for f in &frames[..frames.len() - 1] {
        assert!(
            f["type"] == "checkpoint" || f["type"] == "subscribed",
            "frame before the error: {f}"
        );
    }
    // Tokens of another DC and garbage are invalid_argument.
    let foreign = Positions::oldest(64).encode("dc2");
    for (sub, since) in [("foreign", foreign.as_str()), ("garbage", "garbage")] {
        send(
            &mut ws,
            json!({"type": "subscribe", "sub": sub, "collection": "t", "since": since}),
        )
        .await;
        let f = expect_frame(&mut ws, &format!("an error for `{sub}`"), |f| {
            f["type"] == "error"
        })
        .await;
        assert_error_frame(&f, "sub", Some(sub), "invalid_argument");
    }

    // The connection still works: a fresh subscription delivers.
    subscribe(&mut ws, "fresh", "t", None, None).await;
    c.put_json("/v1/collections/t/docs/after", &json!({"x": 1}), &[])
        .await;
    let frames = wait_for(&mut ws, FRAME_WAIT, "the change of `after`", |f| {
        is_change(f, "fresh", "after")
    })
    .await;
    for f in &frames {
        assert_ne!(f["sub"], "old", "a frame for the expired subscription: {f}");
        assert_ne!(f["type"], "error", "{f}");
    }
    let f = frames.last().unwrap();
    assert_change_shape(f, "fresh", "t");
    assert_eq!(f["data"], json!({"x": 1}));
    c.stop().await;
}

// ---------------------------------------------------------------------------------------
// 4. Bad frames.

/// A bad frame to send: what it is, the frame, and the `sub`/`req` its error names.
type BadFrame<'a> = (&'a str, Message, Option<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_invalid_argument_while_subscriptions_keep_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut ws = connect(&c).await;
    subscribe(&mut ws, "s1", "live", None, None).await;

    let bad: Vec<BadFrame> = vec![
        (
            "malformed JSON",
            Message::text(r#"{"type":"subscribe","sub":"#),
            None,
        ),
        ("a binary frame", Message::binary(vec![0u8, 1, 2, 3]), None),
        ("JSON that is not an object", Message::text("[1,2]"), None),
        (
            "an unknown type",
            Message::text(r#"{"type":"frobnicate","req":"r1"}"#),
            None,
        ),
        (
            "a sub id already in use",
            Message::text(r#"{"type":"subscribe","sub":"s1","collection":"live"}"#),
            None,
        ),
        (
            "a subscription to a bad collection name",
            Message::text(r#"{"type":"subscribe","sub":"s9","collection":"no such!"}"#),
            Some(("sub", "s9")),
        ),
        (
            "a get without an id",
            Message::text(r#"{"type":"get","req":"r2","collection":"live"}"#),
            None,
        ),
    ];
    for (i, (what, msg, key)) in bad.into_iter().enumerate() {
        ws.send(msg)
            .await
            .unwrap_or_else(|e| panic!("sending {what}: {e}"));
        let f = expect_frame(&mut ws, &format!("an error frame for {what}"), |f| {
            f["type"] == "error"
        })
        .await;
        match key {
            Some((k, id)) => assert_error_frame(&f, k, Some(id), "invalid_argument"),
            None => assert_error_frame(&f, "", None, "invalid_argument"),
        }
        if what == "a sub id already in use" {
            assert!(
                f.get("sub").is_none_or(|s| s == "s1"),
                "error for a duplicate sub: {f}"
            );
        }
        // The existing subscription still delivers.
        let id = format!("x{i}");
        c.put_json(
            &format!("/v1/collections/live/docs/{id}"),
            &json!({"i": i}),
            &[],
        )
        .await;
        let f = expect_frame(&mut ws, &format!("the change of {id} after {what}"), |f| {
            is_change(f, "s1", &id)
        })
        .await;
        assert_change_shape(&f, "s1", "live");
        assert_eq!(f["data"], json!({"i": i}));
    }

    // The refused duplicate did not add a second subscription: each write arrives once.
    c.put_json("/v1/collections/live/docs/y1", &json!({}), &[])
        .await;
    c.put_json("/v1/collections/live/docs/y2", &json!({}), &[])
        .await;
    let frames = collect_until(&mut ws, FRAME_WAIT, "the changes of y1 and y2", |fs| {
        ["y1", "y2"]
            .iter()
            .all(|id| fs.iter().any(|f| is_change(f, "s1", id)))
    })
    .await;
    for f in &frames {
        assert!(
            f["type"] == "checkpoint" || is_change(f, "s1", "y1") || is_change(f, "s1", "y2"),
            "unexpected frame {f}"
        );
    }

    // Unsubscribing stops delivery; a control subscription shows the write went out.
    subscribe(&mut ws, "s2", "live", None, None).await;
    send(&mut ws, json!({"type": "unsubscribe", "sub": "s1"})).await;
    for id in ["z1", "z2"] {
        c.put_json(&format!("/v1/collections/live/docs/{id}"), &json!({}), &[])
            .await;
        let frames = wait_for(&mut ws, FRAME_WAIT, &format!("{id} on s2"), |f| {
            is_change(f, "s2", id)
        })
        .await;
        for f in &frames {
            assert_ne!(f["sub"], "s1", "a frame for s1 after unsubscribe: {f}");
            assert_ne!(f["type"], "error", "{f}");
        }
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_connection_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut ws = connect(&c).await;
    send(&mut ws, json!({"type": "ping"})).await;
    expect_frame(&mut ws, "pong", |f| f["type"] == "pong").await;

    // 2 MiB of valid JSON, over the 1 MiB + 64 KiB frame limit.
    let big = "a".repeat(2 << 20);
    let frame = json!({"type": "put", "req": "big", "collection": "c", "id": "big",
                       "data": {"s": big}});
    let sent = ws.send(Message::text(frame.to_string())).await;
    let deadline = Instant::now() + FRAME_WAIT;
    let mut frames = Vec::new();
    let close = loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!(
                "no close within {FRAME_WAIT:?} after a 2 MiB frame (send: {sent:?}); frames: {frames:?}"
            ),
            Ok(Some(Ok(Message::Close(cf)))) => break cf,
            Ok(Some(Ok(m))) => frames.push(format!("{m:?}")),
            Ok(other) => panic!(
                "the connection ended without a close frame: {other:?} (send: {sent:?}); frames: {frames:?}"
            ),
        }
    };
    let cf = close.unwrap_or_else(|| panic!("a close frame without a code; frames: {frames:?}"));
    assert_eq!(
        u16::from(cf.code),
        1009,
        "close {cf:?} (send: {sent:?}); frames before it: {frames:?}"
    );
    assert_eq!(cf.code, CloseCode::Size);
    // The oversized put was not applied.
    c.get("/v1/collections/c/docs/big")
        .await
        .assert_error(404, "not_found");
    c.stop().await;
}

// ---------------------------------------------------------------------------------------
// 5. Ping and request ops.

fn is_result(f: &Value, req: &str) -> bool {
    f["type"] == "result" && f["req"] == req
}

fn is_error_for(f: &Value, req: &str) -> bool {
    f["type"] == "error" && f["req"] == req
}

/// Sends a request frame and returns the `result` or `error` frame answering it.
async fn request(ws: &mut Ws, frame: Value) -> Value {
    let req = frame["req"].as_str().unwrap().to_string();
    send(ws, frame.clone()).await;
    expect_frame(ws, &format!("the answer to {frame}"), |f| {
        is_result(f, &req) || is_error_for(f, &req)
    })
    .await
}

fn assert_result(f: &Value, status: u16) {
    assert_eq!(f["type"], "result", "{f}");
    assert_eq!(f["status"], status, "status of {f}");
    if let Some(s) = f.get("session") {
        assert!(s.is_string(), "session of {f}");
    }
}

fn assert_document(f: &Value, collection: &str, id: &str, data: &Value) -> String {
    let d = &f["document"];
    assert_eq!(d["collection"], collection, "{f}");
    assert_eq!(d["id"], id, "{f}");
    assert_eq!(&d["data"], data, "{f}");
    assert!(d["updated_at"].is_string(), "{f}");
    assert_eq!(d["origin"], "dc1", "{f}");
    let v = d["version"]
        .as_str()
        .unwrap_or_else(|| panic!("version in {f}"));
    vv(v);
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_request_ops_answer_like_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let mut ws = connect(&c).await;

    send(&mut ws, json!({"type": "ping"})).await;
    expect_frame(&mut ws, "pong", |f| f["type"] == "pong").await;

    let f = request(
        &mut ws,
        json!({"type": "put", "req": "r1", "collection": "reqs", "id": "d1", "data": {"a": 1}}),
    )
    .await;
    assert_result(&f, 201);
    let v1 = assert_document(&f, "reqs", "d1", &json!({"a": 1}));

    let f = request(
        &mut ws,
        json!({"type": "put", "req": "r2", "collection": "reqs", "id": "d1", "data": {"a": 2}}),
    )
    .await;
    assert_result(&f, 200);
    let v2 = assert_document(&f, "reqs", "d1", &json!({"a": 2}));
    assert_eq!(vv(&v2).compare(&vv(&v1)), Causality::Dominates);

    let f = request(
        &mut ws,
        json!({"type": "get", "req": "r3", "collection": "reqs", "id": "d1"}),
    )
    .await;
    assert_result(&f, 200);
    assert_eq!(assert_document(&f, "reqs", "d1", &json!({"a": 2})), v2);
    // The same document through REST.
    let r = c.get("/v1/collections/reqs/docs/d1").await;
    assert_eq!(r.status, 200);
    assert_eq!(etag(&r), v2);
    assert_eq!(r.body, f["document"]);

    // Preconditions.
    let f = request(
        &mut ws,
        json!({"type": "put", "req": "r4", "collection": "reqs", "id": "d1",
               "data": {"a": 3}, "if_match": v1}),
    )
    .await;
    assert_error_frame(&f, "req", Some("r4"), "precondition_failed");
    let f = request(
        &mut ws,
        json!({"type": "put", "req": "r5", "collection": "reqs", "id": "d2",
               "data": {"a": 5}, "if_none_match": "*"}),
    )
    .await;
    assert_result(&f, 201);
    let f = request(
        &mut ws,
        json!({"type": "put", "req": "r6", "collection": "reqs", "id": "d2",
               "data": {"a": 6}, "if_none_match": "*"}),
    )
    .await;
    assert_error_frame(&f, "req", Some("r6"), "already_exists");
    // Without an id a put creates, so if_match cannot hold: refused as on gRPC and GraphQL.
    let f = request(
        &mut ws,
        json!({"type": "put", "req": "r6b", "collection": "reqs", "data": {"a": 7}, "if_match": v2}),
    )
    .await;
    assert_error_frame(&f, "req", Some("r6b"), "invalid_argument");

    // A patch (a JSON object is a merge patch) answers the full new document.
    let f = request(
        &mut ws,
        json!({"type": "patch", "req": "r7", "collection": "reqs", "id": "d1",
               "patch": {"b": true}, "if_match": v2}),
    )
    .await;
    assert_result(&f, 200);
    assert_document(&f, "reqs", "d1", &json!({"a": 2, "b": true}));

    // A query answers a page.
    let f = request(
        &mut ws,
        json!({"type": "query", "req": "r8", "collection": "reqs", "filter": {"a": 2}}),
    )
    .await;
    assert_result(&f, 200);
    let docs = f["page"]["documents"]
        .as_array()
        .unwrap_or_else(|| panic!("page in {f}"));
    assert_eq!(docs.len(), 1, "{f}");
    assert_eq!(docs[0]["id"], "d1");
    assert_eq!(docs[0]["data"], json!({"a": 2, "b": true}));
    assert!(f["page"]["next_cursor"].is_null(), "{f}");
    let f = request(
        &mut ws,
        json!({"type": "query", "req": "r9", "collection": "reqs",
               "sort": [{"field": "a", "order": "desc"}], "limit": 1, "projection": ["a"]}),
    )
    .await;
    assert_result(&f, 200);
    assert_eq!(f["page"]["documents"][0]["id"], "d2", "{f}");
    assert_eq!(f["page"]["documents"][0]["data"], json!({"a": 5}), "{f}");
    assert!(f["page"]["next_cursor"].is_string(), "{f}");
    let f = request(
        &mut ws,
        json!({"type": "query", "req": "r10", "collection": "reqs", "filter": {"a": {"$bogus": 1}}}),
    )
    .await;
    assert_error_frame(&f, "req", Some("r10"), "invalid_argument");

    // Collections: created, then unchanged.
    let f = request(
        &mut ws,
        json!({"type": "create_collection", "req": "r11", "collection": "made",
               "conflict_strategy": "siblings"}),
    )
    .await;
    assert_result(&f, 201);
    let f = request(
        &mut ws,
        json!({"type": "create_collection", "req": "r12", "collection": "made"}),
    )
    .await;
    assert_result(&f, 200);
    let r = c.get("/v1/collections/made").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["conflict_strategy"], "siblings");

    // Deletes, and reads of what is missing.
    let f = request(
        &mut ws,
        json!({"type": "delete", "req": "r13", "collection": "reqs", "id": "d2"}),
    )
    .await;
    assert_result(&f, 204);
    c.get("/v1/collections/reqs/docs/d2")
        .await
        .assert_error(404, "not_found");
    for (req, id) in [("r14", "d2"), ("r15", "never")] {
        let f = request(
            &mut ws,
            json!({"type": "get", "req": req, "collection": "reqs", "id": id}),
        )
        .await;
        assert_error_frame(&f, "req", Some(req), "not_found");
    }
    let f = request(
        &mut ws,
        json!({"type": "delete", "req": "r16", "collection": "reqs", "id": "never"}),
    )
    .await;
    assert_error_frame(&f, "req", Some("r16"), "not_found");

    send(&mut ws, json!({"type": "ping"})).await;
    expect_frame(&mut ws, "pong", |f| f["type"] == "pong").await;
    c.stop().await;
}

// ---------------------------------------------------------------------------------------
// 6. Checkpoints, and tokens shared with REST.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_subscriptions_get_checkpoints_that_resume_without_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    // History before the subscription, which neither the subscription nor a resume from its
    // checkpoint may replay.
    for i in 0..5 {
        rest_write(&c, "quiet", &format!("q{i}"), &json!({"i": i})).await;
    }
    let mut ws = connect(&c).await;
    subscribe(&mut ws, "s1", "quiet", None, None).await;
    let frames = wait_for(&mut ws, FRAME_WAIT, "a checkpoint on s1", |f| {
        f["type"] == "checkpoint"
    })
    .await;
    assert_eq!(frames.len(), 1, "frames before the checkpoint: {frames:#?}");
    let cp = frames.last().unwrap();
    assert_eq!(cp["sub"], "s1", "{cp}");
    let token = cp["token"]
        .as_str()
        .unwrap_or_else(|| panic!("checkpoint without a token: {cp}"))
        .to_string();

    // The polled feed agrees: nothing after the checkpoint.
    let (after, _) = rest_drain(&c, "quiet", Some(&token)).await;
    assert!(
        after.is_empty(),
        "REST changes after the checkpoint: {after:?}"
    );

    // A new connection resuming from it gets no change, only checkpoints.
    let mut ws2 = connect(&c).await;
    subscribe(&mut ws2, "r1", "quiet", None, Some(&token)).await;
    let frames = wait_for(&mut ws2, FRAME_WAIT, "a checkpoint on r1", |f| {
        f["type"] == "checkpoint"
    })
    .await;
    assert_eq!(frames.len(), 1, "frames before the checkpoint: {frames:#?}");
    assert_eq!(frames[0]["sub"], "r1");

    // And the next write reaches both.
    let v = rest_write(&c, "quiet", "q9", &json!({"i": 9}))
        .await
        .unwrap();
    for (ws, sub) in [(&mut ws, "s1"), (&mut ws2, "r1")] {
        let f = expect_frame(ws, &format!("the change of q9 on {sub}"), |f| {
            f["type"] == "change"
        })
        .await;
        assert_change_shape(&f, sub, "quiet");
        assert_eq!(f["id"], "q9", "{f}");
        assert_eq!(f["version"], v.as_str(), "{f}");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_websocket_tokens_are_interchangeable() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    let (_, rest_token) = rest_drain(&c, "mix", None).await;
    let mut written = HashSet::new();
    for i in 0..3 {
        let id = format!("a{i}");
        let v = rest_write(&c, "mix", &id, &json!({"i": i})).await.unwrap();
        written.insert((id, v));
    }

    // A REST token resumes a subscription: exactly the writes after it, then quiet.
    let mut ws = connect(&c).await;
    subscribe(&mut ws, "s1", "mix", None, Some(&rest_token)).await;
    let frames = collect_until(
        &mut ws,
        Duration::from_secs(30),
        "a0..a2 and then a checkpoint",
        |fs| {
            let changes = fs.iter().filter(|f| f["type"] == "change").count();
            changes >= 3 && fs.last().unwrap()["type"] == "checkpoint"
        },
    )
    .await;
    let mut got = HashSet::new();
    let mut last_token = None;
    for f in &frames {
        if f["type"] == "change" {
            assert_change_shape(f, "s1", "mix");
            got.insert((
                f["id"].as_str().unwrap().to_string(),
                f["version"].as_str().unwrap().to_string(),
            ));
            last_token = Some(f["token"].as_str().unwrap().to_string());
        } else {
            assert_eq!(f["type"], "checkpoint", "{f}");
        }
    }
    assert_eq!(got, written, "frames: {frames:#?}");

    // A subscription's change token resumes the polled feed: nothing new yet (duplicates
    // aside), then the next write.
    let last_token = last_token.unwrap();
    let (again, _) = rest_drain(&c, "mix", Some(&last_token)).await;
    for ch in &again {
        let key = (
            ch["id"].as_str().unwrap().to_string(),
            ch["version"].as_str().unwrap().to_string(),
        );
        assert!(written.contains(&key), "REST after the last token: {ch}");
    }
    // The `subscribed` token is the head: REST from it sees only later writes.
    let mut ws2 = connect(&c).await;
    let head = subscribe(&mut ws2, "s2", "mix", None, None).await;
    let v3 = rest_write(&c, "mix", "a3", &json!({"i": 3})).await.unwrap();
    for since in [&last_token, &head] {
        let (later, _) = rest_drain(&c, "mix", Some(since)).await;
        let new: Vec<&Value> = later
            .iter()
            .filter(|ch| {
                !written.contains(&(
                    ch["id"].as_str().unwrap().to_string(),
                    ch["version"].as_str().unwrap().to_string(),
                ))
            })
            .collect();
        assert_eq!(new.len(), 1, "{later:?}");
        assert_eq!(new[0]["id"], "a3");
        assert_eq!(new[0]["version"], v3.as_str());
        if since == &head {
            assert_eq!(later.len(), 1, "REST from the subscribed token: {later:?}");
        }
    }
    let f = expect_frame(&mut ws2, "a3 on s2", |f| f["type"] == "change").await;
    assert_change_shape(&f, "s2", "mix");
    assert_eq!(f["id"], "a3");
    c.stop().await;
}

/// A subscription that has seen no change yet ends too (it did not: its node reads learned
/// the collection's incarnation only from an answer while the collection still existed,
/// and a delete during the first live wait left them following nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_collection_ends_a_quiet_subscription_with_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    c.put_json("/v1/collections/quiet/docs/a", &json!({"x": 1}), &[])
        .await;
    let mut ws = connect(&c).await;
    subscribe(&mut ws, "q", "quiet", None, None).await;
    assert_eq!(c.delete("/v1/collections/quiet", &[]).await.status, 204);
    let frames = wait_for(&mut ws, FRAME_WAIT, "not_found for `q`", |f| {
        f["type"] == "error" && f["sub"] == "q"
    })
    .await;
    assert_error_frame(frames.last().unwrap(), "sub", Some("q"), "not_found");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_collection_ends_its_subscriptions_with_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    assert_eq!(
        c.put_json("/v1/collections/gone", &json!({}), &[])
            .await
            .status,
        201
    );
    let mut ws = connect(&c).await;
    subscribe(&mut ws, "g", "gone", None, None).await;
    subscribe(&mut ws, "other", "stays", None, None).await;
    c.put_json("/v1/collections/gone/docs/a", &json!({"x": 1}), &[])
        .await;
    wait_for(&mut ws, FRAME_WAIT, "the change of `a`", |f| {
        is_change(f, "g", "a")
    })
    .await;
    assert_eq!(c.delete("/v1/collections/gone", &[]).await.status, 204);
    let frames = wait_for(&mut ws, FRAME_WAIT, "not_found for `g`", |f| {
        f["type"] == "error" && f["sub"] == "g"
    })
    .await;
    assert_error_frame(frames.last().unwrap(), "sub", Some("g"), "not_found");
    // The other subscription, and the connection, go on.
    c.put_json("/v1/collections/stays/docs/b", &json!({}), &[])
        .await;
    wait_for(&mut ws, FRAME_WAIT, "the change of `b`", |f| {
        is_change(f, "other", "b")
    })
    .await;
    c.stop().await;
}
