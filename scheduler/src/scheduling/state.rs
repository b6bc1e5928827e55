//! The core's records of tasks, workers and chunks (private to the module).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::decision::TaskFailure;
use crate::control::ClientId;
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::WorkerId;

/// A small, fast, fixed hasher (the multiply-rotate scheme of rustc's `FxHasher`):
/// keys are hashed at every event, and nothing may depend on process randomness.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FixedHasher(u64);

impl FixedHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buffer = [0u8; 8];
            buffer.copy_from_slice(word);
            self.add(u64::from_le_bytes(buffer));
        }
        for &byte in words.remainder() {
            self.add(u64::from(byte));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}

/// A hash map with the fixed hasher: lookups by key are O(1). Never iterated where
/// the order would reach a decision.
pub(super) type FixedHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FixedHasher>>;

/// Hashes a [`TaskId`] as itself: task numbers are distinct small integers.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TaskIdHasher(u64);

impl Hasher for TaskIdHasher {
    fn finish(&self) -> u64 {
        // Spread the bits a little so that consecutive numbers do not share buckets'
        // high bits (hashbrown takes its control byte from the top 7 bits).
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Tasks by number: O(1) lookups; iterated only in sorted order where it matters.
pub(super) type TaskMap<V> = HashMap<TaskId, V, BuildHasherDefault<TaskIdHasher>>;

/// A task's number inside the core: its submission order, which is also its
/// priority (lower first) and the order of the ready queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct TaskId(pub(super) u64);

/// Where a task is (Dask's scheduler states, `processing` split into ready and
/// assigned).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Status {
    /// Known, not needed, no result: kept only because a task depending on it may
    /// lose its result and need it recomputed.
    Released,
    /// Needed; some dependency is not in memory.
    Waiting,
    /// Needed; every input is available; in the ready queue.
    Ready,
    /// Sent to a worker.
    Assigned {
        /// The worker.
        worker: WorkerId,
        /// When (the order of assignments, for stealing the most recent first).
        sequence: u64,
    },
    /// Its result is held by workers.
    Memory {
        /// Live holders, sorted, never empty.
        holders: Vec<WorkerId>,
        /// The result's size.
        bytes: u64,
        /// The result's rows.
        rows: u64,
    },
    /// It or a dependency failed; final.
    Erred(TaskFailure),
}

impl Status {
    /// Waiting, ready or assigned: needed and not done.
    pub(super) fn is_unfinished(&self) -> bool {
        matches!(self, Status::Waiting | Status::Ready | Status::Assigned { .. })
    }
}

/// One task.
#[derive(Debug)]
pub(super) struct Task {
    /// What to run (sent with each assignment).
    pub(super) spec: TaskSpec,
    /// The tasks whose results it needs, each once.
    pub(super) dependencies: Vec<TaskId>,
    /// The tasks that need its result (the reverse of `dependencies`).
    pub(super) dependents: BTreeSet<TaskId>,
    /// The published chunks it reads, each once.
    pub(super) chunk_inputs: Vec<String>,
    /// Where it is.
    pub(super) status: Status,
    /// Clients waiting for its result (Dask's `who_wants`).
    pub(super) wanted_by: BTreeSet<ClientId>,
    /// Whether a published dataset refers to its result.
    pub(super) pinned: bool,
    /// How many of its workers died while it was assigned to them.
    pub(super) failures: u32,
    /// Whether its result was in memory at some point (so computing it again is a
    /// recomputation).
    pub(super) computed: bool,
    /// While unfinished: how many dependencies are not in memory (0 when ready or
    /// assigned), so a dependency's finish is O(1) per dependent.
    pub(super) missing: usize,
    /// How many dependents are unfinished (Dask's `waiters`): the result is needed
    /// while this is not zero.
    pub(super) waiters: usize,
}

impl Task {
    /// Whether anything needs this task's result: a client, a dataset, or a dependent
    /// still to run.
    pub(super) fn is_needed(&self) -> bool {
        !self.wanted_by.is_empty() || self.pinned || self.waiters > 0
    }

    /// Whether the task can be removed altogether: nothing needs it and no dependent
    /// may ever need it recomputed. Only for released or erred tasks.
    pub(super) fn is_forgettable(&self) -> bool {
        self.wanted_by.is_empty() && !self.pinned && self.dependents.is_empty()
    }

    /// The task's key.
    pub(super) fn key(&self) -> &TaskKey {
        &self.spec.key
    }
}

/// A worker's assigned tasks per thread, compared exactly (cross-multiplied), so
/// the worker set can be kept ordered by load.
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    /// Tasks assigned.
    pub(super) assigned: u64,
    /// Threads (at least 1).
    pub(super) nthreads: u64,
}

impl Ord for Load {
    fn cmp(&self, other: &Load) -> Ordering {
        let left = u128::from(self.assigned) * u128::from(other.nthreads);
        let right = u128::from(other.assigned) * u128::from(self.nthreads);
        left.cmp(&right)
    }
}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Load) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Load {
    fn eq(&self, other: &Load) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Load {}

/// One live worker.
#[derive(Debug)]
pub(super) struct Worker {
    /// How many tasks it runs at once (at least 1).
    pub(super) nthreads: u32,
    /// Its assigned tasks by assignment order (running or queued there).
    pub(super) assigned: BTreeSet<(u64, TaskId)>,
    /// The results it holds, so its loss is O(its results).
    pub(super) holds: BTreeSet<TaskId>,
    /// The published chunks it holds (among those tasks read).
    pub(super) chunks: BTreeSet<String>,
    /// Tasks it was asked to cancel and has not answered about (for status only:
    /// a cancelled task's slot is free at once).
    pub(super) cancelling: BTreeSet<TaskKey>,
    /// Whether its task stream is open. A disconnected worker is still live (the
    /// registry has not marked it gone: it may be reconnecting to this leader, or
    /// cut off with its results intact) and keeps its results, but gets no task and
    /// is not in the load-ordered set.
    pub(super) connected: bool,
}

impl Worker {
    /// A worker with nothing yet.
    pub(super) fn new(nthreads: u32) -> Worker {
        Worker {
            nthreads: nthreads.max(1),
            assigned: BTreeSet::new(),
            holds: BTreeSet::new(),
            chunks: BTreeSet::new(),
            cancelling: BTreeSet::new(),
            connected: true,
        }
    }

    /// Its load, for the ordered worker set.
    pub(super) fn load(&self) -> Load {
        Load {
            assigned: self.assigned.len() as u64,
            nthreads: u64::from(self.nthreads),
        }
    }

    /// How many tasks it may have assigned.
    pub(super) fn capacity(&self, max_assigned_per_thread: u32) -> usize {
        (self.nthreads as usize).saturating_mul(max_assigned_per_thread as usize)
    }

    /// How many more tasks it may take (none while disconnected).
    pub(super) fn free_slots(&self, max_assigned_per_thread: u32) -> usize {
        if !self.connected {
            return 0;
        }
        self.capacity(max_assigned_per_thread)
            .saturating_sub(self.assigned.len())
    }
}

/// One published chunk that tasks read.
#[derive(Debug, Default)]
pub(super) struct Chunk {
    /// Its size.
    pub(super) bytes: u64,
    /// Live workers holding it.
    pub(super) locations: BTreeSet<WorkerId>,
    /// Tasks that read it, so its loss is O(its readers) and it is dropped with the
    /// last one.
    pub(super) readers: BTreeSet<TaskId>,
}
