//! The secondary indexes this gateway has seen built on every node of its DC (issue 24: an
//! index is used only once ready in every node of the DC that serves the query).
//!
//! Built stays built (a definition's stamp names one index for its whole life; a drop or
//! a re-creation has another stamp), so the set only grows: it learns from the index list
//! (`state: ready`) and from query answers, in which every node names the live indexes it
//! has built that the query did not list. Queries list what the set holds as usable.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use aerolith_common::pb;

/// Index stamps known built DC-wide, per collection.
#[derive(Debug, Default)]
pub struct BuiltIndexes(Mutex<HashMap<String, HashSet<(u64, String)>>>);

impl BuiltIndexes {
    /// The stamps a query on `collection` may use.
    pub fn usable(&self, collection: &str) -> Vec<pb::IndexStamp> {
        let held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.get(collection)
            .map(|set| {
                set.iter()
                    .map(|(hlc, dc)| pb::IndexStamp {
                        hlc: *hlc,
                        dc: dc.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records `stamp` as built on every node of the DC.
    pub fn mark(&self, collection: &str, stamp: &pb::IndexStamp) {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.entry(collection.to_owned())
            .or_default()
            .insert((stamp.hlc, stamp.dc.clone()));
    }

    /// Records the stamps every one of `answers` (one per node the query went to) reports
    /// built.
    pub fn learn<'a>(
        &self,
        collection: &str,
        answers: impl IntoIterator<Item = &'a [pb::IndexStamp]>,
    ) {
        let mut answers = answers.into_iter();
        let Some(first) = answers.next() else { return };
        let mut common: Vec<&pb::IndexStamp> = first.iter().collect();
        for other in answers {
            common.retain(|s| other.contains(s));
        }
        for s in common {
            self.mark(collection, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(hlc: u64) -> pb::IndexStamp {
        pb::IndexStamp {
            hlc,
            dc: "dc1".into(),
        }
    }

    #[test]
    fn only_what_every_node_built_becomes_usable() {
        let b = BuiltIndexes::default();
        b.learn("c", [&[stamp(1), stamp(2)][..], &[stamp(2)][..]]);
        assert_eq!(b.usable("c"), vec![stamp(2)]);
        assert!(b.usable("other").is_empty());
        b.learn("c", std::iter::empty());
        b.mark("c", &stamp(1));
        let mut all = b.usable("c");
        all.sort_by_key(|s| s.hlc);
        assert_eq!(all, vec![stamp(1), stamp(2)]);
    }
}
