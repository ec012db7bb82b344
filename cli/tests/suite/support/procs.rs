//! What tests of replicator processes need beside the multi-process cluster
//! (`aerolith_loadtest::faults::cluster::ProcCluster`): a client of the storage nodes'
//! internal RPC, with the cluster's own certificates, to write a backlog into a node and
//! read digests and change logs back; and the replicators' admin API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aerolith_common::pb;
use aerolith_common::rpc::{Call, Node, PeerRole, RpcClient, TlsMaterial};
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};
use serde_json::Value;

/// Starts `dcs` DCs of one storage node each, with their gateways, under `dir`, every
/// replicator link but the cut pairs through a healthy proxy. The nodes start their stores
/// as a new cluster's (`--new-store genesis`) so that they take writes before any
/// replicator runs; no replicator is launched ([`launch_replicator`] each).
pub async fn cluster_without_replicators(
    dir: &std::path::Path,
    dcs: usize,
    cut: &[(usize, usize)],
) -> ProcCluster {
    let genesis = vec!["--new-store".to_string(), "genesis".to_string()];
    let mut cluster = ProcCluster::prepare(
        dir,
        env!("CARGO_BIN_EXE_aerolith").as_ref(),
        dcs,
        1,
        genesis,
    )
    .expect("cluster prepared");
    for (a, b) in cut {
        cluster.partition(*a, *b, true);
    }
    for role in [Role::Node, Role::Gateway] {
        for i in cluster.of_role(role) {
            cluster.launch(i).await.expect("process starts");
        }
    }
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("gateways ready");
    cluster
}

/// The index (in `procs`) of DC `dc`'s replicator.
pub fn replicator(cluster: &ProcCluster, dc: usize) -> usize {
    cluster.of_role(Role::Replicator)[dc]
}

/// Starts DC `dc`'s replicator (again) and waits for its ready line.
pub async fn launch_replicator(cluster: &mut ProcCluster, dc: usize) {
    let i = replicator(cluster, dc);
    cluster.launch(i).await.expect("replicator starts");
}

/// The internal RPC of a cluster's storage nodes (one node per DC).
pub struct Nodes {
    /// A client with the cluster's certificates.
    pub client: Arc<RpcClient>,
    /// DC ids in order.
    pub dcs: Vec<String>,
    /// Each DC's node address.
    pub addrs: Vec<String>,
}

impl Nodes {
    /// A client of `cluster`'s nodes.
    pub fn of(cluster: &ProcCluster) -> Nodes {
        let tls = cluster.config.tls.as_ref().expect("certificates");
        let tls = TlsMaterial::from_files(tls, PeerRole::Replicator).expect("certificates read");
        let client = Arc::new(RpcClient::new(&tls).expect("rpc client"));
        Nodes {
            client,
            dcs: cluster.dcs.clone(),
            addrs: cluster
                .config
                .dcs
                .iter()
                .map(|d| d.nodes[0].rpc.clone())
                .collect(),
        }
    }

    /// The RPC address of `dc`'s node.
    pub fn node(&self, dc: &str) -> &str {
        let i = self.dcs.iter().position(|d| d == dc).expect("a known DC");
        &self.addrs[i]
    }

    /// Writes `ids` into `dc`'s node with body `{"n": i, "by": dc}`, in bulk requests; the
    /// acknowledged records, by id.
    pub async fn write(
        &self,
        dc: &str,
        collection: &str,
        ids: std::ops::Range<usize>,
    ) -> Vec<(String, pb::DocRecord)> {
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
                .bulk(
                    self.node(dc),
                    pb::BulkRequest { ops },
                    Duration::from_secs(60),
                )
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
            .call(self.node(dc), req, Duration::from_secs(60))
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
                    self.node(dc),
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
}

/// GET a replicator admin path (`admin` is its base URL) as JSON.
pub async fn admin(admin: &str, path: &str) -> Value {
    reqwest::get(format!("{admin}{path}"))
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("admin JSON")
}

/// POST a replicator admin path; the JSON answer.
pub async fn admin_post(admin: &str, path: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{admin}{path}"))
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("admin JSON")
}

/// A replicator's `/metrics` page.
pub async fn metrics(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
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
pub async fn peer_status(admin_url: &str) -> Value {
    admin(admin_url, "/admin/status").await["peers"][0].clone()
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
