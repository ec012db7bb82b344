//! What the admin API reports about each peer: counts of applied changes and conflicts,
//! the last apply time, and a bounded log of recent conflicts (newest last).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use aerolith_common::document::version_of;
use aerolith_common::time::{now_ms, rfc3339_ms};
use aerolith_common::{hlc, pb};

/// Conflicts kept for `GET /admin/conflicts`.
pub const CONFLICT_LOG: usize = 1000;

/// One resolved conflict, as `GET /admin/conflicts` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictEntry {
    /// When it was resolved here (RFC 3339).
    pub at: String,
    /// The DC whose change met a concurrent local version.
    pub from_dc: String,
    /// The collection.
    pub collection: String,
    /// The document id.
    pub id: String,
    /// `lww`, `siblings` or `field_merge`.
    pub strategy: String,
    /// How it was resolved: the resulting version, its origin and time, and whether the
    /// document is now deleted.
    pub resolution: Resolution,
}

/// The record a conflict resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The merged version (the join of the vectors).
    pub version: String,
    /// The DC of the winning write.
    pub origin: String,
    /// Its time.
    pub updated_at: String,
    /// Whether the result is a delete.
    pub deleted: bool,
    /// Concurrent versions kept beside `data` (`siblings` only).
    pub siblings: usize,
}

/// Counts about changes received from one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Changes applied.
    pub applied: u64,
    /// Conflicts resolved among them.
    pub conflicts: u64,
    /// When the last one was applied (Unix ms).
    pub last_applied_ms: Option<u64>,
}

/// Receiving statistics of a replicator.
#[derive(Default)]
pub struct Stats {
    received: Mutex<BTreeMap<String, Received>>,
    conflicts: Mutex<VecDeque<ConflictEntry>>,
}

impl Stats {
    /// Records one applied change from `from_dc` and, if it met a conflict, logs it.
    pub fn applied(&self, from_dc: &str, collection: &str, id: &str, answer: &pb::ApplyResponse) {
        let now = now_ms();
        let conflicted = !answer.conflict.is_empty();
        {
            let mut r = self.received.lock().unwrap_or_else(|p| p.into_inner());
            let e = r.entry(from_dc.to_string()).or_default();
            e.applied += 1;
            e.conflicts += u64::from(conflicted);
            e.last_applied_ms = Some(now);
        }
        if conflicted {
            metrics::counter!(
                "aerolith_replication_conflicts_total",
                "peer" => from_dc.to_string(),
                "strategy" => answer.conflict.clone()
            )
            .increment(1);
        }
        let (true, Some(rec)) = (conflicted, answer.record.as_ref()) else {
            return;
        };
        let entry = ConflictEntry {
            at: rfc3339_ms(now),
            from_dc: from_dc.to_string(),
            collection: collection.to_string(),
            id: id.to_string(),
            strategy: answer.conflict.clone(),
            resolution: Resolution {
                version: version_of(rec),
                origin: rec.origin.clone(),
                updated_at: rfc3339_ms(hlc::wall_ms(rec.hlc)),
                deleted: rec.tombstone,
                siblings: rec.siblings.len(),
            },
        };
        let mut log = self.conflicts.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == CONFLICT_LOG {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// What was received from `from_dc`.
    pub fn received(&self, from_dc: &str) -> Received {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(from_dc)
            .copied()
            .unwrap_or_default()
    }

    /// Recent conflicts, newest first, optionally of one collection.
    pub fn conflicts(&self, collection: Option<&str>, limit: usize) -> Vec<ConflictEntry> {
        let log = self.conflicts.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .rev()
            .filter(|c| collection.is_none_or(|want| c.collection == want))
            .take(limit)
            .cloned()
            .collect()
    }
}
