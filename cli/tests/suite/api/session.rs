//! Session consistency, write concern `all` and `POST /admin/failover` in a two-DC dev
//! cluster. Shipping from dc1 to dc2 is paused to hold dc2 behind: a session read there
//! must wait (and run out of time) rather than answer with state older than the session's
//! writes, and an `all` write cannot be confirmed until shipping resumes or dc2 is marked
//! down.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::Channel;

use crate::support::TestCluster;
use aerolith_proto::v1 as api;
use api::documents_client::DocumentsClient;

const SESSION: &str = "x-aerolith-session";

struct Dcs {
    dc1: String,
    dc2: String,
    admin1: String,
    grpc2: String,
    ws1: String,
}

/// A request to `url` with headers; status, the session header and the JSON body.
async fn call(
    c: &TestCluster,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut req = c.http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let session = resp
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, session, body)
}

async fn admin(c: &TestCluster, url: String, body: Value) -> (u16, Value) {
    let r = c.http.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn pause(c: &TestCluster, d: &Dcs, on: bool) {
    let verb = if on { "pause" } else { "resume" };
    let (code, body) = admin(c, format!("{}/admin/peers/dc2/{verb}", d.admin1), json!({})).await;
    assert_eq!(code, 200, "{verb}: {body}");
}

/// Retries `attempt` until it returns true; fails after 30 s.
async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !attempt().await {
        assert!(Instant::now() < deadline, "{what} did not happen in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_write_concern_and_dc_failover() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, dc2) = crate::support::start_two_dcs(dir.path()).await;
    let eps = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let d = Dcs {
        dc1,
        dc2,
        admin1: format!("http://{}", eps[0].admin),
        grpc2: eps[1].grpc.clone(),
        ws1: format!("ws://{}/v1/ws", eps[0].http),
    };
    session_reads(&c, &d).await;
    bad_inputs(&c, &d).await;
    write_concern_all(&c, &d).await;
    dc_failover(&c, &d).await;
    c.stop().await;
}

/// Read-your-writes and monotonic reads across DCs, over REST, GraphQL, gRPC and WebSocket.
async fn session_reads(c: &TestCluster, d: &Dcs) {
    let doc = |base: &str, id: &str| format!("{base}/v1/collections/sess/docs/{id}");
    let (code, s1, _) = call(
        c,
        reqwest::Method::PUT,
        &doc(&d.dc1, "x"),
        Some(json!({"v": 1})),
        &[],
    )
    .await;
    assert_eq!(code, 201);
    let s1 = s1.expect("a write answers with a session token");
    // The first version reaches dc2 by replication: a session read there waits for it.
    let (code, _, body) = call(
        c,
        reqwest::Method::GET,
        &doc(&d.dc2, "x"),
        None,
        &[(SESSION, &s1)],
    )
    .await;
    assert_eq!((code, &body["data"]), (200, &json!({"v": 1})), "{body}");

    pause(c, d, true).await;
    let (code, s2, _) = call(
        c,
        reqwest::Method::PUT,
        &doc(&d.dc1, "x"),
        Some(json!({"v": 2})),
        &[(SESSION, &s1)],
    )
    .await;
    assert_eq!(code, 200);
    let s2 = s2.unwrap();
    // Without a session dc2 answers what it has; with one it waits, then runs out of time.
    let (_, plain, body) = call(c, reqwest::Method::GET, &doc(&d.dc2, "x"), None, &[]).await;
    assert_eq!(body["data"], json!({"v": 1}));
    assert!(plain.is_some(), "every answer carries a session token");
    let (code, back, body) = call(
        c,
        reqwest::Method::GET,
        &doc(&d.dc2, "x"),
        None,
        &[(SESSION, &s2), ("x-aerolith-timeout-ms", "400")],
    )
    .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (504, &json!("deadline_exceeded"))
    );
    assert_eq!(
        back.as_deref(),
        Some(s2.as_str()),
        "a failed read keeps the token"
    );
    // A query with the token waits the same way.
    let (code, _, _) = call(
        c,
        reqwest::Method::POST,
        &format!("{}/v1/collections/sess/query", d.dc2),
        Some(json!({"filter": {}})),
        &[(SESSION, &s2), ("x-aerolith-timeout-ms", "400")],
    )
    .await;
    assert_eq!(code, 504);

    // gRPC takes the same token as metadata and answers with one.
    let channel = Channel::from_shared(format!("http://{}", d.grpc2))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = DocumentsClient::new(channel);
    let mut req = tonic::Request::new(api::GetDocumentRequest {
        collection: "sess".into(),
        id: "x".into(),
    });
    req.metadata_mut().insert(SESSION, s2.parse().unwrap());
    req.set_timeout(Duration::from_millis(400));
    let status = grpc.get_document(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // GraphQL: the same header both ways; the wait runs out as a coded GraphQL error.
    let (code, back, body) = call(
        c,
        reqwest::Method::POST,
        &format!("{}/graphql", d.dc2),
        Some(json!({"query": "{ document(collection: \"sess\", id: \"x\") { version } }"})),
        &[(SESSION, &s2), ("x-aerolith-timeout-ms", "400")],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "deadline_exceeded",
        "{body}"
    );
    assert_eq!(back.as_deref(), Some(s2.as_str()));

    pause(c, d, false).await;
    let mut req = tonic::Request::new(api::GetDocumentRequest {
        collection: "sess".into(),
        id: "x".into(),
    });
    req.metadata_mut().insert(SESSION, s2.parse().unwrap());
    let resp = grpc.get_document(req).await.unwrap();
    let s3 = resp
        .metadata()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("gRPC answers carry the session");
    let got: Value = serde_json::from_str(&resp.into_inner().data_json).unwrap();
    assert_eq!(got, json!({"v": 2}));

    // WebSocket: `session` on the request, and on the result.
    let (mut ws, _) = connect_async(d.ws1.as_str()).await.unwrap();
    let frame = json!({"type": "put", "req": "r1", "collection": "sess", "id": "w",
                       "data": {"v": 1}, "session": s3});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let reply = loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(reply["type"], "result", "{reply}");
    let s4 = reply["session"]
        .as_str()
        .expect("results carry the session");
    assert_ne!(s4, s3, "the write is added to the session");
    let (code, _, body) = call(
        c,
        reqwest::Method::GET,
        &doc(&d.dc2, "w"),
        None,
        &[(SESSION, s4)],
    )
    .await;
    assert_eq!((code, &body["data"]), (200, &json!({"v": 1})));
}

async fn bad_inputs(c: &TestCluster, d: &Dcs) {
    let url = format!("{}/v1/collections/sess/docs/x", d.dc1);
    for (header, value) in [
        (SESSION, "not-a-token"),
        ("x-aerolith-write-concern", "majority"),
    ] {
        let (code, session, body) =
            call(c, reqwest::Method::GET, &url, None, &[(header, value)]).await;
        assert_eq!(
            (code, &body["error"]["code"]),
            (400, &json!("invalid_argument")),
            "{header}: {value}"
        );
        assert!(session.is_some(), "errors carry a session token too");
    }
    let failover = format!("{}/admin/failover", d.admin1);
    let (code, _) = admin(c, failover.clone(), json!({"dc": "dc9", "state": "down"})).await;
    assert_eq!(code, 404);
    let (code, _) = admin(
        c,
        failover.clone(),
        json!({"dc": "dc2", "state": "sideways"}),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = admin(c, failover, json!({"dc": "dc2"})).await;
    assert_eq!(code, 400);
}

async fn put_all(c: &TestCluster, d: &Dcs, id: &str, timeout_ms: &str) -> u16 {
    call(
        c,
        reqwest::Method::PUT,
        &format!("{}/v1/collections/wc/docs/{id}", d.dc1),
        Some(json!({"id": id})),
        &[
            ("x-aerolith-write-concern", "all"),
            ("x-aerolith-timeout-ms", timeout_ms),
        ],
    )
    .await
    .0
}

/// `all` is acknowledged only once dc2 has applied the write; when it cannot be in time
/// the answer is `deadline_exceeded` and the write still stands.
async fn write_concern_all(c: &TestCluster, d: &Dcs) {
    assert_eq!(put_all(c, d, "a", "10000").await, 201);
    // Acknowledged means applied in dc2: a read there without a session sees it at once.
    let (code, _, _) = call(
        c,
        reqwest::Method::GET,
        &format!("{}/v1/collections/wc/docs/a", d.dc2),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200);

    pause(c, d, true).await;
    assert_eq!(put_all(c, d, "b", "500").await, 504);
    let (code, _, _) = call(
        c,
        reqwest::Method::GET,
        &format!("{}/v1/collections/wc/docs/b", d.dc1),
        None,
        &[],
    )
    .await;
    assert_eq!(code, 200, "the write stands");
    pause(c, d, false).await;
}

/// A DC marked down is skipped by every gateway: `all` no longer waits for it, and the
/// gateway of a DC marked down serves from the other one; marked up, both return.
async fn dc_failover(c: &TestCluster, d: &Dcs) {
    let failover = format!("{}/admin/failover", d.admin1);
    pause(c, d, true).await;
    let (code, body) = admin(c, failover.clone(), json!({"dc": "dc2", "state": "down"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "down");
    let mut n = 0;
    eventually("an `all` write without dc2", || {
        n += 1;
        let id = format!("c{n}");
        async move { put_all(c, d, &id, "300").await == 201 }
    })
    .await;
    let (_, _, view) = call(
        c,
        reqwest::Method::GET,
        &format!("{}/v1/cluster", d.dc1),
        None,
        &[],
    )
    .await;
    assert_eq!(view["dcs"][1]["state"], "down", "{view}");
    let (code, _) = admin(c, failover.clone(), json!({"dc": "dc2", "state": "up"})).await;
    assert_eq!(code, 200);
    eventually("`all` waiting for dc2 again", || {
        n += 1;
        let id = format!("c{n}");
        async move { put_all(c, d, &id, "300").await == 504 }
    })
    .await;
    pause(c, d, false).await;

    // dc1 marked down: dc1's gateway writes through dc2's nodes.
    let (code, _) = admin(c, failover.clone(), json!({"dc": "dc1", "state": "down"})).await;
    assert_eq!(code, 200);
    let version_of = |n: usize| async move {
        let (code, _, body) = call(
            c,
            reqwest::Method::PUT,
            &format!("{}/v1/collections/fo/docs/d{n}", d.dc1),
            Some(json!({"n": n})),
            &[],
        )
        .await;
        assert_eq!(code, 201, "{body}");
        body["version"].as_str().unwrap_or_default().to_string()
    };
    let mut n = 0;
    eventually("dc1's gateway writing through dc2", || {
        n += 1;
        let v = version_of(n);
        async move { v.await.starts_with("dc2@") }
    })
    .await;
    let (code, _) = admin(c, failover, json!({"dc": "dc1", "state": "up"})).await;
    assert_eq!(code, 200);
    eventually("dc1's gateway writing through dc1 again", || {
        n += 1;
        let v = version_of(n);
        async move { v.await.starts_with("dc1@") }
    })
    .await;
}
