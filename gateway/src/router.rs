//! Routing to storage nodes: the shard map of the local DC and the RPC client.

use std::time::Duration;

use futures::future::join_all;

use aerolith_common::rpc::RpcClient;
use aerolith_common::topology::{ClusterConfig, DcConfig};
use aerolith_common::{Error, ErrorCode, Result, pb};

use crate::health::NodeHealth;

/// Sends internal RPCs to the storage nodes that own shards in this gateway's DC.
pub struct Router {
    cluster: ClusterConfig,
    dc: DcConfig,
    client: RpcClient,
    health: NodeHealth,
    /// Set once the gateway starts shutting down, so long-lived feeds can end.
    closing: tokio::sync::watch::Sender<bool>,
}

/// One storage node and the shards it owns.
#[derive(Debug, Clone)]
pub struct NodeShards {
    /// Node id.
    pub id: String,
    /// RPC address.
    pub addr: String,
    /// Owned shards, ascending.
    pub shards: Vec<u16>,
}

impl Router {
    /// A router for DC `dc` of `cluster`.
    pub fn new(cluster: ClusterConfig, dc: &str, client: RpcClient) -> Result<Router> {
        let dc = cluster.dc(dc)?.clone();
        Ok(Router {
            cluster,
            dc,
            client,
            health: NodeHealth::default(),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// The whole deployment.
    pub fn cluster(&self) -> &ClusterConfig {
        &self.cluster
    }

    /// This gateway's DC id.
    pub fn dc(&self) -> &str {
        &self.dc.id
    }

    /// The shard of a document.
    pub fn shard_of(&self, collection: &str, id: &str) -> u16 {
        self.cluster.shard_of(collection, id)
    }

    /// Every node of the local DC with its shards.
    pub fn nodes(&self) -> Vec<NodeShards> {
        self.dc
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeShards {
                id: n.id.clone(),
                addr: n.rpc.clone(),
                shards: self.dc.shards_of(i, self.cluster.shards),
            })
            .collect()
    }

    /// Calls one node, recording the RPC's latency and outcome.
    pub async fn call_node(
        &self,
        addr: &str,
        body: pb::request::Body,
        timeout: Duration,
    ) -> Result<pb::response::Body> {
        let op = op_name(&body);
        let started = std::time::Instant::now();
        let out = self.client.call(addr, body, timeout).await;
        let code = match &out {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        metrics::histogram!("aerolith_rpc_duration_seconds", "op" => op, "code" => code)
            .record(started.elapsed().as_secs_f64());
        out
    }

    /// Which storage nodes this gateway considers down.
    pub fn health(&self) -> &NodeHealth {
        &self.health
    }

    /// Owners of `shard`: the local DC's first, then the other DCs' in configuration order
    /// after the local one; DCs marked down come last, tried only when no other answers.
    fn owners(&self, shard: u16) -> Vec<String> {
        let dcs = &self.cluster.dcs;
        let local = dcs.iter().position(|d| d.id == self.dc.id).unwrap_or(0);
        let (up, down): (Vec<_>, Vec<_>) = (0..dcs.len())
            .map(|i| &dcs[(local + i) % dcs.len()])
            .partition(|d| !self.health.is_dc_down(&d.id));
        up.into_iter()
            .chain(down)
            .map(|d| d.owner(shard).rpc.clone())
            .collect()
    }

    /// The owner that serves `shard` now: the local DC's unless it is down, then the next
    /// DC's that is not (the local one when all are).
    pub fn serving_addr(&self, shard: u16) -> String {
        let owners = self.owners(shard);
        owners
            .iter()
            .find(|a| !self.health.is_down(a))
            .unwrap_or(&owners[0])
            .clone()
    }

    /// Records that a call to a local node found it unreachable, so its shards fail over.
    pub fn unreachable(&self, addr: &str) {
        if self.dc.nodes.iter().any(|n| n.rpc == addr) {
            self.health.mark_down(addr);
        }
    }

    /// Calls the owner of `shard`: the local DC's, or while that one is down (or does not
    /// answer) the next healthy DC's (DESIGN.md "Failover"); a write there carries that
    /// DC's vector entry and replicates back. Nodes considered down are tried last.
    pub async fn call_shard(
        &self,
        shard: u16,
        body: pb::request::Body,
        timeout: Duration,
    ) -> Result<pb::response::Body> {
        let deadline = std::time::Instant::now() + timeout;
        let (up, down): (Vec<String>, Vec<String>) = self
            .owners(shard)
            .into_iter()
            .partition(|a| !self.health.is_down(a));
        let mut last = None;
        for addr in up.iter().chain(&down) {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            match self.call_node(addr, body.clone(), remaining).await {
                Err(e) if e.code == ErrorCode::Unavailable => {
                    self.unreachable(addr);
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::deadline("no owner of the shard answered before the deadline")
        }))
    }

    /// Calls every node of the DC concurrently, in node order.
    pub async fn call_all(
        &self,
        make: impl Fn(&NodeShards) -> pb::request::Body,
        timeout: Duration,
    ) -> Vec<Result<pb::response::Body>> {
        let nodes = self.nodes();
        join_all(
            nodes
                .iter()
                .map(|n| self.call_node(&n.addr, make(n), timeout)),
        )
        .await
    }

    /// Every shard grouped by the node that serves it now: the local DC's owners, and for
    /// the shards of a local node marked down, their owners in the next DC that is up.
    pub fn serving_nodes(&self) -> Vec<NodeShards> {
        self.group_by_server(0..self.cluster.shards)
    }

    /// `shards` grouped by the node that serves each now ([`Router::serving_addr`]).
    fn group_by_server(&self, shards: impl IntoIterator<Item = u16>) -> Vec<NodeShards> {
        let mut by_addr: std::collections::BTreeMap<String, Vec<u16>> = Default::default();
        for shard in shards {
            by_addr
                .entry(self.serving_addr(shard))
                .or_default()
                .push(shard);
        }
        by_addr
            .into_iter()
            .map(|(addr, shards)| NodeShards {
                id: self.node_id(&addr),
                addr,
                shards,
            })
            .collect()
    }

    /// `dc/node` of the node at `addr` (the address itself if no node has it).
    fn node_id(&self, addr: &str) -> String {
        self.cluster
            .dcs
            .iter()
            .find_map(|d| {
                d.nodes
                    .iter()
                    .find(|n| n.rpc == addr)
                    .map(|n| format!("{}/{}", d.id, n.id))
            })
            .unwrap_or_else(|| addr.to_string())
    }

    /// Calls, concurrently, the nodes that serve every shard ([`Router::serving_nodes`]);
    /// a call that finds its node unreachable marks it down and is made again, once, to
    /// the owners of its shards in the next DC. Answers come in no particular order.
    pub async fn scatter(
        &self,
        make: impl Fn(&NodeShards) -> pb::request::Body,
        timeout: Duration,
    ) -> Vec<Result<pb::response::Body>> {
        let deadline = std::time::Instant::now() + timeout;
        let targets = self.serving_nodes();
        let first = join_all(
            targets
                .iter()
                .map(|t| self.call_node(&t.addr, make(t), timeout)),
        )
        .await;
        let mut out = Vec::with_capacity(first.len());
        let mut retry = Vec::new();
        for (t, r) in targets.into_iter().zip(first) {
            match r {
                Err(e) if e.code == ErrorCode::Unavailable => {
                    self.unreachable(&t.addr);
                    retry.push((t, e));
                }
                other => out.push(other),
            }
        }
        for (failed, e) in retry {
            let targets = self.group_by_server(failed.shards.iter().copied());
            if targets.iter().any(|t| t.addr == failed.addr) {
                // No other DC can serve these shards.
                out.push(Err(e));
                continue;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let again = targets.into_iter().map(|t| {
                let body = make(&t);
                async move { self.call_node(&t.addr, body, left).await }
            });
            out.extend(join_all(again).await);
        }
        out
    }

    /// Announces shutdown: live feeds end with `unavailable`; calls still work.
    pub fn begin_close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub async fn closing(&self) {
        let mut rx = self.closing.subscribe();
        // An error means the sender is gone, which also means shutdown.
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.begin_close();
        self.client.close();
    }
}

fn op_name(body: &pb::request::Body) -> &'static str {
    use pb::request::Body as B;
    match body {
        B::Get(_) => "get",
        B::Put(_) => "put",
        B::Patch(_) => "patch",
        B::Delete(_) => "delete",
        B::List(_) => "list",
        B::PutCollection(_) => "put_collection",
        B::GetCollection(_) => "get_collection",
        B::ListCollections(_) => "list_collections",
        B::DeleteCollection(_) => "delete_collection",
        B::Ping(_) => "ping",
        B::Bulk(_) => "bulk",
        B::Query(_) => "query",
        B::ReadChanges(_) => "read_changes",
        B::ChangeHeads(_) => "change_heads",
        B::Apply(_) => "apply",
        B::ApplyBatch(_) => "apply_batch",
        B::Watermarks(_) => "watermarks",
        B::Digest(_) => "digest",
        B::Range(_) => "range",
        B::ApplyCollection(_) => "apply_collection",
        B::Ship(_) => "ship",
        B::AwaitMarks(_) => "await_marks",
        B::DcStates(_) => "dc_states",
        B::SeedStatus(_) => "seed_status",
        B::SeedDecide(_) => "seed_decide",
        B::SeedRead(_) => "seed_read",
        B::SeedWrite(_) => "seed_write",
        B::SeedFinish(_) => "seed_finish",
        B::PeerAcks(_) => "peer_acks",
        B::Backup(_) => "backup",
    }
}

/// An answer of an unexpected kind from a node: a bug on one side.
pub fn unexpected(what: &str) -> Error {
    Error::internal(format!("unexpected response to {what}"))
}
