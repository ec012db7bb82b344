//! The workload: workers write unique documents (a fifth of them under write concern `all`),
//! overwrite shared ("hot") ones, delete their own, and read back through the other DC's
//! gateway with their session token. Every acknowledged operation is recorded for the
//! checker, and reads are checked on the spot: a session read must not show a state older
//! than what the session wrote or read, and an `all` write must be visible in the other DC
//! without a session as soon as it is acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

use super::version::Version;

/// The collection the workload writes.
pub const COLLECTION: &str = "faults";
/// Shared documents every worker overwrites.
pub const HOT_IDS: usize = 16;
/// A request's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// What one worker knows about one document at the end.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Its last acknowledged operation wrote this body with this version.
    Written(Value, Version),
    /// Its last acknowledged operation deleted it.
    Deleted,
    /// An operation on it was not acknowledged: it may or may not have happened.
    Unknown,
}

/// One worker's record of what it did.
#[derive(Debug, Default)]
pub struct History {
    /// Requests sent.
    pub operations: u64,
    /// Writes and deletes acknowledged.
    pub acknowledged: u64,
    /// Requests that failed (not acknowledged, or reads that could not be served).
    pub failed: u64,
    /// Session reads made, and how many showed an older state than the session's.
    pub session_reads: u64,
    /// Session reads that went backwards.
    pub stale_reads: Vec<String>,
    /// The worker's own documents, by id.
    pub own: BTreeMap<String, Fate>,
    /// Versions of hot documents this worker's writes were acknowledged with.
    pub hot_writes: Vec<(String, Version)>,
    /// Writes acknowledged under write concern `all` then read in the other DC.
    pub all_checked: u64,
    /// Those the other DC did not show.
    pub all_missing: Vec<String>,
}

/// A worker: a home gateway it writes through, another it reads through.
pub struct Worker {
    /// Worker number (part of its ids).
    pub n: usize,
    /// Base URL of the gateway it writes through.
    pub home: String,
    /// Base URL of the gateway it reads back through.
    pub away: String,
    /// Deterministic choices.
    pub seed: u64,
}

/// A REST answer: status (0 for a transport failure), session header and body.
struct Reply {
    status: u16,
    session: Option<String>,
    body: Value,
}

impl Reply {
    /// What a read found: `Some(Some(version))` for a document, `Some(None)` for 404, and
    /// `None` when the read was not served.
    fn read_state(&self) -> Option<Option<Version>> {
        match self.status {
            200 => Some(self.body["version"].as_str().and_then(Version::parse)),
            404 => Some(None),
            _ => None,
        }
    }
}

async fn send(
    http: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<&Value>,
    session: &str,
    concern_all: bool,
) -> Reply {
    let mut req = http
        .request(method, url)
        .timeout(REQUEST_TIMEOUT + Duration::from_millis(500))
        .header(
            "x-aerolith-timeout-ms",
            REQUEST_TIMEOUT.as_millis().to_string(),
        );
    if !session.is_empty() {
        req = req.header("x-aerolith-session", session);
    }
    if concern_all {
        req = req.header("x-aerolith-write-concern", "all");
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let session = r
                .headers()
                .get("x-aerolith-session")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = r.json().await.unwrap_or(Value::Null);
            Reply {
                status,
                session,
                body,
            }
        }
        Err(_) => {
            // The gateway is down (or unreachable): do not spin on it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Reply {
                status: 0,
                session: None,
                body: Value::Null,
            }
        }
    }
}

fn doc_url(base: &str, id: &str) -> String {
    format!("{base}/v1/collections/{COLLECTION}/docs/{id}")
}

impl Worker {
    /// Runs until `stop` is set; returns what it did.
    pub async fn run(self, http: reqwest::Client, stop: Arc<AtomicBool>) -> History {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut h = History::default();
        let mut session = String::new();
        // What the session has seen of each hot document (its newest version).
        let mut hot_seen: BTreeMap<String, Version> = BTreeMap::new();
        let mut next = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let roll: u32 = rng.random_range(0..100);
            let (id, read_after) = if roll < 40 {
                next += 1;
                let id = format!("u{}-{next}", self.n);
                let body = json!({"w": self.n, "n": next});
                // Some writes ask for write concern `all`: once acknowledged, the other DC
                // must show them to a read without a session.
                let all = rng.random_bool(0.2);
                let r = self
                    .write(&http, &mut h, &mut session, &id, &body, all)
                    .await;
                if let (Some(v), true) = (&r, all) {
                    self.check_everywhere(&http, &mut h, &id, v).await;
                }
                h.own.insert(
                    id.clone(),
                    match r {
                        Some(v) => Fate::Written(body, v),
                        None => Fate::Unknown,
                    },
                );
                (id, true)
            } else if roll < 65 {
                next += 1;
                let id = format!("hot{}", rng.random_range(0..HOT_IDS));
                let body = json!({"w": self.n, "n": next});
                if let Some(v) = self
                    .write(&http, &mut h, &mut session, &id, &body, false)
                    .await
                {
                    h.hot_writes.push((id.clone(), v.clone()));
                    hot_seen.insert(id.clone(), v);
                }
                (id, true)
            } else if roll < 80 {
                let Some(id) = self.pick_live(&h, &mut rng) else {
                    continue;
                };
                h.operations += 1;
                let r = send(
                    &http,
                    Method::DELETE,
                    doc_url(&self.home, &id),
                    None,
                    &session,
                    false,
                )
                .await;
                if let Some(s) = r.session {
                    session = s;
                }
                let fate = if r.status == 204 {
                    h.acknowledged += 1;
                    Fate::Deleted
                } else {
                    h.failed += 1;
                    Fate::Unknown
                };
                h.own.insert(id.clone(), fate);
                (id, true)
            } else {
                // A plain session read of something already touched.
                let id = if rng.random_bool(0.5) || hot_seen.is_empty() {
                    self.pick_live(&h, &mut rng)
                } else {
                    hot_seen
                        .keys()
                        .nth(rng.random_range(0..hot_seen.len()))
                        .cloned()
                };
                match id {
                    Some(id) => (id, true),
                    None => continue,
                }
            };
            if read_after {
                let via = if rng.random_bool(0.7) {
                    &self.away
                } else {
                    &self.home
                };
                self.session_read(&http, &mut h, &mut session, &mut hot_seen, via, &id)
                    .await;
            }
        }
        h
    }

    /// One of this worker's documents whose last operation was an acknowledged write.
    fn pick_live(&self, h: &History, rng: &mut StdRng) -> Option<String> {
        let live: Vec<&String> = h
            .own
            .iter()
            .filter(|(_, f)| matches!(f, Fate::Written(..)))
            .map(|(id, _)| id)
            .collect();
        if live.is_empty() {
            None
        } else {
            Some(live[rng.random_range(0..live.len())].clone())
        }
    }

    /// PUTs `body` through the home gateway; the acknowledged version, if any.
    async fn write(
        &self,
        http: &reqwest::Client,
        h: &mut History,
        session: &mut String,
        id: &str,
        body: &Value,
        concern_all: bool,
    ) -> Option<Version> {
        h.operations += 1;
        let r = send(
            http,
            Method::PUT,
            doc_url(&self.home, id),
            Some(body),
            session,
            concern_all,
        )
        .await;
        if let Some(s) = r.session {
            *session = s;
        }
        let version = (r.status == 200 || r.status == 201)
            .then(|| r.body["version"].as_str().and_then(Version::parse))
            .flatten();
        match version {
            Some(v) => {
                h.acknowledged += 1;
                Some(v)
            }
            None => {
                h.failed += 1;
                None
            }
        }
    }

    /// After a write acknowledged under write concern `all`: the other DC's gateway, asked
    /// without a session, must already show it (or a later version).
    async fn check_everywhere(
        &self,
        http: &reqwest::Client,
        h: &mut History,
        id: &str,
        written: &Version,
    ) {
        h.operations += 1;
        let r = send(http, Method::GET, doc_url(&self.away, id), None, "", false).await;
        let Some(seen) = r.read_state() else {
            h.failed += 1;
            return;
        };
        h.all_checked += 1;
        if !seen.as_ref().is_some_and(|v| v.covers(written)) {
            h.all_missing.push(format!(
                "{id} acknowledged with concern all as {written:?}, read via {} as {seen:?}",
                self.away
            ));
        }
    }

    /// Reads `id` through `via` with the session and checks the answer against what the
    /// session has seen of it.
    async fn session_read(
        &self,
        http: &reqwest::Client,
        h: &mut History,
        session: &mut String,
        hot_seen: &mut BTreeMap<String, Version>,
        via: &str,
        id: &str,
    ) {
        h.operations += 1;
        let r = send(http, Method::GET, doc_url(via, id), None, session, false).await;
        if let Some(s) = &r.session {
            session.clone_from(s);
        }
        let Some(seen) = r.read_state() else {
            h.failed += 1;
            return;
        };
        h.session_reads += 1;
        let expected = match h.own.get(id) {
            Some(Fate::Written(_, v)) => Some(Some(v.clone())),
            Some(Fate::Deleted) => Some(None),
            Some(Fate::Unknown) => None,
            None => hot_seen.get(id).cloned().map(Some),
        };
        let stale = match (&expected, &seen) {
            (None, _) => false,
            (Some(None), None) => false,
            // Only this worker writes its own ids, and it never writes one again after
            // deleting it.
            (Some(None), Some(_)) => true,
            (Some(Some(_)), None) => true,
            (Some(Some(want)), Some(got)) => !got.covers(want),
        };
        if stale {
            h.stale_reads.push(format!(
                "{id} via {via}: expected at least {expected:?}, read {seen:?}"
            ));
        }
        if let (Some(got), true) = (seen, id.starts_with("hot")) {
            hot_seen.insert(id.to_string(), got);
        }
    }
}
