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

/// A node's hybrid logical clock.
#[derive(Debug, Default)]
pub struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    /// A clock that has issued nothing yet.
    pub fn new() -> Self {
        Self::default()
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

    /// Advances the clock past a timestamp received from elsewhere.
    pub fn observe(&self, ts: u64) {
        self.last.fetch_max(ts, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
