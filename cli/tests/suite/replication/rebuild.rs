//! Rebuilding storage nodes from a peer DC (DESIGN.md "Actors", "Log trimming"): a node
//! whose data directory is wiped, a node restored from a backup taken earlier, and a whole
//! DC left behind the hard cap of the peer's change log. Each is re-seeded by a full copy
//! and catches up; nothing acknowledged is lost and nothing deleted comes back. Tombstones
//! are collected as soon as the rules allow (no grace), so "nothing deleted comes back"
//! holds with and without them, and digests only agree once the copied ones went too.
//! A single-DC node restored `--as-is` serves its backup's data under a new epoch. A
//! secondary index stays exact through a rebuild and a restore (issue 24).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestCluster, converged, start_with};
use aerolith_cli::dev::DevOptions;
use aerolith_storagenode::Retention;

fn opts(dir: &Path) -> DevOptions {
    DevOptions {
        dcs: 2,
        nodes_per_dc: 2,
        retention: Retention {
            tombstone_grace: Duration::ZERO,
            ..Retention::default()
        },
        ..DevOptions::new(dir.to_path_buf())
    }
}

/// (dc1 REST, dc2 REST, dc1 admin, dc2 admin) base URLs.
fn urls(c: &TestCluster) -> (String, String, String, String) {
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    (
        format!("http://{}", e[0].http),
        format!("http://{}", e[1].http),
        format!("http://{}", e[0].admin),
        format!("http://{}", e[1].admin),
    )
}

async fn status(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// `POST /admin/backup` of every node of the DC whose admin API is `admin` into `dir`.
async fn backup(http: &reqwest::Client, admin: &str, dir: &Path) -> (u16, Value) {
    let r = http
        .post(format!("{admin}/admin/backup"))
        .json(&json!({"dir": dir.to_str().unwrap()}))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `url` answers `want`, and returns the body.
async fn until_status(http: &reqwest::Client, url: &str, want: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, body) = status(http, url).await;
        if s == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url}: {s} {body}, waited for {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Puts `ids` with `data` through `base`.
async fn put_all(http: &reqwest::Client, base: &str, ids: impl Iterator<Item = String>, v: i64) {
    for id in ids {
        let r = http
            .put(format!("{base}/v1/collections/c/docs/{id}"))
            .json(&json!({"v": v}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{id}: {}", r.status());
    }
}

async fn delete_all(http: &reqwest::Client, base: &str, ids: impl Iterator<Item = String>) {
    for id in ids {
        let r = http
            .delete(format!("{base}/v1/collections/c/docs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{id}");
    }
}

/// Every document `ids` reads `v` in both DCs, with the same version, and every `gone`
/// id is 404 in both.
async fn check(
    http: &reqwest::Client,
    (dc1, dc2): (&str, &str),
    ids: &[(String, i64)],
    gone: &[String],
) {
    for (id, v) in ids {
        let a = until_status(http, &format!("{dc1}/v1/collections/c/docs/{id}"), 200).await;
        let b = until_status(http, &format!("{dc2}/v1/collections/c/docs/{id}"), 200).await;
        assert_eq!(a["data"], json!({"v": v}), "{id} in dc1: {a}");
        assert_eq!(a["version"], b["version"], "{id}");
    }
    for id in gone {
        for base in [dc1, dc2] {
            let (s, body) = status(http, &format!("{base}/v1/collections/c/docs/{id}")).await;
            assert_eq!(s, 404, "{id} came back in {base}: {body}");
        }
    }
}

/// Defines index `by_v` on `c.v` through `base`.
async fn index_v(http: &reqwest::Client, base: &str) {
    let r = http
        .put(format!("{base}/v1/collections/c/indexes/by_v"))
        .json(&json!({"fields": [{"path": "v"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// Once `by_v` is built in both DCs, every shard's entries agree with its documents and a
/// count by the index finds the `n` documents holding `v`.
async fn index_exact(http: &reqwest::Client, bases: [&str; 2], admins: [&str; 2], v: i64, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for base in bases {
        loop {
            let (_, list) = status(http, &format!("{base}/v1/collections/c/indexes")).await;
            if list["indexes"][0]["state"] == "ready" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never built: {list}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r: Value = http
            .post(format!("{base}/v1/collections/c/query"))
            .json(&json!({"filter": {"v": v}, "limit": 1000, "explain": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            r["documents"].as_array().map(Vec::len),
            Some(n as usize),
            "{base}"
        );
        assert!(
            r["plan"]
                .as_array()
                .is_some_and(|p| p.iter().all(|s| s["index"] == "by_v")),
            "{base}: {}",
            r["plan"]
        );
    }
    for admin in admins {
        let (_, d) = status(http, &format!("{admin}/admin/digests?indexes=true")).await;
        let shards = d["shards"].as_array().expect("shards");
        assert!(!shards.is_empty());
        for s in shards {
            assert_eq!(s["index_mismatches"], 0, "{admin}: {s}");
        }
    }
}

fn ids(prefix: &str, range: std::ops::Range<i64>) -> impl Iterator<Item = String> + '_ {
    range.map(move |i| format!("{prefix}{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_rebuilt_from_the_peer_dc() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(opts(dir.path())).await;
    let http = reqwest::Client::new();
    let (dc1, dc2, admin1, admin2) = urls(&c);
    index_v(&http, &dc1).await;
    // Writes from both DCs, and deletes, so the wiped node's shards hold documents of both
    // origins and tombstones.
    put_all(&http, &dc1, ids("a", 0..120), 1).await;
    put_all(&http, &dc2, ids("b", 0..60), 2).await;
    delete_all(&http, &dc1, ids("a", 0..20)).await;
    delete_all(&http, &dc2, ids("b", 0..10)).await;
    converged(&http, &admin1, &admin2).await;
    c.stop().await;

    // dc1/n1 loses its disk; the cluster restarts around a node with an empty directory.
    std::fs::remove_dir_all(dir.path().join("dc1").join("n1")).unwrap();
    let mut c = start_with(opts(dir.path())).await;
    let (dc1, dc2, admin1, admin2) = urls(&c);
    converged(&http, &admin1, &admin2).await;
    let mut live: Vec<(String, i64)> = ids("a", 20..120).map(|i| (i, 1)).collect();
    live.extend(ids("b", 10..60).map(|i| (i, 2)));
    let mut gone: Vec<String> = ids("a", 0..20).collect();
    gone.extend(ids("b", 0..10));
    check(&http, (&dc1, &dc2), &live, &gone).await;
    // The rebuilt node's index is exact too (copied records are indexed as they land).
    index_exact(&http, [&dc1, &dc2], [&admin1, &admin2], 2, 50).await;

    // The rebuilt node takes writes again (under a new epoch) and they replicate: updates
    // of copied documents supersede them everywhere, new documents appear in dc2.
    put_all(&http, &dc1, ids("a", 20..60), 3).await;
    put_all(&http, &dc1, ids("n", 0..40), 4).await;
    converged(&http, &admin1, &admin2).await;
    let mut live: Vec<(String, i64)> = ids("a", 20..60).map(|i| (i, 3)).collect();
    live.extend(ids("n", 0..40).map(|i| (i, 4)));
    check(&http, (&dc1, &dc2), &live, &gone).await;
    let (_, conflicts) = status(&http, &format!("{admin1}/admin/conflicts")).await;
    assert_eq!(
        conflicts["conflicts"].as_array().map(Vec::len),
        Some(0),
        "updates after a rebuild conflict with nothing: {conflicts}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_old_backup_catches_up() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut c = start_with(opts(dir.path())).await;
    let http = reqwest::Client::new();
    let (dc1, _, admin1, admin2) = urls(&c);
    index_v(&http, &dc1).await;
    put_all(&http, &dc1, ids("a", 0..80), 1).await;
    converged(&http, &admin1, &admin2).await;

    // A backup outside the nodes' backup directory is refused and writes nothing.
    let outside = elsewhere.path().join("b1");
    let (status_code, body) = backup(&http, &admin1, &outside).await;
    assert_eq!(status_code, 403, "{body}");
    assert_eq!(body["error"]["code"], "permission_denied", "{body}");
    assert!(!outside.exists());
    // A backup of every dc1 node through the admin API, below their backup directory
    // (`aerolith dev` gives each DC's nodes `<data dir>/<dc>/backups`).
    let target = dir.path().join("dc1").join("backups").join("b1");
    let (status_code, body) = backup(&http, &admin1, &target).await;
    assert_eq!(status_code, 200, "{body}");
    assert_eq!(body["nodes"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(target.join("n1").join("AEROLITH-BACKUP.json").is_file());
    // A second backup into the same place is refused, not merged into the first.
    assert_eq!(backup(&http, &admin1, &target).await.0, 400);

    // The present moves on: new documents, updates and deletes after the backup.
    put_all(&http, &dc1, ids("a", 0..20), 2).await;
    delete_all(&http, &dc1, ids("a", 20..40)).await;
    put_all(&http, &dc1, ids("p", 0..40), 3).await;
    converged(&http, &admin1, &admin2).await;
    c.stop().await;

    // dc1/n1 is restored from the backup with the CLI, and the cluster restarted.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aerolith"))
        .args(["restore", "--from"])
        .arg(target.join("n1"))
        .arg("--data-dir")
        .arg(dir.path().join("dc1").join("n1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "refused without --replace");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aerolith"))
        .args(["restore", "--replace", "--from"])
        .arg(target.join("n1"))
        .arg("--data-dir")
        .arg(dir.path().join("dc1").join("n1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("new actor epoch"));

    let mut c = start_with(opts(dir.path())).await;
    let (dc1, dc2, admin1, admin2) = urls(&c);
    converged(&http, &admin1, &admin2).await;
    let mut live: Vec<(String, i64)> = ids("a", 0..20).map(|i| (i, 2)).collect();
    live.extend(ids("a", 40..80).map(|i| (i, 1)));
    live.extend(ids("p", 0..40).map(|i| (i, 3)));
    let gone: Vec<String> = ids("a", 20..40).collect();
    check(&http, (&dc1, &dc2), &live, &gone).await;
    // The restored node's entries caught up with its documents.
    index_exact(&http, [&dc1, &dc2], [&admin1, &admin2], 1, 40).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_left_behind_the_hard_cap_needs_a_rebuild_and_gets_one() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let options = || DevOptions {
        retention: Retention {
            count: 8,
            hard_cap: 40,
            tombstone_grace: Duration::ZERO,
            ..Retention::default()
        },
        ..opts(dir.path())
    };
    let mut c = start_with(options()).await;
    let http = reqwest::Client::new();
    let (dc1, _, admin1, admin2) = urls(&c);
    put_all(&http, &dc1, ids("a", 0..30), 1).await;
    converged(&http, &admin1, &admin2).await;

    // dc1 stops shipping to dc2 while one document is updated far past the hard cap (one
    // shard's log), and a few others change.
    let r = http
        .post(format!("{admin1}/admin/peers/dc2/pause"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for v in 0..120 {
        put_all(&http, &dc1, ids("hot", 0..1), v).await;
    }
    delete_all(&http, &dc1, ids("a", 0..5)).await;
    let r = http
        .post(format!("{admin1}/admin/peers/dc2/resume"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, s) = status(&http, &format!("{admin1}/admin/status")).await;
        if s["peers"][0]["needs_rebuild"] == json!(true) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.stop().await;

    // The verdict outlives a restart of the whole cluster: the gap is still there.
    let mut c = start_with(options()).await;
    let (_, _, admin1, _) = urls(&c);
    let (_, s) = status(&http, &format!("{admin1}/admin/status")).await;
    assert_eq!(s["peers"][0]["needs_rebuild"], json!(true), "{s}");
    c.stop().await;

    // dc2 is rebuilt: its nodes' directories go, and they are seeded from dc1.
    for n in ["n1", "n2"] {
        std::fs::remove_dir_all(dir.path().join("dc2").join(n)).unwrap();
    }
    let mut c = start_with(options()).await;
    let (dc1, dc2, admin1, admin2) = urls(&c);
    converged(&http, &admin1, &admin2).await;
    let mut live: Vec<(String, i64)> = ids("a", 5..30).map(|i| (i, 1)).collect();
    live.push(("hot0".into(), 119));
    check(
        &http,
        (&dc1, &dc2),
        &live,
        &ids("a", 0..5).collect::<Vec<_>>(),
    )
    .await;
    // Shipping resumes where the copy began: the peer is whole again.
    put_all(&http, &dc1, ids("z", 0..10), 5).await;
    let live: Vec<(String, i64)> = ids("z", 0..10).map(|i| (i, 5)).collect();
    check(&http, (&dc1, &dc2), &live, &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, s) = status(&http, &format!("{admin1}/admin/status")).await;
        if s["peers"][0]["needs_rebuild"] == json!(false) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.stop().await;
}

/// Runs `aerolith restore` and returns its stdout.
fn restore(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aerolith"))
        .arg("restore")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_dc_node_restored_as_is_serves_its_backup_under_a_new_epoch() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let single = || DevOptions {
        dcs: 1,
        nodes_per_dc: 1,
        ..DevOptions::new(dir.path().to_path_buf())
    };
    let mut c = start_with(single()).await;
    let http = reqwest::Client::new();
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let (dc1, admin1) = (
        format!("http://{}", e[0].http),
        format!("http://{}", e[0].admin),
    );
    put_all(&http, &dc1, ids("a", 0..10), 1).await;
    // A relative dir is below the nodes' backup directory.
    assert_eq!(backup(&http, &admin1, Path::new("b")).await.0, 200);
    let target = dir.path().join("dc1").join("backups").join("b");
    // After the backup: an update and new documents, which the restore will lose.
    put_all(&http, &dc1, ids("a", 0..1), 2).await;
    let lost = until_status(&http, &format!("{dc1}/v1/collections/c/docs/a0"), 200).await;
    put_all(&http, &dc1, ids("b", 0..5), 3).await;
    c.stop().await;

    let stdout = restore(&[
        "--as-is".as_ref(),
        "--replace".as_ref(),
        "--from".as_ref(),
        target.join("n1").as_os_str(),
        "--data-dir".as_ref(),
        dir.path().join("dc1").join("n1").as_os_str(),
    ]);
    assert!(stdout.contains("serves the backup's data"), "{stdout}");
    let mut c = start_with(single()).await;
    let e = c.cluster.as_ref().unwrap().endpoints().dcs.clone();
    let dc1 = format!("http://{}", e[0].http);
    let live: Vec<(String, i64)> = ids("a", 0..10).map(|i| (i, 1)).collect();
    for (id, v) in &live {
        let d = until_status(&http, &format!("{dc1}/v1/collections/c/docs/{id}"), 200).await;
        assert_eq!(d["data"], json!({"v": v}), "{id}: {d}");
    }
    for id in ids("b", 0..5) {
        assert_eq!(
            status(&http, &format!("{dc1}/v1/collections/c/docs/{id}"))
                .await
                .0,
            404
        );
    }
    // The same update again is a new version, never the lost one's: the node writes under
    // a new actor epoch, so no counter is reused for different content.
    put_all(&http, &dc1, ids("a", 0..1), 2).await;
    let again = until_status(&http, &format!("{dc1}/v1/collections/c/docs/a0"), 200).await;
    assert_eq!(again["data"], lost["data"]);
    assert_ne!(again["version"], lost["version"], "a version was reused");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_store_and_started_as_new_is_reported() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_with(opts(dir.path())).await;
    let http = reqwest::Client::new();
    let (dc1, _, admin1, admin2) = urls(&c);
    put_all(&http, &dc1, ids("a", 0..40), 1).await;
    converged(&http, &admin1, &admin2).await;
    // The operator's mistake: dc1/n1's directory is gone and the node is started again as
    // a node of a new cluster (the launcher's restart keeps `--new-store genesis`).
    let cluster = c.cluster.as_mut().unwrap();
    cluster.stop_node(0, 0).await.unwrap();
    std::fs::remove_dir_all(dir.path().join("dc1").join("n1")).unwrap();
    cluster.restart_node(0, 0).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = crate::support::metrics(&http, &admin1).await;
        let reported = metrics.lines().any(|l| {
            l.starts_with("aerolith_node_lost_store{")
                && l.contains("dc=\"dc1\"")
                && l.contains("node=\"n1\"")
                && l.ends_with(" 1")
        });
        if reported {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.stop().await;
}
