//! The storage ceiling (`aerolith-ceiling storage`): one RocksDB store opened with the storage
//! node's own options, read and written key by key with nothing on top (no records, logs or
//! locks), the same sync per acknowledged write as a durable node. It measures what the
//! disk and RocksDB allow on this machine; the load-test harness drives it.

use std::path::Path;

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use aerolith_common::Result;

use crate::engine::{Cf, Engine, MemoryProfile, db_err};
use crate::store::Durability;

/// A store with the node's options and a bare key-value API.
pub struct RawStore {
    engine: Engine,
    sync: bool,
}

impl RawStore {
    /// Opens (creating) a store at `dir` with the storage node's options for `memory`.
    pub fn open(dir: &Path, memory: MemoryProfile, durability: Durability) -> Result<RawStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            aerolith_common::Error::unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        Ok(RawStore {
            engine: Engine::open(dir, memory)?,
            sync: durability == Durability::Durable,
        })
    }

    fn write_options(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.engine.get(Cf::Docs, key)?.is_some())
    }

    /// Writes one value (synced when durable).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let cf = self.engine.cf(Cf::Docs)?;
        self.engine
            .db()
            .put_cf_opt(cf, key, value, &self.write_options())
            .map_err(db_err)
    }

    /// Writes many values in one batch (one sync).
    pub fn put_all<'a>(&self, items: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<()> {
        let cf = self.engine.cf(Cf::Docs)?;
        let mut batch = WriteBatch::default();
        for (key, value) in items {
            batch.put_cf(cf, key, value);
        }
        self.engine
            .db()
            .write_opt(batch, &self.write_options())
            .map_err(db_err)
    }

    /// Reads up to `count` entries from `start` on; how many there were.
    pub fn scan(&self, start: &[u8], count: usize) -> Result<usize> {
        let cf = self.engine.cf(Cf::Docs)?;
        let mut n = 0;
        for item in self
            .engine
            .db()
            .iterator_cf(cf, IteratorMode::From(start, Direction::Forward))
            .take(count)
        {
            item.map_err(db_err)?;
            n += 1;
        }
        Ok(n)
    }
}
