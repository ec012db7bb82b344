//! Which records exist while a workload inserts: new records take numbers from a shared
//! counter, and readers choose only below the acknowledged limit (every number under it
//! has finished inserting), as YCSB's acknowledged counter does.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shared record numbering of one run.
#[derive(Debug)]
pub struct Keyspace {
    next: AtomicU64,
    limit: AtomicU64,
    done_above: Mutex<BTreeSet<u64>>,
}

impl Keyspace {
    /// A keyspace whose records 0..records were loaded.
    pub fn new(records: u64) -> Keyspace {
        Keyspace {
            next: AtomicU64::new(records),
            limit: AtomicU64::new(records),
            done_above: Mutex::new(BTreeSet::new()),
        }
    }

    /// Takes the number of a new record.
    pub fn claim(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks a claimed number finished (inserted or failed), moving the limit past every
    /// finished number in a row.
    pub fn finish(&self, n: u64) {
        let mut above = self.done_above.lock().unwrap_or_else(|p| p.into_inner());
        above.insert(n);
        let mut limit = self.limit.load(Ordering::Relaxed);
        while above.remove(&limit) {
            limit += 1;
        }
        self.limit.store(limit, Ordering::Release);
    }

    /// Records 0..limit have finished inserting.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }
}

/// The key of record number `n`: YCSB's `user` followed by the hashed number, so inserts
/// spread over the key space.
pub fn key_of(n: u64) -> String {
    format!("user{}", super::generator::fnv64(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_moves_only_past_contiguous_finishes() {
        let k = Keyspace::new(10);
        let (a, b, c) = (k.claim(), k.claim(), k.claim());
        assert_eq!((a, b, c), (10, 11, 12));
        k.finish(b);
        assert_eq!(k.limit(), 10);
        k.finish(a);
        assert_eq!(k.limit(), 12);
        k.finish(c);
        assert_eq!(k.limit(), 13);
    }
}
