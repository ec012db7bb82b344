//! A session carried by the client across calls: a write through dc1's gateway is read
//! through dc2's, which waits for it while shipping to dc2 is paused (and runs out of the
//! call's deadline), and serves it once shipping resumes.

use std::time::Duration;

use aerolith_client::{AdminClient, CallOptions, Client, ErrorCode, Session};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_its_writes_through_another_dcs_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, dc2) = crate::support::start_two_dcs(dir.path()).await;
    let admin1 = format!(
        "http://{}",
        c.cluster.as_ref().unwrap().endpoints().dcs[0].admin
    );
    let admin = AdminClient::new(&admin1, None, None).unwrap();

    let session = Session::new();
    let writer = Client::builder()
        .endpoint(&dc1)
        .session(session.clone())
        .build()
        .unwrap();
    let reader = Client::new(&dc2).unwrap().with_session(session.clone());
    let stranger = Client::new(&dc2).unwrap();
    let w = writer.collection::<Value>("sess");
    let r = reader.collection::<Value>("sess");

    w.put("x", &json!({"v": 1})).await.unwrap();
    let first = session
        .token()
        .expect("a write answers with a session token");
    assert_eq!(r.get("x").await.unwrap().data, json!({"v": 1}));

    admin
        .post("/admin/peers/dc2/pause", b"{}".to_vec())
        .await
        .unwrap();
    w.put("x", &json!({"v": 2})).await.unwrap();
    assert_ne!(session.token().as_deref(), Some(first.as_str()));
    // Without the session dc2 answers what it has; with it, it waits for v2.
    assert_eq!(
        stranger
            .collection::<Value>("sess")
            .get("x")
            .await
            .unwrap()
            .data,
        json!({"v": 1})
    );
    let short = CallOptions::default().timeout(Duration::from_millis(800));
    let err = r.get_with("x", &short).await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::DeadlineExceeded), "{err}");

    admin
        .post("/admin/peers/dc2/resume", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.get("x").await.unwrap().data, json!({"v": 2}));
    c.stop().await;
}

/// The marks of a session token, read as the gateway reads them.
fn marks(token: &str) -> std::collections::BTreeMap<(u32, String), (u64, u64)> {
    aerolith_gateway::ops::Session::parse(Some(token))
        .expect("the gateway takes the token")
        .marks(|_| true)
        .into_iter()
        .map(|m| ((m.shard, m.dc), (m.epoch, m.seq)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_of_one_session_keep_every_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::start(dir.path(), 2).await;
    let client = Client::new(&c.base).unwrap();
    let ids: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();

    // Alone, each write's session holds exactly its own mark: which shard it went to.
    let mut wanted = std::collections::BTreeMap::new();
    for id in &ids {
        let alone = Session::new();
        client
            .with_session(alone.clone())
            .collection::<Value>("conc")
            .put(id, &json!({"v": 0}))
            .await
            .unwrap();
        wanted.extend(marks(&alone.token().unwrap()));
    }
    assert!(
        wanted.len() >= 2,
        "the writes span several shards: {wanted:?}"
    );

    // Together through one session, at once: the session keeps every shard's mark, each
    // at least as new as before, whichever answer came last.
    let session = Session::new();
    let shared = client.with_session(session.clone());
    let docs = shared.collection::<Value>("conc");
    let v1 = json!({"v": 1});
    let writes = ids.iter().map(|id| docs.put(id, &v1));
    for w in futures::future::join_all(writes).await {
        w.unwrap();
    }
    let held = marks(&session.token().unwrap());
    for (key, point) in &wanted {
        let got = held.get(key);
        assert!(
            got.is_some_and(|g| g > point),
            "shard {key:?}: the session holds {got:?}, a write after {point:?} was answered"
        );
    }
    c.stop().await;
}
