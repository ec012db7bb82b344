//! What every document may look like once the DCs have converged, from what the clients
//! were told. Each document has one writer at a time, so its acknowledged operations are
//! ordered; an operation whose outcome is unknown leaves both its before and after states
//! possible, and its document takes no further writes (so nothing else depends on it).

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::{Map, Value};

use super::api::Api;
use crate::faults::version::Version;

/// Reads of the final check in flight at once.
const PARALLEL_READS: usize = 16;

/// One state a document may end in.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Deleted (or never written).
    Absent,
    /// Live with exactly this body.
    Body(Value),
}

/// A `siblings` document: what its last delete saw, to tell a resurrection from an update
/// the delete could not see (API.md: a delete concurrent with an update keeps the update).
#[derive(Debug, Clone, Default)]
pub struct Siblings {
    /// Every write acknowledged (or unknown), with its version when known.
    pub writes: Vec<(Value, Option<Version>)>,
    /// The version the last acknowledged delete was conditioned on (`If-Match`).
    pub deleted_at: Option<Version>,
}

/// What one document may end as.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The state after the last acknowledged operation.
    pub acked: State,
    /// States of later operations whose outcome is unknown.
    pub maybe: Vec<State>,
    /// For `siblings` collections: the history that decides which live states are allowed.
    pub siblings: Option<Siblings>,
    /// Set once an operation's outcome was unknown: the document takes no more writes.
    pub retired: bool,
    /// States of operations answered with an error that says nothing was written.
    pub refused: Vec<State>,
    /// The version (as the server wrote it) of the last acknowledged write.
    pub last_version: Option<String>,
}

/// How a document's final state compares with what its clients were told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An allowed state.
    Fine,
    /// An acknowledged write is missing.
    Lost,
    /// Live where only absent is allowed: an acknowledged delete undone.
    Resurrected,
    /// The state a write answered with a definite error (404, 412, `already_exists`) would
    /// have left: it was applied after all.
    AppliedDespiteError,
}

impl Expect {
    /// A document that does not exist yet.
    pub fn new(siblings: bool) -> Expect {
        Expect {
            acked: State::Absent,
            maybe: Vec::new(),
            siblings: siblings.then(Siblings::default),
            retired: false,
            refused: Vec::new(),
            last_version: None,
        }
    }

    /// Records an operation answered with an error that says nothing was written; it would
    /// have left `state`.
    pub fn refused(&mut self, state: State) {
        self.refused.push(state);
    }

    /// Records an acknowledged operation that left the document in `state`.
    pub fn done(&mut self, state: State) {
        self.acked = state;
    }

    /// Records an operation whose outcome is unknown: it may have left `state`.
    pub fn unknown(&mut self, state: State) {
        self.maybe.push(state);
        self.retired = true;
    }

    /// How a final answer (status, body) compares with what the clients were told.
    fn judge(&self, status: u16, body: &Value) -> Verdict {
        let seen = match status {
            200 => State::Body(body["data"].clone()),
            404 => State::Absent,
            _ => return Verdict::Lost,
        };
        if seen == self.acked || self.maybe.contains(&seen) {
            return Verdict::Fine;
        }
        if seen != State::Absent && self.refused.contains(&seen) {
            return Verdict::AppliedDespiteError;
        }
        if let (Some(s), State::Body(data), State::Absent) = (&self.siblings, &seen, &self.acked) {
            // A write the last delete did not see survives it (add-wins).
            let concurrent = s.writes.iter().any(|(w, v)| {
                w == data
                    && match (v, &s.deleted_at) {
                        (Some(v), Some(d)) => !d.covers(v),
                        _ => true,
                    }
            });
            if concurrent {
                return Verdict::Fine;
            }
        }
        let only_absent =
            self.acked == State::Absent && self.maybe.iter().all(|m| *m == State::Absent);
        if only_absent && seen != State::Absent {
            Verdict::Resurrected
        } else {
            Verdict::Lost
        }
    }
}

/// Every tracked document, by (collection, id).
pub type Ledger = BTreeMap<(String, String), Expect>;

/// What the final reads found.
#[derive(Debug, Default)]
pub struct Found {
    /// Documents (per DC) missing an acknowledged write.
    pub lost: u64,
    /// Documents (per DC) live again after an acknowledged delete.
    pub resurrected: u64,
    /// Documents (per DC) in the state of a write answered with a definite error.
    pub applied_despite_error: u64,
    /// The first problems, for people.
    pub problems: Vec<String>,
}

/// Reads every document of `ledger` through every gateway and judges it.
pub async fn check(api: &Api, gateways: &[String], ledger: &Ledger) -> Found {
    let reads = ledger.iter().flat_map(|((c, id), expect)| {
        gateways.iter().map(move |gw| async move {
            let url = format!("{gw}/v1/collections/{c}/docs/{id}");
            let (status, body) = api.get(&url, &[]).await;
            (c, id, gw, expect, status, body)
        })
    });
    let mut found = Found::default();
    let mut results = futures::stream::iter(reads).buffer_unordered(PARALLEL_READS);
    while let Some((c, id, gw, expect, status, body)) = results.next().await {
        let verdict = expect.judge(status, &body);
        if verdict != Verdict::Fine {
            match verdict {
                Verdict::Resurrected => found.resurrected += 1,
                Verdict::AppliedDespiteError => found.applied_despite_error += 1,
                _ => found.lost += 1,
            }
            if found.problems.len() < 20 {
                found.problems.push(format!(
                    "{c}/{id} via {gw}: {status} {}; expected {:?} (or {:?})",
                    body["data"], expect.acked, expect.maybe
                ));
            }
        }
    }
    found
}

/// A body as an object (what a `field_merge` model updates).
pub fn object(v: &State) -> Map<String, Value> {
    match v {
        State::Body(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn judges_lost_resurrected_and_unknown_outcomes() {
        let mut e = Expect::new(false);
        e.done(State::Body(json!({"v": 1})));
        assert_eq!(e.judge(200, &json!({"data": {"v": 1}})), Verdict::Fine);
        assert_eq!(e.judge(404, &Value::Null), Verdict::Lost);
        e.refused(State::Body(json!({"v": 9})));
        assert_eq!(
            e.judge(200, &json!({"data": {"v": 9}})),
            Verdict::AppliedDespiteError
        );
        e.done(State::Absent);
        assert_eq!(
            e.judge(200, &json!({"data": {"v": 1}})),
            Verdict::Resurrected
        );
        e.unknown(State::Body(json!({"v": 2})));
        assert_eq!(e.judge(200, &json!({"data": {"v": 2}})), Verdict::Fine);
        assert_eq!(e.judge(404, &Value::Null), Verdict::Fine);
        assert_eq!(e.judge(200, &json!({"data": {"v": 1}})), Verdict::Lost);
    }

    #[test]
    fn a_siblings_delete_keeps_updates_it_did_not_see() {
        let mut e = Expect::new(true);
        let s = e.siblings.as_mut().unwrap();
        s.writes.push((json!({"v": 1}), Version::parse("dc2@1:1")));
        s.writes.push((json!({"v": 2}), Version::parse("dc1@1:1")));
        s.deleted_at = Version::parse("dc1@1:1");
        e.done(State::Absent);
        assert_eq!(
            e.judge(200, &json!({"data": {"v": 1}})),
            Verdict::Fine,
            "concurrent"
        );
        assert_eq!(
            e.judge(200, &json!({"data": {"v": 2}})),
            Verdict::Resurrected,
            "seen"
        );
    }
}
