//! The Raft log and vote in RocksDB.
//!
//! Layout: the `log` column holds one row per entry, keyed by the big-endian log
//! index; the `meta` column holds the vote, the last purged log id and the committed
//! log id. Votes, truncations and purges are synced before they return; appended
//! entries are synced before openraft's flush callback fires, so nothing openraft
//! acknowledges can vanish in a crash.
//!
//! **One writer thread.** `append` puts the entries in an in-memory tail (where
//! readers see them at once, as openraft requires) and queues them for one writer
//! thread, which writes everything queued meanwhile as one RocksDB batch with one
//! fsync, then fires the flush callbacks in order. The committed-index hint does not
//! wake the writer: it waits in memory for the next append (or the writer's end), so
//! a commit costs no thread switch and no write of its own on any replica.
//! openraft 0.9 awaits each append's callback before it runs its next command, so
//! today a batch holds one append (proposals are grouped before Raft instead, by the
//! scheduler's write batcher); what this saves is a blocking-pool hop per append. The
//! tail also keeps the newest durable entries, so replication reads them without a
//! trip to RocksDB. Truncations and purges go through the same queue (after every
//! append before them) and are awaited.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_storage::{blocking, Batch, Column, Db, Durability, StorageError};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError, Vote};

use crate::codec;
use crate::types::{Entry, LogId, NodeId, RaftStorageError, TypeConfig};

const VOTE_KEY: &[u8] = b"raft/vote";
const LAST_PURGED_KEY: &[u8] = b"raft/last_purged";
const COMMITTED_KEY: &[u8] = b"raft/committed";
/// Sorts after every 8-byte index key: the exclusive end of "to the end of the log".
const END_OF_LOG: &[u8] = &[0xff; 9];
/// At most this many durable entries stay in the in-memory tail...
const TAIL_ENTRIES: usize = 4096;
/// ...and at most this many of their encoded bytes (entries not yet durable always stay).
const TAIL_BYTES: usize = 64 * 1024 * 1024;
/// At most this many queued jobs share one write.
const MAX_GROUP: usize = 1024;

/// The RocksDB-backed Raft log storage. Cheap to clone: clones share the database,
/// the tail and the writer.
#[derive(Debug, Clone)]
pub struct LogStore {
    /// The scheduler's database; this type touches only the `log` and `raft/*` meta rows.
    db: Db,
    /// The newest entries, durable or queued.
    tail: Arc<Mutex<Tail>>,
    /// The writer thread.
    writer: Arc<WriterHandle>,
    /// The entries appended and not yet known committed.
    backlog: LogBacklog,
    /// The newest committed-index hint not yet written (it rides with the next append).
    committed: Arc<Mutex<Option<Vec<u8>>>>,
}

/// What this replica's log holds beyond its commit index: the entries appended since
/// the last commit openraft reported (`save_committed`), and their encoded bytes. On a
/// leader that cannot commit, it is how far clients' retries have run ahead;
/// [`crate::Replica`] refuses proposals beyond a bound. Entries in the log at start are
/// not counted until new ones commit past them. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LogBacklog {
    shared: Arc<Mutex<Uncommitted>>,
}

#[derive(Debug, Default)]
struct Uncommitted {
    /// (index, encoded bytes), in index order.
    entries: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl LogBacklog {
    /// The entries appended and not yet committed, and their encoded bytes.
    pub fn now(&self) -> (usize, usize) {
        let uncommitted = self.lock();
        (uncommitted.entries.len(), uncommitted.bytes)
    }

    fn lock(&self) -> MutexGuard<'_, Uncommitted> {
        lock(&self.shared)
    }

    /// Entries appended (after any at or beyond their first index: replaced).
    fn appended(&self, entries: &[(u64, usize)]) {
        let Some(&(first, _)) = entries.first() else {
            return;
        };
        let mut uncommitted = self.lock();
        uncommitted.drop_from(first);
        for &(index, bytes) in entries {
            uncommitted.entries.push_back((index, bytes));
            uncommitted.bytes += bytes;
        }
    }

    /// Everything up to `index` is committed (or purged).
    fn committed(&self, index: u64) {
        let mut uncommitted = self.lock();
        while let Some(&(oldest, bytes)) = uncommitted.entries.front() {
            if oldest > index {
                break;
            }
            uncommitted.entries.pop_front();
            uncommitted.bytes -= bytes;
        }
    }

    /// The log was truncated from `index` on.
    fn truncated(&self, index: u64) {
        self.lock().drop_from(index);
    }
}

impl Uncommitted {
    fn drop_from(&mut self, index: u64) {
        while let Some(&(newest, bytes)) = self.entries.back() {
            if newest < index {
                break;
            }
            self.entries.pop_back();
            self.bytes -= bytes;
        }
    }
}

/// The writer thread's queue, and the thread, joined when the last clone of the
/// store is dropped (so the database is closed when the store is: a node reopened in
/// the same process finds it unlocked).
#[derive(Debug)]
struct WriterHandle {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what is queued.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The newest entries of the log, a contiguous suffix of it (or empty).
#[derive(Debug, Default)]
struct Tail {
    entries: BTreeMap<u64, TailEntry>,
    /// Encoded bytes of the durable entries held.
    durable_bytes: usize,
    /// Entries held that are durable.
    durable_count: usize,
}

#[derive(Debug)]
struct TailEntry {
    entry: Entry,
    bytes: usize,
    durable: bool,
}

impl Tail {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries.values().next_back().map(|held| held.entry.log_id)
    }

    /// Drops every entry from `index` on (a truncation).
    fn drop_from(&mut self, index: u64) {
        for (_, held) in self.entries.split_off(&index) {
            self.forget(&held);
        }
    }

    /// Drops every entry up to `index` (a purge).
    fn drop_until(&mut self, index: u64) {
        let kept = self.entries.split_off(&index.saturating_add(1));
        for (_, held) in std::mem::replace(&mut self.entries, kept) {
            self.forget(&held);
        }
    }

    fn forget(&mut self, held: &TailEntry) {
        if held.durable {
            self.durable_bytes -= held.bytes;
            self.durable_count -= 1;
        }
    }

    /// Marks the written entries durable (those still held, unchanged), then lets the
    /// oldest durable ones go while the tail is over its bounds.
    fn written(&mut self, written: &[LogId]) {
        for log_id in written {
            if let Some(held) = self.entries.get_mut(&log_id.index) {
                if held.entry.log_id == *log_id && !held.durable {
                    held.durable = true;
                    self.durable_bytes += held.bytes;
                    self.durable_count += 1;
                }
            }
        }
        while self.durable_count > TAIL_ENTRIES || self.durable_bytes > TAIL_BYTES {
            match self.entries.first_entry() {
                Some(oldest) if oldest.get().durable => {
                    let held = oldest.remove();
                    self.forget(&held);
                }
                _ => break,
            }
        }
    }
}

/// Told the outcome once an append is on disk (openraft's flush callback).
type Flushed = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

/// Work for the writer thread, done in queue order.
enum Job {
    /// Entries to write (synced) before `flushed` is called.
    Append {
        rows: Vec<(LogId, Vec<u8>)>,
        flushed: Flushed,
    },
    /// A batch of its own (truncation, purge), synced, after everything before it.
    Exclusive {
        batch: Batch,
        done: tokio::sync::oneshot::Sender<Result<(), StorageError>>,
    },
}

impl LogStore {
    /// A log store over `db`; starts its writer thread, which ends when the last
    /// clone is dropped.
    pub fn new(db: Db) -> Result<LogStore, StorageError> {
        let (jobs, queue) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Tail::default()));
        let committed = Arc::new(Mutex::new(None));
        let writer = Writer {
            db: db.clone(),
            tail: Arc::clone(&tail),
            committed: Arc::clone(&committed),
        };
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".to_string())
            .spawn(move || writer.run(&queue))
            .map_err(|error| StorageError::TaskFailed {
                reason: format!("cannot start the Raft log writer thread: {error}"),
            })?;
        let writer = Arc::new(WriterHandle {
            jobs: Some(jobs),
            thread: Some(thread),
        });
        Ok(LogStore {
            db,
            tail,
            writer,
            backlog: LogBacklog::default(),
            committed,
        })
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        lock(&self.tail)
    }

    /// The handle on this log's uncommitted entries (shared by every clone).
    pub fn backlog(&self) -> LogBacklog {
        self.backlog.clone()
    }

    /// Puts `entries` in the tail (readable at once) and queues them for the writer,
    /// which calls `flushed` once they are synced.
    fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        flushed: Flushed,
    ) -> Result<(), RaftStorageError> {
        let mut rows = Vec::new();
        let mut held = Vec::new();
        let mut sizes = Vec::new();
        for entry in entries {
            let bytes = codec::encode("log entry", &entry).map_err(write_error)?;
            let size = bytes.len();
            sizes.push((entry.log_id.index, size));
            rows.push((entry.log_id, bytes));
            held.push(TailEntry {
                bytes: size,
                entry,
                durable: false,
            });
        }
        {
            let mut tail = self.tail();
            for entry in held {
                let index = entry.entry.log_id.index;
                // openraft truncates before it appends over an index; should it not,
                // the new entry wins, as it does on disk.
                if let Some(replaced) = tail.entries.insert(index, entry) {
                    tail.forget(&replaced);
                }
            }
        }
        self.backlog.appended(&sizes);
        self.send(Job::Append { rows, flushed }).map_err(write_error)
    }

    /// Queues `batch` after every queued append and waits until it is synced.
    async fn write_exclusive(&self, batch: Batch) -> Result<(), StorageError> {
        let (done, finished) = tokio::sync::oneshot::channel();
        self.send(Job::Exclusive { batch, done })?;
        finished.await.map_err(|_| writer_gone())?
    }

    fn send(&self, job: Job) -> Result<(), StorageError> {
        let jobs = self.writer.jobs.as_ref().ok_or_else(writer_gone)?;
        jobs.send(job).map_err(|_| writer_gone())
    }
}

/// Locks `mutex`, also after a panic elsewhere poisoned it (what it guards stays
/// consistent: every update under it is a few plain assignments).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn writer_gone() -> StorageError {
    StorageError::TaskFailed {
        reason: "the Raft log writer thread has stopped".to_string(),
    }
}

/// About how many bytes `job`'s rows take in a write batch.
fn bytes_of(job: &Job) -> usize {
    match job {
        Job::Append { rows, .. } => rows.iter().map(|(_, bytes)| bytes.len() + 32).sum(),
        _ => 0,
    }
}

/// The one thread that writes the log.
struct Writer {
    db: Db,
    tail: Arc<Mutex<Tail>>,
    /// The committed-index hint waiting for a write.
    committed: Arc<Mutex<Option<Vec<u8>>>>,
}

/// Appends gathered into one batch.
struct Group {
    batch: Batch,
    written: Vec<LogId>,
    callbacks: Vec<Flushed>,
}

impl Writer {
    fn run(&self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut group = self.group(bytes_of(&first));
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(job) = next.take() {
                taken += 1;
                match job {
                    Job::Append { rows, flushed } => {
                        for (log_id, bytes) in &rows {
                            group.batch.put(Column::Log, &index_key(log_id.index), bytes);
                            group.written.push(*log_id);
                        }
                        group.callbacks.push(flushed);
                    }
                    Job::Exclusive { batch, done } => {
                        self.flush(std::mem::replace(&mut group, self.group(0)));
                        let _ = done.send(self.db.write(batch, Durability::Synced));
                    }
                }
                if taken < MAX_GROUP {
                    next = queue.try_recv().ok();
                }
            }
            self.flush(group);
        }
        // The queue is closed: the last hint is written before the thread ends.
        let mut batch = self.db.batch();
        if self.put_committed_hint(&mut batch) {
            if let Err(error) = self.db.write(batch, Durability::Buffered) {
                tracing::warn!(%error, "cannot write the committed-index hint");
            }
        }
    }

    /// Adds the waiting committed-index hint to `batch`; false if none was waiting.
    fn put_committed_hint(&self, batch: &mut Batch) -> bool {
        let Some(bytes) = lock(&self.committed).take() else {
            return false;
        };
        batch.put(Column::Meta, COMMITTED_KEY, &bytes);
        true
    }

    /// An empty group whose batch has room for about `bytes` (a graph's entries are
    /// megabytes: a batch grown by doubling would copy them several times).
    fn group(&self, bytes: usize) -> Group {
        Group {
            batch: self.db.batch_with_capacity(bytes),
            written: Vec::new(),
            callbacks: Vec::new(),
        }
    }

    /// Writes the group's entries, with the waiting committed-index hint, synced;
    /// then tells openraft.
    fn flush(&self, mut group: Group) {
        if group.batch.is_empty() {
            return;
        }
        self.put_committed_hint(&mut group.batch);
        match self.db.write(group.batch, Durability::Synced) {
            Ok(()) => {
                lock(&self.tail).written(&group.written);
                for flushed in group.callbacks {
                    flushed(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "writing the Raft log failed");
                for flushed in group.callbacks {
                    flushed(Err(std::io::Error::other(error.to_string())));
                }
            }
        }
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
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        // The tail first: an entry leaves it only once it is in RocksDB, so whatever
        // the tail no longer holds, the scan below finds.
        let (tail_start, held) = {
            let tail = self.tail();
            let tail_start = tail.entries.keys().next().copied();
            let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
            let held: Vec<Entry> = tail
                .entries
                .range((Bound::Included(start), upper))
                .map(|(_, held)| held.entry.clone())
                .collect();
            (tail_start, held)
        };
        // What the tail does not cover is read from RocksDB: everything before the
        // tail's first entry (or the whole range when the tail is empty, after a start).
        let until = match tail_start {
            Some(tail_start) if tail_start <= start => return Ok(held),
            Some(tail_start) => Some(end.map_or(tail_start, |end| end.min(tail_start))),
            None => end,
        };
        let db = self.db.clone();
        let rows = blocking(move || {
            let until = until.map(index_key);
            db.scan(
                Column::Log,
                &index_key(start),
                until.as_ref().map(|key| key.as_slice()),
                usize::MAX,
            )
        })
        .await
        .map_err(read_error)?;
        let mut entries = rows
            .iter()
            .map(|(_, value)| codec::decode::<Entry>("log entry", value).map_err(read_error))
            .collect::<Result<Vec<Entry>, _>>()?;
        entries.extend(held);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let newest = self.tail().last_log_id();
        let db = self.db.clone();
        // The tail, when it holds anything, is the end of the log: no need to seek it.
        let seek_last = newest.is_none();
        let (last_purged, last_row) = blocking(move || {
            let last_purged = db.get(Column::Meta, LAST_PURGED_KEY)?;
            let last_row = if seek_last { db.last(Column::Log)? } else { None };
            Ok((last_purged, last_row))
        })
        .await
        .map_err(read_error)?;
        let last_purged_log_id: Option<LogId> = match last_purged {
            None => None,
            Some(bytes) => Some(codec::decode("last purged log id", &bytes).map_err(read_error)?),
        };
        let last_log_id = match (newest, last_row) {
            (Some(newest), _) => Some(newest),
            (None, None) => last_purged_log_id,
            (None, Some((_, value))) => Some(codec::decode::<Entry>("log entry", &value).map_err(read_error)?.log_id),
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
        if let Some(committed) = committed {
            self.backlog.committed(committed.index);
        }
        let bytes = codec::encode("committed log id", &committed).map_err(write_error)?;
        // Not awaited, not synced, and no write of its own: the committed index is a
        // hint that speeds up restart; losing it costs nothing but re-applying from the
        // last applied index. It rides with the writer's next append, or is written
        // when the writer ends.
        *lock(&self.committed) = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        if let Some(bytes) = lock(&self.committed).clone() {
            let committed: Option<LogId> = codec::decode("committed log id", &bytes).map_err(read_error)?;
            return Ok(committed);
        }
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
        self.append_entries(entries, Box::new(move |result| callback.log_io_completed(result)))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        tracing::debug!(from = log_id.index, "truncating the raft log");
        self.tail().drop_from(log_id.index);
        self.backlog.truncated(log_id.index);
        let mut batch = self.db.batch();
        batch.delete_range(Column::Log, &index_key(log_id.index), END_OF_LOG);
        self.write_exclusive(batch).await.map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        tracing::debug!(upto = log_id.index, "purging the raft log");
        let bytes = codec::encode("last purged log id", &log_id).map_err(write_error)?;
        self.tail().drop_until(log_id.index);
        self.backlog.committed(log_id.index);
        let mut batch = self.db.batch();
        // Record the purge point first in the same atomic batch, so a crash never
        // leaves a gap that the log state does not explain.
        batch.put(Column::Meta, LAST_PURGED_KEY, &bytes);
        batch.delete_range(Column::Log, &index_key(0), &index_key(log_id.index.saturating_add(1)));
        self.write_exclusive(batch).await.map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cairn_storage::Row;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::state_machine::{ApplyContext, LoadError, ReplicatedState, StateMachineStore, StateWrites};

    /// The smallest application: it only counts what it applied.
    struct Counter(u64);

    impl ReplicatedState for Counter {
        fn load(rows: Vec<Row>) -> Result<Self, LoadError> {
            Ok(Counter(rows.len() as u64))
        }

        fn apply(&mut self, context: ApplyContext, _command: &[u8], writes: &mut StateWrites) -> Vec<u8> {
            self.0 += 1;
            writes.put(context.log_index.to_be_bytes().to_vec(), Vec::new());
            Vec::new()
        }
    }

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore<Counter>, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore<Counter>), RaftStorageError> {
            let dir = tempfile::tempdir().map_err(write_error)?;
            let db = Db::open(&dir.path().join("db")).map_err(write_error)?;
            let state_machine =
                StateMachineStore::open(db.clone(), &dir.path().join("snapshot")).map_err(write_error)?;
            Ok((dir, LogStore::new(db).map_err(write_error)?, state_machine))
        }
    }

    /// openraft's own storage test suite: reads after appends (before the flush),
    /// truncation, purge, log state, vote, and the state machine beside it.
    #[test]
    fn passes_openraft_storage_suite() -> Result<(), RaftStorageError> {
        Suite::test_all(Builder)
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append_queued(store: &LogStore, entries: Vec<Entry>) -> tokio::sync::oneshot::Receiver<std::io::Result<()>> {
        let (sender, flushed) = tokio::sync::oneshot::channel();
        store
            .append_entries(
                entries,
                Box::new(move |result| {
                    let _ = sender.send(result);
                }),
            )
            .expect("append");
        flushed
    }

    async fn append_flushed(store: &mut LogStore, entries: Vec<Entry>) {
        append_queued(store, entries)
            .await
            .expect("flush callback")
            .expect("flushed");
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|entry| entry.log_id.index).collect()
    }

    async fn reopen(path: &Path) -> LogStore {
        LogStore::new(Db::open(path).expect("reopen")).expect("writer")
    }

    /// Many appends queued without waiting (one write may take several), more than the tail keeps:
    /// every read range is whole and in order, across RocksDB and the tail, and all of
    /// it is on disk once the callbacks fired.
    #[tokio::test]
    async fn a_log_longer_than_the_tail_reads_whole_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let total = (TAIL_ENTRIES as u64) * 2 + 17;
        {
            let mut store = LogStore::new(Db::open(&path).expect("open")).expect("writer");
            let mut flushed = Vec::new();
            for index in 1..=total {
                flushed.push(append_queued(&store, vec![blank(index)]));
            }
            // Readable before any flush is awaited.
            let all = store.try_get_log_entries(1..=total).await.expect("read");
            assert_eq!(indexes(&all), (1..=total).collect::<Vec<_>>());
            for receiver in flushed {
                receiver.await.expect("callback").expect("flushed");
            }
            assert!(store.tail().entries.len() <= TAIL_ENTRIES);
            let middle = store.try_get_log_entries(100..(total - 5)).await.expect("read");
            assert_eq!(indexes(&middle), (100..(total - 5)).collect::<Vec<_>>());
            let from_tail = store.try_get_log_entries((total - 3)..).await.expect("read");
            assert_eq!(indexes(&from_tail), ((total - 3)..=total).collect::<Vec<_>>());
        }
        let mut store = reopen(&path).await;
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|log_id| log_id.index), Some(total));
        let all = store.try_get_log_entries(1..).await.expect("read");
        assert_eq!(indexes(&all), (1..=total).collect::<Vec<_>>());
    }

    /// A truncation drops the tail's entries and the disk's; what is appended after it
    /// replaces them, also after reopening.
    #[tokio::test]
    async fn truncation_then_append_replaces_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        {
            let mut store = LogStore::new(Db::open(&path).expect("open")).expect("writer");
            append_flushed(&mut store, (1..=10).map(blank).collect()).await;
            store.truncate(blank(6).log_id).await.expect("truncate");
            assert_eq!(
                indexes(&store.try_get_log_entries(1..).await.expect("read")),
                vec![1, 2, 3, 4, 5]
            );
            let mut replacement = blank(6);
            replacement.log_id.leader_id = CommittedLeaderId::new(2, 0);
            append_flushed(&mut store, vec![replacement.clone()]).await;
            let last = store.get_log_state().await.expect("state").last_log_id;
            assert_eq!(last, Some(replacement.log_id));
            store.purge(blank(2).log_id).await.expect("purge");
            assert_eq!(
                indexes(&store.try_get_log_entries(0..).await.expect("read")),
                vec![3, 4, 5, 6]
            );
        }
        let mut store = reopen(&path).await;
        let entries = store.try_get_log_entries(0..).await.expect("read");
        assert_eq!(indexes(&entries), vec![3, 4, 5, 6]);
        assert_eq!(entries[3].log_id.leader_id, CommittedLeaderId::new(2, 0));
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|log_id| log_id.index), Some(2));
    }

    /// The backlog counts what was appended and not yet committed: commits take
    /// entries off its front, a truncation off its end, and a purge (of applied
    /// entries) as a commit would.
    #[tokio::test]
    async fn the_backlog_is_what_was_appended_and_not_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::new(Db::open(&dir.path().join("db")).expect("open")).expect("writer");
        let backlog = store.backlog();
        assert_eq!(backlog.now(), (0, 0));
        append_flushed(&mut store, (1..=10).map(blank).collect()).await;
        let (entries, bytes) = backlog.now();
        assert_eq!(entries, 10);
        let each = bytes / 10;
        assert!(each > 0 && bytes == each * 10, "{bytes} bytes for 10 blank entries");
        store.save_committed(Some(blank(4).log_id)).await.expect("commit");
        assert_eq!(backlog.now(), (6, 6 * each));
        store.truncate(blank(9).log_id).await.expect("truncate");
        assert_eq!(backlog.now(), (4, 4 * each));
        // An append over an index replaces what was counted there.
        append_flushed(&mut store, vec![blank(8), blank(9)]).await;
        assert_eq!(backlog.now(), (5, 5 * each));
        store.purge(blank(6).log_id).await.expect("purge");
        assert_eq!(backlog.now(), (3, 3 * each));
        store.save_committed(Some(blank(9).log_id)).await.expect("commit");
        assert_eq!(backlog.now(), (0, 0));
        // The clones share it.
        assert_eq!(store.clone().backlog().now(), (0, 0));
    }

    /// The committed-index hint costs no write of its own: it reads back at once, goes
    /// to disk with the next append, and the last one is written when the store
    /// closes, so a restart finds it.
    #[tokio::test]
    async fn the_committed_hint_rides_with_the_next_write_and_the_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let on_disk = |db: &Db| -> Option<Option<LogId>> { read_meta(db, COMMITTED_KEY, "committed").expect("read") };
        {
            let db = Db::open(&path).expect("open");
            let mut store = LogStore::new(db.clone()).expect("writer");
            append_flushed(&mut store, (1..=5).map(blank).collect()).await;
            store.save_committed(Some(blank(3).log_id)).await.expect("commit");
            assert_eq!(store.read_committed().await.expect("read"), Some(blank(3).log_id));
            assert_eq!(on_disk(&db), None, "no write of its own");
            append_flushed(&mut store, vec![blank(6)]).await;
            assert_eq!(on_disk(&db), Some(Some(blank(3).log_id)), "written with the append");
            store.save_committed(Some(blank(5).log_id)).await.expect("commit");
            assert_eq!(on_disk(&db), Some(Some(blank(3).log_id)));
        }
        let mut store = reopen(&path).await;
        assert_eq!(store.read_committed().await.expect("read"), Some(blank(5).log_id));
    }
}
