//! The `aerolith` client commands against a two-DC cluster, run as a person or a script
//! runs them: the binary, its stdout, stderr and exit code.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{TestCluster, start_two_dcs, start_with};
use aerolith_cli::dev::DevOptions;
use aerolith_common::auth::Tokens;

const AEROLITH: &str = env!("CARGO_BIN_EXE_aerolith");

/// Runs `aerolith --endpoint URL ARGS...` with `stdin` fed in.
fn run(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(AEROLITH)
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env_remove("AEROLITH_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aerolith runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and parses stdout as one JSON value.
fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Asserts the exit code and a one-line error on stderr containing `text`.
fn fails(o: &Output, code: i32, text: &str) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    let err = stderr(o);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(text), "{err}");
}

fn lines(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_queries_and_collections_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, _dc2) = start_two_dcs(dir.path()).await;
    let e = dc1.as_str();

    // put: from the argument, stdin (left out and `-`) and a file.
    let d = json_of(&run(
        e,
        &["put", "users", "ada", r#"{"name":"Ada","n":3}"#],
        None,
    ));
    assert_eq!(
        (d["id"].as_str(), d["data"]["n"].as_i64()),
        (Some("ada"), Some(3))
    );
    let d = json_of(&run(
        e,
        &["put", "users", "bob"],
        Some(r#"{"name":"Bob","n":1}"#),
    ));
    assert_eq!(d["data"]["name"], "Bob");
    let d = json_of(&run(
        e,
        &["put", "users", "cy", "-"],
        Some(r#"{"name":"Cy","n":2}"#),
    ));
    assert_eq!(d["data"]["name"], "Cy");
    let file = dir.path().join("dee.json");
    std::fs::write(&file, r#"{"name":"Dee","n":4}"#).unwrap();
    let d = json_of(&run(
        e,
        &["put", "users", "dee", "--file", file.to_str().unwrap()],
        None,
    ));
    assert_eq!(d["data"]["name"], "Dee");

    // get, and its table form.
    let got = json_of(&run(e, &["get", "users", "ada"], None));
    assert_eq!(got["data"], serde_json::json!({"name": "Ada", "n": 3}));
    let table = stdout(&run(e, &["--output", "table", "get", "users", "ada"], None));
    assert!(
        table.starts_with("FIELD") && table.contains("version"),
        "{table}"
    );

    // patch: a merge patch, a JSON Patch, and If-Match.
    let p = json_of(&run(e, &["patch", "users", "ada", r#"{"n":5}"#], None));
    assert_eq!(p["data"]["n"], 5);
    let p = json_of(&run(
        e,
        &[
            "patch",
            "users",
            "ada",
            r#"[{"op":"add","path":"/tag","value":"x"}]"#,
        ],
        None,
    ));
    assert_eq!(p["data"]["tag"], "x");
    let stale = run(
        e,
        &[
            "put",
            "users",
            "ada",
            "{}",
            "--if-match",
            got["version"].as_str().unwrap(),
        ],
        None,
    );
    fails(&stale, 3, "precondition_failed");

    // query: filter, sort, limit; pages followed.
    let found = lines(&run(
        e,
        &[
            "query",
            "users",
            r#"{"n":{"$gte":2}}"#,
            "--sort",
            "n:desc",
            "--limit",
            "2",
        ],
        None,
    ));
    let ids: Vec<&str> = found.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ada", "dee"]);
    assert_eq!(lines(&run(e, &["query", "users"], None)).len(), 4);

    // collections.
    let t = stdout(&run(e, &["collections"], None));
    assert!(
        t.starts_with("NAME") && t.contains("users") && t.contains("lww"),
        "{t}"
    );
    let j = json_of(&run(e, &["collections", "--output", "json"], None));
    assert_eq!(j["collections"][0]["name"], "users");

    // index create | list | drop.
    let j = json_of(&run(
        e,
        &["index", "create", "users", "by_born", "born:desc", "name"],
        None,
    ));
    assert_eq!(j["name"], "by_born");
    assert_eq!(
        j["fields"],
        serde_json::json!([{"path": "born", "order": "desc"}, {"path": "name", "order": "asc"}])
    );
    let t = stdout(&run(e, &["index", "list", "users"], None));
    assert!(
        t.starts_with("NAME") && t.contains("by_born") && t.contains("born:desc,name:asc"),
        "{t}"
    );
    fails(
        &run(e, &["index", "create", "users", "by_born", "other"], None),
        3,
        "invalid_argument",
    );
    fails(
        &run(e, &["index", "create", "users", "../x", "a"], None),
        2,
        "invalid index name",
    );
    fails(
        &run(e, &["index", "create", "users", "i", "a:up"], None),
        2,
        "asc or desc",
    );
    let o = run(e, &["index", "drop", "users", "by_born"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "dropped index users/by_born");
    fails(
        &run(e, &["index", "drop", "users", "by_born"], None),
        1,
        "not_found",
    );

    // delete, then not found (exit 1).
    let o = run(e, &["delete", "users", "bob"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "deleted users/bob");
    fails(&run(e, &["get", "users", "bob"], None), 1, "not_found");
    fails(
        &run(e, &["delete", "users", "nobody"], None),
        1,
        "not_found",
    );

    // Usage errors exit 2, other errors 3; each one line.
    fails(
        &run(e, &["put", "users", "x", "{bad"], None),
        2,
        "not valid JSON",
    );
    fails(
        &run(e, &["put", "users", "x", "[1]"], None),
        2,
        "JSON object",
    );
    fails(&run(e, &["query", "users", "[]"], None), 2, "JSON object");
    let o = run(e, &["get", "users"], None);
    assert_eq!(o.status.code(), Some(2), "clap's usage error");
    fails(
        &run(e, &["get", "_bad", "x"], None),
        2,
        "invalid collection name",
    );
    let unknown_operator = run(e, &["query", "users", r#"{"n":{"$nope":1}}"#], None);
    fails(&unknown_operator, 3, "invalid_argument");
    fails(
        &run("http://127.0.0.1:9", &["get", "users", "ada"], None),
        3,
        "cannot reach",
    );
    // https:// needs a CA to trust (this client trusts none by default).
    fails(
        &run("https://example.invalid", &["collections"], None),
        2,
        "--ca",
    );
    fails(
        &run("ftp://example.invalid", &["collections"], None),
        2,
        "http://",
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_imports_ten_thousand_lines_and_watch_resumes_with_since() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, _dc2) = start_two_dcs(dir.path()).await;
    let e = dc1.as_str();

    // 10k lines from a file; ids from the `id` field.
    let file = dir.path().join("people.ndjson");
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!("{{\"id\":\"p{i}\",\"i\":{i}}}\n"));
    }
    std::fs::write(&file, &text).unwrap();
    let o = run(e, &["bulk", "people", file.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("imported 10000 of 10000 documents into people"),
        "{}",
        stdout(&o)
    );
    let got = json_of(&run(e, &["get", "people", "p9999"], None));
    assert_eq!(got["data"]["i"], 9999);
    let all = run(e, &["query", "people", r#"{"i":{"$gte":0}}"#], None);
    assert_eq!(stdout(&all).lines().count(), 10_000);

    // From stdin, with a bad line and a line without an id: counted, reported, exit 3.
    let o = run(
        e,
        &["bulk", "people", "--output", "json"],
        Some("{\"id\":\"q1\"}\nnot json\n{\"name\":\"no id\"}\n"),
    );
    assert_eq!(o.status.code(), Some(3));
    let summary: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (
            summary["lines"].as_u64(),
            summary["written"].as_u64(),
            summary["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert!(
        stderr(&o).contains("line 2: invalid_argument"),
        "{}",
        stderr(&o)
    );

    // watch: a token from the feed, then two resumes, each starting where the last ended.
    for i in 1..=4 {
        let o = run(
            e,
            &["put", "w", &format!("d{i}"), &format!("{{\"i\":{i}}}")],
            None,
        );
        assert!(o.status.success());
    }
    let first: Value = reqwest::get(format!("{e}/v1/collections/w/changes?limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after_first = first["next"].as_str().unwrap();
    let mut seen: Vec<String> = vec![first["changes"][0]["id"].as_str().unwrap().to_string()];
    let o = run(
        e,
        &["watch", "w", "--since", after_first, "--count", "2"],
        None,
    );
    let changes = lines(&o);
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["op"], "put");
    seen.extend(
        changes
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string()),
    );
    let resume = stderr(&o);
    let token = resume
        .trim()
        .strip_prefix("resume with: aerolith watch w --since ")
        .unwrap_or_else(|| panic!("{resume}"));
    assert_eq!(token, changes[1]["token"].as_str().unwrap());
    let rest = lines(&run(
        e,
        &["watch", "w", "--since", token, "--count", "1"],
        None,
    ));
    let last = rest[0]["id"].as_str().unwrap().to_string();
    assert_eq!(rest[0]["data"]["i"], last[1..].parse::<i64>().unwrap());
    seen.push(last);
    // Every change exactly once across the three reads (shards interleave in any order).
    seen.sort();
    assert_eq!(seen, ["d1", "d2", "d3", "d4"]);

    // `--count 0` only reports where the feed is now; what comes later resumes from there.
    let o = run(e, &["watch", "w", "--count", "0"], None);
    assert_eq!(stdout(&o), "");
    let now = stderr(&o).trim().rsplit(' ').next().unwrap().to_string();
    assert!(run(e, &["put", "w", "d5", "{}"], None).status.success());
    let next = lines(&run(
        e,
        &["watch", "w", "--since", &now, "--count", "1"],
        None,
    ));
    assert_eq!(next[0]["id"], "d5");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_status_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, dc1, _) = start_two_dcs(dir.path()).await;
    let admin = format!(
        "http://{}",
        c.cluster.as_ref().unwrap().endpoints().dcs[0].admin
    );
    let o = run(&dc1, &["admin", "status", "--admin-endpoint", &admin], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.starts_with("dc dc1\nPEER"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("dc2 ")), "{t}");
    let j = json_of(&run(
        &dc1,
        &[
            "admin",
            "status",
            "--admin-endpoint",
            &admin,
            "--output",
            "json",
        ],
        None,
    ));
    assert_eq!(j["peers"][0]["dc"], "dc2");
    // The DC's nodes and shard map: every shard owned once, the fixed map's epoch 1.
    let o = run(&dc1, &["admin", "nodes", "--admin-endpoint", &admin], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.starts_with("dc dc1 shards 64 map epoch 1\nNODE"), "{t}");
    let j = json_of(&run(
        &dc1,
        &[
            "admin",
            "nodes",
            "--admin-endpoint",
            &admin,
            "--output",
            "json",
        ],
        None,
    ));
    assert_eq!(
        (&j["dc"], &j["epoch"], &j["shards"]),
        (
            &serde_json::json!("dc1"),
            &serde_json::json!(1),
            &serde_json::json!(64)
        )
    );
    let mut owned: Vec<u64> = j["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .flat_map(|n| n["shards"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_u64())
        .collect();
    owned.sort_unstable();
    assert_eq!(owned, (0..64).collect::<Vec<u64>>(), "{j}");
    // Growing and shrinking: a balanced DC plans no move; bad input is a usage error, a
    // node that does not answer is refused by the server.
    let o = run(
        &dc1,
        &["admin", "rebalance", "--admin-endpoint", &admin],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("0 shard moves planned"),
        "{}",
        stdout(&o)
    );
    let j = json_of(&run(
        &dc1,
        &[
            "admin",
            "moves",
            "--admin-endpoint",
            &admin,
            "--output",
            "json",
        ],
        None,
    ));
    assert_eq!(
        (&j["queued"], &j["moves"]),
        (&serde_json::json!(0), &serde_json::json!([]))
    );
    let o = run(
        &dc1,
        &[
            "admin",
            "nodes",
            "decommission",
            "no/such",
            "--admin-endpoint",
            &admin,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(
        &dc1,
        &[
            "admin",
            "nodes",
            "add",
            "n9",
            "127.0.0.1:1",
            "--admin-endpoint",
            &admin,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("unavailable"), "{}", stderr(&o));
    c.stop().await;

    // --token reaches a cluster that requires one.
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = Tokens::default();
    tokens.add_list("admin:cli-admin-token-0123456789").unwrap();
    let mut secured: TestCluster = start_with(DevOptions {
        nodes_per_dc: 1,
        tokens,
        ..DevOptions::new(dir.path().to_path_buf())
    })
    .await;
    let e = secured.base.clone();
    fails(&run(&e, &["collections"], None), 3, "unauthenticated");
    let o = run(
        &e,
        &[
            "--token",
            "cli-admin-token-0123456789",
            "put",
            "t",
            "a",
            "{}",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new(AEROLITH)
        .args(["--endpoint", &e, "watch", "t", "--count", "0"])
        .env("AEROLITH_TOKEN", "cli-admin-token-0123456789")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the token from the environment: {}",
        stderr(&o)
    );
    secured.stop().await;
}

#[test]
fn names_that_would_change_the_path_are_usage_errors() {
    // Nothing listens there: a request sent would fail with 3, not 2.
    let e = "http://127.0.0.1:9";
    for args in [
        vec!["delete", "users", "../../other"],
        vec!["get", "users", "u1?x"],
        vec!["get", "users", "u1#y"],
        vec!["get", "..", "x"],
        vec!["query", "a/b", "{}"],
        vec!["bulk", "_system"],
    ] {
        let o = run(e, &args, Some(""));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}
