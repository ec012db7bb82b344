//! The store: one RocksDB instance holding this node's shards, its identity, actor epoch,
//! clock and per-shard write serialisation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use prost::Message;
use rocksdb::{WriteBatch, WriteOptions};

use aerolith_common::hlc::Hlc;
use aerolith_common::json::Limits;
use aerolith_common::version::Actor;
use aerolith_common::{Error, Result, pb};

use tokio::sync::watch;

use crate::changes::Retention;
use crate::engine::{Cf, Engine, MemoryProfile, db_err};
use crate::group::{GroupCommit, Heads, Sink, Staged, Ticket};
use crate::keys::*;
use crate::open;

/// Format version of [`pb::DocRecord`] written by this code.
pub const RECORD_FORMAT: u32 = 1;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// After the WAL is synced to disk (the default).
    Durable,
    /// After the write reaches the OS; a crash may lose recent writes (the node then takes a
    /// new actor epoch at restart).
    Relaxed,
}

/// What a node does when it opens a store that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NewStore {
    /// Start serving it empty: a node of a new cluster.
    #[default]
    Genesis,
    /// Take a new actor epoch and serve nothing until the DC's replicator has copied every
    /// shard from a peer DC: a node replacing one that lost its disk.
    Seed,
    /// Serve nothing until the DC's replicator has checked whether a peer DC holds data of
    /// the node's shards: if one does, this is a replacement for a lost disk and is seeded
    /// (as `seed`); if none does, the cluster is new and the store starts empty (as
    /// `genesis`). The safe default of a node in a multi-DC cluster.
    Auto,
}

/// A file an operator's `aerolith restore` leaves in a store directory: the store came
/// from a backup, so its counters are not continuous with what the cluster has seen.
pub const RESTORE_MARKER: &str = "AEROLITH-RESTORED";

/// How a restored store rejoins, as its [`RESTORE_MARKER`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// Re-seeded from a peer DC (the backup's records are replaced by the peer's copy).
    Seed,
    /// Served as the backup holds it, under a new epoch (no peer DC has the data).
    AsIs,
}

impl Restored {
    /// The marker's content.
    pub fn as_str(self) -> &'static str {
        match self {
            Restored::Seed => "seed",
            Restored::AsIs => "as-is",
        }
    }

    fn read(dir: &std::path::Path) -> Result<Option<Restored>> {
        match std::fs::read_to_string(dir.join(RESTORE_MARKER)) {
            Ok(s) if s.trim() == "seed" => Ok(Some(Restored::Seed)),
            Ok(s) if s.trim() == "as-is" => Ok(Some(Restored::AsIs)),
            Ok(s) => Err(Error::invalid(format!(
                "{} says {:?}; expected \"seed\" or \"as-is\"",
                dir.join(RESTORE_MARKER).display(),
                s.trim()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::unavailable(format!(
                "cannot read {}: {e}",
                dir.join(RESTORE_MARKER).display()
            ))),
        }
    }
}

/// An actor epoch above `stored` and above every epoch handed out before now: epochs of
/// renewed stores are wall-clock seconds, so a store rebuilt without its old epoch (a lost
/// disk) still never reuses one.
pub(crate) fn renewed_epoch(stored: u32) -> u32 {
    let secs = u32::try_from(aerolith_common::time::now_ms() / 1000).unwrap_or(u32::MAX);
    stored.saturating_add(1).max(secs)
}

/// What a store needs to open.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the RocksDB instance.
    pub path: PathBuf,
    /// This node's DC.
    pub dc: String,
    /// This node's id within its DC.
    pub node: String,
    /// Number of virtual shards of the cluster.
    pub shards: u16,
    /// Acknowledgement rule for writes.
    pub durability: Durability,
    /// RocksDB memory sizing.
    pub memory: MemoryProfile,
    /// Document body limits.
    pub limits: Limits,
    /// How much of each shard's change log to keep.
    pub retention: Retention,
    /// What to do when the store does not exist yet.
    pub new_store: NewStore,
}

/// An operation's outcome and the commit ticket it must wait for before answering.
pub(crate) type Staging<T> = (Result<T>, Ticket);

/// Per-shard state, guarded by the shard's lock: holding it serialises the shard's writes,
/// so read-modify-write is atomic and change-log sequence numbers are gap-free.
pub(crate) struct ShardState {
    /// The last sequence number written (the log's head).
    pub(crate) seq: u64,
    pub(crate) log_epoch: u64,
    /// The oldest retained sequence number (`seq + 1` when the log is empty).
    pub(crate) first: u64,
    /// The highest counter of this node's actor on any record of the shard whose tombstone
    /// was collected: local writes count past it, so no counter is ever issued twice for
    /// one document (DESIGN.md "Actors").
    pub(crate) counter_floor: u64,
    /// The commit ticket of the shard's last staged write: what a caller that read or
    /// wrote the shard's newest state waits for before it answers.
    pub(crate) last_ticket: Ticket,
}

/// One storage node's store.
pub struct Store {
    pub(crate) engine: Engine,
    pub(crate) dc: String,
    /// The epoch of this node's actor (`dc@epoch`); renewed only when an undecided store
    /// is told to be seeded.
    actor_epoch: AtomicU32,
    /// A new store under [`NewStore::Auto`] waiting for its replicator's decision.
    pub(crate) undecided: AtomicBool,
    pub(crate) hlc: Hlc,
    /// Recent clock samples of peer DCs (the max_offset rule).
    pub(crate) clocks: crate::clock::PeerClocks,
    pub(crate) limits: Limits,
    shards: Vec<Mutex<ShardState>>,
    /// Staged writes on their way to disk, in groups.
    pub(crate) group: GroupCommit,
    /// Each shard's log heads as readers may see them.
    pub(crate) heads: Heads,
    sync: bool,
    reset_key: [u8; 32],
    pub(crate) collections: Mutex<HashMap<String, pb::CollectionMeta>>,
    /// The newest write of each collection, which a collection deletion is ordered
    /// against. Taken inside a shard lock; a deletion holds them all.
    pub(crate) newest: Mutex<crate::newest::Newest>,
    retention: Retention,
    /// Bumped after every commit, so live change readers wake up.
    changed: watch::Sender<u64>,
    /// Bumped after every commit and every watermark move, so session reads wake up.
    progress: watch::Sender<u64>,
    /// Shards still waiting to be seeded from a peer DC; the node serves nothing while any is.
    pub(crate) unseeded: Mutex<std::collections::BTreeSet<u16>>,
    /// What peers acknowledged, and the tombstone floors derived from it.
    pub(crate) acks: Mutex<crate::acks::AckState>,
    /// Coverage of third DCs' logs learnt through forwarding DCs.
    pub(crate) relays: Mutex<crate::relay::Relays>,
    /// The DC's shard map this node holds.
    pub(crate) ownership: crate::ownership::Ownership,
    /// Exports of shards being moved away, being read.
    pub(crate) exports: crate::shard_move::Exports,
}

impl Store {
    /// Opens the store: decides whether it is continuous with what the cluster has seen
    /// (and so its actor epoch), then loads its shards' states, collections and keys.
    pub fn open(cfg: &StoreConfig) -> Result<Store> {
        std::fs::create_dir_all(&cfg.path).map_err(|e| {
            Error::unavailable(format!("cannot create {}: {e}", cfg.path.display()))
        })?;
        let restored = Restored::read(&cfg.path)?;
        let engine = Engine::open(&cfg.path, cfg.memory)?;
        let mut batch = WriteBatch::default();
        let c = open::continuity(&engine, cfg, restored, &mut batch)?;
        open::check_shard_count(&engine, cfg, &mut batch)?;
        let sync = cfg.durability == Durability::Durable;
        open::mark_durability(&engine, sync, &mut batch)?;
        let (shards, unseeded) = open::shards(&engine, cfg, &c, &mut batch)?;
        let reset_key = open::reset_key(&engine, &mut batch)?;
        let collections = open::collections(&engine)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        engine.db().write_opt(batch, &wo).map_err(db_err)?;
        if restored.is_some() {
            std::fs::remove_file(cfg.path.join(RESTORE_MARKER)).map_err(|e| {
                Error::unavailable(format!("cannot remove the restore marker: {e}"))
            })?;
        }
        let identity = format!("{}/{}", cfg.dc, cfg.node);
        if c.undecided {
            tracing::warn!(%identity, "new store: serving nothing until the DC's replicator has checked whether a peer DC holds data of its shards (then it is seeded from there) or the cluster is new");
        } else if !unseeded.is_empty() {
            tracing::warn!(%identity, epoch = c.epoch, shards = unseeded.len(), "store waits to be seeded from a peer DC; serving nothing until then");
        }
        // Stamps issued before the restart stay below every new one, whatever the clock says
        // now (DESIGN.md "HLC").
        let hlc = Hlc::new();
        let persisted_hlc = open::load_u64(&engine, META_HLC)?.unwrap_or(0);
        hlc.observe(persisted_hlc);
        let acks = crate::acks::AckState::load(&engine)?;
        let ownership = crate::ownership::Ownership::load(&engine, &cfg.node, cfg.shards)?;
        let heads = Heads::new(shards.iter().map(|st| {
            let st = st.lock().unwrap_or_else(|p| p.into_inner());
            (st.log_epoch, st.seq)
        }));
        tracing::info!(%identity, epoch = c.epoch, path = %cfg.path.display(), "store open");
        Ok(Store {
            engine,
            dc: cfg.dc.clone(),
            actor_epoch: AtomicU32::new(c.epoch),
            undecided: AtomicBool::new(c.undecided),
            hlc,
            clocks: Default::default(),
            limits: cfg.limits,
            shards,
            group: GroupCommit::new(),
            heads,
            sync,
            reset_key,
            collections: Mutex::new(collections),
            newest: Mutex::new(crate::newest::Newest::new(persisted_hlc)),
            retention: Retention {
                count: cfg.retention.count.max(1),
                hard_cap: cfg.retention.hard_cap.max(cfg.retention.count.max(1)),
                ..cfg.retention
            },
            changed: watch::Sender::new(0),
            progress: watch::Sender::new(0),
            unseeded: Mutex::new(unseeded),
            acks: Mutex::new(acks),
            relays: Mutex::default(),
            ownership,
            exports: Default::default(),
        })
    }

    /// This node's version-vector actor.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            dc: self.dc.clone(),
            epoch: self.actor_epoch(),
        }
    }

    /// The epoch of this node's actor.
    pub(crate) fn actor_epoch(&self) -> u32 {
        self.actor_epoch.load(Ordering::Acquire)
    }

    /// Moves this node to a new actor epoch (persisted by the caller).
    pub(crate) fn set_actor_epoch(&self, epoch: u32) {
        self.actor_epoch.store(epoch, Ordering::Release);
    }

    /// The key of the node's QUIC stateless resets, stable across restarts.
    pub fn reset_key(&self) -> &[u8; 32] {
        &self.reset_key
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u16 {
        self.shards.len() as u16
    }

    /// Checks a shard number from a request.
    pub(crate) fn check_shard(&self, shard: u32) -> Result<u16> {
        if (shard as usize) < self.shards.len() {
            Ok(shard as u16)
        } else {
            Err(Error::invalid(format!("shard {shard} out of range")))
        }
    }

    /// Takes a shard's write lock.
    pub(crate) fn lock_shard(&self, shard: u16) -> MutexGuard<'_, ShardState> {
        self.shards[shard as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every shard's write lock, in shard order, for a change of a collection's incarnation:
    /// its documents are range-deleted while no write is between reading the collection's
    /// settings and committing, so no record of the old incarnation lands after the range
    /// delete (a node and its peer would then hold different records forever). Writes take
    /// one shard's lock, then the collections lock; this takes all, then that lock. Every
    /// write staged before is durable on return, so scans of RocksDB see all of them.
    pub(crate) fn lock_all_shards(&self) -> Result<Vec<MutexGuard<'_, ShardState>>> {
        let all: Vec<_> = (0..self.shard_count())
            .map(|s| self.lock_shard(s))
            .collect();
        self.group.wait(self.group.last_ticket(), self)?;
        Ok(all)
    }

    /// Waits until every write staged in the shard whose lock is `st` is durable, for an
    /// operation that reads the shard's records or log from RocksDB under the lock.
    pub(crate) fn settle(&self, st: &ShardState) -> Result<()> {
        self.group.wait(st.last_ticket, self)
    }

    /// Runs `f` under `shard`'s lock (taken by `deadline`); its outcome and the ticket to
    /// wait for, once the lock is released, before answering with it: everything `f` may
    /// have read or written of the shard, so an answer never rests on a write a crash
    /// could still take back.
    pub(crate) fn in_shard<T>(
        &self,
        shard: u16,
        deadline: Instant,
        f: impl FnOnce(&mut ShardState) -> Result<T>,
    ) -> Staging<T> {
        match self.lock_shard_by(shard, deadline) {
            Ok(mut st) => {
                let out = f(&mut st);
                (out, st.last_ticket)
            }
            Err(e) => (Err(e), 0),
        }
    }

    /// The answer of a staged operation, once what it rests on is durable.
    pub(crate) fn finish<T>(&self, (out, ticket): Staging<T>) -> Result<T> {
        self.group.wait(ticket, self)?;
        out
    }

    /// Waits for each of several staged writes (staged first, all of them, so they share
    /// groups) on its own ticket: a failure of a later group never takes back the answer of
    /// a write an earlier group made durable. Every wait after the first usually finds its
    /// group written.
    pub(crate) fn finish_each<T>(&self, staged: Vec<Result<Staging<T>>>) -> Vec<Result<T>> {
        staged
            .into_iter()
            .map(|s| s.and_then(|s| self.finish(s)))
            .collect()
    }

    /// Queues `staged` under the lock `st` of the shard it writes, without waiting for it.
    pub(crate) fn stage(&self, st: &mut ShardState, staged: Staged) -> Result<Ticket> {
        if staged.is_empty() {
            return Ok(st.last_ticket);
        }
        let ticket = self.group.stage(staged)?;
        st.last_ticket = ticket;
        Ok(ticket)
    }

    /// The newest value of a key that writers under a shard lock read: staged, or else
    /// RocksDB's.
    pub(crate) fn latest(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.group.staged(cf, key) {
            Some(v) => Ok(Some(v)),
            None => self.engine.get(cf, key),
        }
    }

    /// Takes a shard's write lock for a request that must finish by `deadline`. A request
    /// whose caller has given up by the time it gets the lock writes nothing: otherwise a
    /// timed-out write could land after, and over, the caller's retry.
    pub(crate) fn lock_shard_by(
        &self,
        shard: u16,
        deadline: Instant,
    ) -> Result<MutexGuard<'_, ShardState>> {
        let guard = self.lock_shard(shard);
        if Instant::now() >= deadline {
            return Err(Error::deadline(
                "the request expired while waiting for its shard; nothing was written",
            ));
        }
        // Checked under the lock: a write that got past the call's check before the map
        // fencing the shard arrived still finds the fence here (see `ownership.rs`).
        self.refuse_fenced(shard)?;
        Ok(guard)
    }

    /// Loads `shard`'s counters and log head from what the store holds (a moved shard just
    /// imported).
    pub(crate) fn reload_shard(&self, shard: u16) -> Result<()> {
        let mut st = self.lock_shard(shard);
        let seq = crate::open::load_u64(&self.engine, &crate::keys::meta_seq(shard))?.unwrap_or(0);
        let epoch = crate::open::load_u64(&self.engine, &crate::keys::meta_log_epoch(shard))?
            .unwrap_or(st.log_epoch);
        st.seq = seq;
        st.log_epoch = epoch;
        st.first =
            crate::open::load_u64(&self.engine, &crate::keys::meta_log_first(shard))?.unwrap_or(1);
        st.counter_floor =
            crate::open::load_u64(&self.engine, &crate::keys::meta_counter_floor(shard))?
                .unwrap_or(0);
        self.heads.reset(shard, epoch, seq);
        drop(st);
        self.note_progress();
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Write options for acknowledged writes.
    pub(crate) fn write_options(&self) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        wo
    }

    /// Stages a document record, its change-log entry (with the write's idempotency record,
    /// if any, which is kept too) and the shard's counter as one write.
    pub(crate) fn commit(
        &self,
        st: &mut ShardState,
        shard: u16,
        collection: &str,
        id: &str,
        record: &pb::DocRecord,
        idempotency: Option<pb::IdemRecord>,
    ) -> Result<Ticket> {
        let mut staged = Staged::new(WriteBatch::default());
        if let Some(idem) = &idempotency {
            self.idem_into(&mut staged, shard, collection, idem)?;
        }
        let event = pb::ChangeEvent {
            collection: collection.to_string(),
            id: id.to_string(),
            record: Some(record.clone()),
            idempotency,
            ..Default::default()
        };
        self.stage_change(st, shard, &event, staged)
    }

    /// [`Store::stage_change`] of an entry written durably before this returns (while the
    /// caller still holds its locks): collection settings and deletions.
    pub(crate) fn commit_with(
        &self,
        st: &mut ShardState,
        shard: u16,
        event: &pb::ChangeEvent,
        batch: WriteBatch,
    ) -> Result<()> {
        let ticket = self.stage_change(st, shard, event, Staged::new(batch))?;
        self.group.wait(ticket, self)
    }

    /// Stages a whole change-log entry (a remote apply says where it came from; a
    /// collection event has no record), with the writes already in `staged` (a replication
    /// watermark, an idempotency record, collection settings) in the same atomic batch.
    /// The entry takes the shard's next log position now; readers see it once its group
    /// is durable.
    pub(crate) fn stage_change(
        &self,
        st: &mut ShardState,
        shard: u16,
        event: &pb::ChangeEvent,
        mut staged: Staged,
    ) -> Result<Ticket> {
        let seq = st.seq + 1;
        if let Some(record) = &event.record {
            let key = doc_key(shard, &event.collection, &event.id);
            self.index_delta(&mut staged.batch, shard, event, &key, record)?;
            let bytes = record.encode_to_vec();
            staged.track(Cf::Docs, &key, &bytes);
            staged.batch.put_cf(self.engine.cf(Cf::Docs)?, key, bytes);
            self.newest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note(&event.collection, record);
        }
        let batch = &mut staged.batch;
        batch.put_cf(
            self.engine.cf(Cf::Changes)?,
            change_key(shard, seq),
            event.encode_to_vec(),
        );
        batch.put_cf(
            self.engine.cf(Cf::Meta)?,
            meta_seq(shard),
            seq.to_be_bytes(),
        );
        self.index_tombstone(batch, shard, seq, event)?;
        // Trim by count in batches: one range delete every `slack` writes, not one per write.
        // What a peer has not acknowledged stays, up to the hard cap (DESIGN.md "Log
        // trimming"); a peer left behind it must be rebuilt.
        let mut first = st.first;
        let slack = self.retention.slack();
        if seq + 1 - first > self.retention.count + slack {
            let target =
                (seq + 1 - self.retention.count).min(self.keep_from(shard, st.log_epoch, seq));
            if target >= first + slack {
                first = target;
                self.trim_into(batch, shard, st.first, first)?;
            }
        }
        staged.publishes(shard, seq);
        let ticket = self.stage(st, staged)?;
        st.seq = seq;
        st.first = first;
        self.heads.assign(shard, seq);
        Ok(ticket)
    }

    /// Adds the HLC's high-water mark to `batch`: every acknowledged write persists it with
    /// itself, so a restarted node (even with its clock stepped back) never issues a stamp
    /// below one it issued before.
    pub(crate) fn hlc_into(&self, batch: &mut WriteBatch) -> Result<()> {
        batch.put_cf(
            self.engine.cf(Cf::Meta)?,
            META_HLC,
            self.hlc.last().to_be_bytes(),
        );
        Ok(())
    }

    /// Tells session waits that a log or a watermark moved.
    pub(crate) fn note_progress(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a new value after every commit and every watermark move (for
    /// session reads waiting for replication).
    pub fn watch_progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// A receiver that sees a new value after every commit (for live change readers).
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// WAL syncs since the store opened.
    pub fn wal_syncs(&self) -> u64 {
        self.engine.wal_syncs()
    }

    /// The change-log retention in force.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The position of a shard's change-log head, `(epoch, seq)`: its last durable entry.
    pub fn log_head(&self, shard: u16) -> (u64, u64) {
        self.heads.durable(shard)
    }

    /// Flushes everything and marks a clean shutdown.
    pub fn close(&self) -> Result<()> {
        self.engine.flush()?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.engine
            .db()
            .delete_cf_opt(self.engine.cf(Cf::Meta)?, META_DIRTY, &wo)
            .map_err(db_err)
    }
}

impl Sink for Store {
    fn write_group(&self, mut batch: WriteBatch, sync: bool) -> Result<()> {
        // Every stamp the group's writes carry was issued before now: one high-water mark
        // covers them all.
        self.hlc_into(&mut batch)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(sync && self.sync);
        self.engine.db().write_opt(batch, &wo).map_err(db_err)
    }

    fn published(&self, positions: &[(u16, u64)]) {
        for (shard, seq) in positions {
            self.heads.publish(*shard, *seq);
        }
        if !positions.is_empty() {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.note_progress();
    }
}

/// A small store for unit tests: `shards` shards, relaxed durability, under `dir`.
#[cfg(test)]
pub(crate) fn test_store(dir: &std::path::Path, dc: &str, shards: u16) -> Store {
    test_store_of(dir, dc, "n1", shards)
}

/// [`test_store`] of node `node`.
#[cfg(test)]
pub(crate) fn test_store_of(dir: &std::path::Path, dc: &str, node: &str, shards: u16) -> Store {
    Store::open(&StoreConfig {
        path: dir.to_path_buf(),
        dc: dc.into(),
        node: node.into(),
        shards,
        durability: Durability::Relaxed,
        memory: MemoryProfile::Small,
        limits: Limits::default(),
        retention: Retention::default(),
        new_store: NewStore::Genesis,
    })
    .expect("store opens")
}
