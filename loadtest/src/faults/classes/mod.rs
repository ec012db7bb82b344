//! Fault classes: each starts its own cluster of `aerolith` processes, drives a workload
//! shaped to expose one kind of replication bug while a nemesis repeats the fault that
//! provokes it, heals, waits for the DCs to converge and checks what every DC holds
//! against what the clients were told (docs/CONSISTENCY.md):
//! - `recreate`: documents deleted and created again, with tombstones collected at once,
//!   while dc1's shipping to dc2 is paused and resumed;
//! - `merge-deletes`: `field_merge` and `siblings` documents written and deleted through
//!   both DCs while the links between them are paused and resumed;
//! - `collections`: collections created and deleted under short deadlines while storage
//!   nodes are killed and restarted;
//! - `wiped-node`: a storage node loses its disk and restarts with default flags;
//! - `three-dcs`: three DCs, the dc1–dc3 link cut; `all` writes in dc1 and session reads
//!   of them in dc3;
//! - `clock-back`: a storage node restarted with its clock stepped back;
//! - `sigterm`: storage nodes stopped with SIGTERM (and restarted) during conditional writes;
//! - `session-writes`: a session's PATCHes and `If-Match` replaces through a DC whose storage
//!   node died while its shipping was paused;
//! - `idempotent-creates`: creates retried under idempotency keys while nodes die;
//! - `reshard`: dc1's storage nodes decommissioned one at a time (their shards moved to the
//!   others, then the node stopped and its disk wiped), added back empty and the DC
//!   rebalanced, while writes, `all` writes, deletes and session reads go on; in the middle
//!   of each rebalance the coordinator (dc1's replicator), a receiving node or a sending
//!   node, in turn, is killed and restarted; a WebSocket subscriber follows the collection
//!   throughout and must receive every acknowledged write.
//!
//! Each reports lost acknowledged writes, resurrected deletes, split collections (DCs that
//! disagree about a collection), stale session reads and writes, unconfirmed `all` writes,
//! duplicate and phantom creates, writes answered with a definite error that were applied
//! after all, answers saying an outcome is unknown, and whether (and how fast) the DCs
//! converged.

pub mod api;
mod feed;
pub mod ledger;
mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::check;
use super::cluster::{ProcCluster, Role};
use api::{Api, Outcome};
use workers::Tally;

/// A fault class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Delete / re-create cycles with a short tombstone grace, a link paused and resumed.
    Recreate,
    /// `field_merge` and `siblings` documents with concurrent field writes and deletes.
    MergeDeletes,
    /// Collection create and delete under short deadlines and node restarts.
    Collections,
    /// A storage node wiped and restarted with default flags.
    WipedNode,
    /// Three DCs with one cut link.
    ThreeDcs,
    /// A storage node restarted with its clock stepped back.
    ClockBack,
    /// Storage nodes stopped with SIGTERM during conditional writes.
    Sigterm,
    /// Session writes through a DC whose node died while its shipping was paused.
    SessionWrites,
    /// Creates retried under idempotency keys across failures.
    IdempotentCreates,
    /// Storage nodes decommissioned, wiped, added back and rebalanced.
    Reshard,
}

/// Every class, in the order a full run takes them.
pub const ALL: [Class; 10] = [
    Class::Recreate,
    Class::MergeDeletes,
    Class::Collections,
    Class::WipedNode,
    Class::ThreeDcs,
    Class::ClockBack,
    Class::Sigterm,
    Class::SessionWrites,
    Class::IdempotentCreates,
    Class::Reshard,
];

impl Class {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Recreate => "recreate",
            Class::MergeDeletes => "merge-deletes",
            Class::Collections => "collections",
            Class::WipedNode => "wiped-node",
            Class::ThreeDcs => "three-dcs",
            Class::ClockBack => "clock-back",
            Class::Sigterm => "sigterm",
            Class::SessionWrites => "session-writes",
            Class::IdempotentCreates => "idempotent-creates",
            Class::Reshard => "reshard",
        }
    }

    /// Parses a name (or `all`).
    pub fn parse(s: &str) -> anyhow::Result<Vec<Class>> {
        if s == "all" {
            return Ok(ALL.to_vec());
        }
        ALL.iter()
            .find(|c| c.name() == s)
            .map(|c| vec![*c])
            .ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
                anyhow::anyhow!(
                    "unknown fault class {s:?}; one of all, {}",
                    names.join(", ")
                )
            })
    }

    /// DCs and storage nodes per DC of its cluster.
    fn shape(self) -> (usize, usize) {
        match self {
            Class::ThreeDcs => (3, 1),
            Class::Reshard => (2, 3),
            _ => (2, 2),
        }
    }

    /// Extra flags of every storage node.
    fn node_args(self) -> Vec<String> {
        match self {
            // Tombstones go as soon as the peer rules allow: the race this class hunts.
            Class::Recreate | Class::MergeDeletes => vec!["--tombstone-grace-seconds=0".into()],
            _ => Vec::new(),
        }
    }
}

/// How to run the classes.
#[derive(Debug, Clone)]
pub struct ClassOptions {
    /// Where each class's cluster keeps its data and logs (a folder per class).
    pub dir: PathBuf,
    /// The `aerolith` binary the processes run.
    pub aerolith: PathBuf,
    /// Seed of every random choice.
    pub seed: u64,
    /// How long each class's workload runs under faults.
    pub duration: Duration,
    /// Quiet time before each fault.
    pub quiet: Duration,
    /// How long each fault is held.
    pub hold: Duration,
    /// Concurrent workers per class.
    pub workers: usize,
    /// How long the DCs get to converge after healing.
    pub converge_timeout: Duration,
}

/// What one class found.
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    /// The class.
    pub class: Class,
    /// The seed, to replay it.
    pub seed: u64,
    /// Faults injected.
    pub faults: Vec<String>,
    /// Requests sent.
    pub operations: u64,
    /// Requests acknowledged.
    pub acknowledged: u64,
    /// Requests refused or unanswered.
    pub failed: u64,
    /// Acknowledged writes missing in some DC (counted per DC).
    pub lost: u64,
    /// Acknowledged deletes undone in some DC (counted per DC).
    pub resurrected: u64,
    /// Collections whose existence, settings or documents differ between DCs.
    pub split_collections: u64,
    /// Session reads that showed an older state than the session's own write.
    pub stale_session_reads: u64,
    /// `all` writes not confirmed within their deadline.
    pub unconfirmed_all_writes: u64,
    /// Session writes that acted on an older state than the session's own writes.
    pub stale_session_writes: u64,
    /// Creates (under one idempotency key each) that left more than one document.
    pub duplicate_creates: u64,
    /// Documents of creates that were refused (or never made).
    pub phantom_creates: u64,
    /// Writes answered with a definite error (404, 412, `already_exists`) but applied.
    pub applied_despite_error: u64,
    /// Answers that said a write's outcome is unknown (allowed; counted).
    pub outcome_unknown: u64,
    /// Acknowledged writes a WebSocket subscriber of the whole run never received (the
    /// `reshard` class subscribes; 0 for the others).
    pub feed_missed: u64,
    /// Whether every DC reported the same digests after healing.
    pub converged: bool,
    /// Seconds from the last heal to equal digests.
    pub time_to_converge_s: Option<f64>,
    /// The first problems found.
    pub problems: Vec<String>,
}

impl ClassReport {
    /// Whether the class found nothing wrong.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.resurrected == 0
            && self.split_collections == 0
            && self.stale_session_reads == 0
            && self.unconfirmed_all_writes == 0
            && self.stale_session_writes == 0
            && self.duplicate_creates == 0
            && self.phantom_creates == 0
            && self.applied_despite_error == 0
            && self.feed_missed == 0
            && self.converged
    }
}

/// The reports as a table for people, one class a row, then the problems.
pub fn table(reports: &[ClassReport]) -> String {
    let columns = [
        "class",
        "faults",
        "acked",
        "failed",
        "lost",
        "resurr",
        "split",
        "stale-r",
        "stale-w",
        "unconf",
        "dup/ph",
        "applied",
        "unknown",
        "feed",
        "converged",
        "time",
    ];
    let row = |cells: Vec<String>| {
        let mut line = format!("{:<18}", cells[0]);
        for c in &cells[1..] {
            line.push_str(&format!(" {c:>8}"));
        }
        line.push('\n');
        line
    };
    let mut out = row(columns.iter().map(|c| c.to_string()).collect());
    for r in reports {
        out.push_str(&row(vec![
            r.class.name().to_string(),
            r.faults.len().to_string(),
            r.acknowledged.to_string(),
            r.failed.to_string(),
            r.lost.to_string(),
            r.resurrected.to_string(),
            r.split_collections.to_string(),
            r.stale_session_reads.to_string(),
            r.stale_session_writes.to_string(),
            r.unconfirmed_all_writes.to_string(),
            format!("{}/{}", r.duplicate_creates, r.phantom_creates),
            r.applied_despite_error.to_string(),
            r.outcome_unknown.to_string(),
            r.feed_missed.to_string(),
            if r.converged { "yes" } else { "no" }.to_string(),
            r.time_to_converge_s
                .map_or("-".into(), |t| format!("{t:.2} s")),
        ]));
    }
    for r in reports {
        for p in &r.problems {
            out.push_str(&format!("  {}: {p}\n", r.class.name()));
        }
    }
    out
}

/// Runs the classes one after another, each on a fresh cluster.
pub async fn run_all(classes: &[Class], opts: &ClassOptions) -> anyhow::Result<Vec<ClassReport>> {
    let mut reports = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        let report = run(*class, opts, opts.seed.wrapping_add(i as u64)).await?;
        tracing::info!(
            class = class.name(),
            passed = report.passed(),
            "fault class done"
        );
        reports.push(report);
    }
    Ok(reports)
}

/// Runs one class on its own cluster.
pub async fn run(class: Class, opts: &ClassOptions, seed: u64) -> anyhow::Result<ClassReport> {
    let (dcs, nodes) = class.shape();
    let dir = opts.dir.join(class.name());
    let mut cluster =
        ProcCluster::start_with(&dir, &opts.aerolith, dcs, nodes, class.node_args()).await?;
    let api = Api::default();
    workers::prepare(class, &api, &cluster).await?;
    // Shards move under a live subscription: it must still get every change.
    let feed = match class {
        Class::Reshard => Some(feed::Feed::subscribe(&cluster.http[0], "docs").await?),
        _ => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let flags = Arc::new(workers::Flags::default());
    let tasks: Vec<_> = (0..opts.workers.max(1))
        .map(|n| {
            let ctx = workers::Worker {
                class,
                n,
                seed: seed.wrapping_mul(31).wrapping_add(n as u64),
                gateways: cluster.http.clone(),
                flags: flags.clone(),
                api: api.clone(),
            };
            tokio::spawn(ctx.run(stop.clone()))
        })
        .collect();
    let started = Instant::now();
    let faults = nemesis(class, &mut cluster, &api, opts, seed, started, &flags).await;
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    let faults = faults?;
    heal_all(&mut cluster, &api).await;
    let healed = Instant::now();
    let converged = check::converge(
        &reqwest::Client::new(),
        &cluster.admin,
        opts.converge_timeout,
    )
    .await;
    let time_to_converge_s = converged.then(|| healed.elapsed().as_secs_f64());
    let found = ledger::check(&api, &cluster.http, &tally.ledger).await;
    let split = splits(&api, &cluster.http, &tally.collections).await;
    let created = creates(&api, &cluster.http, &tally.creates).await;
    let mut problems = tally.problems.clone();
    let mut feed_missed = 0;
    if let Some(feed) = feed {
        let expected: Vec<(String, String)> = tally
            .ledger
            .iter()
            .filter(|((c, _), e)| c == "docs" && matches!(e.acked, ledger::State::Body(_)))
            .filter_map(|((_, id), e)| e.last_version.clone().map(|v| (id.clone(), v)))
            .collect();
        let (missed, reconnects) = feed.finish(&expected, FEED_WITHIN).await;
        tracing::info!(
            checked = expected.len(),
            missed = missed.len(),
            reconnects,
            "feed check"
        );
        feed_missed = missed.len() as u64;
        for (id, version) in missed.iter().take(5) {
            problems.push(format!(
                "docs/{id}: the subscriber never received acknowledged version {version}"
            ));
        }
    }
    problems.extend(found.problems);
    problems.extend(split.1);
    problems.extend(created.problems);
    problems.truncate(20);
    Ok(ClassReport {
        class,
        seed,
        faults,
        operations: tally.operations,
        acknowledged: tally.acknowledged,
        failed: tally.failed,
        lost: found.lost + created.lost,
        resurrected: found.resurrected,
        split_collections: split.0,
        stale_session_reads: tally.stale_session_reads,
        unconfirmed_all_writes: tally.unconfirmed_all_writes,
        stale_session_writes: tally.stale_session_writes,
        duplicate_creates: created.duplicates,
        phantom_creates: created.phantoms,
        applied_despite_error: found.applied_despite_error,
        outcome_unknown: tally.outcome_unknown,
        feed_missed,
        converged,
        time_to_converge_s,
        problems,
    })
}

/// What the `idempotent-creates` check found.
#[derive(Debug, Default)]
struct Created {
    lost: u64,
    duplicates: u64,
    phantoms: u64,
    problems: Vec<String>,
}

/// Counts, in every DC's collection `docs`, the documents of each create: none for an
/// acknowledged one is a lost write, more than one a duplicate create, any for a refused
/// one (or a body no create had) a phantom.
async fn creates(api: &Api, gateways: &[String], creates: &[workers::Create]) -> Created {
    let mut out = Created::default();
    if creates.is_empty() {
        return out;
    }
    let key = |v: &serde_json::Value| (v["w"].as_u64(), v["n"].as_u64());
    for gw in gateways {
        let mut seen: std::collections::HashMap<(Option<u64>, Option<u64>), u64> =
            Default::default();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{gw}/v1/collections/docs/docs?limit=1000");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = api.get(&url, &[]).await;
            if status != 200 {
                out.problems.push(format!("listing {gw}: {status}"));
                return out;
            }
            for d in page["documents"].as_array().into_iter().flatten() {
                *seen.entry(key(&d["data"])).or_default() += 1;
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut known = std::collections::HashSet::new();
        for c in creates {
            let k = key(&c.body);
            known.insert(k);
            let n = seen.get(&k).copied().unwrap_or(0);
            let problem = if n > 1 {
                out.duplicates += 1;
                Some("created more than once")
            } else if n == 1 && c.refused {
                out.phantoms += 1;
                Some("exists though refused")
            } else if n == 0 && c.acked {
                out.lost += 1;
                Some("acknowledged but missing")
            } else {
                None
            };
            if let Some(p) = problem
                && out.problems.len() < 10
            {
                out.problems
                    .push(format!("create {} via {gw}: {p} ({n})", c.body));
            }
        }
        out.phantoms += seen.keys().filter(|k| !known.contains(k)).count() as u64;
    }
    out
}

/// Collections whose existence, settings or documents differ between the DCs, and what
/// differed.
async fn splits(api: &Api, gateways: &[String], collections: &[String]) -> (u64, Vec<String>) {
    let mut split = 0;
    let mut problems = Vec::new();
    for c in collections {
        let mut seen = Vec::new();
        for gw in gateways {
            let (status, body) = api.get(&format!("{gw}/v1/collections/{c}"), &[]).await;
            let ids = api.ids(gw, c).await;
            seen.push((status, body["conflict_strategy"].clone(), ids));
        }
        // A collection a DC calls gone must hold no documents there either (a deletion that
        // reached some of its nodes only), and every DC must agree.
        let half_gone = seen
            .iter()
            .any(|(status, _, ids)| *status == 404 && ids.as_ref().is_some_and(|i| !i.is_empty()));
        if half_gone || seen.windows(2).any(|w| w[0] != w[1]) {
            split += 1;
            if problems.len() < 5 {
                let summary: Vec<String> = seen
                    .iter()
                    .map(|(s, strategy, ids)| {
                        format!("{s} {strategy} {} docs", ids.as_ref().map_or(0, Vec::len))
                    })
                    .collect();
                problems.push(format!("collection {c} differs between DCs: {summary:?}"));
            }
        }
    }
    (split, problems)
}

/// Every link resumed and healed and every process running, so the DCs can converge.
async fn heal_all(cluster: &mut ProcCluster, api: &Api) {
    for (from, to) in pairs(cluster) {
        // Best effort: a replicator that is down resumes on its own when it restarts.
        let _ = peer_action(api, cluster, from, to, "resume").await;
        cluster.partition(from, to, false);
    }
    for i in 0..cluster.procs.len() {
        if !cluster.procs[i].running()
            && let Err(e) = cluster.restart(i, Vec::new()).await
        {
            tracing::warn!(error = %e, "cannot restart a process while healing");
        }
    }
}

/// Repeats the class's fault until the duration is over (at least once); every fault is
/// healed before the next.
async fn nemesis(
    class: Class,
    cluster: &mut ProcCluster,
    api: &Api,
    opts: &ClassOptions,
    seed: u64,
    started: Instant,
    flags: &Arc<workers::Flags>,
) -> anyhow::Result<Vec<String>> {
    let hush = &flags.hush;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e656d65736973);
    let mut done = Vec::new();
    loop {
        tokio::time::sleep(opts.quiet).await;
        if !done.is_empty() && started.elapsed() + opts.hold > opts.duration {
            return Ok(done);
        }
        let nodes = cluster.of_role(Role::Node);
        let node = nodes[rng.random_range(0..nodes.len())];
        let target = match class {
            Class::Recreate => {
                peer_action(api, cluster, 0, 1, "pause").await?;
                // Long enough for a tombstone shipped just before the pause to be collected
                // in dc1 and its document created again before the resume.
                tokio::time::sleep(opts.hold.max(RECREATE_HOLD)).await;
                peer_action(api, cluster, 0, 1, "resume").await?;
                "dc1 -> dc2 paused".to_string()
            }
            Class::MergeDeletes => {
                links(api, cluster, "pause").await?;
                tokio::time::sleep(opts.hold).await;
                links(api, cluster, "resume").await?;
                "dc1 <-> dc2 paused".to_string()
            }
            Class::Collections => {
                cluster.kill(node);
                tokio::time::sleep(opts.hold).await;
                cluster.launch(node).await?;
                format!("{} killed", cluster.procs[node].name)
            }
            Class::WipedNode => {
                cluster.wipe(node)?;
                tokio::time::sleep(opts.hold).await;
                cluster.launch(node).await?;
                // The next fault waits for this node's copy (a second wipe meanwhile could
                // take the only copy of a shard).
                check::converge(
                    &reqwest::Client::new(),
                    &cluster.admin,
                    opts.converge_timeout,
                )
                .await;
                format!("{} wiped", cluster.procs[node].name)
            }
            Class::ThreeDcs => {
                cluster.partition(0, 2, true);
                tokio::time::sleep(opts.hold).await;
                cluster.partition(0, 2, false);
                "dc1 <-> dc3 cut".to_string()
            }
            Class::Sigterm => {
                cluster.terminate(node, Duration::from_secs(30)).await?;
                tokio::time::sleep(opts.hold).await;
                cluster.launch(node).await?;
                format!("{} stopped with SIGTERM", cluster.procs[node].name)
            }
            Class::SessionWrites => {
                let in_dc1: Vec<usize> = cluster
                    .of_role(Role::Node)
                    .into_iter()
                    .filter(|i| cluster.procs[*i].dc == 0)
                    .collect();
                let node = in_dc1[rng.random_range(0..in_dc1.len())];
                peer_action(api, cluster, 0, 1, "pause").await?;
                cluster.kill(node);
                tokio::time::sleep(opts.hold).await;
                cluster.launch(node).await?;
                peer_action(api, cluster, 0, 1, "resume").await?;
                format!("dc1 -> dc2 paused, {} killed", cluster.procs[node].name)
            }
            Class::IdempotentCreates => {
                cluster.kill(node);
                tokio::time::sleep(opts.hold).await;
                cluster.launch(node).await?;
                format!("{} killed", cluster.procs[node].name)
            }
            Class::Reshard => reshard(cluster, done.len(), flags).await?,
            Class::ClockBack => {
                let in_dc1: Vec<usize> = nodes
                    .into_iter()
                    .filter(|i| cluster.procs[*i].dc == 0)
                    .collect();
                let node = in_dc1[rng.random_range(0..in_dc1.len())];
                // The links pause, so the DCs' writes meanwhile are concurrent and their
                // stamps decide the merge; writes hold off while the node and its gateway
                // restart (the old gateway would send them to the other DC), so the node
                // takes the writes of its shards right after its restart.
                let gateway = cluster
                    .of_role(Role::Gateway)
                    .into_iter()
                    .find(|i| cluster.procs[*i].dc == 0)
                    .ok_or_else(|| anyhow::anyhow!("no gateway in dc1"))?;
                hush.store(true, Ordering::Relaxed);
                links(api, cluster, "pause").await?;
                cluster
                    .restart(node, vec![format!("--clock-offset-ms=-{}", CLOCK_BACK_MS)])
                    .await?;
                cluster.restart(gateway, Vec::new()).await?;
                hush.store(false, Ordering::Relaxed);
                tokio::time::sleep(opts.hold).await;
                hush.store(true, Ordering::Relaxed);
                cluster.restart(node, Vec::new()).await?;
                cluster.restart(gateway, Vec::new()).await?;
                links(api, cluster, "resume").await?;
                hush.store(false, Ordering::Relaxed);
                format!("{} clock -{CLOCK_BACK_MS} ms", cluster.procs[node].name)
            }
        };
        tracing::info!(class = class.name(), %target, "fault healed");
        done.push(target);
    }
}

/// How long a subscriber may take, after the DCs converged, to deliver every write.
const FEED_WITHIN: Duration = Duration::from_secs(60);

/// How long the `reshard` class waits for a DC's moves to finish.
const RESHARD_WITHIN: Duration = Duration::from_secs(180);

/// The `reshard` fault, round `round`: dc1's node number `round` (of its nodes, in turn) is
/// decommissioned; once it owns nothing and has left the map it is stopped and its disk
/// wiped; it starts again empty, is added back and the DC rebalanced. Answers what it did,
/// with the longest pause a move made.
async fn reshard(
    cluster: &mut ProcCluster,
    round: usize,
    flags: &Arc<workers::Flags>,
) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let admin = cluster.admin[0].clone();
    let dc = cluster.config.dcs[0].clone();
    let node = dc.nodes[round % dc.nodes.len()].clone();
    let proc = cluster
        .procs
        .iter()
        .position(|p| p.name == format!("{}-{}", dc.id, node.id))
        .ok_or_else(|| anyhow::anyhow!("no process for {}", node.id))?;
    let post = |path: String, body: serde_json::Value| {
        let http = http.clone();
        async move {
            let r = http.post(path).json(&body).send().await?;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            anyhow::ensure!((200..300).contains(&status), "{status}: {text}");
            Ok::<(), anyhow::Error>(())
        }
    };
    let started = Instant::now();
    post(
        format!("{admin}/admin/nodes/{}/decommission", node.id),
        serde_json::json!({}),
    )
    .await?;
    wait_admin(&http, &admin, "the node to leave the map", |nodes, _| {
        nodes["nodes"]
            .as_array()
            .is_some_and(|l| l.iter().all(|n| n["id"] != node.id.as_str()))
    })
    .await?;
    let drained = started.elapsed();
    // Nothing is served from it now: it goes, disk and all, while the workload runs.
    cluster.wipe(proc)?;
    cluster.launch(proc).await?;
    post(
        format!("{admin}/admin/nodes"),
        serde_json::json!({"id": node.id, "rpc": node.rpc}),
    )
    .await?;
    post(format!("{admin}/admin/rebalance"), serde_json::json!({})).await?;
    // Mid-move, one of the three parties dies and comes back.
    let killed = kill_mid_move(cluster, &http, &admin, round, flags).await?;
    let shards = usize::from(cluster.config.shards);
    let most = shards.div_ceil(dc.nodes.len());
    wait_admin(&http, &admin, "the rebalance to finish", |nodes, moves| {
        let idle = moves["queued"] == 0 && moves["running"] == 0;
        let balanced = nodes["nodes"].as_array().is_some_and(|l| {
            l.len() == dc.nodes.len()
                && l.iter()
                    .all(|n| n["shards"].as_array().is_some_and(|s| s.len() <= most))
        });
        idle && balanced
    })
    .await?;
    let moves = admin_moves(&http, &admin).await?;
    let list = moves["moves"].as_array().cloned().unwrap_or_default();
    let failed = list.iter().filter(|m| m["state"] == "failed").count();
    anyhow::ensure!(failed == 0, "{failed} moves failed: {moves}");
    let pause = list
        .iter()
        .filter_map(|m| m["pause_ms"].as_u64())
        .max()
        .unwrap_or(0);
    Ok(format!(
        "{} decommissioned in {:.1} s, wiped, added back and rebalanced with {killed} killed mid-move ({} moves so far, longest pause {pause} ms)",
        node.id,
        drained.as_secs_f64(),
        list.len()
    ))
}

/// A DC's `GET /admin/moves`.
async fn admin_moves(http: &reqwest::Client, admin: &str) -> anyhow::Result<serde_json::Value> {
    Ok(http
        .get(format!("{admin}/admin/moves"))
        .send()
        .await?
        .json()
        .await?)
}

/// Waits for a move of dc1 to be running, then kills and restarts, by `round`, the
/// coordinator (dc1's replicator), the move's receiving node or its sending node; answers
/// which ("nothing" if every move ended first).
async fn kill_mid_move(
    cluster: &mut ProcCluster,
    http: &reqwest::Client,
    admin: &str,
    round: usize,
    flags: &Arc<workers::Flags>,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let moves = admin_moves(http, admin).await?;
        let list = moves["moves"].as_array().cloned().unwrap_or_default();
        if let Some(m) = list.iter().find(|m| m["state"] == "running") {
            break m.clone();
        }
        if moves["queued"] == 0 || Instant::now() >= deadline {
            return Ok("nothing".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dc = &cluster.dcs[0];
    let name = match round % 3 {
        0 => format!("{dc}-replicator"),
        1 => format!("{dc}-{}", running["to"].as_str().unwrap_or_default()),
        _ => format!("{dc}-{}", running["from"].as_str().unwrap_or_default()),
    };
    let victim = cluster
        .procs
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| anyhow::anyhow!("no process {name}"))?;
    let excuse = |ms: u64| {
        flags
            .node_down_until_ms
            .store(aerolith_common::time::now_ms() + ms, Ordering::Relaxed)
    };
    excuse(60_000);
    cluster.kill(victim);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.launch(victim).await?;
    // Writes sent while it was down get their deadline (and some) before `all` counts again.
    excuse(12_000);
    Ok(format!("{name} (shard {})", running["shard"]))
}

/// Polls the DC's `/admin/nodes` and `/admin/moves` until `done` holds of them.
async fn wait_admin(
    http: &reqwest::Client,
    admin: &str,
    what: &str,
    done: impl Fn(&serde_json::Value, &serde_json::Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + RESHARD_WITHIN;
    loop {
        let get = |path: &str| {
            let url = format!("{admin}{path}");
            async move {
                let r = http.get(url).send().await.ok()?;
                r.json::<serde_json::Value>().await.ok()
            }
        };
        if let (Some(nodes), Some(moves)) = (get("/admin/nodes").await, get("/admin/moves").await)
            && done(&nodes, &moves)
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every ordered pair of distinct DCs (by index).
fn pairs(cluster: &ProcCluster) -> Vec<(usize, usize)> {
    let n = cluster.dcs.len();
    (0..n)
        .flat_map(|from| (0..n).map(move |to| (from, to)))
        .filter(|(from, to)| from != to)
        .collect()
}

/// Pauses or resumes (`action`) DC `from`'s shipping to DC `to`.
async fn peer_action(
    api: &Api,
    cluster: &ProcCluster,
    from: usize,
    to: usize,
    action: &str,
) -> anyhow::Result<()> {
    let url = format!(
        "{}/admin/peers/{}/{action}",
        cluster.admin[from], cluster.dcs[to]
    );
    match api.post(&url).await {
        Outcome::Done(..) => Ok(()),
        other => anyhow::bail!("{url}: {other:?}"),
    }
}

/// Pauses or resumes (`action`) shipping between every pair of DCs.
async fn links(api: &Api, cluster: &ProcCluster, action: &str) -> anyhow::Result<()> {
    for (from, to) in pairs(cluster) {
        peer_action(api, cluster, from, to, action).await?;
    }
    Ok(())
}

/// The shortest pause of the `recreate` class.
const RECREATE_HOLD: Duration = Duration::from_secs(6);

/// How far the `clock-back` class steps a node's clock back at its restart.
pub const CLOCK_BACK_MS: u64 = 2_000;
