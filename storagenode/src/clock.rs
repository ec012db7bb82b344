//! Clock discipline (DESIGN.md "HLC"). A shipped timestamp more than `max_offset` ahead of
//! this node's wall clock is counted and logged. Separately, each shipment carries its
//! sender's wall clock; when this node's clock differs by more than `max_offset` from a
//! majority of the peer DCs it has recent samples of, it takes no writes (LWW would order
//! its writes unfairly) and says why. Physical samples, not HLCs, decide: an HLC carries
//! timestamps it merely observed, so one fast clock would otherwise make every DC that saw
//! its writes look fast too.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aerolith_common::time::now_ms;
use aerolith_common::{Error, Result};

use crate::store::Store;

/// When a far-ahead timestamp was last logged (ms), so a skewed peer does not flood logs.
static LAST_WARNING_MS: AtomicU64 = AtomicU64::new(0);

/// How long a clock sample of a peer counts.
const SAMPLE_TTL: Duration = Duration::from_secs(30);
/// Samples kept per peer within that time.
const SAMPLES_KEPT: usize = 64;
/// Recent samples of a peer needed before its clock counts: the first shipments after a
/// start also carry connection set-up time, which would read as skew.
const SAMPLES_NEEDED: usize = 3;

/// Recent clock offsets (peer minus this node, ms) seen of each peer DC. A sample also
/// holds the shipment's transit time, which only ever lowers it, so the highest recent
/// sample is the best estimate (as NTP prefers its least-delayed sample).
#[derive(Debug)]
pub(crate) struct PeerClocks {
    ttl: Duration,
    samples: Mutex<HashMap<String, VecDeque<(i64, Instant)>>>,
}

impl Default for PeerClocks {
    fn default() -> Self {
        PeerClocks::with_ttl(SAMPLE_TTL)
    }
}

impl PeerClocks {
    /// Samples count for `ttl`.
    pub(crate) fn with_ttl(ttl: Duration) -> Self {
        PeerClocks {
            ttl,
            samples: Mutex::default(),
        }
    }

    /// Records that `dc`'s clock read `offset_ms` more than this node's.
    pub(crate) fn record(&self, dc: &str, offset_ms: i64) {
        let mut samples = self.lock();
        let kept = samples.entry(dc.to_string()).or_default();
        kept.push_back((offset_ms, Instant::now()));
        while kept.len() > SAMPLES_KEPT
            || kept.front().is_some_and(|(_, at)| at.elapsed() >= self.ttl)
        {
            kept.pop_front();
        }
    }

    /// The peers whose estimated offset is more than `max_offset_ms`, when they are a
    /// majority of the peers with recent samples; `None` otherwise.
    pub(crate) fn off_from_majority(&self, max_offset_ms: u64) -> Option<Vec<(String, i64)>> {
        let samples = self.lock();
        let estimates: Vec<(&String, i64)> = samples
            .iter()
            .filter_map(|(dc, kept)| {
                let recent: Vec<i64> = kept
                    .iter()
                    .filter(|(_, at)| at.elapsed() < self.ttl)
                    .map(|(offset, _)| *offset)
                    .collect();
                (recent.len() >= SAMPLES_NEEDED)
                    .then(|| recent.iter().max().map(|best| (dc, *best)))
                    .flatten()
            })
            .collect();
        let mut off: Vec<(String, i64)> = estimates
            .iter()
            .filter(|(_, offset)| offset.unsigned_abs() > max_offset_ms)
            .map(|(dc, offset)| ((*dc).clone(), *offset))
            .collect();
        off.sort();
        (!off.is_empty() && off.len() * 2 > estimates.len()).then_some(off)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<(i64, Instant)>>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }
}

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

    /// Records a sample of `dc`'s wall clock (`sender_wall_ms`, 0: none) against this
    /// node's clock when the shipment arrived (`received_ms`).
    pub fn sample_peer_clock(&self, dc: &str, sender_wall_ms: u64, received_ms: u64) {
        if sender_wall_ms == 0 || dc.is_empty() || dc == self.dc {
            return;
        }
        let offset = sender_wall_ms as i64 - received_ms as i64;
        self.clocks.record(dc, offset);
        metrics::gauge!("aerolith_clock_offset_ms", "peer_dc" => dc.to_string()).set(offset as f64);
    }

    /// Refuses a local write while this node's clock is off from most of its peers' by
    /// more than `max_offset`.
    pub(crate) fn check_clock(&self) -> Result<()> {
        let max = self.hlc.max_offset_ms();
        match self.clocks.off_from_majority(max) {
            None => Ok(()),
            Some(off) => {
                let detail: Vec<String> = off
                    .iter()
                    .map(|(dc, ms)| format!("{dc} {ms:+} ms"))
                    .collect();
                Err(Error::unavailable(format!(
                    "this node's clock differs from its peer DCs' by more than max_offset ({max} ms): {}; it takes no writes until the clocks agree",
                    detail.join(", ")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `offset` of `dc` as many times as a clock needs to be judged.
    fn samples(c: &PeerClocks, dc: &str, offset: i64) {
        for _ in 0..SAMPLES_NEEDED {
            c.record(dc, offset);
        }
    }

    #[test]
    fn only_a_majority_of_peers_off_stops_writes() {
        let c = PeerClocks::default();
        assert_eq!(c.off_from_majority(500), None, "no samples");
        c.record("dc2", 1_200);
        assert_eq!(c.off_from_majority(500), None, "too few samples to judge");
        samples(&c, "dc2", 1_200);
        assert_eq!(c.off_from_majority(500), Some(vec![("dc2".into(), 1_200)]));
        // With a third DC that agrees, dc2 is the odd one out: this node keeps writing.
        samples(&c, "dc3", -30);
        assert_eq!(c.off_from_majority(500), None);
        samples(&c, "dc4", -900);
        assert_eq!(c.off_from_majority(500).map(|v| v.len()), Some(2));
    }

    #[test]
    fn a_slow_shipment_is_not_a_slow_clock() {
        let c = PeerClocks::default();
        samples(&c, "dc2", -5);
        // One shipment spent 2 s in transit: its sample looks 2 s behind, the estimate not.
        c.record("dc2", -2_000);
        assert_eq!(c.off_from_majority(500), None);
    }

    #[test]
    fn samples_expire() {
        let c = PeerClocks::with_ttl(Duration::from_millis(30));
        samples(&c, "dc2", 1_200);
        assert!(c.off_from_majority(500).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            c.off_from_majority(500),
            None,
            "a corrected clock clears in time"
        );
        samples(&c, "dc2", 10);
        assert_eq!(c.off_from_majority(500), None);
    }
}
