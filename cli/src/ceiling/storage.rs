//! The storage ceiling: the YCSB workloads run by the load-test harness's own runner
//! straight against RocksDB, opened with the storage node's options
//! (`aerolith_storagenode::ceiling::RawStore`) and written with the same fsync per
//! acknowledged write.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;

use aerolith_loadtest::driver::{Connector, Driver, OpError, OpResult};
use aerolith_storagenode::ceiling::RawStore;
use aerolith_storagenode::{Durability, MemoryProfile};

/// Makes drivers that share one open store.
pub struct StorageConnector {
    store: Arc<RawStore>,
}

impl StorageConnector {
    /// Opens (creating) a store at `dir` with the storage node's options for `memory`.
    pub fn open(dir: &Path, memory: MemoryProfile, durability: Durability) -> anyhow::Result<Self> {
        Ok(StorageConnector {
            store: Arc::new(RawStore::open(dir, memory, durability)?),
        })
    }
}

impl Connector for StorageConnector {
    fn connect(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Driver>>> {
        Box::pin(async move {
            Ok(Box::new(Storage {
                store: self.store.clone(),
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
    store: Arc<RawStore>,
}

fn db_error(e: impl std::fmt::Display) -> OpError {
    OpError::new("internal", e.to_string())
}

impl Driver for Storage {
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            match self.store.contains(key.as_bytes()).map_err(db_error)? {
                true => Ok(()),
                false => Err(OpError::new("not_found", key)),
            }
        })
    }

    fn update<'a>(&'a self, key: &'a str, record: &'a str) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.store
                .put(key.as_bytes(), record.as_bytes())
                .map_err(db_error)
        })
    }

    fn scan<'a>(&'a self, start: &'a str, count: usize) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.store
                .scan(start.as_bytes(), count)
                .map(|_| ())
                .map_err(db_error)
        })
    }

    fn insert_batch<'a>(&'a self, records: &'a [(String, String)]) -> BoxFuture<'a, OpResult> {
        Box::pin(async move {
            self.store
                .put_all(records.iter().map(|(k, r)| (k.as_bytes(), r.as_bytes())))
                .map_err(db_error)
        })
    }
}
