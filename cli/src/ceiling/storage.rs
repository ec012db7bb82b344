//! The storage ceiling: the YCSB workloads run by the load-test harness's own runner
//! straight against RocksDB, opened by the storage node's `Engine` (same crate, same
//! options) and written with the same fsync per acknowledged write.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use aerolith_loadtest::driver::{Connector, Driver, OpError, OpResult};
use aerolith_storagenode::engine::Engine;
use aerolith_storagenode::keys::CF_DOCS;
use aerolith_storagenode::{Durability, MemoryProfile};

/// Makes drivers that share one open store.
pub struct StorageConnector {
    engine: Arc<Engine>,
    sync: bool,
}

impl StorageConnector {
    /// Opens (creating) a store at `dir` with the storage node's options for `memory`.
    pub fn open(dir: &Path, memory: MemoryProfile, durability: Durability) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(StorageConnector {
            engine: Arc::new(Engine::open(dir, memory)?),
            sync: durability == Durability::Durable,
        })
    }
}

impl Connector for StorageConnector {
    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move {
            let mut write = WriteOptions::default();
            write.set_sync(self.sync);
            Ok(Box::new(Storage {
                engine: self.engine.clone(),
                write,
            }) as Box<dyn Driver>)
        })
    }

    fn max_batch(&self) -> usize {
        500
    }
}

/// One worker's handle on the store. Calls block the worker's thread, as a storage
/// node's do; the runtime has a thread per worker.
struct Storage {
    engine: Arc<Engine>,
    write: WriteOptions,
}

fn db_error(e: impl std::fmt::Display) -> OpError {
    OpError::new("internal", e.to_string())
}

impl Driver for Storage {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            match self.engine.get(CF_DOCS, key.as_bytes()).map_err(db_error)? {
                Some(_) => Ok(()),
                None => Err(OpError::new("not_found", key)),
            }
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let cf = self.engine.cf(CF_DOCS).map_err(db_error)?;
            self.engine
                .db()
                .put_cf_opt(cf, key, record, &self.write)
                .map_err(db_error)
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let cf = self.engine.cf(CF_DOCS).map_err(db_error)?;
            let iter = self
                .engine
                .db()
                .iterator_cf(cf, IteratorMode::From(start.as_bytes(), Direction::Forward));
            for item in iter.take(count) {
                item.map_err(db_error)?;
            }
            Ok(())
        })
    }

    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            let cf = self.engine.cf(CF_DOCS).map_err(db_error)?;
            let mut batch = WriteBatch::default();
            for (key, record) in records {
                batch.put_cf(cf, key, record);
            }
            self.engine
                .db()
                .write_opt(batch, &self.write)
                .map_err(db_error)
        })
    }
}
