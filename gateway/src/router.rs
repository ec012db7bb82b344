//! Routing to storage nodes: every DC's shard map (learned from the nodes, refreshed when
//! a node says it no longer owns a shard) and the RPC client.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use aerolith_common::rpc::client::{Failure, Fate, expect_answer};
use aerolith_common::rpc::{Call, Node, RpcClient, Service};
use aerolith_common::shard_map::ShardMaps;
use aerolith_common::topology::{ClusterConfig, DcConfig};
use aerolith_common::{Error, ErrorCode, Result, pb};

use crate::health::NodeHealth;

/// How long a write failing over to another DC waits for its own DC's record of the
/// collection's deletions (`deletion_floor`): a node that does not answer by then is skipped.
const LOCAL_FLOOR_TIMEOUT: Duration = Duration::from_secs(1);
/// How long fetching a node's shard map may take.
const MAP_FETCH_TIMEOUT: Duration = Duration::from_secs(1);
/// How often one call is sent again after a node answered that it does not own the shard
/// (or that the shard is being moved): within the call's deadline, about 10 s of waiting
/// at most, which outlasts any move's pause.
pub const NOT_OWNER_RETRIES: u32 = 100;
/// The longest wait between two of those attempts.
const NOT_OWNER_PAUSE_MAX: Duration = Duration::from_millis(100);

/// Sends internal RPCs to the storage nodes that own shards in this gateway's DC.
pub struct Router {
    cluster: ClusterConfig,
    dc: DcConfig,
    /// Position of this gateway's DC in `cluster.dcs`.
    dc_index: usize,
    /// Every DC's newest shard map this gateway knows.
    maps: ShardMaps,
    client: RpcClient,
    health: NodeHealth,
    /// Set once the gateway starts shutting down, so long-lived feeds can end.
    closing: tokio::sync::watch::Sender<bool>,
    /// Writes with an idempotency key whose outcome is unknown, and the node they reached.
    unsettled: crate::unsettled::Unsettled,
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
        let dc_index = cluster.dcs.iter().position(|d| d.id == dc.id).unwrap_or(0);
        Ok(Router {
            maps: ShardMaps::new(&cluster),
            cluster,
            dc,
            dc_index,
            client,
            health: NodeHealth::default(),
            closing: tokio::sync::watch::Sender::new(false),
            unsettled: Default::default(),
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

    /// Every node of the local DC with the shards it owns in the newest map known.
    pub fn nodes(&self) -> Vec<NodeShards> {
        self.maps
            .nodes(&self.dc.id)
            .into_iter()
            .map(|n| NodeShards {
                id: n.id,
                addr: n.rpc,
                shards: n.shards,
            })
            .collect()
    }

    /// Every DC's shard map as this gateway knows it.
    pub fn maps(&self) -> &ShardMaps {
        &self.maps
    }

    /// The address of DC number `dc_index`'s owner of `shard` in the newest map known.
    pub fn owner_addr(&self, dc_index: usize, shard: u16) -> Arc<str> {
        self.maps.owner_addr(dc_index, shard)
    }

    /// Asks every node of every DC for its shard map, at once, and keeps the newest of each
    /// DC (a node that does not answer within a second is skipped).
    pub async fn learn_maps(&self) {
        let addrs: Vec<String> = self
            .cluster
            .dcs
            .iter()
            .flat_map(|d| self.maps.nodes(&d.id))
            .map(|n| n.rpc)
            .collect();
        join_all(addrs.iter().map(|a| self.learn_map_from(a))).await;
    }

    /// Fetches the shard map the node at `addr` holds and keeps it if it is newer.
    pub async fn learn_map_from(&self, addr: &str) {
        let fetched = self
            .client
            .exchange::<Node>(
                addr,
                pb::request::Body::GetShardMap(pb::GetShardMapRequest {}),
                MAP_FETCH_TIMEOUT,
            )
            .await;
        if let Ok(pb::response::Body::ShardMap(m)) = fetched
            && m.epoch > 0
            && let Err(e) = self.maps.learn(&m)
        {
            tracing::warn!(node = addr, error = %e.message, "a storage node holds a shard map this gateway cannot use");
        }
    }

    /// Calls one node, recording the RPC's latency and outcome; a node that does not own a
    /// shard the call names answers `unavailable` (the gateway's map is refreshed).
    pub async fn call_node<C: Call<Node>>(
        &self,
        addr: &str,
        req: C,
        timeout: Duration,
    ) -> Result<C::Answer> {
        self.call_node_raw(addr, req, timeout)
            .await
            .map_err(Error::public)
    }

    /// [`Router::call_node`], answering `not_owner` as the node did.
    async fn call_node_raw<C: Call<Node>>(
        &self,
        addr: &str,
        req: C,
        timeout: Duration,
    ) -> Result<C::Answer> {
        self.try_call_node(addr, req, timeout)
            .await
            .map_err(|f| f.error)
    }

    /// [`Router::call_node`], telling on failure whether the node can have acted on it, and
    /// answering `not_owner` as the node did (the caller routes again by the refreshed map).
    pub async fn try_call_node<C: Call<Node>>(
        &self,
        addr: &str,
        req: C,
        timeout: Duration,
    ) -> std::result::Result<C::Answer, Failure> {
        let answer = self.exchange(addr, req.into_call(), timeout).await?;
        expect_answer::<Node, C>(answer, addr)
    }

    /// One call's body to one node, recording the RPC's latency and outcome.
    async fn exchange(
        &self,
        addr: &str,
        body: pb::request::Body,
        timeout: Duration,
    ) -> std::result::Result<pb::response::Body, Failure> {
        let op = Node::call_name(&body);
        let started = std::time::Instant::now();
        let in_flight = metrics::gauge!("aerolith_rpc_in_flight", "op" => op);
        in_flight.increment(1.0);
        let out = self.client.exchange::<Node>(addr, body, timeout).await;
        in_flight.decrement(1.0);
        if let Err(f) = &out
            && f.error.code == ErrorCode::NotOwner
        {
            // Its shard moved: learn where before the caller routes again.
            self.learn_map_from(addr).await;
        }
        let code = match &out {
            Ok(_) => "ok",
            Err(f) => f.error.code.as_str(),
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
    fn owners(&self, shard: u16) -> Vec<Arc<str>> {
        let dcs = &self.cluster.dcs;
        let (up, down): (Vec<_>, Vec<_>) = (0..dcs.len())
            .map(|i| (self.dc_index + i) % dcs.len())
            .partition(|i| !self.health.is_dc_down(&dcs[*i].id));
        up.into_iter()
            .chain(down)
            .map(|i| self.owner_addr(i, shard))
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
            .to_string()
    }

    /// Whether `addr` is a node of this gateway's DC.
    fn is_local(&self, addr: &str) -> bool {
        self.maps.lists_addr(self.dc_index, addr)
    }

    /// For a write of `collection` about to go to `addr`: 0 for a node of this DC, else the
    /// newest deletion of the collection this DC's nodes recorded (`crate::deletion_floor`).
    pub async fn floor_for(&self, addr: &str, collection: &str, timeout: Duration) -> u64 {
        if self.is_local(addr) {
            0
        } else {
            self.local_deletion_floor(collection, timeout).await
        }
    }

    /// The newest deletion of `collection` this DC's reachable nodes recorded (0 if none,
    /// or if none answers in time: a DC of one node that is down knows nothing).
    async fn local_deletion_floor(&self, collection: &str, timeout: Duration) -> u64 {
        let timeout = timeout.min(LOCAL_FLOOR_TIMEOUT);
        let nodes = self.nodes();
        let asked = nodes.iter().filter(|n| !self.health.is_down(&n.addr));
        let answers = join_all(asked.map(|n| {
            let req = pb::GetCollectionRequest {
                name: collection.to_string(),
            };
            self.call_node(&n.addr, req, timeout)
        }))
        .await;
        answers
            .into_iter()
            .filter_map(|a| a.ok())
            .map(|m| crate::deletion_floor::of_meta(&m))
            .max()
            .unwrap_or(0)
    }

    /// Records that a call to a local node found it unreachable, so its shards fail over.
    pub fn unreachable(&self, addr: &str) {
        if self.is_local(addr) {
            self.health.mark_down(addr);
        }
    }

    /// Records that a call failed as `unavailable` with `fate`: a node that answered so
    /// serves nothing now (its shards fail over) but answers what it took; one that did not
    /// answer is unreachable.
    pub fn failed(&self, addr: &str, fate: Fate) {
        if fate == Fate::Answered {
            if self.is_local(addr) {
                self.health.mark_refusing(addr);
            }
        } else {
            self.unreachable(addr);
        }
    }

    /// Calls the owner of `shard`: the local DC's, or while that one is down (or does not
    /// answer) the next healthy DC's (DESIGN.md "Failover"); a write there carries that
    /// DC's vector entry and replicates back. Nodes considered down are tried last.
    ///
    /// A read goes on to the next owner whenever one is unreachable, also when the node is
    /// found down while the read is in flight. A write goes on only when the owner surely
    /// did nothing (it was never reached, or it answered that it serves nothing now); once
    /// a write may have reached a node that then failed to answer, its outcome is unknown
    /// and it is not sent anywhere else: the answer is `unavailable`, saying so (API.md).
    ///
    /// A node that answers that it does not own the shard (its shard moved) did nothing:
    /// the call goes again to the owner in the map it handed over (see
    /// [`Router::learn_map_from`]); clients never see that answer.
    pub async fn call_shard<C: Call<Node>>(
        &self,
        shard: u16,
        req: C,
        timeout: Duration,
    ) -> Result<C::Answer> {
        let mut body = req.into_call();
        let deadline = std::time::Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            let generation = self.maps.generation();
            match self.call_owners::<C>(shard, &mut body, deadline).await {
                Err(e) if e.code == ErrorCode::NotOwner => {
                    attempt += 1;
                    if attempt > NOT_OWNER_RETRIES || std::time::Instant::now() >= deadline {
                        return Err(Error::unavailable(format!(
                            "the owner of shard {shard} kept changing; retry ({})",
                            e.message
                        )));
                    }
                    self.await_map(generation, attempt, deadline).await;
                }
                other => return other,
            }
        }
    }

    /// One round of [`Router::call_shard`] over the shard's owners in the map known now.
    async fn call_owners<C: Call<Node>>(
        &self,
        shard: u16,
        body: &mut pb::request::Body,
        deadline: std::time::Instant,
    ) -> Result<C::Answer> {
        let write = is_write(body);
        let keys = crate::unsettled::keys_of(body);
        self.check_unsettled(&keys)?;
        let pinned = self.unsettled.node_of(&keys);
        let (up, down): (Vec<Arc<str>>, Vec<Arc<str>>) = match pinned.as_deref() {
            // The node an earlier attempt of this keyed write reached, and no other.
            Some(pinned) => (vec![Arc::from(pinned)], Vec::new()),
            None => self
                .owners(shard)
                .into_iter()
                .partition(|a| !self.health.is_down(a)),
        };
        let mut last = None;
        let mut floored = false;
        for addr in up.iter().chain(&down).map(|a| &**a) {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            if write && !floored && !self.is_local(addr) {
                floored = true;
                if let Some(c) = crate::deletion_floor::collection_of(body) {
                    let floor = self.local_deletion_floor(c, remaining).await;
                    crate::deletion_floor::attach(body, floor);
                }
            }
            // A keyed write is pinned to the node before it is sent, not after it failed:
            // the request's deadline may drop this future while the call is in flight, and
            // a retry must then still go to this node alone. It is unpinned below once the
            // node answered, or surely never saw it.
            if pinned.is_none() {
                self.remember_unsettled(&keys, addr);
            }
            // A call in flight to a node found down meanwhile ends at once instead of waiting
            // for its connection to time out: a read goes on to the next owner, a write
            // answers that its outcome is unknown (it was sent).
            let out = tokio::select! {
                out = self.exchange(addr, body.clone(), remaining) => out,
                () = self.health.went_down(addr) => Err(Failure {
                    error: Error::unavailable(format!("storage node {addr} went down")),
                    fate: Fate::Unknown,
                }),
            };
            match out {
                Ok(answer) => {
                    self.settled(&keys);
                    return expect_answer::<Node, C>(answer, addr).map_err(|f| f.error);
                }
                Err(f) if f.error.code == ErrorCode::NotOwner => {
                    // Refused before anything was done, also by a pinned node: a shard's
                    // idempotency records move with it, so its new owner answers the key.
                    self.settled(&keys);
                    return Err(f.error);
                }
                Err(f) if f.error.code != ErrorCode::Unavailable => {
                    // A write that ran out of time after it was sent may still be applied:
                    // its keys stay pinned as for any unknown outcome.
                    if f.fate != Fate::Unknown && pinned.is_none() {
                        self.settled(&keys);
                    }
                    return Err(f.error);
                }
                Err(f) if write && f.fate == Fate::Unknown => {
                    return Err(self.outcome_unknown(&keys, addr, &f.error));
                }
                Err(f) => {
                    // It did nothing there: the write may go on to the next owner.
                    if pinned.is_none() {
                        self.settled(&keys);
                    }
                    self.failed(addr, f.fate);
                    last = Some(f.error);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::deadline("no owner of the shard answered before the deadline")
        }))
    }

    /// The node an earlier attempt of a write with one of `keys` was sent to, while its
    /// outcome is unknown.
    pub fn pinned(&self, keys: &[crate::unsettled::Key]) -> Option<String> {
        self.unsettled.node_of(keys)
    }

    /// Refuses a write one of whose idempotency keys had an earlier attempt reach a node
    /// that is down now: that node may hold the key (the write may have been applied there),
    /// so the write goes there or nowhere, never to another DC where it could apply twice
    /// ([`Router::call_shard`] sends it only there while that node is up).
    pub fn check_unsettled(&self, keys: &[crate::unsettled::Key]) -> Result<()> {
        match self.unsettled.node_of(keys) {
            Some(addr) if self.health.is_down(&addr) => Err(Error::unavailable(format!(
                "an earlier attempt of this write (its Idempotency-Key) reached storage node {addr}, which is down: its outcome is unknown until the node is back; retry it then with the same key"
            ))),
            _ => Ok(()),
        }
    }

    /// The answer to a write that reached `addr`, which then failed to answer (`error`):
    /// `unavailable`, saying the outcome is unknown; the node is marked down and the write's
    /// keys remembered (see [`Router::check_unsettled`]).
    pub fn outcome_unknown(
        &self,
        keys: &[crate::unsettled::Key],
        addr: &str,
        error: &Error,
    ) -> Error {
        self.unreachable(addr);
        self.remember_unsettled(keys, addr);
        Error::unavailable(format!(
            "the outcome of the write is unknown: it reached storage node {addr}, which then failed to answer ({}); it may or may not have been applied. Retry it with the same Idempotency-Key",
            error.message
        ))
    }

    /// Remembers that an attempt of a write with `keys` reached `addr` and its outcome is
    /// unknown (see [`Router::check_unsettled`]).
    pub fn remember_unsettled(&self, keys: &[crate::unsettled::Key], addr: &str) {
        self.unsettled.remember(keys, addr);
    }

    /// Forgets the keys of a write that was answered.
    pub fn settled(&self, keys: &[crate::unsettled::Key]) {
        self.unsettled.settle(keys);
    }

    /// Calls every node of the DC concurrently, in node order, each with its shards; if a
    /// node no longer owns some of them, every node is called again with its shards in
    /// the map it handed over (the calls made this way are reads, or settings every node
    /// takes more than once alike).
    pub async fn call_all<C: Call<Node>>(
        &self,
        make: impl Fn(&NodeShards) -> C,
        timeout: Duration,
    ) -> Vec<Result<C::Answer>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            let generation = self.maps.generation();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let nodes = self.nodes();
            let out = join_all(
                nodes
                    .iter()
                    .map(|n| self.call_node_raw(&n.addr, make(n), left)),
            )
            .await;
            attempt += 1;
            let refused = out
                .iter()
                .any(|r| r.as_ref().is_err_and(|e| e.code == ErrorCode::NotOwner));
            if !refused || attempt > NOT_OWNER_RETRIES || left.is_zero() {
                return out.into_iter().map(|r| r.map_err(Error::public)).collect();
            }
            self.await_map(generation, attempt, deadline).await;
        }
    }

    /// After a node refused a call as `not_owner`: if that taught this gateway nothing new
    /// (the map is as at `generation`), the map that moved the shard is still on its way to
    /// the nodes; waits a little longer on each `attempt`, never past `deadline`.
    async fn await_map(&self, generation: u64, attempt: u32, deadline: std::time::Instant) {
        if self.maps.generation() == generation {
            let pause = Duration::from_millis(10 << attempt.min(4)).min(NOT_OWNER_PAUSE_MAX);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            tokio::time::sleep(pause.min(left)).await;
        }
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
                self.maps
                    .nodes(&d.id)
                    .into_iter()
                    .find(|n| n.rpc == addr)
                    .map(|n| format!("{}/{}", d.id, n.id))
            })
            .unwrap_or_else(|| addr.to_string())
    }

    /// Calls, concurrently, the nodes that serve every shard ([`Router::serving_nodes`]);
    /// a call that finds its node unreachable marks it down and is made again, once, to
    /// the owners of its shards in the next DC; the shards of a node that no longer owns
    /// them go again to their owners in the map that node handed over, as often as the map
    /// keeps changing under the call (within the deadline).
    /// Answers come in no particular order, each with the id of the node that gave it.
    pub async fn scatter<C: Call<Node>>(
        &self,
        make: impl Fn(&NodeShards) -> C,
        timeout: Duration,
    ) -> Vec<(String, Result<C::Answer>)> {
        let deadline = std::time::Instant::now() + timeout;
        let mut generation = self.maps.generation();
        let targets = self.serving_nodes();
        let mut refused: Vec<u16> = Vec::new();
        let first = join_all(
            targets
                .iter()
                .map(|t| self.call_node_raw(&t.addr, make(t), timeout)),
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
                Err(e) if e.code == ErrorCode::NotOwner => refused.extend(t.shards),
                other => out.push((t.id, other)),
            }
        }
        for (failed, e) in retry {
            let targets = self.group_by_server(failed.shards.iter().copied());
            if targets.iter().any(|t| t.addr == failed.addr) {
                // No other DC can serve these shards.
                out.push((failed.id, Err(e)));
                continue;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let again = targets.into_iter().map(|t| {
                let body = make(&t);
                async move { (t.id.clone(), self.call_node(&t.addr, body, left).await) }
            });
            out.extend(join_all(again).await);
        }
        // Shards whose node no longer owned them go to their owners in the map it handed
        // over, as often as the map keeps changing under the call.
        let mut attempt = 0;
        while !refused.is_empty() {
            attempt += 1;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if attempt > NOT_OWNER_RETRIES || left.is_zero() {
                let e = Error::unavailable(format!(
                    "the owners of shards {refused:?} kept changing; retry"
                ));
                out.push((String::new(), Err(e)));
                break;
            }
            if attempt > 1 {
                self.await_map(generation, attempt, deadline).await;
            }
            generation = self.maps.generation();
            let targets = self.group_by_server(std::mem::take(&mut refused));
            let answers = join_all(
                targets
                    .iter()
                    .map(|t| self.call_node_raw(&t.addr, make(t), left)),
            )
            .await;
            for (t, r) in targets.into_iter().zip(answers) {
                match r {
                    Err(e) if e.code == ErrorCode::NotOwner => refused.extend(t.shards),
                    other => out.push((t.id, other.map_err(Error::public))),
                }
            }
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

/// Whether a call changes data (and so must not be repeated elsewhere once it may have
/// been applied).
fn is_write(body: &pb::request::Body) -> bool {
    use pb::request::Body as B;
    matches!(body, B::Put(_) | B::Patch(_) | B::Delete(_) | B::Bulk(_))
}
