//! Commands proposed to the Raft log and their outcomes.

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogError, DatasetName, LegacyPublishItem, PublishItem};
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::{LegacyWorkerRegistration, WorkerId, WorkerRegistration};
use crate::scheduling::TaskBatch;

use super::tasks::SubmitRefused;

/// The id a client picks (16 random bytes) when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub [u8; 16]);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Identifies one client write, for exactly-once application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestId {
    /// The client.
    pub client: ClientId,
    /// The write's number; each new write of the client takes the next one.
    pub seq: u64,
    /// Every write below this number has had its reply: its outcome may be forgotten.
    pub lowest_unacked_seq: u64,
}

/// A catalog change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Publish one or several inline values atomically (the log's first format; new
    /// proposals use [`Operation::PublishEntries`]).
    Publish {
        /// The names and values.
        items: Vec<LegacyPublishItem>,
        /// Replace existing names instead of failing.
        override_existing: bool,
        /// Who publishes.
        publisher: String,
    },
    /// Remove one name.
    Unpublish {
        /// The name.
        name: DatasetName,
    },
    /// Publish one or several names atomically: inline values and persisted
    /// collections.
    PublishEntries {
        /// The names and what they hold.
        items: Vec<PublishItem>,
        /// Replace existing names instead of failing.
        override_existing: bool,
        /// Who publishes.
        publisher: String,
    },
}

/// A command in the Raft log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlCommand {
    /// Opens a session for a client (idempotent), before its first write.
    OpenSession {
        /// The client.
        client: ClientId,
        /// The leader's wall clock when it proposed the command, in ms since the epoch.
        now_ms: u64,
    },
    /// A client write, applied at most once per `(client, seq)`.
    Write {
        /// Which write this is.
        request: RequestId,
        /// The leader's wall clock when it proposed the command, in ms since the epoch.
        now_ms: u64,
        /// What to change.
        operation: Operation,
    },
    /// A worker registers (the log's first format: applies as a new process; new
    /// proposals use [`ControlCommand::RegisterWorkerProcess`]).
    RegisterWorker {
        /// What the worker says about itself.
        registration: LegacyWorkerRegistration,
        /// The leader's wall clock when it proposed the command, in ms since the epoch.
        now_ms: u64,
    },
    /// The leader has not heard from a worker for longer than the timeout.
    WorkerGone {
        /// The worker.
        worker: WorkerId,
        /// The leader's wall clock when it proposed the command, in ms since the epoch.
        now_ms: u64,
    },
    /// A worker found chunks corrupt or missing: it no longer holds them.
    ChunksLost {
        /// The worker.
        worker: WorkerId,
        /// The chunk keys.
        keys: Vec<String>,
    },
    /// One batch of a submitted graph (a large graph takes several, in dependency
    /// order): new tasks enter the task table; `client` wants `wanted`.
    SubmitTasks {
        /// The submitting client.
        client: ClientId,
        /// Tasks, each after its dependencies (or depending on tasks already held).
        tasks: Vec<TaskSpec>,
        /// Keys the client wants results of.
        wanted: Vec<TaskKey>,
    },
    /// The leader's batched news about tasks: finished (where results live), failed,
    /// released by clients, and forgotten.
    RecordTasks {
        /// The news, in the order the leader decided it (later news of a key wins).
        batches: Vec<TaskBatch>,
    },
    /// Adds to the recovery counters (increments: they commute).
    CountRecovery {
        /// What to add.
        counters: RecoveryCounters,
    },
    /// Persisted chunks were copied durably to more workers (re-replication after a
    /// loss, or a chunk recomputed from lineage made durable again): each dataset
    /// referring to a key gains the workers as locations. Counts a repaired replica
    /// per location gained.
    ChunksCopied {
        /// The chunk keys and the workers that now hold each durably.
        copies: Vec<(String, Vec<WorkerId>)>,
    },
    /// A worker process registers, or registers again after a silence or a leader
    /// change. Idempotent. (Appended last: variants are encoded by position.)
    RegisterWorkerProcess {
        /// What the worker says about itself, with its process's boot id.
        registration: WorkerRegistration,
        /// The leader's wall clock when it proposed the command, in ms since the epoch.
        now_ms: u64,
    },
    /// Several commands proposed at once, applied in order in one log entry, each with
    /// its own outcome: the leader gathers client writes that arrive together, so they
    /// share one Raft round and one fsync. Each is the encoding of a
    /// [`ControlCommand`] other than `Batch`. (Appended last: variants are encoded by
    /// position.)
    Batch {
        /// The encoded commands.
        commands: Vec<serde_bytes::ByteBuf>,
    },
}

/// What the cluster did to survive failures since it was created (replicated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCounters {
    /// Leaders that started their task runtime (one per term with a leader).
    pub failovers: u64,
    /// Results computed again after being lost with their workers.
    pub tasks_recomputed: u64,
    /// Results a leader learned from a reconnecting worker instead of recomputing.
    pub chunks_reregistered: u64,
    /// Copies of persisted chunks made to restore a dataset's replica count.
    pub replicas_repaired: u64,
}

impl RecoveryCounters {
    /// Adds `other` to these (saturating).
    pub fn add(&mut self, other: &RecoveryCounters) {
        self.failovers = self.failovers.saturating_add(other.failovers);
        self.tasks_recomputed = self.tasks_recomputed.saturating_add(other.tasks_recomputed);
        self.chunks_reregistered = self.chunks_reregistered.saturating_add(other.chunks_reregistered);
        self.replicas_repaired = self.replicas_repaired.saturating_add(other.replicas_repaired);
    }
}

/// A successful write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    /// The log index the write was applied at (the first application, for a retry).
    pub log_index: u64,
}

/// What a write returned; remembered per session so a retry gets the same answer.
pub type WriteOutcome = Result<WriteAck, CatalogError>;

/// What applying a [`ControlCommand`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlOutcome {
    /// The session is open.
    SessionOpened,
    /// The write's outcome.
    Write(WriteOutcome),
    /// A registry change was applied at this log index.
    Registry {
        /// The log index.
        log_index: u64,
    },
    /// A batch of a graph entered the task table.
    TasksSubmitted {
        /// The log index.
        log_index: u64,
        /// How many of its tasks were new.
        new_tasks: u64,
    },
    /// A batch of a graph was refused; nothing of it was applied.
    SubmitRefused(SubmitRefused),
    /// A batch of task news was recorded.
    TasksRecorded {
        /// The log index.
        log_index: u64,
    },
    /// The outcomes of a [`ControlCommand::Batch`], in its order.
    Batch(Vec<ControlOutcome>),
}
