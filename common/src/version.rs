//! Version vectors with `dc@epoch` actors, and their string form (`dc1@1:3.dc2@1:1`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use aerolith_proto::internal::v1 as pb;

use crate::error::{Error, Result};
use crate::name::validate_dc;

/// A version-vector actor: a DC in one epoch of its store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Actor {
    /// The DC id.
    pub dc: String,
    /// The epoch: renewed whenever the store cannot prove it is continuous.
    pub epoch: u32,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.dc, self.epoch)
    }
}

/// How two version vectors relate causally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Identical vectors.
    Equal,
    /// The left vector strictly descends from the right.
    Dominates,
    /// The right vector strictly descends from the left.
    Dominated,
    /// Neither descends from the other.
    Concurrent,
}

/// A version vector: per actor, the number of writes it made to the document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(BTreeMap<Actor, u64>);

impl VersionVector {
    /// The empty vector (no write seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of an actor (0 if absent).
    pub fn get(&self, actor: &Actor) -> u64 {
        self.0.get(actor).copied().unwrap_or(0)
    }

    /// True when no actor has written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Records one more write by `actor`.
    pub fn increment(&mut self, actor: &Actor) {
        *self.0.entry(actor.clone()).or_insert(0) += 1;
    }

    /// Records one more write by `actor`, counted past `floor` too: the new counter exceeds
    /// both the vector's entry and every counter the actor issued up to `floor`.
    pub fn increment_past(&mut self, actor: &Actor, floor: u64) {
        let e = self.0.entry(actor.clone()).or_insert(0);
        *e = (*e).max(floor) + 1;
    }

    /// The pointwise maximum of two vectors.
    pub fn join(&self, other: &VersionVector) -> VersionVector {
        let mut out = self.0.clone();
        for (a, c) in &other.0 {
            let e = out.entry(a.clone()).or_insert(0);
            *e = (*e).max(*c);
        }
        VersionVector(out)
    }

    /// Compares two vectors causally.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut greater = false;
        let mut less = false;
        for a in self.0.keys().chain(other.0.keys()) {
            match self.get(a).cmp(&other.get(a)) {
                Ordering::Greater => greater = true,
                Ordering::Less => less = true,
                Ordering::Equal => {}
            }
        }
        match (greater, less) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Dominates,
            (false, true) => Causality::Dominated,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Parses the string form used as the document `version`.
    pub fn parse(s: &str) -> Result<VersionVector> {
        let bad = || Error::invalid(format!("malformed version {s:?}"));
        let mut out = BTreeMap::new();
        if s.is_empty() {
            return Err(bad());
        }
        for part in s.split('.') {
            let (actor, counter) = part.rsplit_once(':').ok_or_else(bad)?;
            let (dc, epoch) = actor.split_once('@').ok_or_else(bad)?;
            validate_dc(dc).map_err(|_| bad())?;
            let epoch: u32 = epoch.parse().map_err(|_| bad())?;
            let counter: u64 = counter.parse().map_err(|_| bad())?;
            if counter == 0 {
                return Err(bad());
            }
            let actor = Actor {
                dc: dc.to_owned(),
                epoch,
            };
            if out.insert(actor, counter).is_some() {
                return Err(bad());
            }
        }
        Ok(VersionVector(out))
    }

    /// Converts from the wire form; entries with a zero counter are dropped.
    pub fn from_proto(p: Option<&pb::VersionVector>) -> VersionVector {
        let mut out = BTreeMap::new();
        for e in p.map(|p| p.entries.as_slice()).unwrap_or_default() {
            if e.counter > 0 {
                out.insert(
                    Actor {
                        dc: e.dc.clone(),
                        epoch: e.epoch,
                    },
                    e.counter,
                );
            }
        }
        VersionVector(out)
    }

    /// Converts to the wire form (entries sorted by actor).
    pub fn to_proto(&self) -> pb::VersionVector {
        pb::VersionVector {
            entries: self
                .0
                .iter()
                .map(|(a, c)| pb::VvEntry {
                    dc: a.dc.clone(),
                    epoch: a.epoch,
                    counter: *c,
                })
                .collect(),
        }
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, c)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}:{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(dc: &str, epoch: u32) -> Actor {
        Actor {
            dc: dc.into(),
            epoch,
        }
    }

    fn vv(entries: &[(&str, u32, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for (dc, e, n) in entries {
            for _ in 0..*n {
                v.increment(&actor(dc, *e));
            }
        }
        v
    }

    #[test]
    fn string_form_round_trips() {
        let v = vv(&[("dc2", 1, 1), ("dc1", 1, 3)]);
        assert_eq!(v.to_string(), "dc1@1:3.dc2@1:1");
        assert_eq!(VersionVector::parse("dc1@1:3.dc2@1:1").unwrap(), v);
        for bad in [
            "",
            "dc1",
            "dc1@1",
            "dc1@x:1",
            "dc1@1:0",
            "DC@1:1",
            "dc1@1:1.dc1@1:2",
            "dc1@1:1.",
        ] {
            assert!(VersionVector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compare_cases() {
        let a = vv(&[("dc1", 1, 2)]);
        let b = vv(&[("dc1", 1, 1)]);
        let c = vv(&[("dc1", 1, 1), ("dc2", 1, 1)]);
        assert_eq!(a.compare(&a.clone()), Causality::Equal);
        assert_eq!(a.compare(&b), Causality::Dominates);
        assert_eq!(b.compare(&a), Causality::Dominated);
        assert_eq!(a.compare(&c), Causality::Concurrent);
        assert_eq!(c.compare(&b), Causality::Dominates);
        assert_eq!(VersionVector::new().compare(&b), Causality::Dominated);
        let j = a.join(&c);
        assert_eq!(j.to_string(), "dc1@1:2.dc2@1:1");
        assert_eq!(j.compare(&a), Causality::Dominates);
        assert_eq!(j.compare(&c), Causality::Dominates);
    }

    #[test]
    fn epochs_are_distinct_actors() {
        let a = vv(&[("dc1", 1, 5)]);
        let b = vv(&[("dc1", 2, 1)]);
        assert_eq!(a.compare(&b), Causality::Concurrent);
        let p = a.join(&b).to_proto();
        assert_eq!(VersionVector::from_proto(Some(&p)), a.join(&b));
    }
}
