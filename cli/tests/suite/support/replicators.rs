//! Two one-node DCs (storage nodes in this process, on real RocksDB and QUIC with mutual
//! TLS) and `aerolith replicator` processes between them, started from a cluster.toml and
//! certificate files as an operator would.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_common::json::Limits;
use aerolith_common::pb;
use aerolith_common::rpc::{Call, DevCa, Node, RpcClient};
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_common::topology::{ClusterConfig, DcConfig, NodeConfig, TlsFiles};
use aerolith_storagenode::{Durability, MemoryProfile, NodeOptions, Retention, StorageNode};
use serde_json::Value;

/// Storage nodes of some DCs and what a replicator process needs to join them.
pub struct Cluster {
    pub dir: PathBuf,
    pub dcs: Vec<String>,
    pub ca: DevCa,
    pub config: ClusterConfig,
    pub nodes: Vec<StorageNode>,
    pub client: Arc<RpcClient>,
}

/// A running `aerolith-replicator` process and the addresses it printed.
pub struct ReplicatorProcess {
    pub child: Child,
    pub dc: String,
    pub rpc: SocketAddr,
    pub admin: String,
}

impl Drop for ReplicatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Starts dc1 and dc2, one durable storage node each, under `dir`.
    pub async fn start(dir: &Path) -> Cluster {
        Cluster::start_dcs(dir, 2).await
    }

    /// Starts `n` DCs (`dc1`…), one durable storage node each, under `dir`.
    pub async fn start_dcs(dir: &Path, n: usize) -> Cluster {
        let ca = DevCa::generate().expect("a CA");
        let names: Vec<String> = (1..=n).map(|i| format!("dc{i}")).collect();
        let mut nodes = Vec::new();
        let mut dcs = Vec::new();
        for dc in &names {
            let node = StorageNode::start(NodeOptions {
                data_dir: dir.join(dc).join("n1"),
                dc: dc.clone(),
                node: "n1".into(),
                shards: DEFAULT_SHARDS,
                listen: "127.0.0.1:0".parse().unwrap(),
                durability: Durability::Durable,
                memory: MemoryProfile::Small,
                limits: Limits::default(),
                tls: ca.issue(&format!("{dc}-n1")).unwrap(),
                scan_budget: aerolith_storagenode::DEFAULT_SCAN_BUDGET,
                retention: Retention::default(),
                new_store: Default::default(),
            })
            .await
            .expect("storage node starts");
            dcs.push(DcConfig {
                id: dc.clone(),
                nodes: vec![NodeConfig {
                    id: "n1".into(),
                    rpc: node.addr().to_string(),
                }],
            });
            nodes.push(node);
        }
        let client = Arc::new(RpcClient::new(&ca.issue("test-client").unwrap()).unwrap());
        Cluster {
            dir: dir.to_path_buf(),
            dcs: names,
            ca,
            config: ClusterConfig {
                name: "test".into(),
                shards: DEFAULT_SHARDS,
                tls: None,
                dcs,
            },
            nodes,
            client,
        }
    }

    /// The RPC address of `dc`'s node.
    pub fn node(&self, dc: &str) -> String {
        let i = self.dcs.iter().position(|d| d == dc).expect("a known DC");
        self.nodes[i].addr().to_string()
    }

    /// Writes a cluster.toml and certificate files for `dc`'s replicator; its path.
    fn replicator_config(&self, dc: &str) -> PathBuf {
        let dir = self.dir.join(format!("{dc}-replicator-config"));
        std::fs::create_dir_all(&dir).unwrap();
        let issued = self.ca.issue_pem(&format!("{dc}-replicator")).unwrap();
        std::fs::write(dir.join("ca.pem"), self.ca.ca_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), issued.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), issued.key_pem).unwrap();
        let config = ClusterConfig {
            tls: Some(TlsFiles {
                ca: dir.join("ca.pem"),
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
            }),
            ..self.config.clone()
        };
        let path = dir.join("cluster.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        path
    }

    /// Starts `dc`'s replicator process listening on `rpc` (port 0: any), shipping to
    /// `peers`, and waits for its ready line.
    pub fn replicator(
        &self,
        dc: &str,
        rpc: SocketAddr,
        peers: &[(&str, SocketAddr)],
    ) -> ReplicatorProcess {
        let config = self.replicator_config(dc);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aerolith"));
        cmd.args(["replicator", "--config"])
            .arg(&config)
            .args(["--dc", dc, "--listen", &rpc.to_string()])
            .args(["--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.dir.join(format!("{dc}-replicator")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (peer, addr) in peers {
            cmd.args(["--peer", &format!("{peer}={addr}")]);
        }
        let mut child = cmd.spawn().expect("aerolith-replicator starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on") => break l,
                Some(_) => {}
                None => panic!("aerolith-replicator exited: {:?}", child.wait()),
            }
        };
        // "aerolith-replicator listening on ADDR (admin http://ADMIN)"
        let rpc = line
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let admin = line
            .split("(admin ")
            .nth(1)
            .map(|a| {
                a.trim_end_matches(')')
                    .trim_start_matches("http://")
                    .to_string()
            })
            .unwrap_or_else(|| panic!("no admin address in {line:?}"));
        std::thread::spawn(move || for _ in lines {});
        ReplicatorProcess {
            child,
            dc: dc.to_string(),
            rpc,
            admin,
        }
    }

    /// Writes `ids` into `dc`'s node with body `{"n": i, "by": dc}`, in bulk requests; the
    /// acknowledged records, by id.
    pub async fn write(
        &self,
        dc: &str,
        collection: &str,
        ids: std::ops::Range<usize>,
    ) -> Vec<(String, pb::DocRecord)> {
        let node = self.node(dc);
        let ids: Vec<usize> = ids.collect();
        let mut acked = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let ops = chunk
                .iter()
                .map(|i| {
                    let id = format!("d{i:06}");
                    pb::BulkOp {
                        op: Some(pb::bulk_op::Op::Put(pb::PutRequest {
                            after_delete_hlc: 0,
                            shard: u32::from(shard_of(collection, &id, DEFAULT_SHARDS)),
                            collection: collection.into(),
                            id,
                            body: format!("{{\"by\":\"{dc}\",\"n\":{i}}}").into_bytes(),
                            precondition: None,
                            session: Vec::new(),
                            idempotency: None,
                        })),
                    }
                })
                .collect();
            let b = self
                .client
                .node()
                .bulk(&node, pb::BulkRequest { ops }, Duration::from_secs(60))
                .await
                .expect("bulk write");
            for (i, r) in chunk.iter().zip(b.results) {
                match r.outcome {
                    Some(pb::bulk_result::Outcome::Doc(pb::DocResponse {
                        record: Some(rec),
                        ..
                    })) => acked.push((format!("d{i:06}"), rec)),
                    other => panic!("write d{i:06}: {other:?}"),
                }
            }
        }
        acked
    }

    /// One RPC to `dc`'s node.
    pub async fn call<C: Call<Node>>(&self, dc: &str, req: C) -> C::Answer {
        self.client
            .node()
            .call(&self.node(dc), req, Duration::from_secs(60))
            .await
            .expect("rpc")
    }

    /// The record of `id` in `dc` (tombstones included), if any.
    pub async fn record(&self, dc: &str, collection: &str, id: &str) -> Option<pb::DocRecord> {
        let req = pb::GetRequest {
            shard: u32::from(shard_of(collection, id, DEFAULT_SHARDS)),
            collection: collection.into(),
            id: id.into(),
            session: Vec::new(),
        };
        self.call(dc, req).await.record
    }

    /// Waits until every DC's node reports the same per-shard digests, over `records`
    /// records in all; fails after `secs`.
    pub async fn converge(&self, records: u64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut all = Vec::new();
            for dc in &self.dcs {
                all.push(self.digests(dc).await);
            }
            let total: u64 = all[0].iter().map(|d| d.records).sum();
            if total == records && all.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            let counts: Vec<u64> = all
                .iter()
                .map(|d| d.iter().map(|s| s.records).sum())
                .collect();
            assert!(
                Instant::now() < deadline,
                "no convergence on {records} records: per DC {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every shard's digest of `dc`'s node.
    pub async fn digests(&self, dc: &str) -> Vec<pb::ShardDigest> {
        self.call(dc, pb::DigestRequest::default()).await.shards
    }

    /// Document changes (not settings entries) in `dc`'s logs, by (collection, id).
    pub async fn logged_changes(&self, dc: &str) -> Vec<(String, String)> {
        let mut from: Vec<pb::ShardPosition> = (0..DEFAULT_SHARDS)
            .map(|s| pb::ShardPosition {
                shard: u32::from(s),
                epoch: 0,
                seq: 0,
            })
            .collect();
        let mut out = Vec::new();
        loop {
            let c = self
                .client
                .node()
                .read_changes(
                    &self.node(dc),
                    pb::ReadChangesRequest {
                        collection: String::new(),
                        from: from.clone(),
                        limit: 5000,
                        max_bytes: 16 << 20,
                        ..Default::default()
                    },
                    Duration::from_secs(60),
                )
                .await
                .expect("read changes");
            let done = c.events.is_empty() && c.through == from;
            for e in c.events {
                if let Some(ev) = e.event
                    && ev.record.is_some()
                {
                    out.push((ev.collection, ev.id));
                }
            }
            if done {
                return out;
            }
            from = c.through;
        }
    }

    /// Stops the storage nodes.
    pub async fn stop(self) {
        self.client.close();
        for n in self.nodes {
            n.shutdown().await.expect("node shuts down");
        }
    }
}

/// GET a replicator admin path as JSON.
pub async fn admin(r: &ReplicatorProcess, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", r.admin))
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("admin JSON")
}

/// POST a replicator admin path; the JSON answer.
pub async fn admin_post(r: &ReplicatorProcess, path: &str) -> Value {
    reqwest::Client::new()
        .post(format!("http://{}{path}", r.admin))
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("admin JSON")
}

/// A replicator's `/metrics` page.
pub async fn metrics(r: &ReplicatorProcess) -> String {
    reqwest::get(format!("http://{}/metrics", r.admin))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text")
}

/// Whether a metrics page has a sample of `name` other than 0.
pub fn nonzero(page: &str, name: &str) -> bool {
    page.lines()
        .any(|l| l.starts_with(name) && !l.ends_with(" 0"))
}

/// The first peer's entry of a replicator's `/admin/status`.
pub async fn peer_status(r: &ReplicatorProcess) -> Value {
    admin(r, "/admin/status").await["peers"][0].clone()
}

/// Polls `check` every 50 ms until it returns true; fails after `secs`.
pub async fn wait_until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback UDP port free right now (for a replicator that must come back on its port).
pub fn free_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}
