//! SIGKILL of `aerolith-replicator` processes in the middle of shipping a backlog: after
//! restarts, the DCs converge to identical per-shard digests, the receiving DC logged
//! every document exactly once (a re-shipped batch changes nothing visible), and no
//! replication gap was recorded.

use std::collections::HashSet;

use crate::support::TURN;
use crate::support::replicators::{
    Cluster, free_udp_port, metrics, nonzero, peer_status, wait_until,
};

/// Changes in the backlog: enough that shipping takes a while even on a fast machine.
const BACKLOG: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replicators_resume_from_their_checkpoints() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    cluster.write("dc1", "items", 0..BACKLOG).await;

    // dc2's replicator receives; it must come back on the same port after a kill.
    let dc2_addr = free_udp_port();
    let mut dc2 = cluster.replicator("dc2", dc2_addr, &[]);
    let mut dc1 = cluster.replicator("dc1", "127.0.0.1:0".parse().unwrap(), &[("dc2", dc2_addr)]);

    // Kill the sender once part of the backlog has been acknowledged.
    wait_until("the first acknowledged batch", 120, || async {
        peer_status(&dc1).await["sent"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let status = peer_status(&dc1).await;
    assert!(
        status["lag_changes"].as_u64().unwrap_or(0) > 0,
        "the backlog was shipped before the kill: {status}"
    );
    dc1.child.kill().unwrap();
    dc1.child.wait().unwrap();
    // Writes go on while it is down.
    cluster.write("dc1", "items", BACKLOG..BACKLOG + 1000).await;
    drop(dc1);
    let dc1 = cluster.replicator("dc1", "127.0.0.1:0".parse().unwrap(), &[("dc2", dc2_addr)]);

    // Kill the receiver while batches are arriving, and bring it back on its port.
    wait_until("applies after the restart", 120, || async {
        nonzero(&metrics(&dc2).await, "aerolith_replication_applied_total")
    })
    .await;
    let status = peer_status(&dc1).await;
    assert!(
        status["lag_changes"].as_u64().unwrap_or(0) > 0,
        "the backlog was shipped before the second kill: {status}"
    );
    dc2.child.kill().unwrap();
    dc2.child.wait().unwrap();
    drop(dc2);
    let dc2 = cluster.replicator("dc2", dc2_addr, &[]);

    // Everything arrives, once.
    wait_until("dc1's backlog to drain", 300, || async {
        let s = peer_status(&dc1).await;
        s["lag_changes"] == 0 && s["state"] == "connected"
    })
    .await;
    assert_eq!(cluster.digests("dc1").await, cluster.digests("dc2").await);
    let logged = cluster.logged_changes("dc2").await;
    let distinct: HashSet<&(String, String)> = logged.iter().collect();
    assert_eq!(distinct.len(), BACKLOG + 1000, "every document arrived");
    assert_eq!(logged.len(), BACKLOG + 1000, "and was logged once");
    let page = metrics(&dc1).await;
    assert!(
        !nonzero(&page, "aerolith_replication_gaps_total"),
        "a gap was recorded:\n{page}"
    );
    drop((dc1, dc2));
    cluster.stop().await;
}
