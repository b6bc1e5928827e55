//! The Raft log and vote in RocksDB.
//!
//! Layout: the `log` column holds one row per entry, keyed by the big-endian log
//! index; the `meta` column holds the vote, the last purged log id and the committed
//! log id. Votes, appends, truncations and purges are synced before they return (or
//! before the flush callback fires), so nothing openraft acknowledges can vanish in a
//! crash.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use cairn_storage::{blocking, Column, Db, Durability, StorageError};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError, Vote};

use crate::codec;
use crate::types::{Entry, LogId, NodeId, RaftStorageError, TypeConfig};

const VOTE_KEY: &[u8] = b"raft/vote";
const LAST_PURGED_KEY: &[u8] = b"raft/last_purged";
const COMMITTED_KEY: &[u8] = b"raft/committed";
/// Sorts after every 8-byte index key: the exclusive end of "to the end of the log".
const END_OF_LOG: &[u8] = &[0xff; 9];

/// The RocksDB-backed Raft log storage. Cheap to clone: clones share the database.
#[derive(Debug, Clone)]
pub struct LogStore {
    /// The scheduler's database; this type touches only the `log` and `raft/*` meta rows.
    db: Db,
}

impl LogStore {
    /// A log store over `db`.
    pub fn new(db: Db) -> LogStore {
        LogStore { db }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_error(error: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::read_logs(AnyError::new(&error)).into()
}

fn write_error(error: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::write_logs(AnyError::new(&error)).into()
}

fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Db,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, RaftStorageError> {
    match db.get(Column::Meta, key).map_err(read_error)? {
        None => Ok(None),
        Some(bytes) => codec::decode(what, &bytes).map(Some).map_err(read_error),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let start = match range.start_bound() {
            Bound::Included(index) => *index,
            Bound::Excluded(index) => index.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(index) => Some(index.saturating_add(1)),
            Bound::Excluded(index) => Some(*index),
            Bound::Unbounded => None,
        };
        let db = self.db.clone();
        let rows = blocking(move || {
            let until = end.map(index_key);
            db.scan(
                Column::Log,
                &index_key(start),
                until.as_ref().map(|key| key.as_slice()),
                usize::MAX,
            )
        })
        .await
        .map_err(read_error)?;
        rows.iter()
            .map(|(_, value)| codec::decode::<Entry>("log entry", value).map_err(read_error))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let db = self.db.clone();
        let (last_purged, last_row) = blocking(move || {
            let last_purged = db.get(Column::Meta, LAST_PURGED_KEY)?;
            let last_row = db.last(Column::Log)?;
            Ok((last_purged, last_row))
        })
        .await
        .map_err(read_error)?;
        let last_purged_log_id: Option<LogId> = match last_purged {
            None => None,
            Some(bytes) => Some(codec::decode("last purged log id", &bytes).map_err(read_error)?),
        };
        let last_log_id = match last_row {
            None => last_purged_log_id,
            Some((_, value)) => Some(codec::decode::<Entry>("log entry", &value).map_err(read_error)?.log_id),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        let bytes = codec::encode("vote", vote).map_err(|error| StorageIOError::write_vote(AnyError::new(&error)))?;
        let db = self.db.clone();
        blocking(move || {
            let mut batch = db.batch();
            batch.put(Column::Meta, VOTE_KEY, &bytes);
            db.write(batch, Durability::Synced)
        })
        .await
        .map_err(|error| StorageIOError::write_vote(AnyError::new(&error)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        let db = self.db.clone();
        blocking(move || Ok(read_meta(&db, VOTE_KEY, "vote")))
            .await
            .map_err(|error: StorageError| RaftStorageError::from(StorageIOError::read_vote(AnyError::new(&error))))?
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        let bytes = codec::encode("committed log id", &committed).map_err(write_error)?;
        let db = self.db.clone();
        // Buffered: the committed index is a hint that speeds up restart; losing it
        // costs nothing but re-applying from the last applied index.
        blocking(move || {
            let mut batch = db.batch();
            batch.put(Column::Meta, COMMITTED_KEY, &bytes);
            db.write(batch, Durability::Buffered)
        })
        .await
        .map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        let db = self.db.clone();
        let committed: Option<Option<LogId>> = blocking(move || Ok(read_meta(&db, COMMITTED_KEY, "committed log id")))
            .await
            .map_err(read_error)??;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        for entry in entries {
            let bytes = codec::encode("log entry", &entry).map_err(write_error)?;
            rows.push((entry.log_id.index, bytes));
        }
        let db = self.db.clone();
        let written = blocking(move || {
            let mut batch = db.batch();
            for (index, bytes) in &rows {
                batch.put(Column::Log, &index_key(*index), bytes);
            }
            db.write(batch, Durability::Synced)
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
                Err(write_error(error))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        tracing::debug!(from = log_id.index, "truncating the raft log");
        let db = self.db.clone();
        blocking(move || {
            let mut batch = db.batch();
            batch.delete_range(Column::Log, &index_key(log_id.index), END_OF_LOG);
            db.write(batch, Durability::Synced)
        })
        .await
        .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        tracing::debug!(upto = log_id.index, "purging the raft log");
        let bytes = codec::encode("last purged log id", &log_id).map_err(write_error)?;
        let db = self.db.clone();
        blocking(move || {
            let mut batch = db.batch();
            // Record the purge point first in the same atomic batch, so a crash never
            // leaves a gap that the log state does not explain.
            batch.put(Column::Meta, LAST_PURGED_KEY, &bytes);
            batch.delete_range(Column::Log, &index_key(0), &index_key(log_id.index.saturating_add(1)));
            db.write(batch, Durability::Synced)
        })
        .await
        .map_err(write_error)
    }
}
