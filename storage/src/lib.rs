//! RocksDB handles for Cairn's durable state.
//!
//! # Layout
//!
//! - [`Db`]: one RocksDB database with Cairn's column families ([`Column`]); reads,
//!   synced or buffered batch writes, range scans, and consistent point-in-time reads.
//! - [`Batch`]: an atomic group of writes across column families.
//! - [`blocking`]: runs storage work on tokio's blocking pool, so async code never
//!   blocks on disk.
//!
//! This crate is the only one that names `rocksdb`. It knows nothing of Raft or of
//! datasets: keys and values are bytes, laid out by `cairn-raft`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

/// The column families of a scheduler's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Small singleton records: identity, vote, purge point, applied state.
    Meta,
    /// The Raft log, keyed by big-endian log index so that key order is index order.
    Log,
    /// Rows of the replicated state machine (the dataset table, sessions, …).
    State,
}

impl Column {
    const ALL: [Column; 3] = [Column::Meta, Column::Log, Column::State];

    /// The column family's options. The state column is written a lot (each task's
    /// row 3–4 times, at random keys) and read only by whole scans (at start and for
    /// snapshots): its memtable is a vector, where an insert is an append, instead of
    /// a skip list, where inserts at random keys were the largest cost of a follower
    /// during a large graph. A point read of a vector memtable sorts it: none is made.
    fn options(self) -> Options {
        let mut options = Options::default();
        if self == Column::State {
            options.set_memtable_factory(rocksdb::MemtableFactory::Vector);
        }
        options
    }

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Meta => "meta",
            Column::Log => "log",
            Column::State => "state",
        }
    }
}

/// How a write reaches the disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The write-ahead log is fsync'd before the call returns: the write survives a
    /// power loss. Used for everything Raft acknowledges.
    Synced,
    /// The write is in the OS page cache; it survives a process crash, not a power loss.
    Buffered,
}

/// What went wrong in storage. Every variant is fatal for the operation that hit it;
/// none of them is retried automatically, because a failed write to the Raft log
/// must never be acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be opened (missing permissions, corruption, locked by
    /// another process, …).
    #[error("cannot open the database at {path}: {source}")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// What RocksDB said.
        source: rocksdb::Error,
    },
    /// A read failed.
    #[error("reading column `{column}` failed: {source}")]
    Read {
        /// The column family read.
        column: &'static str,
        /// What RocksDB said.
        source: rocksdb::Error,
    },
    /// A write failed, e.g. because the disk is full.
    #[error("writing to the database failed (is the disk full?): {source}")]
    Write {
        /// What RocksDB said.
        source: rocksdb::Error,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("a storage task did not finish: {reason}")]
    TaskFailed {
        /// Why the task ended.
        reason: String,
    },
}

/// One key/value row.
pub type Row = (Vec<u8>, Vec<u8>);

/// A RocksDB database with Cairn's column families. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    /// The shared RocksDB handle; RocksDB is safe to use from many threads.
    inner: Arc<DB>,
    /// Where the database lives, for error messages.
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database in `path`.
    pub fn open(path: &Path) -> Result<Db, StorageError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Raft writes are small and synced; keep the WAL the only copy until flush.
        options.set_max_background_jobs(2);
        options.set_keep_log_file_num(4);
        // The vector memtable of the state column takes inserts one at a time.
        options.set_allow_concurrent_memtable_write(false);
        let descriptors = Column::ALL
            .iter()
            .map(|column| ColumnFamilyDescriptor::new(column.name(), column.options()));
        let inner = DB::open_cf_descriptors(&options, path, descriptors).map_err(|source| StorageError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Db {
            inner: Arc::new(inner),
            path: path.to_path_buf(),
        })
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self, column: Column) -> &rocksdb::ColumnFamily {
        // Every column in `Column::ALL` is created by `open`, so the handle exists.
        self.inner
            .cf_handle(column.name())
            .unwrap_or_else(|| unreachable!("column family {} is created at open", column.name()))
    }

    /// Reads one key. Slow on [`Column::State`] (see [`Column::options`]): read that
    /// column by scans.
    pub fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner
            .get_cf(self.handle(column), key)
            .map_err(|source| StorageError::Read {
                column: column.name(),
                source,
            })
    }

    /// Starts an empty batch of writes.
    pub fn batch(&self) -> Batch {
        self.batch_with_capacity(0)
    }

    /// Starts an empty batch with room for about `bytes` of keys and values, so that
    /// a large one is not copied each time it outgrows its buffer.
    pub fn batch_with_capacity(&self, bytes: usize) -> Batch {
        Batch {
            db: self.clone(),
            inner: WriteBatch::with_capacity_bytes(bytes),
        }
    }

    /// Writes a batch atomically.
    pub fn write(&self, batch: Batch, durability: Durability) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.inner
            .write_opt(batch.inner, &options)
            .map_err(|source| StorageError::Write { source })
    }

    /// Rows with `from <= key < until` (no upper bound when `until` is `None`), in key
    /// order, at most `limit` of them.
    pub fn scan(
        &self,
        column: Column,
        from: &[u8],
        until: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Row>, StorageError> {
        let iterator = self
            .inner
            .iterator_cf(self.handle(column), IteratorMode::From(from, Direction::Forward));
        collect_rows(iterator, column, until, limit)
    }

    /// The row with the greatest key, if any.
    pub fn last(&self, column: Column) -> Result<Option<Row>, StorageError> {
        let mut iterator = self.inner.iterator_cf(self.handle(column), IteratorMode::End);
        match iterator.next() {
            None => Ok(None),
            Some(Ok((key, value))) => Ok(Some((key.to_vec(), value.to_vec()))),
            Some(Err(source)) => Err(StorageError::Read {
                column: column.name(),
                source,
            }),
        }
    }

    /// Reads several things as of one instant: the closure sees a point-in-time view
    /// that concurrent writes do not change.
    pub fn read_consistent<T>(
        &self,
        read: impl FnOnce(&ConsistentView<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let snapshot = self.inner.snapshot();
        let view = ConsistentView { db: self, snapshot };
        read(&view)
    }
}

/// A point-in-time view of a [`Db`], from [`Db::read_consistent`].
pub struct ConsistentView<'a> {
    /// The database, for column handles.
    db: &'a Db,
    /// The RocksDB snapshot pinning the view.
    snapshot: rocksdb::Snapshot<'a>,
}

impl ConsistentView<'_> {
    /// Reads one key as of the view.
    pub fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.snapshot
            .get_cf(self.db.handle(column), key)
            .map_err(|source| StorageError::Read {
                column: column.name(),
                source,
            })
    }

    /// Every row of a column as of the view, in key order.
    pub fn scan_all(&self, column: Column) -> Result<Vec<Row>, StorageError> {
        let iterator = self.snapshot.iterator_cf(self.db.handle(column), IteratorMode::Start);
        collect_rows(iterator, column, None, usize::MAX)
    }
}

fn collect_rows(
    iterator: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
    column: Column,
    until: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Row>, StorageError> {
    let mut rows = Vec::new();
    for item in iterator {
        if rows.len() >= limit {
            break;
        }
        let (key, value) = item.map_err(|source| StorageError::Read {
            column: column.name(),
            source,
        })?;
        if until.is_some_and(|until| key.as_ref() >= until) {
            break;
        }
        rows.push((key.to_vec(), value.to_vec()));
    }
    Ok(rows)
}

/// An atomic group of writes, applied by [`Db::write`].
pub struct Batch {
    /// The database, for column handles.
    db: Db,
    /// The RocksDB batch being built.
    inner: WriteBatch,
}

impl Batch {
    /// Sets `key` to `value`.
    pub fn put(&mut self, column: Column, key: &[u8], value: &[u8]) {
        self.inner.put_cf(self.db.handle(column), key, value);
    }

    /// Removes `key`.
    pub fn delete(&mut self, column: Column, key: &[u8]) {
        self.inner.delete_cf(self.db.handle(column), key);
    }

    /// Removes every key with `from <= key < until`.
    pub fn delete_range(&mut self, column: Column, from: &[u8], until: &[u8]) {
        self.inner.delete_range_cf(self.db.handle(column), from, until);
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Runs storage work on tokio's blocking pool, so that async tasks never wait on the
/// disk while holding a runtime thread.
pub async fn blocking<T, F>(work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) => Err(StorageError::TaskFailed {
            reason: join_error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// State rows (vector memtable) written at scattered keys, overwritten and
    /// deleted, scan back in key order with the last write of each key: from the
    /// memtable, after a flush to a table file, and after reopening.
    #[test]
    fn state_rows_scan_in_key_order_from_memtable_table_and_after_reopen() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().map_err(|error| StorageError::TaskFailed {
            reason: error.to_string(),
        })?;
        let key = |index: u64| format!("task/{:016x}", index.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes();
        let mut expected = std::collections::BTreeMap::new();
        let write = |db: &Db, expected: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>, round: u64| {
            let mut batch = db.batch();
            for index in 0..500u64 {
                if (index + round).is_multiple_of(7) {
                    batch.delete(Column::State, &key(index));
                    expected.remove(&key(index));
                } else {
                    let value = format!("{round}-{index}").into_bytes();
                    batch.put(Column::State, &key(index), &value);
                    expected.insert(key(index), value);
                }
            }
            db.write(batch, Durability::Buffered)
        };
        let scanned = |db: &Db| db.scan(Column::State, &[], None, usize::MAX);
        let want = |expected: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>| -> Vec<Row> {
            expected
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        };
        {
            let db = Db::open(dir.path())?;
            write(&db, &mut expected, 0)?;
            write(&db, &mut expected, 1)?;
            assert_eq!(scanned(&db)?, want(&expected));
            db.inner
                .flush_cf(db.handle(Column::State))
                .map_err(|source| StorageError::Read {
                    column: "state",
                    source,
                })?;
            write(&db, &mut expected, 2)?;
            assert_eq!(scanned(&db)?, want(&expected));
            let mut synced = db.batch();
            synced.put(Column::Meta, b"sync", b"1");
            db.write(synced, Durability::Synced)?;
        }
        let db = Db::open(dir.path())?;
        assert_eq!(scanned(&db)?, want(&expected));
        Ok(())
    }

    /// A synced batch is atomic across columns and visible after reopening.
    #[test]
    fn batch_survives_reopen() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().map_err(|error| StorageError::TaskFailed {
            reason: error.to_string(),
        })?;
        {
            let db = Db::open(dir.path())?;
            let mut batch = db.batch();
            batch.put(Column::Meta, b"vote", b"1");
            batch.put(Column::Log, &1u64.to_be_bytes(), b"entry-1");
            batch.put(Column::Log, &2u64.to_be_bytes(), b"entry-2");
            db.write(batch, Durability::Synced)?;
        }
        let db = Db::open(dir.path())?;
        assert_eq!(db.get(Column::Meta, b"vote")?, Some(b"1".to_vec()));
        let last = db.last(Column::Log)?.map(|(_, value)| value);
        assert_eq!(last, Some(b"entry-2".to_vec()));
        let rows = db.scan(Column::Log, &0u64.to_be_bytes(), Some(&2u64.to_be_bytes()), 10)?;
        assert_eq!(rows.len(), 1, "the upper bound is exclusive");
        Ok(())
    }

    /// A range delete removes exactly the keys in range.
    #[test]
    fn delete_range_is_half_open() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().map_err(|error| StorageError::TaskFailed {
            reason: error.to_string(),
        })?;
        let db = Db::open(dir.path())?;
        let mut batch = db.batch();
        for index in 1u64..=5 {
            batch.put(Column::Log, &index.to_be_bytes(), b"x");
        }
        db.write(batch, Durability::Buffered)?;
        let mut batch = db.batch();
        batch.delete_range(Column::Log, &2u64.to_be_bytes(), &4u64.to_be_bytes());
        db.write(batch, Durability::Synced)?;
        let keys: Vec<u64> = db
            .scan(Column::Log, &[], None, 100)?
            .into_iter()
            .map(|(key, _)| u64::from_be_bytes(key.try_into().unwrap_or_default()))
            .collect();
        assert_eq!(keys, vec![1, 4, 5]);
        Ok(())
    }
}
