//! The replicator admin API's audit trail, over the wire against a real replicator process:
//! each admin action and each refused request is one `aerolith::audit` line in the
//! process's log (kept at `info` though the cluster logs at `warn`) naming the role, the
//! token's id, the peer and the outcome, never a token's value, and is counted in
//! `aerolith_audit_events_total`.

use std::time::{Duration, Instant};

use aerolith_common::auth::token_id;
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

const ADMIN: &str = "audit-admin-token-0123456789abcdef";
const READ: &str = "audit-read-token-0123456789abcdef";

/// The audit lines of `log` so far.
fn audit_lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("aerolith::audit"))
        .map(str::to_string)
        .collect()
}

/// Waits until `log` holds an audit line with every one of `parts`, and returns it.
async fn audited(log: &std::path::Path, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = audit_lines(log);
        if let Some(l) = lines.iter().find(|l| parts.iter().all(|p| l.contains(p))) {
            return l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no audit line with {parts:?} in:\n{}",
            lines.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_and_refusals_are_audited_without_token_values() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let aerolith = std::path::Path::new(env!("CARGO_BIN_EXE_aerolith"));
    let mut cluster = ProcCluster::start(dir.path(), aerolith, 1, 1)
        .await
        .expect("the cluster starts");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("admin {ADMIN}\nread {READ}\n")).unwrap();
    let replicator = cluster.of_role(Role::Replicator)[0];
    cluster
        .restart(
            replicator,
            vec!["--auth-tokens".into(), tokens.display().to_string()],
        )
        .await
        .expect("the replicator restarts with tokens");
    let log = dir.path().join("logs").join("dc1-replicator.log");
    let admin = cluster.admin[0].clone();
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, token: Option<&str>, body: &str| {
        let mut req = http
            .request(method, format!("{admin}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    use reqwest::Method;

    let r = send(Method::GET, "/admin/status", None, "").await.unwrap();
    assert_eq!(r.status(), 401);
    audited(
        &log,
        &[
            "outcome=\"unauthenticated\"",
            "/admin/status",
            "peer=127.0.0.1:",
        ],
    )
    .await;
    let r = send(
        Method::POST,
        "/admin/resync",
        Some("not-a-token-at-all-x"),
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let r = send(Method::POST, "/admin/rebalance", Some(READ), "{}")
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let read_id = token_id(READ);
    audited(
        &log,
        &[
            "outcome=\"denied\"",
            "role=\"read\"",
            &read_id,
            "POST /admin/rebalance",
        ],
    )
    .await;

    // Admin actions: done, and failed with the status.
    let admin_id = token_id(ADMIN);
    let r = send(Method::POST, "/admin/rebalance", Some(ADMIN), "{}")
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    audited(
        &log,
        &[
            "outcome=\"done\"",
            "role=\"admin\"",
            &admin_id,
            "POST /admin/rebalance",
        ],
    )
    .await;
    let r = send(
        Method::POST,
        "/admin/backup",
        Some(ADMIN),
        r#"{"dir":"b1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    audited(&log, &["outcome=\"done\"", "POST /admin/backup"]).await;
    let r = send(
        Method::POST,
        "/admin/backup",
        Some(ADMIN),
        r#"{"dir":"/etc/b1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    audited(
        &log,
        &["outcome=\"failed\"", "POST /admin/backup", "reason=\"403\""],
    )
    .await;
    let r = send(Method::POST, "/admin/peers/dc9/pause", Some(ADMIN), "{}")
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    audited(
        &log,
        &[
            "outcome=\"failed\"",
            "POST /admin/peers/{dc}/pause",
            "/admin/peers/dc9/pause",
        ],
    )
    .await;
    let r = send(
        Method::POST,
        "/admin/failover",
        Some(ADMIN),
        r#"{"dc":"dc1","state":"up"}"#,
    )
    .await
    .unwrap();
    audited(&log, &["POST /admin/failover", &admin_id]).await;
    drop(r);
    // Reads are not admin actions.
    let r = send(Method::GET, "/admin/status", Some(ADMIN), "")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // No line holds a token's value; the metric counts the events by action and outcome.
    for line in audit_lines(&log) {
        assert!(!line.contains(ADMIN) && !line.contains(READ), "{line}");
        assert!(!line.contains("not-a-token-at-all-x"), "{line}");
    }
    assert!(
        !audit_lines(&log)
            .iter()
            .any(|l| l.contains("GET /admin/status") && l.contains("done")),
        "a read is not audited as an action"
    );
    let metrics = crate::support::metrics(&http, &admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("aerolith_audit_events_total")
                && l.contains(r#"action="POST /admin/rebalance""#)
                && l.contains(r#"outcome="denied""#)),
        "{metrics}"
    );
    assert!(!metrics.contains(ADMIN) && !metrics.contains(READ));
    drop(cluster);
}
