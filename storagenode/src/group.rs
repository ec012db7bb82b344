//! Group commit: writes are staged under their shard's lock in commit order and written to
//! RocksDB in groups, one WriteBatch and one WAL sync for everything staged meanwhile, by
//! whichever waiting writer finds no group in flight (the leader). No shard lock is held
//! across the sync: a writer stages, releases its shard, then waits for its group.
//!
//! What a staged write changes is invisible to readers until its group is durable:
//! readers read RocksDB, which takes a synced batch in only after the sync, and the log
//! heads that feeds and session checks use move when the group is published. Writers
//! under a shard lock read the newest state, staged included, through the overlay
//! ([`Staged::track`] keys), so preconditions, merges, idempotency and watermarks see
//! every earlier write of the shard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rocksdb::WriteBatch;

use aerolith_common::{Error, Result};

use crate::engine::Cf;

/// A staged write's place in commit order; 0 stands for "nothing staged".
pub(crate) type Ticket = u64;

/// RocksDB's WriteBatch representation starts with an 8-byte sequence number and a 4-byte
/// little-endian record count; the records follow, each self-delimiting.
const BATCH_HEADER: usize = 12;

/// One write on its way to disk.
pub(crate) struct Staged {
    /// What it writes.
    pub(crate) batch: WriteBatch,
    /// Keys, with the values put there, that writers read back before the batch is durable.
    overlay: Vec<(Vec<u8>, Vec<u8>)>,
    /// The shard log position it publishes, if it logs a change.
    publish: Option<(u16, u64)>,
    /// Whether its acknowledgement needs the WAL synced (false for a watermark marker,
    /// which re-delivery restores if lost).
    sync: bool,
}

impl Staged {
    /// A write of `batch` that needs a sync before its acknowledgement.
    pub(crate) fn new(batch: WriteBatch) -> Staged {
        Staged {
            batch,
            overlay: Vec::new(),
            publish: None,
            sync: true,
        }
    }

    /// A write whose loss in a power failure costs nothing but a re-delivery.
    pub(crate) fn unsynced(batch: WriteBatch) -> Staged {
        Staged {
            sync: false,
            ..Staged::new(batch)
        }
    }

    /// Notes that the batch puts `value` at `key` of `cf`, for writers that read it back
    /// before the batch is durable.
    pub(crate) fn track(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.overlay.push((overlay_key(cf, key), value.to_vec()));
    }

    /// Whether it writes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.publish.is_none()
    }

    /// Notes that the batch logs position `seq` of `shard`'s change log.
    pub(crate) fn publishes(&mut self, shard: u16, seq: u64) {
        self.publish = Some((shard, seq));
    }
}

fn overlay_key(cf: Cf, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(cf as u8);
    k.extend_from_slice(key);
    k
}

/// Each shard's log heads as readers may see them.
pub(crate) struct Heads {
    /// The log epoch of each shard (changed only when a moved shard is imported).
    epochs: Vec<AtomicU64>,
    /// The last position handed out (staged or durable).
    assigned: Vec<AtomicU64>,
    /// The last position whose write is durable and visible.
    durable: Vec<AtomicU64>,
}

impl Heads {
    /// Heads of logs at `(epoch, seq)` each, everything durable.
    pub(crate) fn new(logs: impl Iterator<Item = (u64, u64)>) -> Heads {
        let (epochs, seqs): (Vec<u64>, Vec<u64>) = logs.unzip();
        Heads {
            epochs: epochs.into_iter().map(AtomicU64::new).collect(),
            assigned: seqs.iter().map(|s| AtomicU64::new(*s)).collect(),
            durable: seqs.iter().map(|s| AtomicU64::new(*s)).collect(),
        }
    }

    /// `(epoch, seq)` of the last durable position of `shard`.
    pub(crate) fn durable(&self, shard: u16) -> (u64, u64) {
        let s = usize::from(shard);
        (
            self.epochs[s].load(Ordering::Acquire),
            self.durable[s].load(Ordering::Acquire),
        )
    }

    /// `(epoch, seq)` of the last position handed out for `shard`: at least every position
    /// a reader can have seen.
    pub(crate) fn assigned(&self, shard: u16) -> (u64, u64) {
        let s = usize::from(shard);
        (
            self.epochs[s].load(Ordering::Acquire),
            self.assigned[s].load(Ordering::Acquire),
        )
    }

    /// Sets `shard`'s log to `(epoch, seq)`, all durable: a moved shard's imported log
    /// (under the shard's lock, while the node does not serve it).
    pub(crate) fn reset(&self, shard: u16, epoch: u64, seq: u64) {
        let s = usize::from(shard);
        self.epochs[s].store(epoch, Ordering::Release);
        self.assigned[s].store(seq, Ordering::Release);
        self.durable[s].store(seq, Ordering::Release);
    }

    /// Records that `seq` of `shard` was handed out (under the shard's lock).
    pub(crate) fn assign(&self, shard: u16, seq: u64) {
        self.assigned[usize::from(shard)].store(seq, Ordering::Release);
    }

    /// Records that `shard`'s log is durable through `seq`.
    pub(crate) fn publish(&self, shard: u16, seq: u64) {
        self.durable[usize::from(shard)].fetch_max(seq, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct Queue {
    /// Staged writes not yet taken by a leader, in ticket order.
    waiting: Vec<(Ticket, Staged)>,
    /// The ticket the next staged write gets.
    next: Ticket,
    /// Every ticket below this is durable.
    durable: Ticket,
    /// Whether a leader is writing a group now.
    leading: bool,
    /// Why the store stopped taking writes: a failed group write leaves positions handed
    /// out that never reached the disk, so nothing may be written after them.
    failed: Option<String>,
}

/// The commit queue of one store.
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    done: Condvar,
    overlay: Mutex<Overlay>,
    /// A unit test's hold on the next leader between writing its group and publishing it:
    /// (told when the leader got there, released by the test).
    #[cfg(test)]
    pub(crate) hold: Mutex<Option<Hold>>,
}

/// A unit test's hold: the leader tells the first end it got there, then waits on the second.
#[cfg(test)]
pub(crate) type Hold = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

/// Staged values by overlay key (column family tag and key), with the ticket that staged
/// each.
type Overlay = HashMap<Vec<u8>, (Ticket, Vec<u8>)>;

/// What a leader does with a group: write it (one batch, synced if asked) and make it
/// visible. Implemented by the store.
pub(crate) trait Sink {
    /// Writes one batch, synced to disk when `sync` is true.
    fn write_group(&self, batch: WriteBatch, sync: bool) -> Result<()>;
    /// Publishes durable log positions (each shard's highest in the group) and wakes
    /// readers.
    fn published(&self, positions: &[(u16, u64)]);
}

impl GroupCommit {
    /// An empty queue.
    pub(crate) fn new() -> GroupCommit {
        GroupCommit {
            queue: Mutex::new(Queue {
                next: 1,
                durable: 1,
                ..Queue::default()
            }),
            done: Condvar::new(),
            overlay: Mutex::default(),
            #[cfg(test)]
            hold: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_overlay(&self) -> MutexGuard<'_, Overlay> {
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a write (under the lock of the shard it belongs to, so a shard's writes queue
    /// in their commit order); its ticket, to [`GroupCommit::wait`] for once the shard's
    /// lock is released.
    pub(crate) fn stage(&self, mut staged: Staged) -> Result<Ticket> {
        let mut q = self.lock();
        if let Some(why) = &q.failed {
            return Err(failed(why));
        }
        let ticket = q.next;
        q.next += 1;
        let overlay = std::mem::take(&mut staged.overlay);
        if !overlay.is_empty() {
            let mut o = self.lock_overlay();
            for (k, v) in overlay {
                o.insert(k, (ticket, v));
            }
        }
        q.waiting.push((ticket, staged));
        Ok(ticket)
    }

    /// The newest staged value of `key` in `cf`, when a write not yet durable put one
    /// (`None`: RocksDB has the newest).
    pub(crate) fn staged(&self, cf: Cf, key: &[u8]) -> Option<Vec<u8>> {
        self.lock_overlay()
            .get(&overlay_key(cf, key))
            .map(|(_, v)| v.clone())
    }

    /// The ticket of the last write staged so far (0 when none ever was).
    pub(crate) fn last_ticket(&self) -> Ticket {
        self.lock().next - 1
    }

    /// Returns once `ticket` is durable, leading groups while no one else does.
    pub(crate) fn wait(&self, ticket: Ticket, sink: &dyn Sink) -> Result<()> {
        let mut q = self.lock();
        loop {
            if q.durable > ticket {
                return Ok(());
            }
            if let Some(why) = &q.failed {
                return Err(failed(why));
            }
            if q.leading {
                q = self.done.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            q.leading = true;
            let group = std::mem::take(&mut q.waiting);
            let through = q.next;
            drop(q);
            let written = self.write(group, sink);
            q = self.lock();
            q.leading = false;
            match written {
                Ok(()) => q.durable = through,
                Err(e) => {
                    tracing::error!(error = %e.message, "a group commit failed; the store takes no more writes until it restarts");
                    q.failed = Some(e.message);
                }
            }
            self.done.notify_all();
        }
    }

    /// Writes a group as one batch, then publishes it.
    fn write(&self, group: Vec<(Ticket, Staged)>, sink: &dyn Sink) -> Result<()> {
        if group.is_empty() {
            return Ok(());
        }
        let sync = group.iter().any(|(_, s)| s.sync);
        let mut positions: Vec<(u16, u64)> = group.iter().filter_map(|(_, s)| s.publish).collect();
        let first = group.first().map_or(0, |(t, _)| *t);
        let last = group.last().map_or(0, |(t, _)| *t);
        let batch = merge(group.into_iter().map(|(_, s)| s.batch))?;
        metrics::histogram!("aerolith_commit_group_size").record((last + 1 - first) as f64);
        sink.write_group(batch, sync)?;
        #[cfg(test)]
        if let Some((reached, release)) = self.hold.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = reached.send(());
            let _ = release.recv();
        }
        // Visible in RocksDB now: the overlay may forget what this group staged, unless a
        // later write staged the key again.
        self.lock_overlay()
            .retain(|_, (t, _)| !(first..=last).contains(t));
        // A shard's positions rise in ticket order: the last one of each shard is its head.
        positions.sort_unstable();
        positions.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 = a.1.max(b.1);
                true
            } else {
                false
            }
        });
        sink.published(&positions);
        Ok(())
    }
}

fn failed(why: &str) -> Error {
    Error::unavailable(format!(
        "this storage node stopped taking writes after a failed write ({why}); restart it"
    ))
}

/// One WriteBatch holding every batch's records, in order.
fn merge(batches: impl Iterator<Item = WriteBatch>) -> Result<WriteBatch> {
    let mut batches = batches.peekable();
    let Some(first) = batches.next() else {
        return Ok(WriteBatch::default());
    };
    if batches.peek().is_none() {
        return Ok(first);
    }
    let mut rep = first.data().to_vec();
    let mut count = u32::try_from(first.len())
        .map_err(|_| Error::internal("a write batch of more than 2^32 records"))?;
    for b in batches {
        let data = b.data();
        let Some(records) = data.get(BATCH_HEADER..) else {
            continue;
        };
        rep.extend_from_slice(records);
        count = count
            .checked_add(
                u32::try_from(b.len())
                    .map_err(|_| Error::internal("a write batch of more than 2^32 records"))?,
            )
            .ok_or_else(|| Error::internal("a commit group of more than 2^32 records"))?;
    }
    let header = rep
        .get_mut(8..BATCH_HEADER)
        .ok_or_else(|| Error::internal("a write batch without its header"))?;
    header.copy_from_slice(&count.to_le_bytes());
    Ok(WriteBatch::from_data(&rep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_batches_hold_every_record_in_order() {
        let mut a = WriteBatch::default();
        a.put(b"k1", b"a");
        a.put(b"k2", b"a");
        let mut b = WriteBatch::default();
        b.put(b"k2", b"b");
        b.delete(b"k1");
        let empty = WriteBatch::default();
        let merged = merge([a, empty, b].into_iter()).unwrap();
        assert_eq!(merged.len(), 4);

        let dir = tempfile::tempdir().unwrap();
        let db = rocksdb::DB::open_default(dir.path()).unwrap();
        db.write(merged).unwrap();
        assert_eq!(db.get(b"k1").unwrap(), None);
        assert_eq!(db.get(b"k2").unwrap().as_deref(), Some(&b"b"[..]));
    }
}
