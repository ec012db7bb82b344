//! The cluster view (`GET /v1/cluster`): DCs, storage nodes, their health and shard ownership.

use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

use aerolith_common::{Result, pb};

use super::{Ctx, Ops};

/// How long a health probe may take: a node slower than this to answer a ping is unhealthy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The whole deployment as this gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// This gateway's DC.
    pub dc: String,
    /// Number of virtual shards.
    pub shards: u16,
    /// Every DC.
    pub dcs: Vec<DcView>,
}

/// One DC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DcView {
    /// DC id.
    pub id: String,
    /// `up`, or `down` once no node of the DC answers or an operator marked it down.
    pub state: String,
    /// Its storage nodes.
    pub nodes: Vec<NodeView>,
}

/// One storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// Whether it answered a ping just now.
    pub healthy: bool,
    /// The shards it owns in its DC.
    pub shards: Vec<u16>,
}

impl Ops {
    /// Probes every storage node of every DC and reports ownership and health.
    pub async fn cluster(&self, ctx: Ctx) -> Result<ClusterView> {
        let cluster = self.router.cluster();
        let timeout = ctx.remaining()?.min(PROBE_TIMEOUT);
        let mut dcs = Vec::new();
        for dc in &cluster.dcs {
            // The DC's nodes as its map lists them; a node holding a later map (one added
            // or moved shards since) is asked for it first.
            let listed = self.router.maps().nodes(&dc.id);
            let probes = listed
                .iter()
                .map(|n| self.router.call_node(&n.rpc, pb::PingRequest {}, timeout));
            let answers = join_all(probes).await;
            let known = self.router.maps().epoch(&dc.id);
            let newer = listed
                .iter()
                .zip(&answers)
                .find(|(_, a)| a.as_ref().is_ok_and(|p| p.map_epoch > known));
            let (listed, answers) = match newer {
                Some((n, _)) => {
                    self.router.learn_map_from(&n.rpc).await;
                    let listed = self.router.maps().nodes(&dc.id);
                    let probes = listed
                        .iter()
                        .map(|n| self.router.call_node(&n.rpc, pb::PingRequest {}, timeout));
                    let answers = join_all(probes).await;
                    (listed, answers)
                }
                None => (listed, answers),
            };
            let nodes: Vec<NodeView> = listed
                .into_iter()
                .zip(answers)
                .map(|(n, answer)| NodeView {
                    id: n.id,
                    healthy: answer.is_ok(),
                    shards: n.shards,
                })
                .collect();
            let marked_down = self.router.health().is_dc_down(&dc.id);
            let state = if !marked_down && nodes.iter().any(|n| n.healthy) {
                "up"
            } else {
                "down"
            };
            dcs.push(DcView {
                id: dc.id.clone(),
                state: state.to_string(),
                nodes,
            });
        }
        Ok(ClusterView {
            dc: self.router.dc().to_string(),
            shards: cluster.shards,
            dcs,
        })
    }
}
