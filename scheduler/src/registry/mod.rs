//! The worker registry (SPEC §2 "Cluster"): which workers exist, where they serve,
//! and whether they are alive — replicated through Raft. Heartbeats are not here:
//! they go to the leader only and live in its memory (`server/liveness.rs`).

mod worker_id;

use serde::{Deserialize, Serialize};

pub use worker_id::{InvalidWorkerId, WorkerId};

/// Whether the registry believes a worker is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    /// Registered, and heard from within the timeout (as the leader saw it).
    Alive,
    /// Silent for longer than the timeout; it comes back by registering again.
    Gone,
}

impl WorkerState {
    /// The state's name as shown to users.
    pub fn label(self) -> &'static str {
        match self {
            WorkerState::Alive => "alive",
            WorkerState::Gone => "gone",
        }
    }
}

/// What a worker says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// Its id, kept in its data dir so a restart is the same worker.
    pub worker: WorkerId,
    /// Where it serves Arrow Flight (`host:port`).
    pub addr: String,
    /// How many tasks it runs at once.
    pub nthreads: u32,
    /// Its `--memory-limit`, in bytes.
    pub memory_limit: u64,
    /// Every chunk it holds (verified at its start). On the first registration of
    /// a process the catalog drops this worker from the locations of chunks not
    /// listed (they were lost while it was down); see [`WorkerRegistration::boot`].
    pub chunks: Vec<String>,
    /// A random id of the worker process, fresh at each start; 0 (an older worker)
    /// makes every registration count as a new process. A process accepts no chunk
    /// before its first registration is acknowledged, so that registration's list
    /// misses nothing the catalog already places on it; later ones, whose lists may
    /// be stale by the time they commit (a registration is retried for seconds
    /// across a partition, while uploads to the worker go on), drop nothing.
    pub boot: u64,
}

/// A registration as the log's first format has it (no [`WorkerRegistration::boot`]):
/// it applies as a new process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyWorkerRegistration {
    /// Its id.
    pub worker: WorkerId,
    /// Where it serves Arrow Flight.
    pub addr: String,
    /// How many tasks it runs at once.
    pub nthreads: u32,
    /// Its memory limit, in bytes.
    pub memory_limit: u64,
    /// Every chunk it holds.
    pub chunks: Vec<String>,
}

impl From<LegacyWorkerRegistration> for WorkerRegistration {
    fn from(legacy: LegacyWorkerRegistration) -> WorkerRegistration {
        WorkerRegistration {
            worker: legacy.worker,
            addr: legacy.addr,
            nthreads: legacy.nthreads,
            memory_limit: legacy.memory_limit,
            chunks: legacy.chunks,
            boot: 0,
        }
    }
}

/// A registry row as the first format has it (no `boot`): loads with boot 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyWorkerRecord {
    /// Its id.
    pub worker: WorkerId,
    /// Where it serves Arrow Flight.
    pub addr: String,
    /// How many tasks it runs at once.
    pub nthreads: u32,
    /// Its memory limit, in bytes.
    pub memory_limit: u64,
    /// Alive or gone.
    pub state: WorkerState,
    /// The log index of its first registration.
    pub first_registered_index: u64,
    /// The log index of its latest registration.
    pub registered_index: u64,
}

impl From<LegacyWorkerRecord> for WorkerRecord {
    fn from(legacy: LegacyWorkerRecord) -> WorkerRecord {
        WorkerRecord {
            worker: legacy.worker,
            addr: legacy.addr,
            nthreads: legacy.nthreads,
            memory_limit: legacy.memory_limit,
            state: legacy.state,
            first_registered_index: legacy.first_registered_index,
            registered_index: legacy.registered_index,
            boot: 0,
        }
    }
}

/// One worker as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Its id.
    pub worker: WorkerId,
    /// Where it serves Arrow Flight, as of its last registration.
    pub addr: String,
    /// How many tasks it runs at once.
    pub nthreads: u32,
    /// Its memory limit, in bytes.
    pub memory_limit: u64,
    /// Alive or gone.
    pub state: WorkerState,
    /// The log index of its first registration (orders `cairn status`).
    pub first_registered_index: u64,
    /// The log index of its latest registration.
    pub registered_index: u64,
    /// The process that registered last ([`WorkerRegistration::boot`]).
    pub boot: u64,
}
