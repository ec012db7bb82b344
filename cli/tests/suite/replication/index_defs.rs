//! Secondary index definitions replicate with their collection's settings: definitions made
//! concurrently in two DCs settle the same way in both (per name the later stamp wins, a
//! drop included), and a collection's deletion takes its indexes along everywhere.

use crate::support::TURN;
use crate::support::procs::{Nodes, cluster_without_replicators, launch_replicator, wait_until};
use aerolith_common::pb;

fn field(path: &str) -> pb::IndexField {
    pb::IndexField {
        path: path.into(),
        desc: false,
    }
}

async fn put_index(nodes: &Nodes, dc: &str, name: &str, path: &str) -> pb::PutCollectionResponse {
    nodes
        .call(
            dc,
            pb::PutIndexRequest {
                collection: "c".into(),
                name: name.into(),
                fields: vec![field(path)],
                ..Default::default()
            },
        )
        .await
}

async fn indexes(nodes: &Nodes, dc: &str) -> Vec<pb::IndexDef> {
    let meta = nodes
        .call(dc, pb::GetCollectionRequest { name: "c".into() })
        .await;
    meta.indexes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_definitions_converge_across_dcs_and_go_with_their_collection() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_without_replicators(dir.path(), 2, &[]).await;
    let nodes = Nodes::of(&cluster);

    // Before any replicator runs: both DCs define `a` with different fields (neither sees
    // the other's), dc1 also defines `b`.
    let a1 = put_index(&nodes, "dc1", "a", "n").await;
    assert!(a1.created);
    let again = put_index(&nodes, "dc1", "a", "n").await;
    assert!(!again.created, "the same definition again changes nothing");
    let other = nodes
        .client
        .node()
        .put_index(
            nodes.node("dc1"),
            pb::PutIndexRequest {
                collection: "c".into(),
                name: "a".into(),
                fields: vec![field("by")],
                ..Default::default()
            },
            std::time::Duration::from_secs(10),
        )
        .await
        .expect_err("another definition under a live name");
    assert_eq!(other.code, aerolith_common::ErrorCode::InvalidArgument);
    put_index(&nodes, "dc2", "a", "by").await;
    put_index(&nodes, "dc1", "b", "n").await;

    launch_replicator(&mut cluster, 0).await;
    launch_replicator(&mut cluster, 1).await;
    wait_until("both DCs hold the same definitions", 60, || async {
        let (x, y) = (indexes(&nodes, "dc1").await, indexes(&nodes, "dc2").await);
        x == y && x.len() == 2
    })
    .await;
    let held = indexes(&nodes, "dc1").await;
    let a = held.iter().find(|d| d.name == "a").expect("a");
    let dc2_won = a.fields == vec![field("by")];
    assert_eq!(
        dc2_won,
        a.dc == "dc2",
        "the later stamp's fields win: {held:?}"
    );

    // dc2 drops `b` once it has it; the drop reaches dc1.
    let dropped = nodes
        .call(
            "dc2",
            pb::DropIndexRequest {
                collection: "c".into(),
                name: "b".into(),
                hlc: 0,
            },
        )
        .await;
    assert!(dropped.indexes.iter().any(|d| d.name == "b" && d.dropped));
    wait_until("dc1 sees the drop", 60, || async {
        indexes(&nodes, "dc1")
            .await
            .iter()
            .any(|d| d.name == "b" && d.dropped)
    })
    .await;

    // Deleting the collection in dc1 takes the definitions along in both DCs.
    nodes
        .call(
            "dc1",
            pb::DeleteCollectionRequest {
                name: "c".into(),
                hlc: 0,
            },
        )
        .await;
    wait_until("dc2 forgets the definitions", 60, || async {
        let meta = nodes
            .call("dc2", pb::GetCollectionRequest { name: "c".into() })
            .await;
        meta.deleted && meta.indexes.is_empty()
    })
    .await;
    assert!(indexes(&nodes, "dc1").await.is_empty());
}
