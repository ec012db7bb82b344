//! `aerolith certs` and `aerolith healthcheck`, run as a deployment runs them: the binary,
//! against a cluster of `aerolith` processes started from cluster.toml (whose certificates
//! `aerolith certs` made).

use std::path::Path;
use std::process::{Command, Output};

use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

const AEROLITH: &str = env!("CARGO_BIN_EXE_aerolith");

fn aerolith(args: &[&str]) -> Output {
    Command::new(AEROLITH)
        .args(args)
        .output()
        .expect("aerolith runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn certs_are_written_once_kept_on_a_rerun_and_never_half_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_arg = out.to_str().unwrap();
    let o = aerolith(&["certs", "--out", out_arg]);
    assert!(o.status.success(), "{}", text(&o));
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let (ca, cert, key) = (read("ca.pem"), read("node.pem"), read("node.key"));
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key.contains("PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is private");

    // An init step that runs again keeps what is there.
    let o = aerolith(&["certs", "--out", out_arg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("kept"));
    assert_eq!(read("ca.pem"), ca);

    // Half a set is refused, with one line saying what to do; --force replaces it.
    std::fs::remove_file(out.join("node.pem")).unwrap();
    let o = aerolith(&["certs", "--out", out_arg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(text(&o).trim().lines().count(), 1, "{}", text(&o));
    let o = aerolith(&["certs", "--out", out_arg, "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(read("ca.pem"), ca, "a new CA");
}

fn probe_node(config: &Path, timeout: &str) -> Output {
    aerolith(&[
        "healthcheck",
        "node",
        "--config",
        config.to_str().unwrap(),
        "--dc",
        "dc1",
        "--node",
        "n1",
        "--timeout",
        timeout,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthchecks_pass_on_live_processes_and_fail_on_a_dead_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = ProcCluster::start(dir.path(), Path::new(AEROLITH), 1, 1)
        .await
        .expect("cluster starts");
    let config = dir.path().join("cluster.toml");

    let gateway = format!("{}/readyz", cluster.http[0]);
    let replicator = format!("{}/healthz", cluster.admin[0]);
    for url in [&gateway, &replicator] {
        // Readiness follows the node probe, which may lag the start by a tick.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let o = aerolith(&["healthcheck", "http", url]);
            if o.status.success() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{url}: {}", text(&o));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let o = probe_node(&config, "3");
    assert!(o.status.success(), "{}", text(&o));

    let node = cluster.of_role(Role::Node)[0];
    cluster.kill(node);
    let o = probe_node(&config, "2");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("dc1/n1"), "{}", text(&o));

    // A port nothing listens on fails the HTTP probe too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = aerolith(&["healthcheck", "http", &format!("http://{closed}/readyz")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
