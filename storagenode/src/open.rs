//! Opening a store (`Store::open`): the decision whether the store is continuous with what
//! the cluster has seen (DESIGN.md "Actors": a new store, one restored from a backup, one
//! that lost unsynced writes, one being seeded or waiting to be told whether to be), which
//! sets the actor epoch and renews the logs; then the per-shard states, collections and keys
//! the store is opened with. Everything it changes goes into one batch, written synced.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use prost::Message;
use rocksdb::WriteBatch;

use aerolith_common::{Error, Result, pb};

use crate::engine::{Cf, Engine, db_err};
use crate::keys::*;
use crate::store::{NewStore, Restored, ShardState, StoreConfig, renewed_epoch};

/// What a store's opening decided about its continuity.
pub(crate) struct Continuity {
    /// The actor epoch it writes under.
    pub(crate) epoch: u32,
    /// It waits for its replicator to decide whether it must be seeded.
    pub(crate) undecided: bool,
    /// It cannot prove it is continuous and waits for a peer DC's copy.
    pub(crate) untrusted: bool,
    /// It comes from a backup.
    pub(crate) restored: bool,
    /// Its logs start again (empty) in new epochs.
    pub(crate) renew: bool,
    /// Shards still waiting to be seeded from an earlier start.
    pub(crate) unseeded: BTreeSet<u16>,
}

/// A `u64` meta value, if present and well formed.
pub(crate) fn load_u64(engine: &Engine, key: &[u8]) -> Result<Option<u64>> {
    Ok(engine
        .get(Cf::Meta, key)?
        .and_then(|b| b.try_into().ok().map(u64::from_be_bytes)))
}

/// Decides the store's continuity: checks it belongs to this node, and picks the actor
/// epoch (renewed for a store restored, re-seeded or left dirty by relaxed durability).
pub(crate) fn continuity(
    engine: &Engine,
    cfg: &StoreConfig,
    restored: Option<Restored>,
    batch: &mut WriteBatch,
) -> Result<Continuity> {
    let meta = engine.cf(Cf::Meta)?;
    let identity = format!("{}/{}", cfg.dc, cfg.node);
    let fresh = engine.get(Cf::Meta, META_IDENTITY)?.is_none();
    // A store left undecided by an earlier start is as new as a fresh one (nothing was
    // written in it): this start's `--new-store` decides again.
    let was_undecided = !fresh && engine.get(Cf::Meta, META_UNDECIDED)?.is_some();
    let new = fresh || was_undecided;
    // A store that cannot prove it is continuous (a replacement for a lost disk, or one
    // restored from a backup to be re-seeded) waits for a peer DC's copy.
    let untrusted = restored == Some(Restored::Seed) || (new && cfg.new_store == NewStore::Seed);
    // A new store that must not serve until its replicator knows whether the cluster
    // already holds data of its shards.
    let undecided = new && cfg.new_store == NewStore::Auto;
    // Shards of a seed that did not finish before a stop. Nothing was written under the
    // epoch it took, and a new one costs nothing (and gets past a copy that named it).
    let mut unseeded = BTreeSet::new();
    for item in engine.db().prefix_iterator_cf(meta, META_UNSEEDED_PREFIX) {
        let (k, _) = item.map_err(db_err)?;
        if !k.starts_with(META_UNSEEDED_PREFIX) {
            break;
        }
        if let Ok(b) = <[u8; 2]>::try_from(&k[META_UNSEEDED_PREFIX.len()..]) {
            unseeded.insert(u16::from_be_bytes(b));
        }
    }
    if was_undecided && !undecided {
        batch.delete_cf(meta, META_UNDECIDED);
        if cfg.new_store == NewStore::Genesis {
            for s in std::mem::take(&mut unseeded) {
                batch.delete_cf(meta, meta_unseeded(s));
            }
        }
    }
    let reseeding = !unseeded.is_empty();
    let mut dirty = false;
    let epoch = match engine.get(Cf::Meta, META_IDENTITY)? {
        None => {
            batch.put_cf(meta, META_IDENTITY, identity.as_bytes());
            if untrusted { renewed_epoch(1) } else { 1 }
        }
        Some(found) if found == identity.as_bytes() => {
            let stored = engine
                .get(Cf::Meta, META_EPOCH)?
                .and_then(|b| b.try_into().ok().map(u32::from_be_bytes))
                .unwrap_or(1);
            if restored.is_some() {
                tracing::warn!(%identity, "store restored from a backup; starting a new actor epoch and new change-log epochs");
                renewed_epoch(stored)
            } else if reseeding && !undecided {
                renewed_epoch(stored)
            } else if engine.get(Cf::Meta, META_DIRTY)?.is_some() {
                // Relaxed durability and no clean shutdown: recent writes may be lost, so
                // this store's counters can no longer be trusted under the old epoch.
                tracing::warn!(%identity, "store was not closed cleanly under relaxed durability; starting a new actor epoch and new change-log epochs");
                dirty = true;
                stored + 1
            } else {
                stored
            }
        }
        Some(found) => {
            return Err(Error::invalid(format!(
                "store {} belongs to {}, not {identity}",
                cfg.path.display(),
                String::from_utf8_lossy(&found)
            )));
        }
    };
    batch.put_cf(meta, META_EPOCH, epoch.to_be_bytes());
    // A renewed store's logs and watermarks describe a past the cluster has moved on from.
    if untrusted || restored.is_some() {
        batch.delete_range_cf(engine.cf(Cf::Changes)?, shard_start(0), shard_end(u16::MAX));
        batch.delete_range_cf(meta, b"tomb/".as_slice(), b"tomb0".as_slice());
    }
    if untrusted {
        batch.delete_range_cf(meta, b"wm/".as_slice(), b"wm0".as_slice());
    }
    if undecided {
        batch.put_cf(meta, META_UNDECIDED, b"1");
    }
    Ok(Continuity {
        epoch,
        undecided,
        untrusted,
        restored: restored.is_some(),
        renew: dirty || untrusted || restored.is_some(),
        unseeded,
    })
}

/// Refuses a store created for another shard count (it is fixed at creation).
pub(crate) fn check_shard_count(
    engine: &Engine,
    cfg: &StoreConfig,
    batch: &mut WriteBatch,
) -> Result<()> {
    match engine.get(Cf::Meta, META_SHARDS)? {
        Some(b) if b != cfg.shards.to_be_bytes() => {
            let had = <[u8; 2]>::try_from(b).map(u16::from_be_bytes).unwrap_or(0);
            Err(Error::invalid(format!(
                "store {} was created for {had} shards, not {}: the shard count is fixed at creation",
                cfg.path.display(),
                cfg.shards
            )))
        }
        Some(_) => Ok(()),
        None => {
            batch.put_cf(engine.cf(Cf::Meta)?, META_SHARDS, cfg.shards.to_be_bytes());
            Ok(())
        }
    }
}

/// Marks a store run with relaxed durability dirty until its clean shutdown.
pub(crate) fn mark_durability(engine: &Engine, sync: bool, batch: &mut WriteBatch) -> Result<()> {
    let meta = engine.cf(Cf::Meta)?;
    if sync {
        batch.delete_cf(meta, META_DIRTY);
    } else {
        batch.put_cf(meta, META_DIRTY, b"1");
    }
    Ok(())
}

/// Every shard's state (log head, epoch, oldest entry, counter floor), renewing the logs as
/// `c` decided; and the shards that wait to be seeded.
pub(crate) fn shards(
    engine: &Engine,
    cfg: &StoreConfig,
    c: &Continuity,
    batch: &mut WriteBatch,
) -> Result<(Vec<Mutex<ShardState>>, BTreeSet<u16>)> {
    let meta = engine.cf(Cf::Meta)?;
    let mut unseeded = c.unseeded.clone();
    let mut shards = Vec::with_capacity(cfg.shards as usize);
    for s in 0..cfg.shards {
        if c.untrusted || c.undecided {
            batch.put_cf(meta, meta_unseeded(s), b"1");
            unseeded.insert(s);
        }
        let seq = load_u64(engine, &meta_seq(s))?.unwrap_or(0);
        // After an unclean stop under relaxed durability the log may have lost its tail and
        // will reuse sequence numbers: a new epoch makes old tokens expire instead of
        // skipping the reused range. Epochs are the wall clock in ms (and above any earlier
        // one), so a later epoch compares higher: watermarks and session marks order
        // positions across a reset.
        let log_epoch = match load_u64(engine, &meta_log_epoch(s))? {
            Some(e) if !c.renew => e,
            old => {
                let e = aerolith_common::time::now_ms().max(old.unwrap_or(0) + 1);
                batch.put_cf(meta, meta_log_epoch(s), e.to_be_bytes());
                e
            }
        };
        let mut first = load_u64(engine, &meta_log_first(s))?.unwrap_or(1);
        if c.untrusted || c.restored {
            first = seq + 1;
            batch.put_cf(meta, meta_log_first(s), first.to_be_bytes());
        }
        let counter_floor = load_u64(engine, &meta_counter_floor(s))?.unwrap_or(0);
        shards.push(Mutex::new(ShardState {
            seq,
            log_epoch,
            first,
            counter_floor,
            last_ticket: 0,
        }));
    }
    Ok((shards, unseeded))
}

/// The key of the node's QUIC stateless resets, made once and kept.
pub(crate) fn reset_key(engine: &Engine, batch: &mut WriteBatch) -> Result<[u8; 32]> {
    match engine
        .get(Cf::Meta, META_RESET_KEY)?
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
    {
        Some(k) => Ok(k),
        None => {
            let k: [u8; 32] = rand::random();
            batch.put_cf(engine.cf(Cf::Meta)?, META_RESET_KEY, k);
            Ok(k)
        }
    }
}

/// Every collection's settings the store holds.
pub(crate) fn collections(engine: &Engine) -> Result<HashMap<String, pb::CollectionMeta>> {
    let meta = engine.cf(Cf::Meta)?;
    let mut out = HashMap::new();
    for item in engine.db().prefix_iterator_cf(meta, META_COLLECTION_PREFIX) {
        let (k, v) = item.map_err(db_err)?;
        if !k.starts_with(META_COLLECTION_PREFIX) {
            break;
        }
        let m = pb::CollectionMeta::decode(&*v)
            .map_err(|e| Error::internal(format!("corrupt collection settings: {e}")))?;
        out.insert(m.name.clone(), m);
    }
    Ok(out)
}
