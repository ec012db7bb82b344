//! Hybrid logical clock: timestamps that follow wall time but never go backwards.
//!
//! A timestamp packs wall milliseconds in the upper 48 bits and a logical counter in the lower
//! 16, so plain `u64` order is HLC order.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::time::now_ms;

const LOGICAL_BITS: u32 = 16;

/// Packs wall milliseconds and a logical counter into one timestamp.
pub fn pack(wall_ms: u64, logical: u16) -> u64 {
    (wall_ms << LOGICAL_BITS) | logical as u64
}

/// The wall-clock milliseconds part of a timestamp.
pub fn wall_ms(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

/// Default `max_offset` (DESIGN.md "HLC"): how far a remote timestamp may be ahead of the
/// local clock before the gap counts as clock trouble.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 500;

/// A node's hybrid logical clock.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
    max_offset_ms: u64,
}

impl Default for Hlc {
    fn default() -> Self {
        Hlc::with_max_offset(DEFAULT_MAX_OFFSET_MS)
    }
}

impl Hlc {
    /// A clock that has issued nothing yet, with the default `max_offset`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that has issued nothing yet, with a `max_offset` in milliseconds.
    pub fn with_max_offset(max_offset_ms: u64) -> Self {
        Hlc {
            last: AtomicU64::new(0),
            max_offset_ms,
        }
    }

    /// The `max_offset` in milliseconds.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// Advances past a timestamp from another DC, like [`Hlc::observe`]; returns how far
    /// (ms) it was ahead of the local wall clock when that is more than `max_offset`.
    pub fn observe_remote(&self, ts: u64) -> Option<u64> {
        self.observe(ts);
        let wall = wall_ms(ts);
        let now = now_ms();
        (wall > now + self.max_offset_ms).then(|| wall - now)
    }

    /// A fresh timestamp, greater than every one issued or observed before.
    pub fn now(&self) -> u64 {
        let physical = pack(now_ms(), 0);
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = physical.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Adopts a timestamp chosen by a peer (advancing past it), or issues a fresh one for 0.
    pub fn adopt_or_now(&self, ts: u64) -> u64 {
        if ts == 0 {
            self.now()
        } else {
            self.observe(ts);
            ts
        }
    }

    /// The newest timestamp issued or observed (0 before any).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// Advances the clock past a timestamp received from elsewhere.
    pub fn observe(&self, ts: u64) {
        self.last.fetch_max(ts, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_timestamps_beyond_max_offset_are_reported() {
        let c = Hlc::with_max_offset(200);
        assert_eq!(c.observe_remote(pack(now_ms() + 100, 0)), None);
        let ahead = c.observe_remote(pack(now_ms() + 400, 0)).expect("reported");
        assert!((200..=400).contains(&ahead), "{ahead}");
        // The clock still moves past it.
        assert!(c.now() > pack(now_ms() + 300, 0));
    }

    #[test]
    fn monotonic_and_observes() {
        let c = Hlc::new();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        let future = pack(now_ms() + 10_000, 5);
        c.observe(future);
        let d = c.now();
        assert!(d > future);
        assert_eq!(wall_ms(d), wall_ms(future));
    }
}
