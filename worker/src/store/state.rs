//! The accounting core of the chunk store: every chunk's entry, the LRU order, the memory ledger,
//! the pause state and the counters. No I/O happens here: [`ChunkStore`](super::ChunkStore) asks
//! what to do (which chunk leaves memory next, is the store paused), performs the disk work, and
//! reports the outcome back — as zict's `Buffer` decides and its `slow` mapping writes.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::config::Thresholds;
use super::file::ChunkFile;
use super::file_name::ChunkFileName;
use super::lru::LruOrder;
use super::memory::{ChunkAllocations, MemoryLedger};
use super::{StoreStats, StoredChunk};
use crate::ChunkKey;

/// Everything the store knows about its chunks, behind the store's one lock.
#[derive(Debug)]
pub(crate) struct StoreState {
    /// The thresholds in bytes, fixed at open.
    thresholds: Thresholds,
    /// Every chunk held, in memory and/or on disk, by key (sorted, so listings come out ordered).
    entries: BTreeMap<ChunkKey, ChunkEntry>,
    /// The allocations of in-memory chunks, each counted once: managed memory.
    ledger: MemoryLedger,
    /// In-memory chunks by last use: the spill order.
    lru: LruOrder,
    /// The generation the next inserted entry gets: tells an entry from the one that replaced it,
    /// so disk work done outside the lock is never applied to the wrong version of a chunk.
    next_generation: u64,
    /// How many times a chunk left memory since open (reported in the stats).
    spill_count: u64,
    /// How many times a chunk was read back into memory since open (reported in the stats).
    unspill_count: u64,
    /// Why the last disk write failed, while no probe write has succeeded since: writes are
    /// refused (new chunks) or skipped (spills) meanwhile.
    disk_failure: Option<String>,
    /// The process RSS last reported to `check_pressure`: above the pause threshold, new chunks
    /// are refused.
    last_process_rss: u64,
}

/// One chunk: its metadata, and where its data is.
#[derive(Debug)]
struct ChunkEntry {
    /// The batch's schema, kept so metadata and Flight info work while the chunk is on disk.
    schema: SchemaRef,
    /// The batch's row count.
    rows: u64,
    /// The chunk's own deduplicated size, current while in memory, last known otherwise.
    memory_bytes: u64,
    /// The batch and its allocations while the chunk is in memory; `None` once spilled.
    resident: Option<ResidentBatch>,
    /// The chunk's file, once written; `None` for a chunk only in memory.
    file: Option<ChunkFile>,
    /// Which version of the chunk this is (see [`StoreState::next_generation`]).
    generation: u64,
    /// A spill write of this chunk is under way outside the lock: it is not picked again meanwhile.
    spill_write_in_progress: bool,
    /// Arrow could not encode this batch as IPC: it can never be written, so it is never picked
    /// for spilling again (instead of being retried forever).
    unencodable: bool,
}

/// A chunk's batch held in memory, with the allocations registered in the ledger for it.
#[derive(Debug)]
struct ResidentBatch {
    /// The data; holding it keeps its allocations alive while they are counted.
    batch: RecordBatch,
    /// Exactly what was registered in the ledger, to release exactly that.
    allocations: ChunkAllocations,
}

/// The outcome of [`StoreState::insert`].
#[derive(Debug)]
pub(crate) struct InsertOutcome {
    /// The new chunk's metadata, as inserted (before any spilling).
    pub(crate) chunk: StoredChunk,
    /// The replaced chunk's file, when it differs from the new one: the caller deletes it.
    pub(crate) superseded_file: Option<ChunkFile>,
}

/// The next step of a spill, decided by [`StoreState::next_spill_step`].
#[derive(Debug)]
pub(crate) enum SpillStep {
    /// Managed memory is at or under the goal: nothing to do.
    Done,
    /// A chunk that already had a file left memory (no I/O needed).
    Evicted {
        /// The chunk that left.
        key: ChunkKey,
        /// The managed bytes that freed (zero if other chunks share all its allocations).
        released_bytes: u64,
    },
    /// The least recently used chunk has no file: the caller writes one, then reports back with
    /// `finish_spill_write` or `abandon_spill_write`. It stays in memory meanwhile.
    Write {
        /// The chunk to write.
        key: ChunkKey,
        /// Its generation, to check on reporting back.
        generation: u64,
        /// Its data (a cheap clone: Arcs).
        batch: RecordBatch,
    },
    /// Over the goal, but no chunk can leave memory now (being written already, or no file while
    /// disk writes fail).
    Blocked,
}

/// Where [`StoreState::lookup_for_read`] found a chunk.
#[derive(Debug)]
pub(crate) enum ReadLookup {
    /// In memory: here it is (now the most recently used).
    InMemory(RecordBatch),
    /// Only on disk: read this file, then report back with `finish_unspill`.
    OnDisk {
        /// The entry's generation, to check on reporting back.
        generation: u64,
        /// The file to read.
        file: ChunkFile,
    },
    /// No such chunk.
    Absent,
}

/// The outcome of [`StoreState::finish_unspill`].
#[derive(Debug)]
pub(crate) enum UnspillOutcome {
    /// The batch read from disk is now in memory.
    Loaded,
    /// Another reader brought the chunk back first: use this batch instead.
    AlreadyInMemory(RecordBatch),
    /// The chunk was replaced or deleted while the file was read: look it up again.
    Stale,
}

impl StoreState {
    /// An empty state.
    pub(crate) fn new(thresholds: Thresholds) -> StoreState {
        StoreState {
            thresholds,
            entries: BTreeMap::new(),
            ledger: MemoryLedger::default(),
            lru: LruOrder::default(),
            next_generation: 0,
            spill_count: 0,
            unspill_count: 0,
            disk_failure: None,
            last_process_rss: 0,
        }
    }

    /// The thresholds in bytes.
    pub(crate) fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// The managed memory: every allocation of an in-memory chunk, once.
    pub(crate) fn managed_bytes(&self) -> u64 {
        self.ledger.managed_bytes()
    }

    /// Records a verified chunk file found at open: on disk only.
    pub(crate) fn insert_from_disk(&mut self, schema: SchemaRef, rows: u64, memory_bytes: u64, file: ChunkFile) {
        let key = file.name.key.clone();
        let generation = self.take_generation();
        let entry = ChunkEntry {
            schema,
            rows,
            memory_bytes,
            resident: None,
            file: Some(file),
            generation,
            spill_write_in_progress: false,
            unencodable: false,
        };
        let previous = self.entries.insert(key.clone(), entry);
        debug_assert!(previous.is_none(), "open found two files for chunk {key}");
        self.debug_check_entry(&key);
    }

    /// Puts a chunk in memory as the most recently used, with its file if it has one already,
    /// replacing any chunk with the same key.
    pub(crate) fn insert(
        &mut self,
        key: ChunkKey,
        batch: RecordBatch,
        allocations: ChunkAllocations,
        file: Option<ChunkFile>,
    ) -> InsertOutcome {
        let superseded_file = match self.entries.remove(&key) {
            Some(mut previous) => {
                if let Some(resident) = previous.resident.take() {
                    self.ledger.release(&resident.allocations);
                    self.lru.remove(&key);
                }
                let new_name = file.as_ref().map(|new_file| &new_file.name);
                previous.file.filter(|old_file| Some(&old_file.name) != new_name)
            }
            None => None,
        };
        self.ledger.register(&allocations);
        self.lru.touch(&key);
        let generation = self.take_generation();
        let entry = ChunkEntry {
            schema: batch.schema(),
            rows: batch.num_rows() as u64,
            memory_bytes: allocations.total_bytes(),
            resident: Some(ResidentBatch { batch, allocations }),
            file,
            generation,
            spill_write_in_progress: false,
            unencodable: false,
        };
        let chunk = describe(&key, &entry);
        self.entries.insert(key.clone(), entry);
        self.debug_check_entry(&key);
        InsertOutcome { chunk, superseded_file }
    }

    /// Decides the next step towards managed memory at or under `goal_bytes`: the least recently
    /// used chunk that can leave memory leaves it (if it has a file) or is handed out to be
    /// written (if it has none and disk writes work).
    pub(crate) fn next_spill_step(&mut self, goal_bytes: u64) -> SpillStep {
        if self.ledger.managed_bytes() <= goal_bytes {
            return SpillStep::Done;
        }
        let disk_writes_work = self.disk_failure.is_none();
        let mut victim: Option<(ChunkKey, bool)> = None;
        for key in self.lru.oldest_first() {
            let Some(entry) = self.entries.get(key) else {
                debug_assert!(false, "chunk {key} is in the LRU order but has no entry");
                continue;
            };
            if entry.spill_write_in_progress {
                continue;
            }
            let has_file = entry.file.is_some();
            if has_file || (disk_writes_work && !entry.unencodable) {
                victim = Some((key.clone(), has_file));
                break;
            }
        }
        let Some((key, has_file)) = victim else {
            return SpillStep::Blocked;
        };
        if has_file {
            let released_bytes = self.evict(&key);
            return SpillStep::Evicted { key, released_bytes };
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            return SpillStep::Blocked;
        };
        let Some(resident) = &entry.resident else {
            debug_assert!(false, "chunk {key} is in the LRU order but not in memory");
            return SpillStep::Blocked;
        };
        entry.spill_write_in_progress = true;
        SpillStep::Write {
            batch: resident.batch.clone(),
            generation: entry.generation,
            key,
        }
    }

    /// Whether a spill write handed out for (`key`, `generation`) still concerns the current
    /// chunk (it was not deleted or replaced meanwhile).
    pub(crate) fn spill_write_is_current(&self, key: &ChunkKey, generation: u64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|entry| entry.generation == generation && entry.spill_write_in_progress)
    }

    /// Records that the spill write for (`key`, `generation`) put `file` in place: the chunk can
    /// now leave memory. Returns false (and changes nothing) if the chunk changed meanwhile.
    pub(crate) fn finish_spill_write(&mut self, key: &ChunkKey, generation: u64, file: ChunkFile) -> bool {
        if !self.spill_write_is_current(key, generation) {
            return false;
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        debug_assert!(
            entry.resident.is_some(),
            "a chunk being spilled left memory without a file"
        );
        entry.spill_write_in_progress = false;
        entry.file = Some(file);
        self.debug_check_entry(key);
        true
    }

    /// Records that the spill write for (`key`, `generation`) failed; an `unencodable` chunk is
    /// never picked again.
    pub(crate) fn abandon_spill_write(&mut self, key: &ChunkKey, generation: u64, unencodable: bool) {
        if let Some(entry) = self.entries.get_mut(key) {
            if entry.generation == generation {
                entry.spill_write_in_progress = false;
                entry.unencodable |= unencodable;
            }
        }
    }

    /// Finds a chunk for `get`: a memory hit becomes the most recently used.
    pub(crate) fn lookup_for_read(&mut self, key: &ChunkKey) -> ReadLookup {
        let Some(entry) = self.entries.get(key) else {
            return ReadLookup::Absent;
        };
        if let Some(resident) = &entry.resident {
            let batch = resident.batch.clone();
            self.lru.touch(key);
            return ReadLookup::InMemory(batch);
        }
        match &entry.file {
            Some(file) => ReadLookup::OnDisk {
                generation: entry.generation,
                file: file.clone(),
            },
            None => {
                debug_assert!(false, "chunk {key} is neither in memory nor on disk");
                ReadLookup::Absent
            }
        }
    }

    /// Brings a chunk read back from its file into memory as the most recently used.
    pub(crate) fn finish_unspill(
        &mut self,
        key: &ChunkKey,
        generation: u64,
        batch: RecordBatch,
        allocations: ChunkAllocations,
    ) -> UnspillOutcome {
        let Some(entry) = self.entries.get_mut(key) else {
            return UnspillOutcome::Stale;
        };
        if entry.generation != generation {
            return UnspillOutcome::Stale;
        }
        if let Some(resident) = &entry.resident {
            let batch = resident.batch.clone();
            self.lru.touch(key);
            return UnspillOutcome::AlreadyInMemory(batch);
        }
        self.ledger.register(&allocations);
        entry.memory_bytes = allocations.total_bytes();
        entry.resident = Some(ResidentBatch { batch, allocations });
        self.lru.touch(key);
        self.unspill_count += 1;
        self.debug_check_entry(key);
        UnspillOutcome::Loaded
    }

    /// The chunk's file, if the chunk exists: `None` if absent, `Some(None)` if only in memory.
    pub(crate) fn file_of(&self, key: &ChunkKey) -> Option<Option<ChunkFile>> {
        self.entries.get(key).map(|entry| entry.file.clone())
    }

    /// The generation of the chunk, if it exists.
    pub(crate) fn generation_of(&self, key: &ChunkKey) -> Option<u64> {
        self.entries.get(key).map(|entry| entry.generation)
    }

    /// Whether `name` is the file of a current chunk (so it must not be deleted).
    pub(crate) fn is_file_in_use(&self, name: &ChunkFileName) -> bool {
        self.entries
            .get(&name.key)
            .and_then(|entry| entry.file.as_ref())
            .is_some_and(|file| file.name == *name)
    }

    /// Forgets a chunk (memory and file record); returns whether it was there.
    pub(crate) fn remove(&mut self, key: &ChunkKey) -> bool {
        let Some(mut entry) = self.entries.remove(key) else {
            return false;
        };
        if let Some(resident) = entry.resident.take() {
            self.ledger.release(&resident.allocations);
            self.lru.remove(key);
        }
        debug_assert!(!self.lru.contains(key));
        true
    }

    /// Records a failed disk write: writes are refused or skipped until `clear_disk_failure`.
    pub(crate) fn record_disk_failure(&mut self, reason: String) {
        self.disk_failure = Some(reason);
    }

    /// Ends a disk-failure pause (a probe write succeeded); returns whether there was one.
    pub(crate) fn clear_disk_failure(&mut self) -> bool {
        self.disk_failure.take().is_some()
    }

    /// Whether disk writes are known to fail.
    pub(crate) fn has_disk_failure(&self) -> bool {
        self.disk_failure.is_some()
    }

    /// Records the process RSS reported by `check_pressure`.
    pub(crate) fn record_process_rss(&mut self, process_rss: u64) {
        self.last_process_rss = process_rss;
    }

    /// Why new chunks are refused now, if they are: a failed disk write, process RSS above the
    /// pause threshold, or managed memory still above it after spilling.
    pub(crate) fn pause_reason(&self) -> Option<String> {
        let thresholds = self.thresholds;
        if let Some(failure) = &self.disk_failure {
            return Some(format!(
                "a disk write failed ({failure}); waiting for a probe write to succeed"
            ));
        }
        if self.last_process_rss > thresholds.pause_bytes {
            return Some(format!(
                "process memory of {} bytes is above the pause threshold of {} bytes (memory limit {} bytes)",
                self.last_process_rss, thresholds.pause_bytes, thresholds.memory_limit
            ));
        }
        let managed_bytes = self.ledger.managed_bytes();
        if managed_bytes > thresholds.pause_bytes {
            return Some(format!(
                "managed memory of {managed_bytes} bytes is above the pause threshold of {} bytes \
                 (memory limit {} bytes) after spilling",
                thresholds.pause_bytes, thresholds.memory_limit
            ));
        }
        None
    }

    /// One chunk's metadata.
    pub(crate) fn chunk(&self, key: &ChunkKey) -> Option<StoredChunk> {
        self.entries.get(key).map(|entry| describe(key, entry))
    }

    /// Every chunk's metadata, sorted by key.
    pub(crate) fn chunks(&self) -> Vec<StoredChunk> {
        self.entries.iter().map(|(key, entry)| describe(key, entry)).collect()
    }

    /// The store's figures.
    pub(crate) fn stats(&self) -> StoreStats {
        let mut stats = StoreStats {
            memory_limit: self.thresholds.memory_limit,
            managed_bytes: self.ledger.managed_bytes(),
            spilled_bytes: 0,
            disk_bytes: 0,
            chunks_in_memory: 0,
            chunks_on_disk: 0,
            spill_count: self.spill_count,
            unspill_count: self.unspill_count,
            paused: self.pause_reason(),
        };
        for entry in self.entries.values() {
            if entry.resident.is_some() {
                stats.chunks_in_memory += 1;
            }
            if let Some(file) = &entry.file {
                stats.chunks_on_disk += 1;
                stats.disk_bytes += file.bytes;
                if entry.resident.is_none() {
                    stats.spilled_bytes += file.bytes;
                }
            }
        }
        debug_assert_eq!(stats.chunks_in_memory, self.lru.len() as u64);
        stats
    }

    /// Takes a chunk with a file out of memory; returns the managed bytes released.
    fn evict(&mut self, key: &ChunkKey) -> u64 {
        let Some(entry) = self.entries.get_mut(key) else {
            return 0;
        };
        debug_assert!(entry.file.is_some(), "chunk {key} would leave memory without a file");
        let Some(resident) = entry.resident.take() else {
            return 0;
        };
        let released_bytes = self.ledger.release(&resident.allocations);
        self.lru.remove(key);
        self.spill_count += 1;
        self.debug_check_entry(key);
        released_bytes
    }

    /// Hands out the next generation.
    fn take_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }

    /// Asserts (in debug builds) the invariants of one entry.
    fn debug_check_entry(&self, key: &ChunkKey) {
        if !cfg!(debug_assertions) {
            return;
        }
        let Some(entry) = self.entries.get(key) else {
            debug_assert!(!self.lru.contains(key), "deleted chunk {key} is still in the LRU order");
            return;
        };
        debug_assert!(
            entry.resident.is_some() || entry.file.is_some(),
            "chunk {key} is nowhere"
        );
        debug_assert_eq!(
            entry.resident.is_some(),
            self.lru.contains(key),
            "chunk {key}: LRU order out of step"
        );
        debug_assert!(
            !entry.spill_write_in_progress || (entry.resident.is_some() && entry.file.is_none()),
            "chunk {key} is being spilled but is not an in-memory chunk without a file"
        );
        if let Some(file) = &entry.file {
            debug_assert_eq!(&file.name.key, key, "chunk {key} points at another chunk's file");
        }
    }
}

/// The metadata of an entry.
fn describe(key: &ChunkKey, entry: &ChunkEntry) -> StoredChunk {
    StoredChunk {
        key: key.clone(),
        schema: entry.schema.clone(),
        rows: entry.rows,
        memory_bytes: entry.memory_bytes,
        file_bytes: entry.file.as_ref().map_or(0, |file| file.bytes),
        checksum: entry.file.as_ref().map(|file| file.name.checksum),
        in_memory: entry.resident.is_some(),
        on_disk: entry.file.is_some(),
    }
}
