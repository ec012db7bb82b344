//! The workloads of the fault classes. Every worker owns its documents (and, in the
//! `collections` class, its collections), writes each one operation at a time, and records
//! in a [`Ledger`] what each may end as. Between two writes of one document through
//! different DCs a worker waits a little, so their timestamps order like the writes (one
//! machine, one clock: last-writer-wins then means the last acknowledged write).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::Class;
use super::api::{Api, Outcome};
use super::ledger::{Expect, Ledger, State, object};
use crate::faults::cluster::ProcCluster;
use crate::faults::version::Version;

/// Pause between two operations of a worker.
const GAP: Duration = Duration::from_millis(3);
/// Operations on one document before a worker moves on to a new one.
const OPS_PER_DOC: u32 = 12;
/// Documents a worker keeps in play at once.
const DOCS_IN_PLAY: usize = 8;
/// How long (ms, at random in this range) a `recreate` document stays deleted before it is
/// created again: long enough for its tombstone to be collected in between (peers
/// acknowledge every second).
const RECREATE_AFTER_MS: std::ops::Range<u64> = 2_500..5_000;
/// Attempts of one `idempotent-creates` create before it is given up (unknown).
const CREATE_ATTEMPTS: usize = 60;
/// Deadline of `three-dcs` writes under `all` and of its session reads: shorter than a
/// fault's hold, so a DC that only a cut link could bring the write to fails them.
const THREE_DCS_DEADLINE_MS: u64 = 2_000;
/// The deadline of the `reshard` class's writes.
const RESHARD_DEADLINE_MS: u64 = 8_000;

/// What workers did and saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent.
    pub operations: u64,
    /// Requests acknowledged.
    pub acknowledged: u64,
    /// Requests refused or unanswered.
    pub failed: u64,
    /// What every document may end as.
    pub ledger: Ledger,
    /// Collections to compare across DCs at the end.
    pub collections: Vec<String>,
    /// Session reads that showed an older state than the session's own write.
    pub stale_session_reads: u64,
    /// `all` writes not confirmed within their deadline.
    pub unconfirmed_all_writes: u64,
    /// Session writes that acted on an older state than the session's own writes.
    pub stale_session_writes: u64,
    /// Answers saying a write's outcome is unknown.
    pub outcome_unknown: u64,
    /// Creates (each under an idempotency key of its own) and what became of each.
    pub creates: Vec<Create>,
    /// The first problems seen on the spot.
    pub problems: Vec<String>,
}

/// One logical create of the `idempotent-creates` class, retried under one key.
#[derive(Debug, Clone)]
pub struct Create {
    /// The body (unique to the create).
    pub body: Value,
    /// Acknowledged (by some attempt).
    pub acked: bool,
    /// Refused with an error that says nothing was written (and never acknowledged).
    pub refused: bool,
}

impl Tally {
    /// Adds another worker's tally.
    pub fn merge(&mut self, other: Tally) {
        self.operations += other.operations;
        self.acknowledged += other.acknowledged;
        self.failed += other.failed;
        self.ledger.extend(other.ledger);
        for c in other.collections {
            if !self.collections.contains(&c) {
                self.collections.push(c);
            }
        }
        self.stale_session_reads += other.stale_session_reads;
        self.unconfirmed_all_writes += other.unconfirmed_all_writes;
        self.stale_session_writes += other.stale_session_writes;
        self.outcome_unknown += other.outcome_unknown;
        self.creates.extend(other.creates);
        self.problems.extend(other.problems);
        self.problems.truncate(20);
    }

    fn count(&mut self, outcome: &Outcome) {
        self.operations += 1;
        match outcome {
            Outcome::Done(..) => self.acknowledged += 1,
            _ => self.failed += 1,
        }
        if outcome.outcome_unknown() {
            self.outcome_unknown += 1;
        }
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < 20 {
            self.problems.push(p);
        }
    }
}

/// The collections a class's workload writes, with their strategies.
fn collections(class: Class) -> &'static [(&'static str, &'static str)] {
    match class {
        Class::Recreate
        | Class::WipedNode
        | Class::ThreeDcs
        | Class::Sigterm
        | Class::SessionWrites
        | Class::IdempotentCreates
        | Class::Reshard => &[("docs", "lww")],
        Class::MergeDeletes => &[("fm", "field_merge"), ("sb", "siblings")],
        Class::Collections => &[],
        Class::ClockBack => &[("cb", "field_merge")],
    }
}

/// Creates the class's collections and waits until every DC serves them.
pub async fn prepare(class: Class, api: &Api, cluster: &ProcCluster) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    for (name, strategy) in collections(class) {
        loop {
            let url = format!("{}/v1/collections/{name}", cluster.http[0]);
            let created = matches!(
                api.put(&url, json!({"conflict_strategy": strategy}), &[])
                    .await,
                Outcome::Done(..)
            );
            let mut everywhere = created;
            for gw in &cluster.http {
                everywhere &= api.get(&format!("{gw}/v1/collections/{name}"), &[]).await.0 == 200;
            }
            if everywhere {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "collection {name} did not reach every DC within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// One worker of a class.
pub struct Worker {
    /// Its class.
    pub class: Class,
    /// Its number (part of its ids).
    pub n: usize,
    /// Its random choices.
    pub seed: u64,
    /// Every DC's gateway, in DC order.
    pub gateways: Vec<String>,
    /// What the nemesis tells the workers.
    pub flags: Arc<Flags>,
    /// The client.
    pub api: Api,
}

/// What the nemesis tells the workers while a fault is on.
#[derive(Debug, Default)]
pub struct Flags {
    /// No request may be sent (a node and its gateway restart, and writes meanwhile would
    /// fail over to another DC).
    pub hush: AtomicBool,
    /// Until when (ms since the epoch) a storage node killed on purpose may make an `all`
    /// write miss its confirmation (API.md: `all` waits for every DC not marked down, and a
    /// DC whose owner is down cannot confirm).
    pub node_down_until_ms: std::sync::atomic::AtomicU64,
}

impl Flags {
    /// Whether a node killed on purpose may be down now (or was, within a write's deadline).
    pub fn node_down(&self) -> bool {
        aerolith_common::time::now_ms() < self.node_down_until_ms.load(Ordering::Relaxed)
    }
}

/// A document in play: its id, and operations made on it so far.
struct Doc {
    id: String,
    ops: u32,
    /// No operation before this (a `recreate` document waiting to be created again).
    not_before: std::time::Instant,
}

impl Worker {
    /// Runs until `stop` is set.
    pub async fn run(self, stop: Arc<AtomicBool>) -> Tally {
        let mut t = Tally {
            collections: collections(self.class)
                .iter()
                .map(|(c, _)| c.to_string())
                .collect(),
            ..Tally::default()
        };
        let mut rng = StdRng::seed_from_u64(self.seed);
        match self.class {
            Class::Collections => self.collections_loop(&mut t, &mut rng, &stop).await,
            Class::IdempotentCreates => self.creates_loop(&mut t, &stop).await,
            _ => self.documents_loop(&mut t, &mut rng, &stop).await,
        }
        t
    }

    fn url(&self, dc: usize, collection: &str, id: &str) -> String {
        format!(
            "{}/v1/collections/{collection}/docs/{id}",
            self.gateways[dc]
        )
    }

    /// Writes documents until stopped, keeping a few in play and replacing each after
    /// [`OPS_PER_DOC`] operations or an unknown outcome.
    async fn documents_loop(&self, t: &mut Tally, rng: &mut StdRng, stop: &AtomicBool) {
        let mut next = 0u64;
        // The `session-writes` class's session token, carried from answer to request.
        let mut session = String::new();
        let mut docs: Vec<(String, Doc)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if self.flags.hush.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            if docs.len() < DOCS_IN_PLAY {
                let cs = collections(self.class);
                let (c, strategy) = cs[rng.random_range(0..cs.len())];
                next += 1;
                let id = format!("w{}-{next}", self.n);
                t.ledger.insert(
                    (c.to_string(), id.clone()),
                    Expect::new(strategy == "siblings"),
                );
                docs.push((
                    c.to_string(),
                    Doc {
                        id,
                        ops: 0,
                        not_before: std::time::Instant::now(),
                    },
                ));
            }
            let i = rng.random_range(0..docs.len());
            let (c, doc) = &mut docs[i];
            if doc.not_before > std::time::Instant::now() {
                tokio::time::sleep(GAP).await;
                continue;
            }
            next += 1;
            let key = (c.clone(), doc.id.clone());
            match self.class {
                Class::MergeDeletes if c == "fm" => {
                    self.field_merge_op(t, rng, &key, doc.ops, next).await
                }
                Class::MergeDeletes => self.siblings_op(t, rng, &key, next).await,
                Class::ClockBack => self.clock_back_op(t, &key, doc.ops, next).await,
                Class::ThreeDcs => self.three_dcs_op(t, rng, &key, next).await,
                // Writes (half under `all`) with session reads in the other DC, and deletes.
                Class::Reshard if rng.random_bool(0.6) => {
                    self.three_dcs_op(t, rng, &key, next).await
                }
                Class::Sigterm => self.conditional_op(t, rng, &key, next).await,
                Class::SessionWrites => self.session_op(t, rng, &mut session, &key, next).await,
                _ => self.lww_op(t, rng, &key, next).await,
            }
            doc.ops += 1;
            if self.class == Class::Recreate {
                if t.ledger[&key].acked == State::Absent {
                    let wait = Duration::from_millis(rng.random_range(RECREATE_AFTER_MS));
                    doc.not_before = std::time::Instant::now() + wait;
                }
                // dc1 keeps writing in every shard, so dc2 (which cannot see those writes
                // while dc1's shipping is paused) cannot collect its own copy of a tombstone
                // that dc1 collects.
                next += 1;
                let filler = (c.clone(), format!("fill{}-{}", self.n, next % 64));
                t.ledger
                    .entry(filler.clone())
                    .or_insert_with(|| Expect::new(false));
                if !t.ledger[&filler].retired {
                    let body = json!({"n": next});
                    let outcome = self
                        .api
                        .put(&self.url(0, &filler.0, &filler.1), body.clone(), &[])
                        .await;
                    self.record(t, &filler, &outcome, State::Body(body));
                }
            }
            let retired = t.ledger.get(&key).is_some_and(|e| e.retired);
            if retired || doc.ops >= OPS_PER_DOC {
                docs.swap_remove(i);
            }
            tokio::time::sleep(GAP).await;
        }
    }

    /// `recreate` and `wiped-node`: PUT (a create or a re-create) or DELETE; `recreate`
    /// writes through dc1 only (its nemesis pauses dc1's shipping), `wiped-node` through
    /// either DC under write concern `all` (a `local` write whose only disk is wiped before
    /// it was shipped is lost by design, API.md's durability paragraph).
    async fn lww_op(&self, t: &mut Tally, rng: &mut StdRng, key: &(String, String), n: u64) {
        let (dc, headers) = match self.class {
            Class::WipedNode => (
                rng.random_range(0..self.gateways.len()),
                vec![
                    ("x-aerolith-write-concern", "all".to_string()),
                    ("x-aerolith-timeout-ms", "8000".to_string()),
                ],
            ),
            _ => (0, Vec::new()),
        };
        let url = self.url(dc, &key.0, &key.1);
        let live = t.ledger[key].acked != State::Absent;
        let (outcome, after) = if live && rng.random_bool(0.5) {
            (self.api.delete(&url, &headers).await, State::Absent)
        } else {
            let body = json!({"n": n});
            let outcome = self.api.put(&url, body.clone(), &headers).await;
            (outcome, State::Body(body))
        };
        self.record(t, key, &outcome, after);
    }

    /// `merge-deletes` on a `field_merge` document: PATCH one field or DELETE, through either
    /// DC. A PATCH on a document its DC holds deleted answers 404 and writes nothing; one on
    /// a document its DC still holds (a delete elsewhere not seen yet) writes only that
    /// field, which outlives the delete, as every field written after it does.
    async fn field_merge_op(
        &self,
        t: &mut Tally,
        rng: &mut StdRng,
        key: &(String, String),
        ops: u32,
        n: u64,
    ) {
        let dc = rng.random_range(0..self.gateways.len());
        let url = self.url(dc, &key.0, &key.1);
        let acked = t.ledger[key].acked.clone();
        if ops == 0 {
            // The first write creates the document; a deleted one is not created again (its
            // fields come back only through PATCHes of DCs that had not seen the delete).
            let body = json!({"f0": n});
            let outcome = self.api.put(&url, body.clone(), &[]).await;
            self.record(t, key, &outcome, State::Body(body));
            return;
        }
        if rng.random_bool(0.2) {
            let outcome = self.api.delete(&url, &[]).await;
            self.record(t, key, &outcome, State::Absent);
        } else {
            // A field name of its own: the other DC has not seen it (the case a delete there
            // must still remove).
            let field = format!("f{n}");
            let outcome = self.api.patch(&url, json!({ &field: n })).await;
            let mut fields = object(&acked);
            fields.insert(field, json!(n));
            self.record(t, key, &outcome, State::Body(Value::Object(fields)));
        }
    }

    /// `merge-deletes` on a `siblings` document: PUT through either DC, or DELETE with
    /// `If-Match` on the last acknowledged version.
    async fn siblings_op(&self, t: &mut Tally, rng: &mut StdRng, key: &(String, String), n: u64) {
        let dc = rng.random_range(0..self.gateways.len());
        let url = self.url(dc, &key.0, &key.1);
        let last = t.ledger[key].last_version.clone();
        let live = t.ledger[key].acked != State::Absent;
        if live && rng.random_bool(0.25) {
            let Some(version) = last else { return };
            let outcome = self
                .api
                .delete(&url, &[("if-match", format!("\"{version}\""))])
                .await;
            if let Outcome::Done(..) = outcome
                && let Some(s) = t.ledger.get_mut(key).and_then(|e| e.siblings.as_mut())
            {
                s.deleted_at = Version::parse(&version);
            }
            self.record(t, key, &outcome, State::Absent);
        } else {
            let body = json!({"n": n});
            let outcome = self.api.put(&url, body.clone(), &[]).await;
            let version = outcome
                .body()
                .and_then(|b| b["version"].as_str())
                .map(str::to_string);
            let known = !matches!(outcome, Outcome::Refused(_));
            if known && let Some(s) = t.ledger.get_mut(key).and_then(|e| e.siblings.as_mut()) {
                s.writes
                    .push((body.clone(), version.as_deref().and_then(Version::parse)));
            }
            self.remember_version(t, key, &outcome);
            self.record(t, key, &outcome, State::Body(body));
        }
    }

    /// `clock-back` on a `field_merge` document: field `a` is written through dc1 only and
    /// field `b` through dc2 only, so each field's writes are ordered by one DC's clock (the
    /// one the nemesis steps back, for `a`).
    async fn clock_back_op(&self, t: &mut Tally, key: &(String, String), ops: u32, n: u64) {
        let acked = t.ledger[key].acked.clone();
        let (dc, patch) = match ops {
            0 => (0, None),
            o if o % 2 == 1 => (0, Some("a")),
            _ => (1, Some("b")),
        };
        let url = self.url(dc, &key.0, &key.1);
        match patch {
            None => {
                let body = json!({"a": n, "b": n});
                let outcome = self.api.put(&url, body.clone(), &[]).await;
                self.record(t, key, &outcome, State::Body(body));
            }
            Some(field) => {
                if acked == State::Absent {
                    return;
                }
                let outcome = self.api.patch(&url, json!({ field: n })).await;
                let mut fields = object(&acked);
                fields.insert(field.to_string(), json!(n));
                self.record(t, key, &outcome, State::Body(Value::Object(fields)));
            }
        }
    }

    /// `three-dcs`: a write through dc1 (half of them under write concern `all`, which dc3
    /// must confirm through dc2's forwarded copy), then a session read of it through dc3.
    async fn three_dcs_op(&self, t: &mut Tally, rng: &mut StdRng, key: &(String, String), n: u64) {
        let all = rng.random_bool(0.5);
        let body = json!({"n": n});
        // A `reshard` write may wait out a shard move's pause.
        let deadline = match self.class {
            Class::Reshard => RESHARD_DEADLINE_MS,
            _ => THREE_DCS_DEADLINE_MS,
        };
        let mut headers = vec![("x-aerolith-timeout-ms", deadline.to_string())];
        if all {
            headers.push(("x-aerolith-write-concern", "all".to_string()));
        }
        let outcome = self
            .api
            .put(&self.url(0, &key.0, &key.1), body.clone(), &headers)
            .await;
        // `reshard` kills nodes mid-move: a write in flight to one is answered as of
        // unknown outcome (allowed, counted), and an `all` write may not be confirmed
        // while a DC's owner is down; any other failure of an `all` write is a problem.
        let killed =
            self.class == Class::Reshard && (outcome.outcome_unknown() || self.flags.node_down());
        if let Outcome::Unknown(answer) = &outcome
            && all
            && !killed
        {
            t.unconfirmed_all_writes += 1;
            t.problem(format!(
                "{}/{}: an `all` write was not confirmed ({answer})",
                key.0, key.1
            ));
        }
        let session = match &outcome {
            Outcome::Done(_, _, s) => s.clone(),
            _ => None,
        };
        self.record(t, key, &outcome, State::Body(body.clone()));
        let Some(session) = session else { return };
        let last = self.gateways.len() - 1;
        let (status, read) = self
            .api
            .get(
                &self.url(last, &key.0, &key.1),
                &[
                    ("x-aerolith-session", session),
                    ("x-aerolith-timeout-ms", THREE_DCS_DEADLINE_MS.to_string()),
                ],
            )
            .await;
        t.operations += 1;
        if status != 200 || read["data"] != body {
            t.stale_session_reads += 1;
            t.problem(format!(
                "{}/{}: session read through dc{} answered {status} {}",
                key.0,
                key.1,
                last + 1,
                read["data"]
            ));
        }
    }

    /// `sigterm`: writes whose preconditions give definite errors when a retry meets the
    /// first attempt's effect: a create with `If-None-Match: *` (`already_exists`), a
    /// replace with `If-Match` on the last acknowledged version (`precondition_failed`), a
    /// delete (`not_found`); through either DC.
    async fn conditional_op(
        &self,
        t: &mut Tally,
        rng: &mut StdRng,
        key: &(String, String),
        n: u64,
    ) {
        let url = self.url(rng.random_range(0..self.gateways.len()), &key.0, &key.1);
        let version = t.ledger[key].last_version.clone();
        let body = json!({"n": n});
        let (outcome, after) = match (&t.ledger[key].acked, version) {
            (State::Absent, _) | (_, None) => {
                let h = [("if-none-match", "*".to_string())];
                (
                    self.api.put(&url, body.clone(), &h).await,
                    State::Body(body),
                )
            }
            (State::Body(_), Some(v)) if rng.random_bool(0.6) => {
                let h = [("if-match", format!("\"{v}\""))];
                (
                    self.api.put(&url, body.clone(), &h).await,
                    State::Body(body),
                )
            }
            _ => (self.api.delete(&url, &[]).await, State::Absent),
        };
        self.remember_version(t, key, &outcome);
        self.record(t, key, &outcome, after);
    }

    /// Keeps the version a write answered (the next `If-Match`); a delete clears it.
    fn remember_version(&self, t: &mut Tally, key: &(String, String), outcome: &Outcome) {
        if let (Some(e), Outcome::Done(_, body, _)) = (t.ledger.get_mut(key), outcome) {
            e.last_version = body["version"].as_str().map(str::to_string);
        }
    }

    /// `session-writes`: one session writes through dc1 only: a create, then PATCHes of new
    /// fields and `If-Match` replaces on its own last version. A PATCH or replace answered
    /// 404 or 412, or a PATCH whose answer lacks a field the session wrote, acted on a state
    /// older than the session's own writes: a stale session write.
    async fn session_op(
        &self,
        t: &mut Tally,
        rng: &mut StdRng,
        session: &mut String,
        key: &(String, String),
        n: u64,
    ) {
        let url = self.url(0, &key.0, &key.1);
        let mut headers = vec![("x-aerolith-timeout-ms", "3000".to_string())];
        if !session.is_empty() {
            headers.push(("x-aerolith-session", session.clone()));
        }
        let acked = t.ledger[key].acked.clone();
        let version = t.ledger[key].last_version.clone();
        let (kind, outcome, after) = match (&acked, version) {
            (State::Absent, _) | (_, None) => {
                let body = json!({"f0": n});
                let outcome = self.api.put(&url, body.clone(), &headers).await;
                ("create", outcome, State::Body(body))
            }
            (State::Body(_), Some(v)) if rng.random_bool(0.3) => {
                let body = json!({"f0": n});
                headers.push(("if-match", format!("\"{v}\"")));
                let outcome = self.api.put(&url, body.clone(), &headers).await;
                ("replace", outcome, State::Body(body))
            }
            _ => {
                let field = format!("f{n}");
                let mut fields = object(&acked);
                fields.insert(field.clone(), json!(n));
                let outcome = self
                    .api
                    .send(
                        reqwest::Method::PATCH,
                        &url,
                        Some(("application/merge-patch+json", json!({ &field: n }))),
                        &headers,
                    )
                    .await;
                ("patch", outcome, State::Body(Value::Object(fields)))
            }
        };
        let stale = match &outcome {
            Outcome::Refused(404 | 412) => kind != "create",
            Outcome::Done(_, body, _) => match &after {
                // The answer must hold every field the session has written.
                State::Body(Value::Object(want)) => {
                    want.iter().any(|(k, v)| body["data"].get(k) != Some(v))
                }
                _ => false,
            },
            _ => false,
        };
        if stale {
            t.stale_session_writes += 1;
            t.problem(format!(
                "{}/{}: a session {kind} acted on a stale state: {outcome:?}",
                key.0, key.1
            ));
        }
        if let Outcome::Done(_, _, Some(s)) = &outcome {
            *session = s.clone();
        }
        self.remember_version(t, key, &outcome);
        self.record(t, key, &outcome, after);
    }

    /// `idempotent-creates`: each create (a POST under a generated id) carries a key of its
    /// own and is retried with it, through the same gateway, until it is answered.
    async fn creates_loop(&self, t: &mut Tally, stop: &AtomicBool) {
        let mut next = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if self.flags.hush.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            next += 1;
            let body = json!({"w": self.n, "n": next});
            let dc = (self.n + next as usize) % self.gateways.len();
            let url = format!("{}/v1/collections/docs/docs", self.gateways[dc]);
            let headers = [("idempotency-key", format!("w{}-{next}", self.n))];
            let mut create = Create {
                body: body.clone(),
                acked: false,
                refused: false,
            };
            for _ in 0..CREATE_ATTEMPTS {
                let outcome = self
                    .api
                    .send(
                        reqwest::Method::POST,
                        &url,
                        Some(("application/json", body.clone())),
                        &headers,
                    )
                    .await;
                t.count(&outcome);
                match outcome {
                    Outcome::Done(..) => {
                        create.acked = true;
                        break;
                    }
                    Outcome::Refused(_) => {
                        create.refused = true;
                        break;
                    }
                    Outcome::Unknown(_) => {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            t.creates.push(create);
            tokio::time::sleep(GAP).await;
        }
    }

    /// Records an operation's outcome: done moves the document to `after`, refused leaves it,
    /// unknown leaves both possible.
    fn record(&self, t: &mut Tally, key: &(String, String), outcome: &Outcome, after: State) {
        t.count(outcome);
        let Some(e) = t.ledger.get_mut(key) else {
            return;
        };
        if let Outcome::Done(_, body, _) = outcome {
            // The version it was answered with (a delete has none): what a feed delivers.
            e.last_version = body["version"].as_str().map(str::to_string);
        }
        match outcome {
            Outcome::Done(..) => e.done(after),
            Outcome::Refused(_) => e.refused(after),
            Outcome::Unknown(_) => e.unknown(after),
        }
    }

    /// `collections`: each worker cycles through its own collections: create one (a random
    /// strategy, fixed per name), write a few documents into it, delete it, the collection
    /// requests with deadlines of a few milliseconds (so many are cut short).
    async fn collections_loop(&self, t: &mut Tally, rng: &mut StdRng, stop: &AtomicBool) {
        const STRATEGIES: [&str; 3] = ["lww", "siblings", "field_merge"];
        let names: Vec<String> = (0..4).map(|k| format!("c{}x{k}", self.n)).collect();
        t.collections.extend(names.iter().cloned());
        // Per collection: the documents written since its last acknowledged deletion.
        let mut docs: Vec<Vec<String>> = vec![Vec::new(); names.len()];
        let mut next = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if self.flags.hush.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let k = rng.random_range(0..names.len());
            let name = &names[k];
            let dc = rng.random_range(0..self.gateways.len());
            let base = format!("{}/v1/collections/{name}", self.gateways[dc]);
            let deadline = [2u64, 10, 40, 3000][rng.random_range(0..4)];
            let headers = [("x-aerolith-timeout-ms", deadline.to_string())];
            // Whatever a create cut short left, the documents below create the collection
            // implicitly if need be.
            let outcome = self
                .api
                .put(
                    &base,
                    json!({"conflict_strategy": STRATEGIES[k % 3]}),
                    &headers,
                )
                .await;
            t.count(&outcome);
            for _ in 0..rng.random_range(1..4) {
                next += 1;
                let id = format!("d{next}");
                let body = json!({"n": next});
                let outcome = self
                    .api
                    .put(&format!("{base}/docs/{id}"), body.clone(), &[])
                    .await;
                let key = (name.clone(), id.clone());
                t.ledger.insert(key.clone(), Expect::new(false));
                self.record(t, &key, &outcome, State::Body(body));
                docs[k].push(id);
            }
            let outcome = self.api.delete(&base, &headers).await;
            t.count(&outcome);
            match outcome {
                Outcome::Done(..) => {
                    // Every incarnation so far is gone, with all its documents.
                    for id in docs[k].drain(..) {
                        if let Some(e) = t.ledger.get_mut(&(name.clone(), id)) {
                            e.done(State::Absent);
                        }
                    }
                }
                Outcome::Unknown(_) => {
                    // Gone or not, all together (a split shows in the collection check).
                    for id in &docs[k] {
                        if let Some(e) = t.ledger.get_mut(&(name.clone(), id.clone())) {
                            e.maybe.push(State::Absent);
                        }
                    }
                }
                Outcome::Refused(_) => {}
            }
        }
    }
}
