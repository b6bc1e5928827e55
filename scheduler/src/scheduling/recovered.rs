//! What a new leader starts from.

use super::decision::TaskFailure;
use super::event::ExternalChunk;
use crate::control::ClientId;
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::WorkerId;

/// One task of the replicated task table.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredTask {
    /// What to run.
    pub spec: TaskSpec,
    /// Its submission order (the scheduling priority, lower first).
    pub order: u64,
    /// Its recorded result, if any: holders, bytes, rows (holders no longer live are
    /// dropped; none left means the result is lost).
    pub result: Option<(Vec<WorkerId>, u64, u64)>,
    /// Its recorded failure, if any (wins over `result`).
    pub error: Option<TaskFailure>,
    /// The clients that want it.
    pub wanted_by: Vec<ClientId>,
}

/// The replicated state a new leader rebuilds its core from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovered {
    /// Every task of the table, in any order ([`RecoveredTask::order`] sorts them).
    pub tasks: Vec<RecoveredTask>,
    /// Live workers and their thread counts.
    pub workers: Vec<(WorkerId, u32)>,
    /// Keys published datasets refer to.
    pub pinned: Vec<TaskKey>,
    /// The published chunks the tasks read.
    pub chunks: Vec<ExternalChunk>,
}
