//! SIGKILL of `aerolith replicator` processes in the middle of shipping a backlog: after
//! restarts, the DCs converge to identical per-shard digests, the receiving DC logged
//! every document exactly once (a re-shipped batch changes nothing visible), and no
//! replication gap was recorded.

use std::collections::HashSet;

use crate::support::TURN;
use crate::support::procs::{
    Nodes, cluster_without_replicators, launch_replicator, metrics, nonzero, peer_status,
    replicator, wait_until,
};

/// Changes in the backlog: enough that shipping takes a while even on a fast machine.
const BACKLOG: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replicators_resume_from_their_checkpoints() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_without_replicators(dir.path(), 2, &[]).await;
    let nodes = Nodes::of(&cluster);
    nodes.write("dc1", "items", 0..BACKLOG).await;
    let (admin1, admin2) = (cluster.admin[0].clone(), cluster.admin[1].clone());

    // dc2's replicator receives; the cluster restarts it on the same port after a kill.
    launch_replicator(&mut cluster, 1).await;
    launch_replicator(&mut cluster, 0).await;

    // Kill the sender once part of the backlog has been acknowledged.
    wait_until("the first acknowledged batch", 120, || async {
        peer_status(&admin1).await["sent"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let status = peer_status(&admin1).await;
    assert!(
        status["lag_changes"].as_u64().unwrap_or(0) > 0,
        "the backlog was shipped before the kill: {status}"
    );
    cluster.kill(replicator(&cluster, 0));
    // Writes go on while it is down.
    nodes.write("dc1", "items", BACKLOG..BACKLOG + 1000).await;
    launch_replicator(&mut cluster, 0).await;

    // Kill the receiver while batches are arriving, and bring it back on its port.
    wait_until("applies after the restart", 120, || async {
        nonzero(
            &metrics(&admin2).await,
            "aerolith_replication_applied_total",
        )
    })
    .await;
    let status = peer_status(&admin1).await;
    assert!(
        status["lag_changes"].as_u64().unwrap_or(0) > 0,
        "the backlog was shipped before the second kill: {status}"
    );
    cluster.kill(replicator(&cluster, 1));
    launch_replicator(&mut cluster, 1).await;

    // Everything arrives, once.
    wait_until("dc1's backlog to drain", 300, || async {
        let s = peer_status(&admin1).await;
        s["lag_changes"] == 0 && s["state"] == "connected"
    })
    .await;
    assert_eq!(nodes.digests("dc1").await, nodes.digests("dc2").await);
    let logged = nodes.logged_changes("dc2").await;
    let distinct: HashSet<&(String, String)> = logged.iter().collect();
    assert_eq!(distinct.len(), BACKLOG + 1000, "every document arrived");
    assert_eq!(logged.len(), BACKLOG + 1000, "and was logged once");
    let page = metrics(&admin1).await;
    assert!(
        !nonzero(&page, "aerolith_replication_gaps_total"),
        "a gap was recorded:\n{page}"
    );
}
