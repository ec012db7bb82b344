//! Opening RocksDB with AerolithDB's column families and tuning.

use std::path::Path;

use rocksdb::statistics::{StatsLevel, Ticker};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, ErrorKind, Options,
    ReadOptions, ReadTier,
};

use aerolith_common::{Error, Result};

/// How much memory RocksDB may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MemoryProfile {
    /// Small memtables and cache: several nodes share one small machine (dev, tests).
    Small,
    /// Production sizes.
    Standard,
}

/// AerolithDB's column families (DESIGN.md "Storage node"; key layouts in `keys.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    /// Document records.
    Docs,
    /// The per-shard change logs.
    Changes,
    /// Counters, identity, watermarks and collection settings.
    Meta,
    /// Secondary index entries (`index_entries.rs`): keys only, written in the batch of
    /// the document write they follow.
    Index,
}

impl Cf {
    /// Every column family, created at open.
    const ALL: [Cf; 4] = [Cf::Docs, Cf::Changes, Cf::Meta, Cf::Index];

    /// Its name in RocksDB.
    fn name(self) -> &'static str {
        match self {
            Cf::Docs => "docs",
            Cf::Changes => "changes",
            Cf::Meta => "meta",
            Cf::Index => "index",
        }
    }
}

/// An open RocksDB store.
pub struct Engine {
    db: DB,
    /// The options the DB was opened with: they hold its statistics.
    opts: Options,
}

/// Maps a RocksDB error to `internal` (logged, never shown to clients).
pub fn db_err(e: rocksdb::Error) -> Error {
    Error::internal(format!("rocksdb: {e}"))
}

impl Engine {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path, profile: MemoryProfile) -> Result<Engine> {
        let (memtable, cache_bytes) = match profile {
            MemoryProfile::Small => (4 << 20, 8 << 20),
            MemoryProfile::Standard => (64 << 20, 256 << 20),
        };
        let cache = Cache::new_lru_cache(cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);

        let mut cf_opts = Options::default();
        cf_opts.set_write_buffer_size(memtable);
        cf_opts.set_max_write_buffer_number(2);
        cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        cf_opts.set_block_based_table_factory(&table);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(3);
        db_opts.set_max_total_wal_size(4 * memtable as u64);
        // Counters only (no timers): what the benchmarks read, WAL syncs per write, costs
        // an atomic add per event.
        db_opts.enable_statistics();
        db_opts.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);

        let cfs = Cf::ALL
            .into_iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| {
            Error::unavailable(format!("cannot open store {}: {e}", path.display()))
        })?;
        Ok(Engine { db, opts: db_opts })
    }

    /// WAL syncs since the store opened: how many acknowledged writes shared one sync.
    pub fn wal_syncs(&self) -> u64 {
        self.opts.get_ticker_count(Ticker::WalFileSynced)
    }

    /// The underlying database.
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// A column family's handle (all are created at open).
    pub fn cf(&self, cf: Cf) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| Error::internal(format!("missing column family {}", cf.name())))
    }

    /// Reads a key.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(db_err)
    }

    /// Reads a key from memory only (memtables and block cache): `None` when the answer
    /// needs the disk, so a caller on an async worker can fall back to the blocking pool.
    pub fn get_cached(&self, cf: Cf, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        let mut ro = ReadOptions::default();
        ro.set_read_tier(ReadTier::BlockCache);
        match self.db.get_cf_opt(self.cf(cf)?, key, &ro) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::Incomplete => Ok(None),
            Err(e) => Err(db_err(e)),
        }
    }

    /// Flushes memtables and syncs the WAL, for a clean shutdown.
    pub fn flush(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(db_err)?;
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(db_err)?;
        }
        Ok(())
    }
}
