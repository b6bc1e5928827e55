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
    /// Every chunk it holds (verified at its start): the catalog drops this worker
    /// from the locations of chunks it no longer has.
    pub chunks: Vec<String>,
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
}
