//! `aerolith certs` and `aerolith healthcheck`, run as a deployment runs them: the binary,
//! against a cluster of `aerolith` processes started from cluster.toml (whose certificates
//! `aerolith certs` made). Authentication as a deployment configures it: tokens from
//! `--auth-tokens FILE` and `AEROLITH_AUTH_TOKENS` together, the tokens file of `aerolith
//! certs --tokens`, no token value in the logs (debug level included), and servers that
//! refuse to listen beyond loopback without tokens.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use futures::StreamExt;
use tokio_tungstenite::connect_async;

use aerolith_common::auth::{Role as TokenRole, Tokens};
use aerolith_common::rpc::{PeerRole, TlsMaterial};
use aerolith_common::topology::TlsFiles;

use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

const AEROLITH: &str = env!("CARGO_BIN_EXE_aerolith");

fn aerolith(args: &[&str]) -> Output {
    Command::new(AEROLITH)
        .args(args)
        .env_remove("AEROLITH_AUTH_TOKENS")
        .env_remove("AEROLITH_AUTH_TOKENS_FILE")
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
    let ca = read("ca.pem");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    // One certificate per role, each carrying its role and loading only as that role.
    let files = TlsFiles::in_dir(&out);
    for role in PeerRole::ALL {
        let cert = read(&format!("{role}.pem"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read(&format!("{role}.key")).contains("PRIVATE KEY"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(format!("{role}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the {role} key is private");
        let material = TlsMaterial::from_files(&files, role).expect("a role loads its own pair");
        assert_eq!(material.role(), Some(role));
    }
    // A process given another role's certificate refuses to start, saying whose it is.
    let mut swapped = files.clone();
    swapped.gateway = swapped.replicator.clone();
    let err = TlsMaterial::from_files(&swapped, PeerRole::Gateway).unwrap_err();
    assert!(err.message.contains("is a replicator certificate"), "{err}");

    // An init step that runs again keeps what is there.
    let o = aerolith(&["certs", "--out", out_arg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("kept"));
    assert_eq!(read("ca.pem"), ca);

    // Half a set is refused, with one line saying what to do; --force replaces it.
    std::fs::remove_file(out.join("gateway.pem")).unwrap();
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
    let _turn = crate::support::TURN.lock().await;
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

#[test]
fn certs_writes_a_private_tokens_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_arg = out.to_str().unwrap();
    let o = aerolith(&["certs", "--out", out_arg, "--tokens"]);
    assert!(o.status.success(), "{}", text(&o));
    let file = out.join("tokens");
    let mut tokens = Tokens::default();
    tokens.add_file(&file).expect("a valid tokens file");
    let written = std::fs::read_to_string(&file).unwrap();
    for role in [TokenRole::Read, TokenRole::Write, TokenRole::Admin] {
        let line = written
            .lines()
            .find(|l| l.starts_with(&format!("{} ", role.as_str())))
            .unwrap_or_else(|| panic!("a {role:?} token in {written}"));
        let token = line.split_whitespace().nth(1).unwrap();
        assert_eq!(tokens.role_of(token), Some(role));
        assert!(token.len() >= 32, "long enough not to be guessed");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the tokens are private");
    let o = aerolith(&["certs", "--out", out_arg, "--tokens"]);
    assert!(text(&o).contains("kept the tokens"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
}

#[test]
fn servers_refuse_public_addresses_without_tokens() {
    let refused = [
        vec![
            "gateway",
            "--http-listen",
            "0.0.0.0:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ],
        vec![
            "gateway",
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "[::]:0",
        ],
        vec!["replicator", "--admin-listen", "0.0.0.0:0"],
    ];
    for args in refused {
        let mut all = args.clone();
        all.extend(["--config", "/nonexistent/cluster.toml", "--dc", "dc1"]);
        let o = aerolith(&all);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains("without authentication"), "{args:?}: {t}");
        assert!(t.contains("--allow-no-auth"), "{args:?}: {t}");
        // With --allow-no-auth the exposure is accepted, and the missing config is next.
        all.push("--allow-no-auth");
        let o = aerolith(&all);
        assert!(!text(&o).contains("without authentication"), "{}", text(&o));
        assert!(text(&o).contains("cluster.toml"), "{}", text(&o));
    }
}

/// A REST port P whose gRPC and admin ports (derived from it like `aerolith dev` does) are
/// free too.
fn free_port() -> u16 {
    let start = 11_000 + (std::process::id() % 9_000) as u16;
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    (start..21_000)
        .chain(11_000..start)
        .find(|p| free(*p) && free(p - 8080 + 50051) && free(p - 8080 + 9090))
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_takes_tokens_from_a_file_and_the_environment_and_never_logs_them() {
    let _turn = crate::support::TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let read = "read-token-from-the-file-0001";
    let write = "write-token-from-the-environment-0001";
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("read {read}\n")).unwrap();
    let log = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = Command::new(AEROLITH)
        .args(["dev", "--dcs", "1", "--nodes-per-dc", "1", "--port-base"])
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--auth-tokens")
        .arg(&file)
        .env("AEROLITH_AUTH_TOKENS", format!("write:{write}"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("aerolith dev starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("cluster ready") => break,
            Some(_) => {}
            None => panic!("aerolith dev exited: {:?}", child.wait()),
        }
    }
    std::thread::spawn(move || for _ in lines {});

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let doc = format!("{base}/v1/collections/c/docs/d");
    let status = |r: reqwest::Result<reqwest::Response>| r.unwrap().status().as_u16();
    assert_eq!(status(http.get(&doc).send().await), 401);
    let put = http
        .put(&doc)
        .bearer_auth(write)
        .json(&serde_json::json!({"n": 1}))
        .send()
        .await;
    assert_eq!(status(put), 201, "the environment's write token");
    assert_eq!(status(http.get(&doc).bearer_auth(read).send().await), 200);
    let denied = http.delete(&doc).bearer_auth(read).send().await;
    assert_eq!(status(denied), 403, "the file's token only reads");
    let url = format!("ws://127.0.0.1:{port}/v1/ws?access_token={read}");
    let (mut ws, _) = connect_async(url)
        .await
        .expect("access_token opens a socket");
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(child.wait().unwrap().success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.len() > 1000, "debug logging was on: {logged}");
    for token in [read, write] {
        assert!(!logged.contains(token), "a token value in the log");
    }
    assert!(
        !logged.contains("authentication is off"),
        "tokens are configured"
    );
}

#[test]
fn processes_given_one_shared_certificate_refuse_to_start_naming_the_command() {
    // A deployment from before role certificates: one certificate without a role, named
    // as `cert`/`key` for every process.
    let dir = tempfile::tempdir().unwrap();
    let ca = aerolith_common::rpc::DevCa::generate().unwrap();
    let (pem, _) = ca.issue_without_role("aerolith").unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.ca_pem()).unwrap();
    std::fs::write(dir.path().join("node.pem"), &pem.cert_pem).unwrap();
    std::fs::write(dir.path().join("node.key"), &pem.key_pem).unwrap();
    let d = dir.path().display();
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/node.pem\"\nkey = \"{d}/node.key\"\n\
             [[dcs]]\nid = \"dc1\"\nnodes = [{{ id = \"n1\", rpc = \"127.0.0.1:1\" }}]\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let any = "127.0.0.1:0";
    for args in [
        vec![
            "node",
            "--config",
            config,
            "--dc",
            "dc1",
            "--node",
            "n1",
            "--data-dir",
            data,
        ],
        vec![
            "gateway",
            "--config",
            config,
            "--dc",
            "dc1",
            "--http-listen",
            any,
            "--grpc-listen",
            any,
        ],
        vec![
            "replicator",
            "--config",
            config,
            "--dc",
            "dc1",
            "--listen",
            any,
            "--admin-listen",
            any,
            "--data-dir",
            data,
        ],
    ] {
        let o = aerolith(&args);
        assert!(!o.status.success(), "{}: {}", args[0], text(&o));
        let t = text(&o);
        assert!(t.contains("carries no AerolithDB role"), "{}: {t}", args[0]);
        assert!(
            t.contains("aerolith certs --out DIR --force"),
            "{}: {t}",
            args[0]
        );
    }
}
