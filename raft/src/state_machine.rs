//! The RocksDB-backed Raft state machine, generic over the replicated application.
//!
//! The application ([`ReplicatedState`], implemented by `cairn-scheduler`) keeps its
//! state in memory for reads and describes every change as rows of the `state`
//! column. Each call to `apply` writes those rows, the applied log id and the
//! membership in **one atomic batch**, so the durable state always matches one log
//! index exactly. At start the application is rebuilt from the rows. The batches are
//! written by one thread in apply order (`state_writer`); `apply` returns once its
//! batch is queued, and snapshots and installs wait for the batches before them.
//!
//! The batch is not fsync'd on its own: every entry it applies is already synced in
//! the Raft log (same RocksDB, same write-ahead log), so a power loss can only take the
//! state back to an earlier applied index, from which openraft applies the log again
//! at start; the next synced log write makes it durable anyway. A process crash loses
//! nothing (the write is in the OS page cache).
//!
//! Snapshots are built from a RocksDB point-in-time view of the same rows, so they
//! never block `apply`, and are kept as a file (`snapshot/current`) written with
//! fsync-and-rename.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cairn_storage::{blocking, Column, Db, Durability, Row, StorageError};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::state_writer::{Barrier, StateBatch, StateWriteError, StateWriter};
use crate::types::{Entry, LogId, Node, NodeId, Outcome, RaftStorageError, StoredMembership, TypeConfig};

const APPLIED_KEY: &[u8] = b"sm/applied";
const MEMBERSHIP_KEY: &[u8] = b"sm/membership";
const SNAPSHOT_FILE: &str = "current";

/// How long `apply` may hold the state (and the runtime thread) before it yields.
const APPLY_SLICE: std::time::Duration = std::time::Duration::from_millis(10);
/// What the replicated application is told about the entry it applies.
#[derive(Debug, Clone, Copy)]
pub struct ApplyContext {
    /// The log index of the command being applied.
    pub log_index: u64,
}

/// The changes one `apply` makes to the application's durable rows.
#[derive(Debug, Default)]
pub struct StateWrites {
    /// `(key, Some(value))` sets a row, `(key, None)` deletes it; later writes to the
    /// same key win, as in a RocksDB batch.
    rows: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl StateWrites {
    /// Sets the row `key` to `value`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.rows.push((key, Some(value)));
    }

    /// Deletes the row `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.rows.push((key, None));
    }

    /// The writes to make, in key order, only the last one of each key (what a batch
    /// of all of them in order would leave): `(key, Some(value))` sets, `(key, None)`
    /// deletes.
    ///
    /// Key order matters to RocksDB: its memtable skip list keeps a splice of the last
    /// insert, so keys in ascending order each cost a step from the previous one, while
    /// keys in the order `apply` wrote them (a task graph's, say) each cost a descent
    /// from the top with a key comparison per level. Measured: after a graph of 114k
    /// tasks, those descents (`InlineSkipList::RecomputeSpliceLevels`) were a third of
    /// all CPU on the machine for 1.5 s.
    pub fn into_rows(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut rows = self.rows;
        // Stable: among writes to one key, the last stays last.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut last_of_each: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(rows.len());
        for row in rows {
            match last_of_each.last_mut() {
                Some(previous) if previous.0 == row.0 => *previous = row,
                _ => last_of_each.push(row),
            }
        }
        last_of_each
    }
}

/// Why the application could not rebuild itself from its rows.
#[derive(Debug, thiserror::Error)]
#[error("cannot rebuild the replicated state from disk: {reason}")]
pub struct LoadError {
    /// What was wrong with the rows.
    pub reason: String,
}

/// A deterministic application replicated by Raft.
///
/// `apply` must be a pure function of the state and the command: no clock reads,
/// randomness or I/O. Whatever it needs to be durable it writes as rows, and `load`
/// must rebuild the same state from exactly those rows.
pub trait ReplicatedState: Send + Sync + 'static {
    /// Rebuilds the state from its durable rows (key order).
    fn load(rows: Vec<Row>) -> Result<Self, LoadError>
    where
        Self: Sized;

    /// Applies one committed command and returns its encoded outcome.
    fn apply(&mut self, context: ApplyContext, command: &[u8], writes: &mut StateWrites) -> Vec<u8>;
}

/// Shared read access to the application state, for serving reads.
pub struct StateHandle<S> {
    /// The state; `apply` takes the write lock only while it mutates memory.
    state: Arc<RwLock<S>>,
}

impl<S> Clone for StateHandle<S> {
    fn clone(&self) -> Self {
        StateHandle {
            state: Arc::clone(&self.state),
        }
    }
}

impl<S> StateHandle<S> {
    /// Runs `read` with the current state. Callers that need linearizability call
    /// `Raft::ensure_linearizable` first.
    pub fn read<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&self.read_guard())
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, S> {
        // A panic while holding the lock would be a bug in `apply`; the state it left
        // is still the best we have, and openraft stops the node on the error anyway.
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, S> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a snapshot file holds.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    /// openraft's description of the snapshot.
    meta: SnapshotMeta<NodeId, Node>,
    /// The encoded [`SnapshotData`].
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The state carried by a snapshot: every application row as of `last_log_id`.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    rows: Vec<SnapshotRow>,
}

/// One row in a snapshot, encoded as two byte strings (not sequences of integers).
#[derive(Serialize, Deserialize)]
struct SnapshotRow(
    #[serde(with = "serde_bytes")] Vec<u8>,
    #[serde(with = "serde_bytes")] Vec<u8>,
);

/// The RocksDB-backed state machine.
pub struct StateMachineStore<S> {
    /// The scheduler's database; this type owns the `state` column and `sm/*` meta rows.
    db: Db,
    /// The in-memory application state, shared with readers.
    state: StateHandle<S>,
    /// The last applied log id (queued for `sm/applied`).
    applied: Option<LogId>,
    /// The last applied membership (queued for `sm/membership`).
    membership: StoredMembership,
    /// Where the current snapshot file lives.
    snapshot_dir: PathBuf,
    /// Writes each apply's batch, in order.
    writer: StateWriter,
}

fn sm_read_error(error: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::read_state_machine(AnyError::new(&error)).into()
}

fn sm_write_error(error: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::write_state_machine(AnyError::new(&error)).into()
}

fn snapshot_error(error: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&error)).into()
}

/// The applied log id, membership and every application row, as of one instant.
struct DurableState {
    applied: Option<LogId>,
    membership: StoredMembership,
    rows: Vec<Row>,
}

fn read_durable_state(db: &Db) -> Result<DurableState, crate::OpenError> {
    let (applied, membership, rows) = db.read_consistent(|view| {
        let applied = view.get(Column::Meta, APPLIED_KEY)?;
        let membership = view.get(Column::Meta, MEMBERSHIP_KEY)?;
        let rows = view.scan_all(Column::State)?;
        Ok((applied, membership, rows))
    })?;
    let applied = match applied {
        None => None,
        Some(bytes) => codec::decode("applied log id", &bytes)?,
    };
    let membership = match membership {
        None => StoredMembership::default(),
        Some(bytes) => codec::decode("membership", &bytes)?,
    };
    Ok(DurableState {
        applied,
        membership,
        rows,
    })
}

impl<S: ReplicatedState> StateMachineStore<S> {
    /// Opens the state machine over `db`, rebuilding the application from its rows.
    pub fn open(db: Db, snapshot_dir: &Path) -> Result<StateMachineStore<S>, crate::OpenError> {
        std::fs::create_dir_all(snapshot_dir).map_err(|source| crate::OpenError::Io {
            path: snapshot_dir.to_path_buf(),
            source,
        })?;
        let DurableState {
            applied,
            membership,
            rows,
        } = read_durable_state(&db)?;
        let state = S::load(rows)?;
        let writer = StateWriter::start(db.clone()).map_err(|source| crate::OpenError::Io {
            path: snapshot_dir.to_path_buf(),
            source,
        })?;
        Ok(StateMachineStore {
            writer,
            db,
            state: StateHandle {
                state: Arc::new(RwLock::new(state)),
            },
            applied,
            membership,
            snapshot_dir: snapshot_dir.to_path_buf(),
        })
    }

    /// A handle for reading the application state.
    pub fn handle(&self) -> StateHandle<S> {
        self.state.clone()
    }
}

fn write_snapshot_file(dir: &Path, file: &SnapshotFile) -> Result<(), RaftStorageError> {
    let bytes = codec::encode("snapshot", file).map_err(snapshot_error)?;
    let temporary = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut handle = std::fs::File::create(&temporary)?;
        handle.write_all(&bytes)?;
        handle.sync_all()?;
        std::fs::rename(&temporary, dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(snapshot_error)
}

fn read_snapshot_file(dir: &Path) -> Result<Option<SnapshotFile>, RaftStorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => codec::decode("snapshot", &bytes)
            .map(Some)
            .map_err(|error| StorageIOError::read_snapshot(None, AnyError::new(&error)).into()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StorageIOError::read_snapshot(None, AnyError::new(&error)).into()),
    }
}

/// Builds snapshots from a point-in-time view of the database.
pub struct SnapshotBuilder {
    /// The scheduler's database.
    db: Db,
    /// Resolves once every batch applied before the builder was made is written.
    written: Result<Barrier, StateWriteError>,
    /// Where to keep the built snapshot.
    snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<openraft::Snapshot<TypeConfig>, RaftStorageError> {
        let written = std::mem::replace(&mut self.written, Err(StateWriteError::Stopped));
        written.map_err(snapshot_error)?.wait().await.map_err(snapshot_error)?;
        let db = self.db.clone();
        let durable = tokio::task::spawn_blocking(move || read_durable_state(&db))
            .await
            .map_err(|error| sm_read_error(std::io::Error::other(error.to_string())))?
            .map_err(sm_read_error)?;
        let dir = self.snapshot_dir.clone();
        let (last_log_id, last_membership, rows) = (durable.applied, durable.membership, durable.rows);
        let snapshot_id = match last_log_id {
            Some(log_id) => format!(
                "{}-{}-{}",
                log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
            ),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let rows = rows.into_iter().map(|(key, value)| SnapshotRow(key, value)).collect();
        let data = codec::encode("snapshot data", &SnapshotData { rows }).map_err(snapshot_error)?;
        let file = SnapshotFile { meta, data };
        let file = tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &file).map(|()| file))
            .await
            .map_err(|error| snapshot_error(std::io::Error::other(error.to_string())))??;
        tracing::info!(snapshot = %file.meta.snapshot_id, bytes = file.data.len(), "built a snapshot");
        Ok(openraft::Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(file.data)),
        })
    }
}

impl<S: ReplicatedState> RaftStateMachine<TypeConfig> for StateMachineStore<S> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.writer.check().map_err(sm_write_error)?;
        let mut writes = StateWrites::default();
        let mut outcomes = Vec::new();
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            // In slices of about APPLY_SLICE, yielding in between: a graph's dozen
            // entries of 10,000 tasks each take 0.1 s and more to apply, and the
            // runtime thread must go on sending and answering heartbeats meanwhile.
            let slice_started = std::time::Instant::now();
            {
                let mut state = self.state.write_guard();
                for entry in entries.by_ref() {
                    self.applied = Some(entry.log_id);
                    let outcome = match entry.payload {
                        EntryPayload::Blank => Vec::new(),
                        EntryPayload::Normal(command) => {
                            let context = ApplyContext {
                                log_index: entry.log_id.index,
                            };
                            state.apply(context, &command.0, &mut writes)
                        }
                        EntryPayload::Membership(membership) => {
                            self.membership = StoredMembership::new(Some(entry.log_id), membership);
                            Vec::new()
                        }
                    };
                    outcomes.push(Outcome(outcome));
                    if slice_started.elapsed() >= APPLY_SLICE {
                        break;
                    }
                }
            }
            if entries.peek().is_some() {
                tokio::task::yield_now().await;
            }
        }
        let applied = codec::encode("applied log id", &self.applied).map_err(sm_write_error)?;
        let membership = codec::encode("membership", &self.membership).map_err(sm_write_error)?;
        self.writer
            .write(StateBatch {
                writes,
                meta: vec![(APPLIED_KEY, applied), (MEMBERSHIP_KEY, membership)],
            })
            .await
            .map_err(sm_write_error)?;
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            written: self.writer.barrier().await,
            db: self.db.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let data = snapshot.into_inner();
        let decoded: SnapshotData = codec::decode("snapshot data", &data)
            .map_err(|error| RaftStorageError::from(StorageIOError::read_snapshot(None, AnyError::new(&error))))?;
        let applied = codec::encode("applied log id", &meta.last_log_id).map_err(sm_write_error)?;
        let membership = codec::encode("membership", &meta.last_membership).map_err(sm_write_error)?;
        // The batches applied before the snapshot must not land on top of it.
        self.writer
            .barrier()
            .await
            .map_err(sm_write_error)?
            .wait()
            .await
            .map_err(sm_write_error)?;
        let db = self.db.clone();
        let rows: Vec<Row> = decoded
            .rows
            .into_iter()
            .map(|SnapshotRow(key, value)| (key, value))
            .collect();
        let rows = blocking(move || {
            let old_rows = db.scan(Column::State, &[], None, usize::MAX)?;
            let mut batch = db.batch();
            for (key, _) in &old_rows {
                batch.delete(Column::State, key);
            }
            for (key, value) in &rows {
                batch.put(Column::State, key, value);
            }
            batch.put(Column::Meta, APPLIED_KEY, &applied);
            batch.put(Column::Meta, MEMBERSHIP_KEY, &membership);
            // Synced: the log before the snapshot may be purged once it is installed.
            db.write(batch, Durability::Synced)?;
            Ok::<_, StorageError>(rows)
        })
        .await
        .map_err(sm_write_error)?;
        let state = S::load(rows).map_err(sm_write_error)?;
        *self.state.write_guard() = state;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let dir = self.snapshot_dir.clone();
        tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &file))
            .await
            .map_err(|error| snapshot_error(std::io::Error::other(error.to_string())))??;
        tracing::info!(snapshot = %meta.snapshot_id, "installed a snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<openraft::Snapshot<TypeConfig>>, RaftStorageError> {
        let dir = self.snapshot_dir.clone();
        let file = tokio::task::spawn_blocking(move || read_snapshot_file(&dir))
            .await
            .map_err(|error| snapshot_error(std::io::Error::other(error.to_string())))??;
        Ok(file.map(|file| openraft::Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(file.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use cairn_storage::{Db, Row};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::{ApplyContext, LoadError, ReplicatedState, StateMachineStore, StateWrites};
    use crate::types::{Command, Entry};

    /// An application whose every command takes 4 ms of CPU (as a big graph's entry does).
    struct Slow(u64);

    impl ReplicatedState for Slow {
        fn load(rows: Vec<Row>) -> Result<Self, LoadError> {
            Ok(Slow(rows.len() as u64))
        }

        fn apply(&mut self, context: ApplyContext, _command: &[u8], writes: &mut StateWrites) -> Vec<u8> {
            std::thread::sleep(std::time::Duration::from_millis(4));
            self.0 += 1;
            writes.put(context.log_index.to_be_bytes().to_vec(), Vec::new());
            Vec::new()
        }
    }

    /// A long run of entries is applied in slices: the runtime's other tasks (the
    /// Raft core's heartbeats) run in between, and every entry is applied, in order.
    #[tokio::test(flavor = "current_thread")]
    async fn a_long_apply_lets_other_tasks_run() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(&dir.path().join("db"))?;
        let mut machine = StateMachineStore::<Slow>::open(db, &dir.path().join("snapshot"))?;
        let handle = machine.handle();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticking = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::SeqCst);
        let entries: Vec<Entry> = (1..=40)
            .map(|index| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
                payload: EntryPayload::Normal(Command(vec![1])),
            })
            .collect();
        // 40 entries of 4 ms: 160 ms, in slices of 10 ms.
        let outcomes = machine.apply(entries).await?;
        let during = ticks.load(Ordering::SeqCst) - before;
        ticking.abort();
        assert_eq!(outcomes.len(), 40);
        assert_eq!(handle.read(|state| state.0), 40);
        assert!(
            during >= 8,
            "the other task ran {during} times during 160 ms of applying"
        );
        Ok(())
    }

    #[test]
    fn rows_come_sorted_with_the_last_write_of_each_key() {
        let mut writes = StateWrites::default();
        writes.put(b"b".to_vec(), b"1".to_vec());
        writes.put(b"a".to_vec(), b"1".to_vec());
        writes.delete(b"b".to_vec());
        writes.put(b"c".to_vec(), b"1".to_vec());
        writes.put(b"a".to_vec(), b"2".to_vec());
        writes.delete(b"c".to_vec());
        writes.put(b"c".to_vec(), b"3".to_vec());
        assert_eq!(
            writes.into_rows(),
            vec![
                (b"a".to_vec(), Some(b"2".to_vec())),
                (b"b".to_vec(), None),
                (b"c".to_vec(), Some(b"3".to_vec())),
            ]
        );
    }
}
