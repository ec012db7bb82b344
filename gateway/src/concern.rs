//! Write concern `all` (API.md): a write is acknowledged only once every DC not marked
//! `down` has applied it, which each DC's owner of the shard confirms by covering the
//! write's session mark.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use aerolith_common::{Error, ErrorCode, Result, pb};

use crate::router::Router;

/// Pause between attempts to reach a DC whose owner did not answer.
const RETRY_EVERY: Duration = Duration::from_millis(100);

impl Router {
    /// Waits until every DC that is not marked down has applied `marks` (write positions),
    /// or fails with `deadline_exceeded` at `deadline`: the writes stand either way.
    pub async fn confirm(&self, marks: &[pb::SessionMark], deadline: Instant) -> Result<()> {
        let mut by_node: BTreeMap<(String, String), Vec<pb::SessionMark>> = BTreeMap::new();
        for (i, dc) in self
            .cluster()
            .dcs
            .iter()
            .enumerate()
            .filter(|(_, d)| !self.health().is_dc_down(&d.id))
        {
            for m in marks {
                let owner = self.owner_addr(i, m.shard as u16);
                by_node
                    .entry((dc.id.clone(), owner.to_string()))
                    .or_default()
                    .push(m.clone());
            }
        }
        let waits = by_node.into_iter().map(|((dc, addr), marks)| async move {
            self.confirm_on(&addr, marks, deadline)
                .await
                .map_err(|e| (dc, e))
        });
        for outcome in join_all(waits).await {
            if let Err((dc, e)) = outcome {
                return Err(Error::deadline(format!(
                    "write concern all: {dc} did not confirm the write before the deadline \
                     ({}); the write still stands",
                    e.message
                )));
            }
        }
        Ok(())
    }

    /// Asks one node to answer once it covers `marks`, retrying while it cannot be reached.
    async fn confirm_on(
        &self,
        addr: &str,
        marks: Vec<pb::SessionMark>,
        deadline: Instant,
    ) -> Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::deadline("no answer"));
            }
            let req = pb::AwaitRequest {
                marks: marks.clone(),
            };
            match self.call_node(addr, req, left).await {
                Ok(_) => return Ok(()),
                Err(e) if e.code == ErrorCode::Unavailable => {
                    tokio::time::sleep_until(deadline.min(Instant::now() + RETRY_EVERY)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
