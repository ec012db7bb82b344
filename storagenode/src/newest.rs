//! The newest write each collection holds on this node, so a collection deletion knows
//! without a scan whether any of its documents was written after it (and so outlives it).

use std::collections::HashMap;

use aerolith_common::pb;

/// An upper bound of the HLC of every record of each collection on this node.
pub(crate) struct Newest {
    /// What nothing since the node opened is known about: the HLC persisted at open, which
    /// every record written before it stays below.
    base: u64,
    by_collection: HashMap<String, u64>,
}

impl Newest {
    /// Bounds every collection by `base` until writes say more.
    pub(crate) fn new(base: u64) -> Self {
        Newest {
            base,
            by_collection: HashMap::new(),
        }
    }

    /// Records that `collection` now holds `rec`.
    pub(crate) fn note(&mut self, collection: &str, rec: &pb::DocRecord) {
        let hlc = written_hlc(rec);
        match self.by_collection.get_mut(collection) {
            Some(n) => *n = (*n).max(hlc),
            None => {
                self.by_collection
                    .insert(collection.to_string(), self.base.max(hlc));
            }
        }
    }

    /// Whether `collection` may hold a record written after `hlc`.
    pub(crate) fn any_after(&self, collection: &str, hlc: u64) -> bool {
        self.by_collection
            .get(collection)
            .copied()
            .unwrap_or(self.base)
            > hlc
    }
}

/// The HLC of a record's newest write, siblings included: what a collection deletion is
/// ordered against.
pub(crate) fn written_hlc(rec: &pb::DocRecord) -> u64 {
    rec.siblings.iter().map(|s| s.hlc).fold(rec.hlc, u64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hlc: u64, siblings: &[u64]) -> pb::DocRecord {
        pb::DocRecord {
            hlc,
            siblings: siblings
                .iter()
                .map(|&hlc| pb::Sibling {
                    hlc,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_collections_are_bounded_by_the_open_hlc() {
        let mut n = Newest::new(100);
        assert!(n.any_after("a", 99));
        assert!(!n.any_after("a", 100));
        n.note("a", &rec(50, &[]));
        assert!(!n.any_after("a", 100), "the open bound still holds");
        n.note("a", &rec(120, &[130]));
        assert!(n.any_after("a", 125));
        assert!(!n.any_after("a", 130));
        assert!(!n.any_after("b", 100));
    }
}
