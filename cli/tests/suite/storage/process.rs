//! The storage node as a separate process: acknowledged writes survive SIGKILL (also under
//! group commit, with many writes in flight and readers and a change feed watching), a
//! secondary index stays exact through SIGKILL during its build and during writes, and
//! peers without a cluster certificate are refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aerolith_common::rpc::{Call, DevCa, Node, PeerRole, RpcClient};
use aerolith_common::shard::{DEFAULT_SHARDS, shard_of};
use aerolith_common::{ErrorCode, pb};
use aerolith_loadtest::faults::cluster::{ProcCluster, Role};

use crate::support::TURN;
use crate::support::procs::{Nodes, cluster_without_replicators};

/// Calls the node until it answers (it may be starting); fails after 30 s.
async fn call_until_up<C: Call<Node>>(client: &RpcClient, addr: &str, body: C) -> C::Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .node()
            .call(addr, body.clone(), Duration::from_secs(5))
            .await
        {
            Ok(r) => return r,
            Err(e)
                if e.code == ErrorCode::Unavailable && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("call failed: {e}"),
        }
    }
}

fn put(id: &str, n: u64) -> pb::PutRequest {
    pb::PutRequest {
        after_delete_hlc: 0,
        shard: u32::from(shard_of("c", id, DEFAULT_SHARDS)),
        collection: "c".into(),
        id: id.into(),
        body: format!("{{\"n\":{n}}}").into_bytes(),
        precondition: None,
        session: Vec::new(),
        idempotency: None,
    }
}

fn get(id: &str) -> pb::GetRequest {
    pb::GetRequest {
        shard: u32::from(shard_of("c", id, DEFAULT_SHARDS)),
        collection: "c".into(),
        id: id.into(),
        session: Vec::new(),
    }
}

/// Every shard's oldest retained position: where a feed of everything starts.
fn oldest() -> Vec<pb::ShardPosition> {
    (0..u32::from(DEFAULT_SHARDS))
        .map(|shard| pb::ShardPosition {
            shard,
            epoch: 0,
            seq: 0,
        })
        .collect()
}

/// A page of collection `c`'s changes after `from`.
fn changes_after(from: &[pb::ShardPosition]) -> pb::ReadChangesRequest {
    pb::ReadChangesRequest {
        collection: "c".into(),
        from: from.to_vec(),
        limit: 1000,
        max_bytes: 4 << 20,
        ..Default::default()
    }
}

/// The `n` a record's body holds (0 for none).
fn n_of(rec: Option<&pb::DocRecord>) -> u64 {
    rec.filter(|r| !r.tombstone)
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .and_then(|v| v["n"].as_u64())
        .unwrap_or(0)
}

/// The storage node of a one-DC cluster (no replicator: nothing but the node is needed).
async fn one_node(dir: &std::path::Path) -> (ProcCluster, Nodes, usize) {
    let cluster = cluster_without_replicators(dir, 1, &[]).await;
    let nodes = Nodes::of(&cluster);
    let node = cluster.of_role(Role::Node)[0];
    (cluster, nodes, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, nodes, node) = one_node(dir.path()).await;
    let addr = nodes.addrs[0].clone();
    let mut acked = Vec::new();
    for i in 0..40 {
        let id = format!("d{i}");
        let d = call_until_up(&nodes.client, &addr, put(&id, i)).await;
        acked.push((id, d.record.expect("record").vv));
    }
    // SIGKILL right after the last acknowledgement: no flush, no clean shutdown.
    cluster.kill(node);
    cluster.launch(node).await.expect("node restarts");
    for (id, vv) in &acked {
        let rec = call_until_up(&nodes.client, &addr, get(id))
            .await
            .record
            .unwrap_or_else(|| panic!("{id} lost after SIGKILL"));
        assert!(!rec.tombstone);
        assert_eq!(&rec.vv, vv, "{id}");
    }
}

/// Writers (the same documents written again and again, so writes of one shard and one
/// document queue behind each other in commit groups), readers and a change-feed tail run
/// until the node is SIGKILLed. After the restart every acknowledged write is there, no
/// document is older than a reader or the feed saw it (nothing was visible before it was
/// durable), and every log position the feed saw holds the same change (none reused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_loses_nothing_acknowledged_or_seen_to_sigkill() {
    const WRITERS: usize = 16;
    const DOCS_EACH: usize = 2;
    const ACKS_BEFORE_KILL: usize = 3000;
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, nodes, node) = one_node(dir.path()).await;
    let client = nodes.client.clone();
    let addr = nodes.addrs[0].clone();
    let ids: Vec<String> = (0..WRITERS * DOCS_EACH).map(|i| format!("g{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));

    // Each writer owns its documents and writes n = 1, 2, … to them in turn, until a call
    // fails (the node is gone); the highest acknowledged n of each document.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, addr, acks) = (client.clone(), addr.clone(), acks.clone());
        let mine: Vec<String> = ids[w * DOCS_EACH..(w + 1) * DOCS_EACH].to_vec();
        writers.push(tokio::spawn(async move {
            let mut acked: HashMap<String, u64> = HashMap::new();
            for n in 1u64.. {
                let id = &mine[n as usize % mine.len()];
                let answer = client
                    .node()
                    .put(&addr, put(id, n), Duration::from_secs(10))
                    .await;
                if answer.is_err() {
                    return acked;
                }
                acked.insert(id.clone(), n);
                acks.fetch_add(1, Ordering::Relaxed);
            }
            acked
        }));
    }
    // Readers: the highest n each saw of each document.
    let mut readers = Vec::new();
    for r in 0..2 {
        let (client, addr, ids, stop) = (client.clone(), addr.clone(), ids.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, u64> = HashMap::new();
            let mut k = r;
            while !stop.load(Ordering::Relaxed) {
                let id = &ids[k % ids.len()];
                k += 1;
                match client
                    .node()
                    .get(&addr, get(id), Duration::from_secs(10))
                    .await
                {
                    Ok(d) => {
                        let n = n_of(d.record.as_ref());
                        let best = seen.entry(id.clone()).or_default();
                        *best = (*best).max(n);
                    }
                    Err(_) => break,
                }
            }
            seen
        }));
    }
    // The feed: every change it saw, by log position.
    let feed = {
        let (client, addr, stop) = (client.clone(), addr.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen: HashMap<(u32, u64), (String, u64)> = HashMap::new();
            let mut from = oldest();
            while !stop.load(Ordering::Relaxed) {
                let Ok(c) = client
                    .node()
                    .read_changes(&addr, changes_after(&from), Duration::from_secs(10))
                    .await
                else {
                    break;
                };
                for e in c.events {
                    let Some(ev) = e.event else { continue };
                    let n = n_of(ev.record.as_ref());
                    seen.insert((e.shard, e.seq), (ev.id, n));
                }
                from = c.through;
            }
            seen
        })
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while acks.load(Ordering::Relaxed) < ACKS_BEFORE_KILL {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} writes acknowledged in 120 s",
            acks.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL with writes in flight: no flush, no clean shutdown.
    cluster.kill(node);
    stop.store(true, Ordering::Relaxed);
    let mut floor: HashMap<String, u64> = HashMap::new();
    for w in writers {
        for (id, n) in w.await.unwrap() {
            floor.insert(id, n);
        }
    }
    for r in readers {
        for (id, n) in r.await.unwrap() {
            let f = floor.entry(id).or_default();
            *f = (*f).max(n);
        }
    }
    let fed = feed.await.unwrap();
    assert!(!fed.is_empty(), "the feed saw nothing before the kill");
    for ((_, _), (id, n)) in &fed {
        let f = floor.entry(id.clone()).or_default();
        *f = (*f).max(*n);
    }

    cluster.launch(node).await.expect("node restarts");
    for id in &ids {
        let rec = call_until_up(&client, &addr, get(id)).await.record;
        let want = floor.get(id).copied().unwrap_or(0);
        assert!(
            n_of(rec.as_ref()) >= want,
            "{id}: n = {} after the restart, but {want} was acknowledged or seen before it",
            n_of(rec.as_ref())
        );
    }
    // Every position the feed saw holds the change it saw there.
    let mut from = oldest();
    let mut logged: HashMap<(u32, u64), (String, u64)> = HashMap::new();
    loop {
        let c = call_until_up(&client, &addr, changes_after(&from)).await;
        let done = c.events.is_empty() && c.through == from;
        for e in c.events {
            let Some(ev) = e.event else { continue };
            logged.insert((e.shard, e.seq), (ev.id.clone(), n_of(ev.record.as_ref())));
        }
        if done {
            break;
        }
        from = c.through;
    }
    for (pos, change) in &fed {
        assert_eq!(
            logged.get(pos),
            Some(change),
            "log position {pos:?} changed across the restart"
        );
    }
}

/// The states of collection `c`'s indexes on the node: (shards built, shards) of each.
async fn built(client: &RpcClient, addr: &str) -> Vec<(u32, u32)> {
    let req = pb::IndexStatesRequest {
        collection: "c".into(),
    };
    call_until_up(client, addr, req)
        .await
        .states
        .iter()
        .map(|s| (s.shards_done, s.shards))
        .collect()
}

/// An index defined over documents already written builds while writers go on; the node
/// is SIGKILLed in the middle of the build and of the writes, restarted, and once the
/// build has finished every entry agrees with its document (the digest's index check) and
/// the index answers a query exactly as a scan does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_stay_exact_through_sigkill_during_build_and_writes() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, nodes, node) = one_node(dir.path()).await;
    let (client, addr) = (nodes.client.clone(), nodes.addrs[0].clone());
    let ids: Vec<String> = (0..16_000).map(|i| format!("d{i:05}")).collect();
    for (c, chunk) in ids.chunks(64).enumerate() {
        let puts = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| call_until_up(&client, &addr, put(id, ((c * 64 + i) % 50) as u64)));
        futures::future::join_all(puts).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (client, addr, ids, stop) = (client.clone(), addr.clone(), ids.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut k = w as usize;
            while !stop.load(Ordering::Relaxed) {
                k = (k * 7919 + 13) % ids.len();
                let r = client
                    .node()
                    .put(
                        &addr,
                        put(&ids[k], (k as u64 + w) % 50),
                        Duration::from_secs(10),
                    )
                    .await;
                if r.is_err() {
                    break;
                }
            }
        }));
    }
    let index = pb::PutIndexRequest {
        collection: "c".into(),
        name: "by_n".into(),
        fields: vec![pb::IndexField {
            path: "n".into(),
            desc: false,
        }],
        ..Default::default()
    };
    call_until_up(&client, &addr, index).await;
    // SIGKILL once some shards are built and not all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let b = built(&client, &addr).await;
        if b.first().is_some_and(|(done, _)| *done > 0) {
            break b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the build never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    cluster.kill(node);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    assert!(
        at_kill[0].0 < at_kill[0].1,
        "the build had finished before the kill: {at_kill:?}"
    );
    cluster.launch(node).await.expect("node restarts");
    loop {
        let b = built(&client, &addr).await;
        if b.first().is_some_and(|(done, of)| done == of) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the build never finished: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let digest = call_until_up(
        &client,
        &addr,
        pb::DigestRequest {
            check_indexes: true,
            ..Default::default()
        },
    )
    .await;
    let mismatches: u64 = digest.shards.iter().map(|d| d.index_mismatches).sum();
    assert_eq!(mismatches, 0, "index entries disagree with their documents");
    let records: u64 = digest.shards.iter().map(|d| d.records).sum();
    assert_eq!(records, 16_000);
    // The index and a scan (`$or` keeps the planner off the index) answer alike; the node
    // reports the index built, and uses it once told it is built DC-wide.
    let probe = call_until_up(
        &client,
        &addr,
        pb::QueryRequest {
            shards: (0..u32::from(DEFAULT_SHARDS)).collect(),
            collection: "c".into(),
            limit: 1,
            count_only: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(probe.built.len(), 1, "{probe:?}");
    let usable = probe.built;
    let count = |filter: &str| pb::QueryRequest {
        shards: (0..u32::from(DEFAULT_SHARDS)).collect(),
        collection: "c".into(),
        filter: filter.as_bytes().to_vec(),
        limit: 1,
        count_only: true,
        explain: true,
        usable: usable.clone(),
        ..Default::default()
    };
    let by_index = call_until_up(&client, &addr, count(r#"{"n": 7}"#)).await;
    let by_scan = call_until_up(&client, &addr, count(r#"{"$or": [{"n": 7}]}"#)).await;
    assert_eq!(
        by_index.plan.as_ref().map(|p| p.index.as_str()),
        Some("by_n")
    );
    assert_eq!(by_scan.plan.as_ref().map(|p| p.index.as_str()), Some(""));
    assert!(by_index.count > 0);
    assert_eq!(by_index.count, by_scan.count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_cluster_certificate_are_refused() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, nodes, _) = one_node(dir.path()).await;
    let addr = nodes.addrs[0].clone();
    let ping = pb::PingRequest {};
    let pong = call_until_up(&nodes.client, &addr, ping).await;
    assert_eq!(pong.dc, "dc1", "{pong:?}");

    let stranger_ca = DevCa::generate().unwrap();
    let stranger =
        RpcClient::new(&stranger_ca.issue("stranger", PeerRole::Replicator).unwrap()).unwrap();
    let err = stranger
        .node()
        .ping(&addr, ping, Duration::from_secs(5))
        .await
        .expect_err("a certificate from another CA must be refused");
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");

    // The node still serves members.
    nodes
        .client
        .node()
        .ping(&addr, ping, Duration::from_secs(5))
        .await
        .expect("members are still served");
}
