//! Storage-node liveness as this gateway sees it (DESIGN.md "Failover"). A local node that
//! a call finds unreachable is marked down, and its shards are served by their owners in
//! the other DCs. A prober pings the nodes marked down; one that answers again is marked up
//! only once it has caught up: it has applied everything the other DCs logged for its
//! shards, so a client never reads older data from it than it wrote elsewhere meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aerolith_common::pb;

use aerolith_common::rpc::client::Fate;

use crate::router::Router;

/// How often nodes marked down are probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// DC states are read every this many probe ticks (2 s: replicators hand them out that
/// often). Not at start-up: a gateway's first requests meet its nodes themselves.
const DC_STATES_EVERY_TICKS: u64 = 4;
/// How long a probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often every local node that is up is pinged: a node that died is known down within
/// about this plus [`HEARTBEAT_TIMEOUT`], long before its connection's idle timeout.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// How long a heartbeat waits. A ping is answered on the node's event loop, ahead of any
/// disk work, so a live node answers well within it even when busy.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(600);

/// Addresses of storage nodes currently considered down, and the DCs marked down through
/// a replicator's `POST /admin/failover`.
#[derive(Debug, Default)]
pub struct NodeHealth {
    down: Mutex<HashSet<String>>,
    dc_states: Mutex<BTreeMap<String, pb::DcState>>,
    /// Nodes marked down because they stopped answering (not because they answered that
    /// they serve nothing now): calls in flight to them get no answer either.
    silent: Mutex<HashSet<String>>,
    /// Bumped whenever a node goes silent, so calls in flight to it can move on.
    marked: tokio::sync::watch::Sender<u64>,
}

impl NodeHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_dcs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, pb::DcState>> {
        self.dc_states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether DC `dc` is marked out of service.
    pub fn is_dc_down(&self, dc: &str) -> bool {
        self.lock_dcs().get(dc).is_some_and(|s| s.down)
    }

    /// Merges DC states a node reported (the newest decision per DC wins, so a node that
    /// restarted and holds none yet changes nothing); logs changes.
    pub fn merge_dc_states(&self, states: &[pb::DcState]) {
        let mut held = self.lock_dcs();
        if aerolith_common::dc_state::merge(&mut held, states) {
            tracing::warn!(states = ?held.values().collect::<Vec<_>>(), "DC states changed");
        }
    }

    /// Whether `addr` is considered down.
    pub fn is_down(&self, addr: &str) -> bool {
        self.lock().contains(addr)
    }

    fn lock_silent(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.silent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once `addr` has stopped answering (at once if it has): a node that answers
    /// errors (shutting down, being rebuilt) still answers the calls it took.
    pub async fn went_down(&self, addr: &str) {
        let mut marked = self.marked.subscribe();
        loop {
            if self.lock_silent().contains(addr) {
                return;
            }
            if marked.changed().await.is_err() {
                // The sender lives as long as `self`; without it nothing is ever marked.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Marks `addr` down because it stopped answering (its shards fail over, and calls in
    /// flight to it end); logs the transition.
    pub fn mark_down(&self, addr: &str) {
        if self.lock_silent().insert(addr.to_string()) {
            self.marked.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.mark_refusing(addr);
    }

    /// Marks `addr` down because it answered that it serves nothing now (its shards fail
    /// over; the calls it took are still answered); logs the transition.
    pub fn mark_refusing(&self, addr: &str) {
        if self.lock().insert(addr.to_string()) {
            tracing::warn!(
                node = addr,
                "storage node unreachable: failing its shards over"
            );
            metrics::counter!("aerolith_failovers_total").increment(1);
        }
    }

    /// Marks `addr` up again; logs the transition.
    pub fn mark_up(&self, addr: &str) {
        self.lock_silent().remove(addr);
        if self.lock().remove(addr) {
            tracing::info!(node = addr, "storage node back and caught up: failing back");
        }
    }
}

/// Learns which DCs are marked down from a local node that is up (the replicator hands the
/// states to every node of its DC); keeps the last answer when none responds.
async fn refresh_dc_states(router: &Router) {
    for node in router.nodes() {
        if router.health().is_down(&node.addr) {
            continue;
        }
        if let Ok(p) = router
            .call_node(&node.addr, pb::PingRequest {}, PROBE_TIMEOUT)
            .await
        {
            router.health().merge_dc_states(&p.dc_states);
            return;
        }
    }
}

/// Probes the local DC's nodes until the router closes: heartbeats of the nodes that are up,
/// and the return of those that are down.
pub async fn probe(router: Arc<Router>) {
    tokio::join!(heartbeat(&router), watch_down(&router));
}

/// Pings every local node that is up, every [`HEARTBEAT_EVERY`]; one that does not answer
/// in time is marked down (its shards fail over at once; reads in flight to it move on).
async fn heartbeat(router: &Router) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = router.closing() => return,
            _ = tick.tick() => {}
        }
        let up: Vec<String> = router
            .nodes()
            .into_iter()
            .map(|n| n.addr)
            .filter(|a| !router.health().is_down(a))
            .collect();
        let pings = up.iter().map(|addr| async move {
            let ping = pb::PingRequest {};
            (
                addr,
                router.try_call_node(addr, ping, HEARTBEAT_TIMEOUT).await,
            )
        });
        for (addr, answer) in futures::future::join_all(pings).await {
            if let Ok(pong) = &answer
                && pong.map_epoch > router.maps().epoch(router.dc())
            {
                router.learn_map_from(addr).await;
            }
            match answer {
                // Up, but serving no data (a new store, a rebuild): its shards fail over.
                Ok(pong) if !pong.not_serving.is_empty() => router.health().mark_refusing(addr),
                Ok(_) => {}
                // It answered, refusing (shutting down, say): down, but not silent.
                Err(f) if f.fate == Fate::Answered => router.health().mark_refusing(addr),
                Err(f) => {
                    tracing::debug!(node = %addr, error = %f.error.message, "heartbeat missed");
                    router.health().mark_down(addr);
                }
            }
        }
    }
}

/// Watches the nodes marked down for their return (answering and caught up), and reads the
/// DC states now and then.
async fn watch_down(router: &Router) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = router.closing() => return,
            _ = tick.tick() => {}
        }
        ticks += 1;
        if ticks.is_multiple_of(DC_STATES_EVERY_TICKS) {
            refresh_dc_states(router).await;
        }
        for node in router.nodes() {
            if !router.health().is_down(&node.addr) {
                continue;
            }
            let alive = router
                .call_node(&node.addr, pb::PingRequest {}, PROBE_TIMEOUT)
                .await
                .is_ok_and(|pong| pong.not_serving.is_empty());
            if alive && caught_up(router, &node).await {
                router.health().mark_up(&node.addr);
            }
        }
    }
}

/// Whether `node` has applied, for each of its shards, everything the owners of those
/// shards in the other DCs have logged. An unreachable other DC cannot have taken writes
/// for this gateway's clients, so it does not hold the node back.
async fn caught_up(router: &Router, node: &crate::router::NodeShards) -> bool {
    let shards: Vec<u32> = node.shards.iter().map(|s| u32::from(*s)).collect();
    let Ok(w) = router
        .call_node(&node.addr, pb::WatermarksRequest { shards }, PROBE_TIMEOUT)
        .await
    else {
        return false;
    };
    let dcs = router.cluster().dcs.iter().enumerate();
    for (i, dc) in dcs.filter(|(_, d)| d.id != router.dc()) {
        // One heads call per owner in that DC, for the shards it owns of this node's.
        let mut by_owner: std::collections::BTreeMap<std::sync::Arc<str>, Vec<u32>> =
            Default::default();
        for &shard in &node.shards {
            by_owner
                .entry(router.owner_addr(i, shard))
                .or_default()
                .push(u32::from(shard));
        }
        for (owner, shards) in by_owner {
            let req = pb::ChangeHeadsRequest { shards };
            let Ok(h) = router.call_node(&owner, req, PROBE_TIMEOUT).await else {
                continue;
            };
            for head in h.heads.iter().filter(|h| h.seq > 0) {
                let covered = w.watermarks.iter().any(|m| {
                    m.origin_dc == dc.id
                        && m.position.is_some_and(|p| {
                            p.shard == head.shard && p.epoch == head.epoch && p.seq >= head.seq
                        })
                });
                if !covered {
                    return false;
                }
            }
        }
    }
    true
}
