//! DC states set by an operator (`POST /admin/failover`): replicators, storage nodes and
//! gateways each hold the newest decision per DC, and must agree on which one that is.

use std::collections::BTreeMap;

use crate::pb;

/// Whether `s` supersedes `held`: a later HLC, or the same HLC deciding `down`, so that two
/// decisions stamped alike settle the same way everywhere.
pub fn supersedes(s: &pb::DcState, held: &pb::DcState) -> bool {
    (s.hlc, s.down) > (held.hlc, held.down)
}

/// Merges `states` into `held` (the newest decision per DC wins); whether anything changed.
pub fn merge(held: &mut BTreeMap<String, pb::DcState>, states: &[pb::DcState]) -> bool {
    let mut changed = false;
    for s in states {
        if held.get(&s.dc).is_none_or(|h| supersedes(s, h)) {
            held.insert(s.dc.clone(), s.clone());
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dc: &str, down: bool, hlc: u64) -> pb::DcState {
        pb::DcState {
            dc: dc.into(),
            down,
            hlc,
        }
    }

    #[test]
    fn newest_wins_and_ties_go_down_in_any_order() {
        let a = [
            state("dc1", true, 5),
            state("dc1", false, 5),
            state("dc1", false, 4),
        ];
        for order in [[0, 1, 2], [1, 2, 0], [2, 1, 0]] {
            let mut held = BTreeMap::new();
            for i in order {
                merge(&mut held, std::slice::from_ref(&a[i]));
            }
            assert_eq!(held["dc1"], a[0]);
        }
        let mut held = BTreeMap::new();
        assert!(merge(&mut held, &[state("dc2", false, 9)]));
        assert!(!merge(&mut held, &[state("dc2", false, 9)]));
    }
}
