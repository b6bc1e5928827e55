//! What the core asks the runtime to do.

use serde::{Deserialize, Serialize};

use super::batch::TaskBatch;
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::WorkerId;

/// Where one input of an assigned task is: a dependency's result or a chunk of a
/// published dataset (both are chunks of the same key in the workers' stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLocation {
    /// The chunk key (a task's result is stored under the task's key).
    pub key: String,
    /// Live workers holding it, closest first (the assignee itself, then by id). A
    /// worker that finds none of them answering asks again
    /// ([`Core::result_location`](super::Core::result_location)): holders change.
    pub workers: Vec<WorkerId>,
    /// Its size, for the worker's memory planning.
    pub bytes: u64,
}

/// Where a task's result is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultLocation {
    /// Live workers holding it, by id.
    pub workers: Vec<WorkerId>,
    /// Its size in worker memory.
    pub bytes: u64,
    /// Its rows.
    pub rows: u64,
}

/// Why a task has no result: the task that raised (or was killed, or could not read
/// a chunk) and the message. Every task depending on it carries the same failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// The task that failed first.
    pub task: TaskKey,
    /// What went wrong.
    pub message: String,
}

/// One thing for the runtime to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run a task on a worker.
    Assign {
        /// The worker.
        worker: WorkerId,
        /// The task.
        task: TaskSpec,
        /// For each dependency, then each chunk input: where it is.
        inputs: Vec<InputLocation>,
        /// Lower runs first (submission order).
        priority: u64,
    },
    /// Drop this task if it has not started (a steal, or its inputs were lost, or no
    /// one needs it any more). The worker answers `TaskCancelled` or, if it had
    /// started, `TaskFinished`/`TaskErred`, both fine.
    Cancel {
        /// The worker.
        worker: WorkerId,
        /// The task.
        key: TaskKey,
    },
    /// Delete these results from the worker's store (one decision per worker per
    /// event). The runtime should perform it once the batch recording the same keys as
    /// released or forgotten has committed, or make sure a new leader does not trust a
    /// recorded location without asking the worker.
    Release {
        /// The worker.
        worker: WorkerId,
        /// The results.
        keys: Vec<TaskKey>,
    },
    /// Record these updates through Raft (asynchronously: the core does not wait).
    Propose(TaskBatch),
    /// A wanted key reached memory or failed: wake the clients waiting for it. May
    /// come again for the same key (its result was lost and recomputed).
    Done {
        /// The key.
        key: TaskKey,
        /// Where its result is, or why it has none.
        outcome: Result<ResultLocation, TaskFailure>,
    },
}
