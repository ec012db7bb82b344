//! The nemesis: injects one fault at a time against the real processes, holds it, heals it.
//! Kinds come round in a seeded random order, so a short run still sees each of them.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::cluster::{ProcCluster, Role};

/// Clock offset given to a skewed node: well past the 500 ms the cluster tolerates, so the
/// node must refuse writes (and the gateway fail its shards over) rather than stamp them.
pub const SKEW_MS: i64 = 2_000;

/// The faults the nemesis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL a storage node, restart it after the hold.
    KillNode,
    /// SIGKILL a replicator, restart it after the hold.
    KillReplicator,
    /// SIGKILL a gateway, restart it after the hold.
    KillGateway,
    /// Drop every packet between the two DCs' replicators.
    Partition,
    /// Restart a storage node with its clock [`SKEW_MS`] ahead; restart it right after.
    ClockSkew,
}

const KINDS: [FaultKind; 5] = [
    FaultKind::KillNode,
    FaultKind::KillReplicator,
    FaultKind::KillGateway,
    FaultKind::Partition,
    FaultKind::ClockSkew,
];

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What was done.
    pub kind: FaultKind,
    /// To which process (or link).
    pub target: String,
    /// Seconds after the run started that it began and was healed.
    pub at_s: f64,
    /// When it was healed.
    pub healed_s: f64,
}

/// When and how hard the nemesis strikes.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Quiet time before each fault.
    pub quiet: Duration,
    /// How long each fault is held.
    pub hold: Duration,
    /// No fault starts after this, once every kind has struck.
    pub until: Instant,
}

/// Injects faults until the schedule ends and every kind has struck once; every fault is
/// healed before it returns.
pub async fn run(
    cluster: &mut ProcCluster,
    seed: u64,
    schedule: Schedule,
    started: Instant,
) -> anyhow::Result<Vec<FaultRecord>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e656d65736973);
    let mut order = Vec::new();
    let mut done = Vec::new();
    loop {
        tokio::time::sleep(schedule.quiet).await;
        // Every kind strikes at least once, however slowly processes restart here.
        if Instant::now() + schedule.hold > schedule.until && done.len() >= KINDS.len() {
            return Ok(done);
        }
        if order.is_empty() {
            order = KINDS.to_vec();
            order.shuffle(&mut rng);
        }
        let kind = order.remove(0);
        let at_s = started.elapsed().as_secs_f64();
        let pick = |rng: &mut StdRng, role: Role| {
            let of = cluster.of_role(role);
            of[rng.random_range(0..of.len())]
        };
        let target = match kind {
            FaultKind::KillNode | FaultKind::KillReplicator | FaultKind::KillGateway => {
                let role = match kind {
                    FaultKind::KillNode => Role::Node,
                    FaultKind::KillReplicator => Role::Replicator,
                    _ => Role::Gateway,
                };
                let i = pick(&mut rng, role);
                cluster.kill(i);
                tokio::time::sleep(schedule.hold).await;
                cluster.launch(i).await?;
                cluster.procs[i].name.clone()
            }
            FaultKind::Partition => {
                cluster.partition(0, 1, true);
                tokio::time::sleep(schedule.hold).await;
                cluster.partition(0, 1, false);
                format!("{} <-> {}", cluster.dcs[0], cluster.dcs[1])
            }
            FaultKind::ClockSkew => {
                let i = pick(&mut rng, Role::Node);
                cluster
                    .restart(i, vec![format!("--clock-offset-ms={SKEW_MS}")])
                    .await?;
                tokio::time::sleep(schedule.hold).await;
                cluster.restart(i, Vec::new()).await?;
                format!("{} (+{SKEW_MS} ms)", cluster.procs[i].name)
            }
        };
        tracing::info!(?kind, %target, "fault healed");
        done.push(FaultRecord {
            kind,
            target,
            at_s,
            healed_s: started.elapsed().as_secs_f64(),
        });
    }
}
