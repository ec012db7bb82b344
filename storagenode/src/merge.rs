//! Applying a remote version of a document to the local record (DESIGN.md "Versions,
//! conflicts and replication"). The merge is a pure function of the two records and the
//! collection's strategy, and it is deterministic, commutative, associative and idempotent:
//! every DC that has seen the same versions holds byte-identical records, in whatever order
//! the versions arrived.
//!
//! - Vectors decide first: a remote record that dominates replaces the local one; one that is
//!   dominated or equal changes nothing.
//! - Concurrent versions are resolved by the strategy:
//!   - `lww`: the higher (HLC, DC) wins, with the join of the vectors; the loser is a conflict;
//!   - `siblings`: every version not dominated by another is kept (a multi-value register);
//!     `data` is the live version LWW would pick, and a delete concurrent with an update
//!     keeps the update (add-wins);
//!   - `field_merge`: per top-level field, the greater (HLC, DC) stamp wins, with its value;
//!     a document delete is a stamp of its own (`deleted_at`, the newest one wins) that kills
//!     every field stamped before it, by whichever DC; the document is deleted only if no
//!     field is live and the newest write (its `existence` stamp) was a delete.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use aerolith_common::json::decode_stored;
use aerolith_common::version::{Causality, VersionVector};
use aerolith_common::{Error, Result, pb};

/// The outcome of applying a remote record.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The record to store.
    pub record: pb::DocRecord,
    /// False when the local record already covered the remote one (nothing to write or
    /// forward).
    pub changed: bool,
    /// Set when concurrent versions were resolved.
    pub conflict: Option<Conflict>,
}

/// A resolved conflict, for the conflict log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `lww`, `siblings` or `field_merge`.
    pub strategy: &'static str,
    /// The version the result shows as `data` (or the newest delete).
    pub winner: Side,
    /// The other version.
    pub loser: Side,
}

/// One side of a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Its version vector, in string form.
    pub version: String,
    /// Its hybrid logical clock.
    pub hlc: u64,
    /// Its DC.
    pub origin: String,
    /// Whether it was a delete.
    pub tombstone: bool,
}

fn vv(r: &pb::DocRecord) -> VersionVector {
    VersionVector::from_proto(r.vv.as_ref())
}

fn side(r: &pb::DocRecord) -> Side {
    Side {
        version: vv(r).to_string(),
        hlc: r.hlc,
        origin: r.origin.clone(),
        tombstone: r.tombstone,
    }
}

/// The LWW order of two writes: (HLC, DC), then content, so that even a clock tie between
/// two DCs' identical-looking writes orders the same everywhere.
fn lww_order(a: (u64, &str, &[u8], bool), b: (u64, &str, &[u8], bool)) -> Ordering {
    (a.0, a.1, a.3, a.2).cmp(&(b.0, b.1, b.3, b.2))
}

fn record_order(a: &pb::DocRecord, b: &pb::DocRecord) -> Ordering {
    lww_order(
        (a.hlc, &a.origin, &a.body, a.tombstone),
        (b.hlc, &b.origin, &b.body, b.tombstone),
    )
}

fn sibling_order(a: &pb::Sibling, b: &pb::Sibling) -> Ordering {
    lww_order(
        (a.hlc, &a.origin, &a.body, a.tombstone),
        (b.hlc, &b.origin, &b.body, b.tombstone),
    )
}

/// Applies `remote` to `local` under `strategy`.
pub fn merge(
    local: Option<&pb::DocRecord>,
    remote: &pb::DocRecord,
    strategy: pb::ConflictStrategy,
) -> Result<Merged> {
    let Some(local) = local else {
        return Ok(replaced(remote));
    };
    // A newer incarnation of the collection replaces everything of an older one.
    match local.incarnation.cmp(&remote.incarnation) {
        Ordering::Less => return Ok(replaced(remote)),
        Ordering::Greater => return Ok(kept(local)),
        Ordering::Equal => {}
    }
    let relation = vv(local).compare(&vv(remote));
    if strategy == pb::ConflictStrategy::Siblings {
        // The set merge below covers every relation; skip it only when nothing is new.
        return match relation {
            Causality::Dominates => Ok(kept(local)),
            Causality::Dominated => Ok(replaced(remote)),
            _ => siblings(local, remote),
        };
    }
    match relation {
        Causality::Dominates => Ok(kept(local)),
        Causality::Dominated => Ok(replaced(remote)),
        // Equal vectors name the same write; if the contents differ, something reused a
        // counter. Resolve like concurrent versions so every DC still agrees, and say so.
        Causality::Equal if same_content(local, remote) => Ok(kept(local)),
        Causality::Equal | Causality::Concurrent => {
            if relation == Causality::Equal {
                tracing::error!(
                    version = %vv(local),
                    "two different versions carry the same version vector"
                );
                metrics::counter!("aerolith_version_collisions_total").increment(1);
            }
            match strategy {
                pb::ConflictStrategy::FieldMerge => field_merge(local, remote),
                _ => Ok(lww(local, remote)),
            }
        }
    }
}

fn same_content(a: &pb::DocRecord, b: &pb::DocRecord) -> bool {
    a == b
}

fn replaced(remote: &pb::DocRecord) -> Merged {
    Merged {
        record: remote.clone(),
        changed: true,
        conflict: None,
    }
}

fn kept(local: &pb::DocRecord) -> Merged {
    Merged {
        record: local.clone(),
        changed: false,
        conflict: None,
    }
}

fn finish(local: &pb::DocRecord, record: pb::DocRecord, conflict: Conflict) -> Merged {
    Merged {
        changed: record != *local,
        record,
        conflict: Some(conflict),
    }
}

fn lww(local: &pb::DocRecord, remote: &pb::DocRecord) -> Merged {
    let (winner, loser) = match record_order(local, remote) {
        Ordering::Less => (remote, local),
        _ => (local, remote),
    };
    let mut record = winner.clone();
    record.vv = Some(vv(local).join(&vv(remote)).to_proto());
    record.siblings.clear();
    record.field_stamps.clear();
    record.existence = None;
    record.deleted_at = None;
    let conflict = Conflict {
        strategy: "lww",
        winner: side(winner),
        loser: side(loser),
    };
    finish(local, record, conflict)
}

/// The versions a `siblings` record stands for: its siblings, or itself when it has none.
fn versions(r: &pb::DocRecord) -> Vec<pb::Sibling> {
    if r.siblings.is_empty() {
        vec![pb::Sibling {
            vv: r.vv.clone(),
            hlc: r.hlc,
            origin: r.origin.clone(),
            tombstone: r.tombstone,
            body: r.body.clone(),
        }]
    } else {
        r.siblings.clone()
    }
}

fn siblings(local: &pb::DocRecord, remote: &pb::DocRecord) -> Result<Merged> {
    let all: Vec<pb::Sibling> = versions(local)
        .into_iter()
        .chain(versions(remote))
        .collect();
    let vvs: Vec<VersionVector> = all
        .iter()
        .map(|s| VersionVector::from_proto(s.vv.as_ref()))
        .collect();
    // Keep the versions no other version dominates; of equal vectors keep one, the greatest
    // in LWW order (equal vectors with different contents are a collision, as above).
    let mut kept: Vec<pb::Sibling> = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let superseded = vvs.iter().enumerate().any(|(j, other)| {
            j != i
                && match other.compare(&vvs[i]) {
                    Causality::Dominates => true,
                    Causality::Equal => {
                        sibling_order(&all[j], s).then(j.cmp(&i)) == Ordering::Greater
                    }
                    _ => false,
                }
        });
        if !superseded {
            kept.push(s.clone());
        }
    }
    // Newest first, as API.md orders `conflicts`.
    kept.sort_by(|a, b| sibling_order(b, a));
    let join = vvs.iter().fold(VersionVector::new(), |acc, v| acc.join(v));
    // `data` is the live version LWW would pick; deletes lose to concurrent updates.
    let winner = kept
        .iter()
        .find(|s| !s.tombstone)
        .or_else(|| kept.first())
        .cloned()
        .ok_or_else(|| Error::internal("a siblings merge kept no version"))?;
    let mut record = pb::DocRecord {
        format: local.format.max(remote.format),
        incarnation: local.incarnation,
        vv: Some(join.to_proto()),
        hlc: winner.hlc,
        origin: winner.origin.clone(),
        tombstone: winner.tombstone,
        body: winner.body.clone(),
        siblings: Vec::new(),
        field_stamps: Vec::new(),
        existence: None,
        deleted_at: None,
    };
    if kept.len() > 1 {
        record.siblings = kept;
    }
    let loser = if record_order(local, remote) == Ordering::Less {
        local
    } else {
        remote
    };
    let conflict = Conflict {
        strategy: "siblings",
        winner: Side {
            version: VersionVector::from_proto(winner.vv.as_ref()).to_string(),
            hlc: winner.hlc,
            origin: winner.origin,
            tombstone: winner.tombstone,
        },
        loser: side(loser),
    };
    let changed = record != *local;
    Ok(Merged {
        changed,
        conflict: (record.siblings.len() > 1 || changed).then_some(conflict),
        record,
    })
}

fn stamp_order(a: &pb::FieldStamp, b: &pb::FieldStamp) -> Ordering {
    (a.hlc, &a.dc, a.deleted).cmp(&(b.hlc, &b.dc, b.deleted))
}

/// The newer of two optional stamps.
fn newest_stamp<'a>(
    a: Option<&'a pb::FieldStamp>,
    b: Option<&'a pb::FieldStamp>,
) -> Option<&'a pb::FieldStamp> {
    [a, b]
        .into_iter()
        .flatten()
        .max_by(|x, y| stamp_order(x, y))
}

/// Whether a field stamp survives the document delete `deleted_at` (written after it).
pub fn outlives(stamp: &pb::FieldStamp, deleted_at: Option<&pb::FieldStamp>) -> bool {
    deleted_at.is_none_or(|d| stamp_order(stamp, d) == Ordering::Greater)
}

fn field_merge(local: &pb::DocRecord, remote: &pb::DocRecord) -> Result<Merged> {
    let bodies = [decode_stored(&local.body)?, decode_stored(&remote.body)?];
    let deleted_at = newest_stamp(local.deleted_at.as_ref(), remote.deleted_at.as_ref());
    // Per field, the winning stamp and the body holding its value; a field last written
    // before the newest document delete is gone with it, and its stamp need not be kept.
    let mut winners: BTreeMap<&str, (&pb::FieldStamp, usize)> = BTreeMap::new();
    for (side, rec) in [local, remote].into_iter().enumerate() {
        for s in rec.field_stamps.iter().filter(|s| outlives(s, deleted_at)) {
            let better = winners
                .get(s.field.as_str())
                .is_none_or(|(w, _)| stamp_order(s, w) == Ordering::Greater);
            if better {
                winners.insert(s.field.as_str(), (s, side));
            }
        }
    }
    let mut body: Map<String, Value> = Map::new();
    for (field, (stamp, side)) in &winners {
        if !stamp.deleted
            && let Some(v) = bodies[*side].get(*field)
        {
            body.insert((*field).to_string(), v.clone());
        }
    }
    let newest = match record_order(local, remote) {
        Ordering::Less => remote,
        _ => local,
    };
    let older = if std::ptr::eq(newest, local) {
        remote
    } else {
        local
    };
    // The document's own register: the newest write's stamp. It exists while that write
    // was not a delete, or while any field's winning write is live.
    let existence = newest_stamp(local.existence.as_ref(), remote.existence.as_ref()).cloned();
    let tombstone = body.is_empty() && existence.as_ref().is_none_or(|e| e.deleted);
    let record = pb::DocRecord {
        format: local.format.max(remote.format),
        incarnation: local.incarnation,
        vv: Some(vv(local).join(&vv(remote)).to_proto()),
        hlc: newest.hlc,
        origin: newest.origin.clone(),
        tombstone,
        body: if tombstone {
            Vec::new()
        } else {
            serde_json::to_vec(&body).map_err(Error::internal)?
        },
        siblings: Vec::new(),
        field_stamps: winners.values().map(|(s, _)| (*s).clone()).collect(),
        existence,
        deleted_at: deleted_at.cloned(),
    };
    let conflict = Conflict {
        strategy: "field_merge",
        winner: side(newest),
        loser: side(older),
    };
    Ok(finish(local, record, conflict))
}

#[cfg(test)]
mod tests;
