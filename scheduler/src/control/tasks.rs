//! The replicated task table (SPEC §2 "Task graphs"): submitted tasks, their recorded
//! outcomes (where a result lives, or why it failed) and which clients want them.
//!
//! The leader's scheduling core (`crate::scheduling`) runs ahead of this table: it
//! dispatches from memory and records finishes, failures, releases and forgotten
//! tasks here in batches ([`TaskBatch`]), never one Raft round trip per task. A new
//! leader rebuilds its core from this table; what it finds unrecorded, it recomputes.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet, HashSetExt};

use serde::{Deserialize, Serialize};

use super::command::ClientId;
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::WorkerId;
use crate::scheduling::{TaskBatch, TaskFailure};

/// What is recorded of a task's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// Not recorded as finished or failed (waiting, ready, running, or finished
    /// since the last batch).
    Pending,
    /// The result is held by these workers.
    Finished {
        /// Workers holding the result (its chunk has the task's key).
        workers: Vec<WorkerId>,
        /// Its size in worker memory.
        bytes: u64,
        /// Its rows.
        rows: u64,
    },
    /// It, or a task it depends on, failed.
    Erred(TaskFailure),
}

/// One task in the replicated table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// What to run.
    pub spec: TaskSpec,
    /// What is recorded of its run.
    pub outcome: TaskOutcome,
    /// Clients that want its result (Dask's `who_wants`); kept until they release it.
    pub wanted_by: BTreeSet<ClientId>,
    /// Submission order across the cluster: the scheduling priority (lower first).
    pub order: u64,
}

/// Why a submission was refused by `apply` (the leader validates first, so this only
/// happens to a request that raced a change, e.g. a dependency forgotten meanwhile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SubmitRefused {
    /// A dependency is neither earlier in the batch nor in the table.
    #[error("task '{task}' depends on '{missing}', which the cluster does not hold")]
    MissingDependency {
        /// The task.
        task: String,
        /// The dependency.
        missing: String,
    },
    /// A wanted key is not a task.
    #[error("wanted key '{key}' is not a task of the graph")]
    UnknownWantedKey {
        /// The key.
        key: String,
    },
}

/// The task table.
#[derive(Debug, Default)]
pub struct TaskTable {
    /// Every task not yet forgotten. A hash map: every replica looks up each task 2–4
    /// times per change it applies, and the key comparisons of an ordered map were the
    /// largest single cost of a follower during a graph of 114k tasks. Nothing may
    /// depend on its iteration order (it differs between replicas): whatever iterates
    /// sorts by key.
    tasks: HashMap<TaskKey, TaskRecord>,
    /// The order number the next new task gets.
    next_order: u64,
}

/// What [`TaskTable::submit`] changed: the rows to write.
#[derive(Debug, Default)]
pub struct TableChanges {
    /// Tasks inserted or changed.
    pub written: Vec<TaskKey>,
    /// Tasks removed.
    pub deleted: Vec<TaskKey>,
}

impl TaskTable {
    /// One task.
    pub fn get(&self, key: &TaskKey) -> Option<&TaskRecord> {
        self.tasks.get(key)
    }

    /// Whether `key` is a task in the table.
    pub fn contains(&self, key: &TaskKey) -> bool {
        self.tasks.contains_key(key)
    }

    /// How many tasks the table holds.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Every task, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&TaskKey, &TaskRecord)> {
        let mut all: Vec<(&TaskKey, &TaskRecord)> = self.tasks.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }

    /// The order the next new task gets.
    pub fn next_order(&self) -> u64 {
        self.next_order
    }

    /// Whether `key` names a finished task's result (a chunk the cluster still needs).
    pub fn holds_result(&self, key: &str) -> bool {
        let Ok(key) = TaskKey::parse(key) else {
            return false;
        };
        matches!(
            self.tasks.get(&key).map(|record| &record.outcome),
            Some(TaskOutcome::Finished { .. })
        )
    }

    /// Adds the tasks of one batch of a submission; keys already present are reused.
    /// Every dependency must be in the table or earlier in `tasks`; every wanted key
    /// must be a task. All or nothing.
    pub fn submit(
        &mut self,
        client: ClientId,
        tasks: Vec<TaskSpec>,
        wanted: Vec<TaskKey>,
    ) -> Result<(TableChanges, u64), SubmitRefused> {
        // Most dependencies are earlier in the batch: looked up there first, by hash
        // (a graph of 114k tasks spent a quarter of its submit in the key comparisons
        // of ordered lookups, on every replica).
        let mut added: HashSet<&TaskKey> = HashSet::with_capacity(tasks.len());
        for task in &tasks {
            for dependency in task.dependencies() {
                if !added.contains(dependency) && !self.tasks.contains_key(dependency) {
                    return Err(SubmitRefused::MissingDependency {
                        task: task.key.to_string(),
                        missing: dependency.to_string(),
                    });
                }
            }
            added.insert(&task.key);
        }
        if let Some(unknown) = wanted
            .iter()
            .find(|key| !self.tasks.contains_key(*key) && !added.contains(key))
        {
            return Err(SubmitRefused::UnknownWantedKey {
                key: unknown.to_string(),
            });
        }
        let mut changes = TableChanges::default();
        let mut new_tasks = 0;
        for spec in tasks {
            let std::collections::hash_map::Entry::Vacant(slot) = self.tasks.entry(spec.key.clone()) else {
                continue;
            };
            let key = spec.key.clone();
            slot.insert(TaskRecord {
                spec,
                outcome: TaskOutcome::Pending,
                wanted_by: BTreeSet::new(),
                order: self.next_order,
            });
            self.next_order += 1;
            new_tasks += 1;
            changes.written.push(key);
        }
        for key in wanted {
            if let Some(record) = self.tasks.get_mut(&key) {
                if record.wanted_by.insert(client) {
                    changes.written.push(key);
                }
            }
        }
        Ok((changes, new_tasks))
    }

    /// Records a batch of the leader's decisions. Entries about tasks the table no
    /// longer holds are skipped (a later batch may repeat an earlier one's news).
    pub fn record(&mut self, batch: TaskBatch) -> TableChanges {
        let mut changes = TableChanges::default();
        for finished in batch.finished {
            if let Some(record) = self.tasks.get_mut(&finished.key) {
                record.outcome = TaskOutcome::Finished {
                    workers: finished.workers,
                    bytes: finished.bytes,
                    rows: finished.rows,
                };
                changes.written.push(finished.key);
            }
        }
        for (key, failure) in batch.erred {
            if let Some(record) = self.tasks.get_mut(&key) {
                record.outcome = TaskOutcome::Erred(failure);
                changes.written.push(key);
            }
        }
        for key in batch.released {
            // Its result was dropped; the task stays as lineage.
            if let Some(record) = self.tasks.get_mut(&key) {
                record.outcome = TaskOutcome::Pending;
                changes.written.push(key);
            }
        }
        for (client, key) in batch.unwanted {
            if let Some(record) = self.tasks.get_mut(&key) {
                if record.wanted_by.remove(&client) {
                    changes.written.push(key);
                }
            }
        }
        for key in batch.forgotten {
            if self.tasks.remove(&key).is_some() {
                changes.deleted.push(key);
            }
        }
        changes
    }

    /// Drops `worker` from every recorded result location (it is gone); returns the
    /// changed keys, in key order.
    pub fn drop_worker(&mut self, worker: WorkerId) -> Vec<TaskKey> {
        let mut changed = Vec::new();
        for (key, record) in &mut self.tasks {
            if let TaskOutcome::Finished { workers, .. } = &mut record.outcome {
                if workers.contains(&worker) {
                    workers.retain(|holder| *holder != worker);
                    if workers.is_empty() {
                        record.outcome = TaskOutcome::Pending;
                    }
                    changed.push(key.clone());
                }
            }
        }
        changed.sort_unstable();
        changed
    }

    /// Puts a loaded record back (state load).
    pub fn insert_loaded(&mut self, record: TaskRecord) {
        self.next_order = self.next_order.max(record.order + 1);
        self.tasks.insert(record.spec.key.clone(), record);
    }

    /// Sets the order counter (state load).
    pub fn set_next_order(&mut self, next_order: u64) {
        self.next_order = self.next_order.max(next_order);
    }
}
