//! A task per storage node of the DC, for every node its shard map lists: a node added
//! while the DC serves gets its task within [`WATCH_EVERY`], and a node the map no longer
//! lists loses it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};

use aerolith_common::shard_map::ShardMaps;

/// How often the map's node list is read again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Runs `task(node_id)` for every node of DC `dc` in its newest map, until aborted (which
/// aborts every node's task too).
pub async fn for_each_node<F, Fut>(maps: Arc<ShardMaps>, dc: String, task: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut running: HashMap<String, AbortHandle> = HashMap::new();
    loop {
        let listed: Vec<String> = maps.nodes(&dc).into_iter().map(|n| n.id).collect();
        running.retain(|id, handle| {
            let keep = listed.contains(id);
            if !keep {
                handle.abort();
            }
            keep
        });
        for id in listed {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(id) {
                let handle = set.spawn(task(slot.key().clone()));
                slot.insert(handle);
            }
        }
        // Reap finished tasks so the set does not grow; a task that ended is started again
        // next round only if its node is still listed (it is removed from `running`).
        while let Some(done) = set.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => e.id(),
            };
            running.retain(|_, h| h.id() != id);
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
