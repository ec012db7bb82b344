//! Coverage through a third DC (DESIGN.md "Change feeds, sessions and failover together"):
//! with three or more DCs, a change can reach this DC only as a copy forwarded by another
//! (its direct link broken). The forwarding DC says, with each shipment, how far it had
//! applied every other DC's log of a shard as of its own log head (a [`pb::RelayMark`]).
//! Once this node has applied the forwarder's log up to that head, it holds everything the
//! forwarder held then, so it covers the origin's log up to the relayed position too, and
//! session reads and write concern `all` count it (see `Store::covers`).
//!
//! Relay marks are kept in memory only: a restarted node learns them again from the next
//! shipments, and until then waits for the direct watermark as before.

use std::collections::{HashMap, VecDeque};

use aerolith_common::{Result, pb};

use crate::store::Store;

/// Unresolved relay marks kept per (shard, origin); older ones are dropped first (a later
/// mark covers at least as much once reached).
const PENDING_KEPT: usize = 32;

/// A position `(epoch, seq)`.
type Pos = (u64, u64);

/// What one node knows of one origin's log of one shard through other DCs.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    /// Covered through a forwarder already: every change of the origin up to here.
    covered: Pos,
    /// (forwarding DC, its log head, the origin position it had applied as of that head).
    pending: VecDeque<(String, Pos, Pos)>,
}

/// Relay marks by (shard, origin DC).
pub(crate) type Relays = HashMap<(u16, String), Relay>;

fn pos(p: Option<&pb::ShardPosition>) -> Pos {
    p.map_or((0, 0), |p| (p.epoch, p.seq))
}

impl Store {
    /// This node's relay marks of `shards`: its watermarks of every other DC's log, then its
    /// own log head read after them (so every change behind a watermark is in the log by
    /// that head). The head is the last position handed out, not the last published: a
    /// group's watermarks are visible in RocksDB a moment before its log positions are
    /// published, and a mark naming the published head then would claim coverage the log
    /// does not hold yet.
    pub(crate) fn relay_marks(&self, shards: &[u16]) -> Result<Vec<pb::RelayMark>> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let marks = self.watermarks(&pb::WatermarksRequest {
            shards: shards.iter().map(|s| u32::from(*s)).collect(),
        })?;
        let heads: HashMap<u32, pb::ShardPosition> = shards
            .iter()
            .map(|&shard| {
                let (epoch, seq) = self.heads.assigned(shard);
                let head = pb::ShardPosition {
                    shard: u32::from(shard),
                    epoch,
                    seq,
                };
                (head.shard, head)
            })
            .collect();
        Ok(marks
            .watermarks
            .into_iter()
            .filter_map(|w| {
                let shard = w.position?.shard;
                Some(pb::RelayMark {
                    shard,
                    origin_dc: w.origin_dc,
                    applied: w.position,
                    via_head: heads.get(&shard).copied(),
                })
            })
            .collect())
    }

    /// Takes the relay marks a shipment from `via` carried.
    pub fn take_relayed(&self, via: &str, marks: &[pb::RelayMark]) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        aerolith_common::name::validate_dc(via)?;
        let mut relays = self.lock_relays();
        for m in marks {
            let shard = self.check_shard(m.shard)?;
            aerolith_common::name::validate_dc(&m.origin_dc)?;
            if m.origin_dc == self.dc || m.origin_dc == via {
                continue;
            }
            let relay = relays.entry((shard, m.origin_dc.clone())).or_default();
            let applied = pos(m.applied.as_ref());
            if applied <= relay.covered {
                continue;
            }
            relay
                .pending
                .push_back((via.to_string(), pos(m.via_head.as_ref()), applied));
            while relay.pending.len() > PENDING_KEPT {
                relay.pending.pop_front();
            }
        }
        drop(relays);
        self.note_progress();
        Ok(())
    }

    /// Whether this node covers `origin`'s log of `shard` up to `mark` through a forwarder:
    /// it has applied a forwarder's log up to a head as of which the forwarder had applied
    /// the origin's log past `mark`.
    pub(crate) fn relay_covers(&self, shard: u16, origin: &str, mark: Pos) -> Result<bool> {
        let mut relays = self.lock_relays();
        let Some(relay) = relays.get_mut(&(shard, origin.to_string())) else {
            return Ok(false);
        };
        if relay.covered >= mark {
            return Ok(true);
        }
        let mut keep = VecDeque::with_capacity(relay.pending.len());
        while let Some((via, head, applied)) = relay.pending.pop_front() {
            let reached = head.1 == 0
                || self
                    .watermark(shard, &via)?
                    .is_some_and(|w| w.epoch == head.0 && w.seq >= head.1);
            if reached {
                relay.covered = relay.covered.max(applied);
            } else if applied > relay.covered {
                keep.push_back((via, head, applied));
            }
        }
        relay.pending = keep;
        Ok(relay.covered >= mark)
    }

    fn lock_relays(&self) -> std::sync::MutexGuard<'_, Relays> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner())
    }
}
