//! DCs marked out of service (`POST /admin/failover`, DESIGN.md "Failover"). The states live
//! in a small file in the replicator's data directory; the replicator hands them to its
//! DC's storage nodes, where every gateway of the DC reads them (they answer pings with the
//! DCs marked down), and to the peer replicators, which do the same in their DCs. Each state
//! carries an HLC so that the newest decision wins wherever states meet; they are spread
//! again every few seconds, so a restarted node or a healed link catches up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;

use aerolith_common::rpc::RpcClient;
use aerolith_common::time::now_ms;
use aerolith_common::topology::DcConfig;
use aerolith_common::{Error, Result, pb};

/// How often the states are handed out again.
pub const SPREAD_EVERY: Duration = Duration::from_secs(2);
/// How long one hand-out waits for a node or peer.
const SPREAD_TIMEOUT: Duration = Duration::from_secs(1);

/// The DC states this replicator knows, persisted.
pub struct DcStates {
    path: PathBuf,
    states: Mutex<BTreeMap<String, pb::DcState>>,
}

impl DcStates {
    /// The states persisted under `dir` (none yet is fine; an unreadable file is not).
    pub fn load(dir: &Path) -> Result<DcStates> {
        let path = dir.join("dc-states.pb");
        let states = match std::fs::read(&path) {
            Ok(bytes) => prost::Message::decode(bytes.as_slice())
                .map(|r: pb::DcStatesRequest| {
                    r.states.into_iter().map(|s| (s.dc.clone(), s)).collect()
                })
                .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::internal(format!("{}: {e}", path.display()))),
        };
        Ok(DcStates {
            path,
            states: Mutex::new(states),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, pb::DcState>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every state held.
    pub fn all(&self) -> Vec<pb::DcState> {
        self.lock().values().cloned().collect()
    }

    /// Whether `dc` is marked down.
    pub fn is_down(&self, dc: &str) -> bool {
        self.lock().get(dc).is_some_and(|s| s.down)
    }

    /// A new decision for `dc`, stamped after every state held so that it wins.
    pub fn decide(&self, dc: &str, down: bool) -> Result<pb::DcState> {
        let newest = self.lock().values().map(|s| s.hlc).max().unwrap_or(0);
        let state = pb::DcState {
            dc: dc.to_string(),
            down,
            hlc: (now_ms() << 16).max(newest + 1),
        };
        self.merge(std::slice::from_ref(&state))?;
        Ok(state)
    }

    /// Merges states in (the newest per DC wins) and persists them when anything changed.
    pub fn merge(&self, states: &[pb::DcState]) -> Result<bool> {
        let mut held = self.lock();
        let changed = aerolith_common::dc_state::merge(&mut held, states);
        if changed {
            let file = pb::DcStatesRequest {
                states: held.values().cloned().collect(),
            };
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, prost::Message::encode_to_vec(&file))
                .and_then(|()| std::fs::rename(&tmp, &self.path))
                .map_err(|e| Error::internal(format!("{}: {e}", self.path.display())))?;
            tracing::warn!(states = ?held.values().collect::<Vec<_>>(), "DC states changed");
        }
        Ok(changed)
    }

    /// Hands the states to every node of `local` and every peer replicator in `peers`;
    /// returns who took them (DC ids for peers, node ids for nodes).
    pub async fn spread(
        &self,
        client: &RpcClient,
        local: &DcConfig,
        peers: &[(String, String)],
    ) -> Vec<String> {
        let states = self.all();
        if states.is_empty() {
            return Vec::new();
        }
        let req = pb::DcStatesRequest { states };
        let nodes = local.nodes.iter().map(|n| {
            let req = req.clone();
            async move {
                let took = client.node().dc_states(&n.rpc, req, SPREAD_TIMEOUT).await;
                took.ok().map(|_| n.id.clone())
            }
        });
        let peers = peers.iter().map(|(dc, addr)| {
            let req = req.clone();
            async move {
                let took = client
                    .replicator()
                    .dc_states(addr, req, SPREAD_TIMEOUT)
                    .await;
                took.ok().map(|_| dc.clone())
            }
        });
        let (nodes, peers) = futures::join!(join_all(nodes), join_all(peers));
        nodes.into_iter().chain(peers).flatten().collect()
    }
}

/// Spreads the states every [`SPREAD_EVERY`], forever.
pub async fn keep_spreading(
    states: std::sync::Arc<DcStates>,
    client: std::sync::Arc<RpcClient>,
    local: DcConfig,
    peers: Vec<(String, String)>,
) {
    let mut tick = tokio::time::interval(SPREAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        states.spread(&client, &local, &peers).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_decision_wins_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let states = DcStates::load(dir.path()).unwrap();
        let down = states.decide("dc1", true).unwrap();
        assert!(states.is_down("dc1"));
        // An older state arriving late changes nothing.
        let stale = pb::DcState {
            hlc: down.hlc - 1,
            down: false,
            ..down.clone()
        };
        assert!(!states.merge(&[stale]).unwrap());
        assert!(states.is_down("dc1"));
        let back = DcStates::load(dir.path()).unwrap();
        assert!(back.is_down("dc1"));
        back.decide("dc1", false).unwrap();
        assert!(!back.is_down("dc1"));
        assert!(states.merge(&back.all()).unwrap());
        assert!(!states.is_down("dc1"));
    }
}
