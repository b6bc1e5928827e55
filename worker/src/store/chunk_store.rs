//! [`ChunkStore`]: the I/O edge of the chunk store. It asks the accounting core
//! ([`StoreState`]) what to do, performs the disk work, and reports the outcome back.
//!
//! Locking: one `Mutex` around the state. It is held for bookkeeping and for the cheap
//! filesystem metadata operations that must agree with the bookkeeping (renaming a written file
//! into place, unlinking a file, the directory fsync of a durable put) — never while a chunk file
//! is encoded, written, fsync'd or read. Work done outside the lock is checked against the chunk's
//! generation before it is applied, so a chunk deleted or replaced meanwhile is never resurrected.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::array::RecordBatch;

use super::disk::{is_disk_full, probe_write, remove_file_if_present, sync_directory, WriteFaults};
use super::file::{
    chunk_file_messages, read_chunk_file, read_chunk_file_bytes, write_temp_chunk_file, ChunkFile, FileSync,
    IpcMessage, ReadFailure, WriteFailure,
};
use super::file_name::ChunkFileName;
use super::memory::ChunkAllocations;
use super::open::{recover_directory, OpenReport};
use super::state::{ReadLookup, SpillStep, StoreState, UnspillOutcome};
use super::{StoreConfig, StoreError, StoreStats, StoredChunk};
use crate::ChunkKey;

/// How many times `get` re-reads a chunk that was replaced while its file was being read.
const READ_ATTEMPTS: usize = 8;

/// A chunk as [`ChunkStore::get_for_sending`] finds it.
#[derive(Debug, Clone)]
pub enum ChunkForSending {
    /// In memory: the batch.
    Batch(RecordBatch),
    /// Only on disk: the messages of its Arrow IPC file (schema, dictionaries, batch),
    /// slices of the file's bytes, checksum verified.
    File(Vec<IpcMessage>),
}

/// A worker's chunks, in memory and on disk: Dask's `SpillBuffer` for Arrow batches.
///
/// Cheap to clone (an `Arc`), `Send + Sync`; every method is synchronous and may do disk I/O, so
/// async callers run them in `tokio::task::spawn_blocking`.
#[derive(Clone)]
pub struct ChunkStore {
    /// The shared store: clones are handles to the same chunks.
    inner: Arc<StoreInner>,
}

/// What every handle of a [`ChunkStore`] shares.
struct StoreInner {
    /// The configuration, for the directory and the limit.
    config: StoreConfig,
    /// The accounting core, behind the store's one lock.
    state: Mutex<StoreState>,
    /// Test-only write-failure injection; empty and inert outside tests.
    faults: WriteFaults,
}

/// Whether a put must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Written, fsync'd, renamed into place and the directory fsync'd before returning.
    Durable,
    /// Held in memory; written (without fsync) only if it has to spill.
    MemoryOnly,
}

impl fmt::Debug for ChunkStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ChunkStore")
            .field("dir", &self.inner.config.dir)
            .field("memory_limit", &self.inner.config.memory_limit)
            .finish_non_exhaustive()
    }
}

impl ChunkStore {
    /// Opens the chunk directory (creating it if missing): removes leftover temp files and
    /// malformed chunk files, reads every chunk file whole and verifies its checksum and decoding,
    /// deletes the corrupt ones and reports them by key. Nothing is loaded into memory.
    pub fn open(config: StoreConfig) -> Result<(ChunkStore, OpenReport), StoreError> {
        config.validate()?;
        fs::create_dir_all(&config.dir).map_err(|source| StoreError::Io {
            path: config.dir.clone(),
            source,
        })?;
        let recovered = recover_directory(&config.dir)?;

        let mut state = StoreState::new(config.thresholds());
        for chunk in recovered.chunks {
            state.insert_from_disk(chunk.schema, chunk.rows, chunk.memory_bytes, chunk.file);
        }
        let report = OpenReport {
            chunks: state.chunks(),
            corrupt: recovered.corrupt,
            removed_files: recovered.removed_files,
        };
        tracing::info!(
            dir = %config.dir.display(),
            memory_limit = config.memory_limit,
            chunks = report.chunks.len(),
            corrupt = report.corrupt.len(),
            removed_files = report.removed_files.len(),
            "chunk store opened"
        );
        let store = ChunkStore {
            inner: Arc::new(StoreInner {
                config,
                state: Mutex::new(state),
                faults: WriteFaults::default(),
            }),
        };
        Ok((store, report))
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Stores a published chunk durably before returning: the Arrow IPC file is written to a temp
    /// file, fsync'd, renamed into place and the directory fsync'd. The chunk then stays in memory
    /// as the most recently used, and LRU chunks spill if managed memory goes over the target.
    ///
    /// Replaces any chunk with the same key. Refused with [`StoreError::Paused`] while the store
    /// is paused; a failed write returns [`StoreError::DiskFull`] or [`StoreError::WriteFailed`]
    /// and pauses the store (all three retryable).
    pub fn put_durable(&self, key: ChunkKey, batch: RecordBatch) -> Result<StoredChunk, StoreError> {
        self.store(key, batch, Durability::Durable)
    }

    /// Stores a chunk in memory only (a task result) as the most recently used; LRU chunks spill
    /// if managed memory goes over the target, and a chunk without a file is written before it
    /// leaves memory. Replaces any chunk with the same key. Refused while the store is paused.
    pub fn put(&self, key: ChunkKey, batch: RecordBatch) -> Result<StoredChunk, StoreError> {
        self.store(key, batch, Durability::MemoryOnly)
    }

    /// The chunk's batch. A memory hit becomes the most recently used; otherwise the file is read,
    /// its checksum verified and the batch decoded and brought back into memory (which may spill
    /// others). A corrupt file is deleted, the key dropped, and [`StoreError::Corrupt`] returned.
    pub fn get(&self, key: &ChunkKey) -> Result<RecordBatch, StoreError> {
        for _attempt in 0..READ_ATTEMPTS {
            let lookup = self.lock_state().lookup_for_read(key);
            let (generation, file) = match lookup {
                ReadLookup::InMemory(batch) => return Ok(batch),
                ReadLookup::Absent => return Err(StoreError::NotFound { key: key.clone() }),
                ReadLookup::OnDisk { generation, file } => (generation, file),
            };

            let path = self.path_of(&file.name);
            let read = read_chunk_file(&path, &file.name);

            let mut state = self.lock_state();
            let still_current = state.generation_of(key) == Some(generation);
            if !still_current {
                continue;
            }
            match read {
                Ok(batch) => {
                    let allocations = ChunkAllocations::of_batch(&batch);
                    match state.finish_unspill(key, generation, batch.clone(), allocations) {
                        UnspillOutcome::Loaded => {
                            drop(state);
                            tracing::debug!(chunk = %key, file_bytes = file.bytes, "chunk read back into memory");
                            self.spill_until(self.target_bytes());
                            return Ok(batch);
                        }
                        UnspillOutcome::AlreadyInMemory(resident_batch) => return Ok(resident_batch),
                        UnspillOutcome::Stale => continue,
                    }
                }
                Err(ReadFailure::Corrupt { reason }) => return Err(self.drop_corrupt(state, key, &path, reason)),
                Err(ReadFailure::Io { source }) => return Err(StoreError::Io { path, source }),
            }
        }
        Err(StoreError::Busy { key: key.clone() })
    }

    /// The chunk as it is to be sent: its batch when it is in memory (a use, as for
    /// [`ChunkStore::get`]); otherwise its file's bytes, checksum verified but not decoded,
    /// and the chunk is *not* brought back into memory (a reader streaming a dataset
    /// larger than memory does not push out what the worker's tasks use). A file larger
    /// than `max_file_bytes` (its batch would not fit one message) is read as by
    /// [`ChunkStore::get`] instead, and the batch returned. A corrupt file is handled as
    /// by [`ChunkStore::get`].
    pub fn get_for_sending(&self, key: &ChunkKey, max_file_bytes: u64) -> Result<ChunkForSending, StoreError> {
        for _attempt in 0..READ_ATTEMPTS {
            let lookup = self.lock_state().lookup_for_read(key);
            let (generation, file) = match lookup {
                ReadLookup::InMemory(batch) => return Ok(ChunkForSending::Batch(batch)),
                ReadLookup::Absent => return Err(StoreError::NotFound { key: key.clone() }),
                ReadLookup::OnDisk { file, .. } if file.bytes > max_file_bytes => {
                    return self.get(key).map(ChunkForSending::Batch)
                }
                ReadLookup::OnDisk { generation, file } => (generation, file),
            };
            let path = self.path_of(&file.name);
            let read = read_chunk_file_bytes(&path, &file.name).and_then(|bytes| {
                chunk_file_messages(&bytes).map_err(|reason| ReadFailure::Corrupt {
                    reason: format!("{} does not split into IPC messages: {reason}", path.display()),
                })
            });
            let state = self.lock_state();
            match read {
                // Read whole and verified: what the chunk held, even if it was replaced since.
                Ok(messages) => return Ok(ChunkForSending::File(messages)),
                // Deleted or replaced while being read: look again.
                Err(_) if state.generation_of(key) != Some(generation) => continue,
                Err(ReadFailure::Corrupt { reason }) => return Err(self.drop_corrupt(state, key, &path, reason)),
                Err(ReadFailure::Io { source }) => return Err(StoreError::Io { path, source }),
            }
        }
        Err(StoreError::Busy { key: key.clone() })
    }

    /// Deletes the corrupt file of `key` at `path` and forgets the chunk; the error to return.
    fn drop_corrupt(
        &self,
        mut state: MutexGuard<'_, StoreState>,
        key: &ChunkKey,
        path: &Path,
        reason: String,
    ) -> StoreError {
        if let Err(error) = remove_file_if_present(path) {
            tracing::warn!(path = %path.display(), %error, "could not remove a corrupt chunk file");
        }
        state.remove(key);
        drop(state);
        self.sync_directory_after_removal();
        tracing::warn!(chunk = %key, %reason, "dropped a corrupt chunk");
        StoreError::Corrupt {
            key: key.clone(),
            reason,
        }
    }

    /// The chunk's batch if it is in memory now (a use, as for [`ChunkStore::get`]); `None` when
    /// it is absent or only on disk. Never reads a file.
    pub fn get_if_in_memory(&self, key: &ChunkKey) -> Option<RecordBatch> {
        match self.lock_state().lookup_for_read(key) {
            ReadLookup::InMemory(batch) => Some(batch),
            ReadLookup::Absent | ReadLookup::OnDisk { .. } => None,
        }
    }

    /// Whether a chunk of `bytes` would be stored now without waiting or writing a file: the
    /// store is not paused and managed memory would stay within the spill target.
    pub fn has_room_for(&self, bytes: u64) -> bool {
        let state = self.lock_state();
        state.pause_reason().is_none() && state.managed_bytes().saturating_add(bytes) <= self.target_bytes()
    }

    /// Whether the store holds the chunk (in memory or on disk).
    pub fn contains(&self, key: &ChunkKey) -> bool {
        self.lock_state().generation_of(key).is_some()
    }

    /// The chunk's metadata (no data, no I/O).
    pub fn chunk(&self, key: &ChunkKey) -> Option<StoredChunk> {
        self.lock_state().chunk(key)
    }

    /// Every chunk held (in memory or on disk), sorted by key.
    pub fn chunks(&self) -> Vec<StoredChunk> {
        self.lock_state().chunks()
    }

    /// Removes the chunk at once if it is only in memory (bookkeeping, no I/O) and returns
    /// `true`, also when it is absent; `false`, changing nothing, when it has a file or
    /// writes are paused after a disk failure: then [`ChunkStore::delete`] it.
    pub fn delete_if_in_memory_only(&self, key: &ChunkKey) -> bool {
        let mut state = self.lock_state();
        match state.file_of(key) {
            None => true,
            Some(None) if !state.has_disk_failure() => {
                state.remove(key);
                true
            }
            Some(_) => false,
        }
    }

    /// Removes the chunk from memory and disk (the file deleted and the directory fsync'd);
    /// `Ok(false)` if it was absent. If the file cannot be removed, the chunk stays and the error
    /// is returned; if only the directory fsync fails, the chunk is gone but the error is returned
    /// (the removal may not survive a crash). While writes are paused after a disk failure, a
    /// delete also retries the probe write (freeing space may have ended the problem).
    pub fn delete(&self, key: &ChunkKey) -> Result<bool, StoreError> {
        let mut state = self.lock_state();
        let Some(file) = state.file_of(key) else {
            return Ok(false);
        };
        if let Some(file) = &file {
            let path = self.path_of(&file.name);
            remove_file_if_present(&path).map_err(|source| StoreError::Io { path, source })?;
        }
        state.remove(key);
        let disk_writes_failed = state.has_disk_failure();
        drop(state);
        tracing::debug!(chunk = %key, had_file = file.is_some(), "chunk deleted");

        let directory_synced = match file {
            Some(_) => sync_directory(self.dir()),
            None => Ok(()),
        };
        if disk_writes_failed {
            self.retry_disk_writes();
        }
        directory_synced.map_err(|source| StoreError::Io {
            path: self.dir().to_path_buf(),
            source,
        })?;
        Ok(true)
    }

    /// The store's figures.
    pub fn stats(&self) -> StoreStats {
        self.lock_state().stats()
    }

    /// Called periodically with the process RSS in bytes.
    ///
    /// - Retries a probe write (write, fsync, delete) while a disk failure pauses the store, and
    ///   unpauses it if that works.
    /// - Above `spill_fraction × memory_limit` of RSS, spills LRU chunks until the process is
    ///   estimated to fit the target, as Dask does: managed memory goes down to the target minus
    ///   the memory the store does not manage (RSS − managed), or to zero.
    /// - Otherwise, spills until managed memory is within the target (catching up after spills
    ///   that could not happen earlier).
    /// - Remembers the RSS: above `pause_fraction × memory_limit`, new chunks are refused until a
    ///   later call reports less.
    pub fn check_pressure(&self, process_rss: u64) {
        let paused_before = self.paused();
        let (spill_goal_bytes, disk_writes_failed) = {
            let mut state = self.lock_state();
            state.record_process_rss(process_rss);
            let thresholds = state.thresholds();
            let goal = if process_rss > thresholds.spill_bytes {
                let unmanaged_bytes = process_rss.saturating_sub(state.managed_bytes());
                thresholds.target_bytes.saturating_sub(unmanaged_bytes)
            } else {
                thresholds.target_bytes
            };
            (goal, state.has_disk_failure())
        };
        if disk_writes_failed {
            self.retry_disk_writes();
        }
        self.spill_until(spill_goal_bytes);

        match (paused_before, self.paused()) {
            (None, Some(reason)) => tracing::warn!(%reason, process_rss, "chunk store paused: new chunks are refused"),
            (Some(_), None) => tracing::info!(process_rss, "chunk store unpaused: new chunks are accepted again"),
            _ => {}
        }
    }

    /// Why the store refuses new chunks now, if it does.
    pub fn paused(&self) -> Option<String> {
        self.lock_state().pause_reason()
    }

    /// Makes every chunk-file write and probe write fail with `kind` (or work again, with `None`).
    #[cfg(test)]
    pub(crate) fn fail_writes_with(&self, kind: Option<io::ErrorKind>) {
        self.inner.faults.fail_writes_with(kind);
    }

    /// The common path of `put` and `put_durable`.
    fn store(&self, key: ChunkKey, batch: RecordBatch, durability: Durability) -> Result<StoredChunk, StoreError> {
        let allocations = ChunkAllocations::of_batch(&batch);
        let memory_limit = self.inner.config.memory_limit;
        if allocations.total_bytes() > memory_limit {
            return Err(StoreError::TooLarge {
                key,
                bytes: allocations.total_bytes(),
                limit: memory_limit,
            });
        }
        if let Some(reason) = self.paused() {
            return Err(StoreError::Paused { reason });
        }

        let inserted = match durability {
            Durability::MemoryOnly => {
                let mut state = self.lock_state();
                self.insert_locked(&mut state, key.clone(), batch, allocations, None)
            }
            Durability::Durable => self.store_durably(&key, batch, allocations)?,
        };
        tracing::debug!(
            chunk = %key,
            rows = inserted.rows,
            memory_bytes = inserted.memory_bytes,
            file_bytes = inserted.file_bytes,
            durable = durability == Durability::Durable,
            "chunk stored"
        );
        self.spill_until(self.target_bytes());
        Ok(self.chunk(&key).unwrap_or(inserted))
    }

    /// Writes the chunk's file durably, then inserts the chunk (file and memory).
    fn store_durably(
        &self,
        key: &ChunkKey,
        batch: RecordBatch,
        allocations: ChunkAllocations,
    ) -> Result<StoredChunk, StoreError> {
        let temp = write_temp_chunk_file(self.dir(), key, &batch, FileSync::Durable, &self.inner.faults)
            .map_err(|failure| self.write_failed(key, failure))?;
        let final_path = self.path_of(&temp.file.name);

        let mut state = self.lock_state();
        if let Err(source) = fs::rename(&temp.temp_path, &final_path) {
            remove_temp_file(&temp.temp_path);
            return Err(self.disk_failed(&mut state, final_path, source));
        }
        if let Err(source) = sync_directory(self.dir()) {
            // The file may not survive a crash: unless it is the current chunk's file already
            // (same key, same bytes), take it back out, so nothing unacknowledged lingers.
            if !state.is_file_in_use(&temp.file.name) {
                remove_temp_file(&final_path);
            }
            return Err(self.disk_failed(&mut state, self.dir().to_path_buf(), source));
        }
        Ok(self.insert_locked(&mut state, key.clone(), batch, allocations, Some(temp.file)))
    }

    /// Inserts a chunk while holding the lock, and deletes the file of the chunk it replaces.
    fn insert_locked(
        &self,
        state: &mut StoreState,
        key: ChunkKey,
        batch: RecordBatch,
        allocations: ChunkAllocations,
        file: Option<ChunkFile>,
    ) -> StoredChunk {
        let outcome = state.insert(key, batch, allocations, file);
        if let Some(superseded) = outcome.superseded_file {
            let path = self.path_of(&superseded.name);
            match remove_file_if_present(&path) {
                Ok(_) => tracing::debug!(path = %path.display(), "removed the file of a replaced chunk"),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "could not remove a replaced chunk's file")
                }
            }
        }
        outcome.chunk
    }

    /// Moves least-recently-used chunks out of memory until managed memory is at or under
    /// `goal_bytes`, writing the files of chunks that have none; stops early when no chunk can
    /// leave (so a chunk bigger than the target, or a failing disk, never loops forever).
    fn spill_until(&self, goal_bytes: u64) {
        loop {
            let step = self.lock_state().next_spill_step(goal_bytes);
            match step {
                SpillStep::Done => return,
                SpillStep::Blocked => {
                    tracing::debug!(goal_bytes, "spilling is blocked: no chunk can leave memory now");
                    return;
                }
                SpillStep::Evicted { key, released_bytes } => {
                    tracing::debug!(chunk = %key, released_bytes, "chunk left memory");
                }
                SpillStep::Write { key, generation, batch } => self.write_spill_file(&key, generation, &batch),
            }
        }
    }

    /// Writes the file of a chunk chosen to spill and reports the outcome to the state.
    fn write_spill_file(&self, key: &ChunkKey, generation: u64, batch: &RecordBatch) {
        let written = write_temp_chunk_file(self.dir(), key, batch, FileSync::Lazy, &self.inner.faults);
        let mut state = self.lock_state();
        match written {
            Ok(temp) => {
                if !state.spill_write_is_current(key, generation) {
                    // Deleted or replaced while being written: the file is of no use.
                    remove_temp_file(&temp.temp_path);
                    return;
                }
                let final_path = self.path_of(&temp.file.name);
                if let Err(source) = fs::rename(&temp.temp_path, &final_path) {
                    remove_temp_file(&temp.temp_path);
                    state.abandon_spill_write(key, generation, false);
                    self.disk_failed(&mut state, final_path, source);
                    return;
                }
                let file_bytes = temp.file.bytes;
                let accepted = state.finish_spill_write(key, generation, temp.file);
                debug_assert!(accepted, "a current spill write was refused");
                tracing::debug!(chunk = %key, file_bytes, "chunk written to disk to spill");
            }
            Err(WriteFailure::Encode(error)) => {
                state.abandon_spill_write(key, generation, true);
                tracing::warn!(chunk = %key, %error, "chunk cannot be spilled: Arrow cannot encode it as IPC");
            }
            Err(WriteFailure::Disk { path, source }) => {
                state.abandon_spill_write(key, generation, false);
                self.disk_failed(&mut state, path, source);
            }
        }
    }

    /// Turns a failed chunk-file write into the caller's error, pausing the store for disk failures.
    fn write_failed(&self, key: &ChunkKey, failure: WriteFailure) -> StoreError {
        match failure {
            WriteFailure::Encode(source) => StoreError::Encode {
                key: key.clone(),
                source,
            },
            WriteFailure::Disk { path, source } => {
                let mut state = self.lock_state();
                self.disk_failed(&mut state, path, source)
            }
        }
    }

    /// Pauses the store after a failed disk write, and returns the error to report.
    fn disk_failed(&self, state: &mut StoreState, path: PathBuf, source: io::Error) -> StoreError {
        let reason = format!("writing {}: {source}", path.display());
        tracing::error!(
            path = %path.display(),
            error = %source,
            "disk write failed; the chunk store refuses new chunks until a probe write succeeds"
        );
        state.record_disk_failure(reason);
        if is_disk_full(&source) {
            StoreError::DiskFull { path, source }
        } else {
            StoreError::WriteFailed { path, source }
        }
    }

    /// Tries a probe write; if it works, ends the disk-failure pause.
    fn retry_disk_writes(&self) {
        match probe_write(self.dir(), &self.inner.faults) {
            Ok(()) => {
                if self.lock_state().clear_disk_failure() {
                    tracing::info!(dir = %self.dir().display(), "disk writes work again");
                }
            }
            Err((path, error)) => {
                tracing::debug!(path = %path.display(), %error, "probe write still fails");
                self.lock_state()
                    .record_disk_failure(format!("writing {}: {error}", path.display()));
            }
        }
    }

    /// Fsyncs the directory after a removal; a failure is only logged (the file would be found
    /// again at open and handled there).
    fn sync_directory_after_removal(&self) {
        if let Err(error) = sync_directory(self.dir()) {
            tracing::warn!(dir = %self.dir().display(), %error, "could not fsync the chunk directory after a removal");
        }
    }

    /// The managed memory above which chunks spill.
    fn target_bytes(&self) -> u64 {
        self.inner.config.thresholds().target_bytes
    }

    /// The chunk directory.
    fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    /// Where a chunk file lives.
    fn path_of(&self, name: &ChunkFileName) -> PathBuf {
        self.dir().join(name.to_string())
    }

    /// The state, even if a thread panicked while holding the lock (the state is only changed by
    /// short, non-panicking bookkeeping, so it is consistent).
    fn lock_state(&self) -> MutexGuard<'_, StoreState> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a temp (or unacknowledged) file after a failure, logging if even that fails.
fn remove_temp_file(path: &Path) {
    if let Err(error) = remove_file_if_present(path) {
        tracing::warn!(path = %path.display(), %error, "could not remove a partial chunk file");
    }
}
