//! Clock discipline (DESIGN.md "HLC"): a timestamp from another DC more than `max_offset`
//! ahead of this node's wall clock is counted and logged, and while this node's clock is
//! that far behind its peers it takes no writes (their timestamps would lose every LWW
//! contest they should win) and says why.

use std::sync::atomic::{AtomicU64, Ordering};

use aerolith_common::time::now_ms;
use aerolith_common::{Error, Result};

use crate::store::Store;

/// When a far-ahead timestamp was last logged (ms), so a skewed peer does not flood logs.
static LAST_WARNING_MS: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Advances the HLC past a timestamp shipped from `from_dc`, reporting it when it is
    /// more than `max_offset` ahead.
    pub(crate) fn observe_remote(&self, ts: u64, from_dc: &str) {
        let Some(ahead_ms) = self.hlc.observe_remote(ts) else {
            return;
        };
        metrics::counter!("aerolith_hlc_remote_ahead_total", "from_dc" => from_dc.to_string())
            .increment(1);
        let now = now_ms();
        let last = LAST_WARNING_MS.load(Ordering::Relaxed);
        if now >= last + 10_000
            && LAST_WARNING_MS
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                from_dc,
                ahead_ms,
                max_offset_ms = self.hlc.max_offset_ms(),
                "a timestamp from another DC is ahead of this node's clock by more than max_offset"
            );
        }
    }

    /// Refuses a local write while this node's clock is behind its peers by more than
    /// `max_offset`.
    pub(crate) fn check_clock(&self) -> Result<()> {
        match self.hlc.behind_peers() {
            None => Ok(()),
            Some(ms) => Err(Error::unavailable(format!(
                "this node's clock is {ms} ms behind timestamps from other DCs (max_offset {} ms); it takes no writes until the clocks agree",
                self.hlc.max_offset_ms()
            ))),
        }
    }
}
