//! The `aerolith-storagenode` binary as a separate process: acknowledged writes survive
//! SIGKILL, and peers without a cluster certificate are refused.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aerolith_common::rpc::{Call, DevCa, Node, RpcClient};
use aerolith_common::shard::shard_of;
use aerolith_common::{ErrorCode, pb};

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    addr: String,
    ca: DevCa,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let node = ca.issue_pem("dc1-n1").unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_path = write("ca.pem", &ca.ca_pem());
    let cert = write("node.pem", &node.cert_pem);
    let key = write("node.key", &node.key_pem);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let toml = format!(
        "name = \"t\"\n[tls]\nca = {ca_path:?}\ncert = {cert:?}\nkey = {key:?}\n[[dcs]]\nid = \"dc1\"\nnodes = [{{ id = \"n1\", rpc = \"{addr}\" }}]\n"
    );
    let config = write("cluster.toml", &toml);
    Fixture {
        data: dir.path().join("data"),
        _dir: dir,
        config,
        addr,
        ca,
    }
}

/// Starts the node and waits until it says it is listening.
fn spawn(f: &Fixture) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aerolith"))
        .args([
            "node",
            "--config",
            path(&f.config),
            "--dc",
            "dc1",
            "--node",
            "n1",
            "--data-dir",
            path(&f.data),
            "--memory",
            "small",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("storage node starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("listening on") => break,
            Some(_) => {}
            None => panic!("storage node exited before listening: {:?}", child.wait()),
        }
    }
    child
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

async fn call_until_up<C: Call<Node>>(client: &RpcClient, addr: &str, body: C) -> C::Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match client
            .node()
            .call(addr, body.clone(), Duration::from_secs(5))
            .await
        {
            Ok(r) => return r,
            Err(e)
                if e.code == ErrorCode::Unavailable && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("call failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let f = fixture();
    let mut child = spawn(&f);
    let client = RpcClient::new(&f.ca.issue("test-client").unwrap()).unwrap();
    let mut acked = Vec::new();
    for i in 0..40 {
        let id = format!("d{i}");
        let body = pb::PutRequest {
            after_delete_hlc: 0,
            shard: shard_of("c", &id, 64) as u32,
            collection: "c".into(),
            id: id.clone(),
            body: format!("{{\"i\":{i}}}").into_bytes(),
            precondition: None,
            session: Vec::new(),
            idempotency: None,
        };
        let d = call_until_up(&client, &f.addr, body).await;
        acked.push((id, d.record.expect("record").vv));
    }
    // SIGKILL right after the last acknowledgement: no flush, no clean shutdown.
    child.kill().unwrap();
    child.wait().unwrap();

    let mut child = spawn(&f);
    for (id, vv) in &acked {
        let body = pb::GetRequest {
            shard: shard_of("c", id, 64) as u32,
            collection: "c".into(),
            id: id.clone(),
            session: Vec::new(),
        };
        let rec = call_until_up(&client, &f.addr, body)
            .await
            .record
            .unwrap_or_else(|| panic!("{id} lost after SIGKILL"));
        assert!(!rec.tombstone);
        assert_eq!(&rec.vv, vv, "{id}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_cluster_certificate_are_refused() {
    let f = fixture();
    let mut child = spawn(&f);
    let member = RpcClient::new(&f.ca.issue("member").unwrap()).unwrap();
    let ping = pb::PingRequest {};
    let pong = call_until_up(&member, &f.addr, ping).await;
    assert_eq!(pong.dc, "dc1", "{pong:?}");

    let stranger_ca = DevCa::generate().unwrap();
    let stranger = RpcClient::new(&stranger_ca.issue("stranger").unwrap()).unwrap();
    let err = stranger
        .node()
        .ping(&f.addr, ping, Duration::from_secs(5))
        .await
        .expect_err("a certificate from another CA must be refused");
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");

    // The node still serves members.
    member
        .node()
        .ping(&f.addr, ping, Duration::from_secs(5))
        .await
        .expect("members are still served");
    child.kill().unwrap();
    child.wait().unwrap();
}
