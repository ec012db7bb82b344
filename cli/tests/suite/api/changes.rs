//! The polled change feed, `GET /v1/collections/{c}/changes`, over the wire against a
//! three-node cluster: completeness and per-document order, resuming from any event's token,
//! expired and foreign tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestCluster, start, start_with_retention};
use aerolith_gateway::ops::Positions;
use aerolith_storagenode::Retention;

/// Polls from `since` until a poll returns nothing; returns the changes and the last token.
async fn drain(
    c: &TestCluster,
    collection: &str,
    since: Option<&str>,
    limit: u32,
) -> (Vec<Value>, String) {
    let mut out = Vec::new();
    let mut token = since.map(str::to_string);
    loop {
        let path = match &token {
            Some(t) => format!("/v1/collections/{collection}/changes?limit={limit}&since={t}"),
            None => format!("/v1/collections/{collection}/changes?limit={limit}"),
        };
        let r = c.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let changes = r.body["changes"].as_array().cloned().unwrap_or_default();
        assert!(changes.len() <= limit as usize);
        let next = r.body["next"].as_str().expect("next token").to_string();
        if changes.is_empty() {
            return (out, next);
        }
        out.extend(changes);
        token = Some(next);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_appears_once_in_per_document_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    // Versions each document went through, in write order.
    let mut history: HashMap<String, Vec<(String, &'static str)>> = HashMap::new();
    for round in 0..3 {
        for i in 0..40 {
            let id = format!("d{i:02}");
            let path = format!("/v1/collections/feed/docs/{id}");
            let r = match (round, i % 4) {
                (1, 0) => c.delete(&path, &[]).await,
                (2, 1) => {
                    c.patch(
                        &path,
                        "application/merge-patch+json",
                        &json!({"p": round}),
                        &[],
                    )
                    .await
                }
                _ => {
                    c.put_json(&path, &json!({"i": i, "round": round}), &[])
                        .await
                }
            };
            assert!(r.status.is_success(), "{}", r.body);
            let version = r.header("etag").map(|e| e.trim_matches('"').to_string());
            let op = if r.status == 204 { "delete" } else { "put" };
            // A delete answers no ETag: the feed's version is the tombstone's.
            history
                .entry(id)
                .or_default()
                .push((version.unwrap_or_default(), op));
        }
    }
    // Another collection's writes stay out of this feed.
    c.put_json("/v1/collections/other/docs/x", &json!({}), &[])
        .await;

    let (changes, _) = drain(&c, "feed", None, 7).await;
    let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for ch in &changes {
        assert_eq!(ch["collection"], "feed");
        let op = ch["op"].as_str().unwrap();
        if op == "delete" {
            assert!(ch["data"].is_null(), "{ch}");
        } else {
            assert!(ch["data"].is_object(), "{ch}");
        }
        assert!(ch["token"].is_string() && ch["updated_at"].is_string());
        assert_eq!(ch["origin"], "dc1");
        seen.entry(ch["id"].as_str().unwrap().to_string())
            .or_default()
            .push((ch["version"].as_str().unwrap().to_string(), op.to_string()));
    }
    assert_eq!(seen.len(), history.len());
    for (id, writes) in &history {
        let got = &seen[id];
        assert_eq!(got.len(), writes.len(), "{id}: {got:?}");
        for ((gv, gop), (wv, wop)) in got.iter().zip(writes) {
            assert_eq!(gop, wop, "{id}");
            if !wv.is_empty() {
                assert_eq!(gv, wv, "{id}");
            }
        }
    }
    // A patch arrives as a put with the full new data.
    let patched = changes
        .iter()
        .rev()
        .find(|ch| ch["id"] == "d01")
        .expect("d01 changed");
    assert_eq!(patched["op"], "put");
    assert_eq!(patched["data"], json!({"i": 1, "round": 1, "p": 2}));

    // Any event's token resumes right after that event: the rest of the feed, each document's
    // changes still in order (the order across documents may differ with the page size).
    let key = |v: &Value| format!("{} {}", v["id"], v["version"]);
    for k in [0, 1, 17, changes.len() - 2] {
        let token = changes[k]["token"].as_str().unwrap();
        let (rest, _) = drain(&c, "feed", Some(token), 50).await;
        let mut want: Vec<String> = changes[k + 1..].iter().map(key).collect();
        let mut got: Vec<String> = rest.iter().map(key).collect();
        for id in history.keys() {
            let of = |v: &Vec<String>| -> Vec<String> {
                v.iter()
                    .filter(|k| k.starts_with(&format!("\"{id}\" ")))
                    .cloned()
                    .collect()
            };
            assert_eq!(
                of(&got),
                of(&want),
                "order of {id} resuming after event {k}"
            );
        }
        want.sort();
        got.sort();
        assert_eq!(got, want, "resuming after event {k}");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_token_sees_only_later_changes_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    for i in 0..10 {
        c.put_json(
            &format!("/v1/collections/f/docs/a{i}"),
            &json!({"i": i}),
            &[],
        )
        .await;
    }
    let (first, token) = drain(&c, "f", None, 100).await;
    assert_eq!(first.len(), 10);
    c.stop().await;

    let mut c = start(dir.path(), 3).await;
    for i in 0..5 {
        c.put_json(
            &format!("/v1/collections/f/docs/b{i}"),
            &json!({"i": i}),
            &[],
        )
        .await;
    }
    let (later, _) = drain(&c, "f", Some(&token), 3).await;
    let mut ids: Vec<&str> = later.iter().map(|ch| ch["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["b0", "b1", "b2", "b3", "b4"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_history_answers_resume_token_expired() {
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
    let (_, token) = drain(&c, "t", None, 10).await;
    // 64 shards keep 2 (+1 slack) entries each: 640 writes trim every shard's early history.
    c.bulk_puts("t", 640).await;
    let r = c
        .get(&format!("/v1/collections/t/changes?since={token}"))
        .await;
    r.assert_error(410, "resume_token_expired");
    // Without a token the feed starts at what is retained.
    let (kept, _) = drain(&c, "t", None, 1000).await;
    assert!(!kept.is_empty() && kept.len() < 640, "{}", kept.len());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_the_retention_age_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with_retention(
        dir.path(),
        1,
        Retention {
            count: 1000,
            age: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    let (_, token) = drain(&c, "aged", None, 10).await;
    c.put_json("/v1/collections/aged/docs/x", &json!({}), &[])
        .await;
    // The trimmer runs every second; wait for it to pass the write's age.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .get(&format!("/v1/collections/aged/changes?since={token}"))
            .await;
        if r.status == 410 {
            r.assert_error(410, "resume_token_expired");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(Instant::now() < deadline, "the change was never trimmed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_limits_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    let foreign = Positions::oldest(64).encode("dc2");
    let r = c
        .get(&format!("/v1/collections/x/changes?since={foreign}"))
        .await;
    r.assert_error(400, "invalid_argument");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("dc2"));
    for q in [
        "since=garbage",
        "since=t1.AAAA",
        "limit=0",
        "limit=1001",
        "limit=x",
    ] {
        c.get(&format!("/v1/collections/x/changes?{q}"))
            .await
            .assert_error(400, "invalid_argument");
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_collection_history_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 3).await;
    c.put_json("/v1/collections/re/docs/old", &json!({"v": 1}), &[])
        .await;
    assert_eq!(c.delete("/v1/collections/re", &[]).await.status, 204);
    c.put_json("/v1/collections/re/docs/new", &json!({"v": 2}), &[])
        .await;
    let (changes, _) = drain(&c, "re", None, 100).await;
    let ids: Vec<&str> = changes
        .iter()
        .map(|ch| ch["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_documents_are_paged_within_the_frame_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), 1).await;
    // 80 changes of ~600 KiB: 48 MiB, more than one internal frame may carry.
    let pad = "y".repeat(600 * 1024);
    for i in 0..80 {
        let r = c
            .put_json(
                &format!("/v1/collections/big/docs/b{i}"),
                &json!({"pad": pad}),
                &[],
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let (changes, _) = drain(&c, "big", None, 1000).await;
    assert_eq!(changes.len(), 80);
    c.stop().await;
}
