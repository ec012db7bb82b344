//! `aerolith dev` as a real process: flags, ports, endpoints.json, SIGKILL durability,
//! restart, topology memory and clean SIGTERM shutdown.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

fn aerolith(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aerolith"));
    cmd.args(args).env("RUST_LOG", "warn");
    cmd
}

/// Starts `aerolith dev` and waits for its ready line.
fn start_dev(data: &Path, port_base: u16) -> Child {
    let mut child = aerolith(&[
        "dev",
        "--data-dir",
        data.to_str().unwrap(),
        "--port-base",
        &port_base.to_string(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("aerolith dev starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("cluster ready") => break,
            Some(_) => {}
            None => panic!(
                "aerolith dev exited before it was ready: {:?}",
                child.wait()
            ),
        }
    }
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// A free REST port for two DCs (P and P + 1, with their gRPC ports 50051 + P - 8080 and
/// the next) whose derived ports stay in range.
fn free_port() -> u16 {
    let start = 10_000 + (std::process::id() % 12_000) as u16;
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    (start..23_000)
        .chain(10_000..start)
        .find(|p| {
            let grpc = p - 8080 + 50051;
            free(*p) && free(p + 1) && free(grpc) && free(grpc + 1)
        })
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_process_lifecycle() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = free_port();
    let mut child = start_dev(&data, base);

    let endpoints: Value =
        serde_json::from_slice(&std::fs::read(data.join("endpoints.json")).unwrap()).unwrap();
    let off = base as i64 - 8080;
    assert_eq!(
        endpoints,
        json!({"dcs": [
            {"id": "dc1", "http": format!("127.0.0.1:{base}"), "grpc": format!("127.0.0.1:{}", 50051 + off), "admin": format!("127.0.0.1:{}", 9090 + off)},
            {"id": "dc2", "http": format!("127.0.0.1:{}", base + 1), "grpc": format!("127.0.0.1:{}", 50052 + off), "admin": format!("127.0.0.1:{}", 9091 + off)},
        ]})
    );
    let url = format!("http://127.0.0.1:{base}/v1/collections/k/docs/doc1");
    let http = reqwest::Client::new();
    let r = http
        .put(&url)
        .header("content-type", "application/json")
        .body(r#"{"v":42}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let written: Value = r.json().await.unwrap();

    // SIGKILL right after the 2xx.
    child.kill().unwrap();
    child.wait().unwrap();

    // A stale endpoints.json is replaced; the write is still there.
    std::fs::write(data.join("endpoints.json"), b"stale").unwrap();
    let mut child = start_dev(&data, base);
    let fresh: Value =
        serde_json::from_slice(&std::fs::read(data.join("endpoints.json")).unwrap()).unwrap();
    assert_eq!(fresh, endpoints);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["data"], json!({"v": 42}));
    assert_eq!(read["version"], written["version"]);

    // SIGTERM shuts down cleanly with exit code 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");

    // The data directory remembers its topology.
    let out = aerolith(&[
        "dev",
        "--data-dir",
        data.to_str().unwrap(),
        "--nodes-per-dc",
        "2",
        "--port-base",
        &base.to_string(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be restarted with"), "{err}");
}

#[test]
fn unsupported_flags_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = aerolith(&[
        "dev",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--dcs",
        "10",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dcs must be from 1 to 9"));
    let out = aerolith(&["dev", "--nodes-per-dc", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}
