//! Document versions as clients see them (`dc1@1:5.dc2@1:3`, a version vector), compared
//! causally: a state "covers" a write when its vector has seen every event of the write's.

use std::collections::BTreeMap;

/// A parsed version vector: counter per actor (`dc@epoch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(BTreeMap<String, u64>);

impl Version {
    /// Parses a version string; `None` if it is malformed.
    pub fn parse(s: &str) -> Option<Version> {
        let mut out = BTreeMap::new();
        for entry in s.split('.') {
            let (actor, counter) = entry.rsplit_once(':')?;
            if !actor.contains('@') {
                return None;
            }
            out.insert(actor.to_string(), counter.parse().ok()?);
        }
        Some(Version(out))
    }

    /// Whether this version has seen everything `other` has (equal or causally later).
    pub fn covers(&self, other: &Version) -> bool {
        other
            .0
            .iter()
            .all(|(actor, n)| self.0.get(actor).is_some_and(|m| m >= n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_is_causal() {
        let a = Version::parse("dc1@1:2").unwrap();
        let b = Version::parse("dc1@1:2.dc2@1:1").unwrap();
        let c = Version::parse("dc2@1:4").unwrap();
        assert!(b.covers(&a) && a.covers(&a));
        assert!(!a.covers(&b));
        assert!(!c.covers(&a) && !a.covers(&c));
        assert!(Version::parse("nope").is_none());
    }
}
