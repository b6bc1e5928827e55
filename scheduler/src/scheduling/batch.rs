//! The updates the core records through Raft, and how it gathers them.
//!
//! Between two proposals the core keeps only the latest news of each key
//! ([`PendingBatch`]): a batch never says both "finished" and "released" about one
//! key, so the order in which the state machine applies its lists does not matter.

use super::state::FixedHashMap;

use serde::{Deserialize, Serialize};

use super::decision::TaskFailure;
use crate::control::ClientId;
use crate::graph::TaskKey;
use crate::registry::WorkerId;

/// A task whose result is now in worker memory (or gained a holder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedTask {
    /// The task.
    pub key: TaskKey,
    /// Every worker holding its result now.
    pub workers: Vec<WorkerId>,
    /// The result's size in worker memory.
    pub bytes: u64,
    /// The result's rows.
    pub rows: u64,
}

/// Updates to the replicated task table, committed through Raft. Each key appears in
/// at most one of `finished`, `erred`, `released` and `forgotten`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskBatch {
    /// Results now held by workers.
    pub finished: Vec<FinishedTask>,
    /// Tasks that failed, each with the original failure.
    pub erred: Vec<(TaskKey, TaskFailure)>,
    /// Results no longer held (deleted because no one needs them, or lost with their
    /// workers): the task stays in the table with no outcome, because a dependent
    /// whose own result is lost may need it recomputed.
    pub released: Vec<TaskKey>,
    /// Clients that no longer want a key.
    pub unwanted: Vec<(ClientId, TaskKey)>,
    /// Tasks removed from the table.
    pub forgotten: Vec<TaskKey>,
}

impl TaskBatch {
    /// How many updates the batch carries.
    pub fn len(&self) -> usize {
        self.finished.len() + self.erred.len() + self.released.len() + self.unwanted.len() + self.forgotten.len()
    }

    /// Whether the batch carries nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The latest news of one key since the last proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum News {
    /// In memory on these workers.
    Finished {
        /// Holders.
        workers: Vec<WorkerId>,
        /// Size.
        bytes: u64,
        /// Rows.
        rows: u64,
    },
    /// Failed.
    Erred(TaskFailure),
    /// Its result is gone; the task is kept.
    Released,
    /// Removed.
    Forgotten,
}

/// The updates not yet proposed.
#[derive(Debug, Default)]
pub(super) struct PendingBatch {
    /// The latest news per key, with the sequence number of when it happened (a
    /// proposal lists news in that order, which keeps batches deterministic).
    news: FixedHashMap<TaskKey, (u64, News)>,
    /// Clients that released keys, with sequence numbers likewise.
    unwanted: FixedHashMap<(ClientId, TaskKey), u64>,
    /// The next sequence number.
    next_sequence: u64,
}

impl PendingBatch {
    /// How many updates are pending.
    pub(super) fn len(&self) -> usize {
        self.news.len() + self.unwanted.len()
    }

    /// Records the latest news of `key`, replacing earlier news of it.
    pub(super) fn record(&mut self, key: &TaskKey, news: News) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.news.insert(key.clone(), (sequence, news));
    }

    /// Records that `client` no longer wants `key`.
    pub(super) fn unwant(&mut self, client: ClientId, key: &TaskKey) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.unwanted.insert((client, key.clone()), sequence);
    }

    /// `client` wants `key` again (a later submission, already in the table): an
    /// unproposed "unwanted" would undo that submission, so it is dropped.
    pub(super) fn rewant(&mut self, client: ClientId, key: &TaskKey) {
        self.unwanted.remove(&(client, key.clone()));
    }

    /// A later submission brought `key` back after the core forgot it: the table
    /// still holds the task (the "forgotten" was not proposed), so it is told the
    /// task has no result instead.
    pub(super) fn resubmitted(&mut self, key: &TaskKey) {
        if let Some((_, news)) = self.news.get_mut(key) {
            if *news == News::Forgotten {
                *news = News::Released;
            }
        }
    }

    /// Takes everything pending as one batch, in the order it happened.
    pub(super) fn take(&mut self) -> TaskBatch {
        let mut news: Vec<(u64, TaskKey, News)> = std::mem::take(&mut self.news)
            .into_iter()
            .map(|(key, (sequence, news))| (sequence, key, news))
            .collect();
        news.sort_by_key(|(sequence, _, _)| *sequence);
        let mut batch = TaskBatch::default();
        for (_, key, news) in news {
            match news {
                News::Finished { workers, bytes, rows } => batch.finished.push(FinishedTask {
                    key,
                    workers,
                    bytes,
                    rows,
                }),
                News::Erred(failure) => batch.erred.push((key, failure)),
                News::Released => batch.released.push(key),
                News::Forgotten => batch.forgotten.push(key),
            }
        }
        let mut unwanted: Vec<(u64, (ClientId, TaskKey))> = std::mem::take(&mut self.unwanted)
            .into_iter()
            .map(|(entry, sequence)| (sequence, entry))
            .collect();
        unwanted.sort_by_key(|(sequence, _)| *sequence);
        batch.unwanted = unwanted.into_iter().map(|(_, entry)| entry).collect();
        batch
    }
}
