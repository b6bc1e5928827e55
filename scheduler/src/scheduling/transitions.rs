//! Every change of a task's state, one method per transition, named like Dask's
//! `_transition_<from>_<to>`. A transition changes the task, its links' counters
//! and the worker bookkeeping, records news for the next batch, and queues the
//! follow-up steps ([`Step`]) of the tasks it affects instead of recursing.

use super::batch::News;
use super::core::{Core, Step};
use super::decision::{Decision, ResultLocation, TaskFailure};
use super::state::{Status, TaskId};
use crate::registry::WorkerId;

impl Core {
    /// Runs queued steps until none is left.
    pub(super) fn drain(&mut self) {
        while let Some(step) = self.steps.pop_front() {
            match step {
                Step::Compute(id) => {
                    if self
                        .tasks
                        .get(&id)
                        .is_some_and(|task| task.status == Status::Released && task.is_needed())
                    {
                        self.transition_released_waiting(id);
                    }
                }
                Step::MakeReady(id) => {
                    if self
                        .tasks
                        .get(&id)
                        .is_some_and(|task| task.status == Status::Waiting && task.missing == 0)
                    {
                        self.transition_waiting_ready(id);
                    }
                }
                Step::Fail {
                    task,
                    failure,
                    reporter,
                } => self.transition_unfinished_erred(task, failure, reporter),
                Step::Tidy(id) => self.tidy(id),
            }
        }
    }

    /// Counts a task computed again after its result was in memory.
    fn count_recomputation(&mut self, id: TaskId) {
        if self.tasks.get(&id).is_some_and(|task| task.computed) {
            self.recovery.tasks_recomputed += 1;
        }
    }

    /// Replaces a task's status, keeping the counts; returns the old one.
    pub(super) fn set_status(&mut self, id: TaskId, status: Status) -> Option<Status> {
        let task = self.tasks.get_mut(&id)?;
        self.counts.add(&status);
        let old = std::mem::replace(&mut task.status, status);
        self.counts.remove(&old);
        Some(old)
    }

    /// Puts a task in the state its needs call for: computes a released task that is
    /// needed, releases a result or an unfinished task nothing needs, forgets a
    /// released or erred task that nothing needs and no dependent refers to.
    fn tidy(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let needed = task.is_needed();
        match &task.status {
            Status::Released if needed => self.transition_released_waiting(id),
            Status::Released | Status::Erred(_) => {
                if task.is_forgettable() {
                    self.transition_forgotten(id);
                }
            }
            Status::Memory { .. } if !needed => self.transition_memory_released(id),
            Status::Waiting | Status::Ready | Status::Assigned { .. } if !needed => {
                self.transition_unfinished_released(id)
            }
            Status::Memory { .. } | Status::Waiting | Status::Ready | Status::Assigned { .. } => {}
        }
    }

    /// released → waiting: something needs the result. Its dependencies count one
    /// more waiter; released ones are computed too; an erred one fails it.
    fn transition_released_waiting(&mut self, id: TaskId) {
        self.count_recomputation(id);
        self.set_status(id, Status::Waiting);
        self.enter_unfinished(id);
    }

    /// Links a task that just became waiting to its dependencies: counts it as their
    /// waiter, computes released ones, counts the missing ones, and makes it ready or
    /// failed when that is already decided.
    fn enter_unfinished(&mut self, id: TaskId) {
        let dependencies = match self.tasks.get_mut(&id) {
            Some(task) => std::mem::take(&mut task.dependencies),
            None => return,
        };
        let mut missing = 0;
        let mut failed: Option<TaskFailure> = None;
        for &dependency in &dependencies {
            let Some(task) = self.tasks.get_mut(&dependency) else {
                continue;
            };
            task.waiters += 1;
            match &task.status {
                Status::Memory { .. } => {}
                Status::Erred(failure) => {
                    missing += 1;
                    failed.get_or_insert_with(|| failure.clone());
                }
                Status::Released => {
                    missing += 1;
                    self.steps.push_back(Step::Compute(dependency));
                }
                Status::Waiting | Status::Ready | Status::Assigned { .. } => missing += 1,
            }
        }
        if let Some(task) = self.tasks.get_mut(&id) {
            task.missing = missing;
            task.dependencies = dependencies;
        }
        if let Some(failure) = failed {
            self.steps.push_back(Step::Fail {
                task: id,
                failure,
                reporter: None,
            });
        } else if missing == 0 {
            self.transition_waiting_ready(id);
        }
    }

    /// waiting → ready: every dependency is in memory. A chunk input with no live
    /// copy fails the task instead (naming the chunk).
    fn transition_waiting_ready(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let unavailable = task.chunk_inputs.iter().find(|chunk| {
            self.chunks
                .get(chunk.as_str())
                .is_none_or(|record| record.locations.is_empty())
        });
        if let Some(chunk) = unavailable {
            let failure = chunk_failure(task.key(), chunk);
            self.transition_unfinished_erred(id, failure, None);
            return;
        }
        self.set_status(id, Status::Ready);
        self.ready.insert(id);
    }

    /// ready → assigned(worker), or assigned(thief) after a steal: the task goes to
    /// a worker with its inputs' locations.
    pub(super) fn transition_ready_assigned(&mut self, id: TaskId, worker: WorkerId) {
        let inputs = self.inputs(id, worker);
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let spec = task.spec.clone();
        let sequence = self.next_assignment;
        self.next_assignment += 1;
        self.ready.remove(&id);
        self.change_worker(worker, |state| {
            state.assigned.insert((sequence, id));
        });
        self.set_status(id, Status::Assigned { worker, sequence });
        self.decisions.push(Decision::Assign {
            worker,
            task: spec,
            inputs,
            priority: id.0,
        });
    }

    /// Removes an assigned task from its worker's books (the worker may be gone);
    /// returns the worker. The caller sets the new status.
    pub(super) fn unassign(&mut self, id: TaskId) -> Option<WorkerId> {
        let Status::Assigned { worker, sequence } = self.tasks.get(&id)?.status else {
            return None;
        };
        self.change_worker(worker, |state| {
            state.assigned.remove(&(sequence, id));
        });
        Some(worker)
    }

    /// assigned → ready: the task is no longer on its worker (it dropped its queue),
    /// and goes back to the ready queue.
    pub(super) fn transition_assigned_ready(&mut self, id: TaskId) {
        self.unassign(id);
        self.set_status(id, Status::Ready);
        self.ready.insert(id);
    }

    /// assigned → ready: the task's worker died. It counts a failure; past the
    /// allowed number it errs (Dask's `KilledWorker`).
    pub(super) fn transition_assigned_ready_worker_died(&mut self, id: TaskId) {
        self.transition_assigned_ready(id);
        let allowed = self.config.allowed_failures;
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.failures += 1;
        if task.failures > allowed {
            let failure = TaskFailure {
                task: task.key().clone(),
                message: format!(
                    "task '{}' failed: its worker died {} times (allowed {allowed})",
                    task.key(),
                    task.failures
                ),
            };
            self.steps.push_back(Step::Fail {
                task: id,
                failure,
                reporter: None,
            });
        }
    }

    /// The bookkeeping of a task leaving waiting/ready/assigned: out of the ready
    /// queue or its worker's books (with a `Cancel` unless the worker is the one
    /// reporting), one waiter less on each dependency.
    fn leave_unfinished(&mut self, id: TaskId, reporter: Option<WorkerId>) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        let key = task.key().clone();
        let dependencies = std::mem::take(&mut task.dependencies);
        match task.status {
            Status::Ready => {
                self.ready.remove(&id);
            }
            Status::Assigned { .. } => {
                if let Some(worker) = self.unassign(id) {
                    if Some(worker) != reporter {
                        self.cancel(worker, key);
                    }
                }
            }
            _ => {}
        }
        for &dependency in &dependencies {
            if let Some(task) = self.tasks.get_mut(&dependency) {
                task.waiters = task.waiters.saturating_sub(1);
                self.steps.push_back(Step::Tidy(dependency));
            }
        }
        if let Some(task) = self.tasks.get_mut(&id) {
            task.dependencies = dependencies;
        }
    }

    /// waiting/ready/assigned → memory: a worker stored the result (first one wins).
    /// Dependents waiting for it may become ready; a wanted key is done.
    pub(super) fn transition_unfinished_memory(&mut self, id: TaskId, worker: WorkerId, bytes: u64, rows: u64) {
        self.leave_unfinished(id, Some(worker));
        self.set_status(
            id,
            Status::Memory {
                holders: vec![worker],
                bytes,
                rows,
            },
        );
        if let Some(state) = self.workers.get_mut(&worker) {
            state.holds.insert(id);
        }
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.computed = true;
        let key = task.key().clone();
        let wanted = !task.wanted_by.is_empty();
        let dependents = std::mem::take(&mut task.dependents);
        for &dependent in &dependents {
            if let Some(task) = self.tasks.get_mut(&dependent) {
                if task.status == Status::Waiting {
                    task.missing = task.missing.saturating_sub(1);
                    if task.missing == 0 {
                        self.steps.push_back(Step::MakeReady(dependent));
                    }
                }
            }
        }
        if let Some(task) = self.tasks.get_mut(&id) {
            task.dependents = dependents;
        }
        self.pending.record(
            &key,
            News::Finished {
                workers: vec![worker],
                bytes,
                rows,
            },
        );
        self.propose_if_full();
        if wanted {
            self.decisions.push(Decision::Done {
                key,
                outcome: Ok(ResultLocation {
                    workers: vec![worker],
                    bytes,
                    rows,
                }),
            });
        }
        self.steps.push_back(Step::Tidy(id));
    }

    /// waiting/ready/assigned → erred: it raised, its worker died too often, a chunk
    /// it reads has no copy, or a dependency failed. Unfinished dependents fail with
    /// the same failure; a wanted key is done.
    fn transition_unfinished_erred(&mut self, id: TaskId, failure: TaskFailure, reporter: Option<WorkerId>) {
        if !self.tasks.get(&id).is_some_and(|task| task.status.is_unfinished()) {
            return;
        }
        self.leave_unfinished(id, reporter);
        self.set_status(id, Status::Erred(failure.clone()));
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let key = task.key().clone();
        let wanted = !task.wanted_by.is_empty();
        for &dependent in &task.dependents {
            if self
                .tasks
                .get(&dependent)
                .is_some_and(|task| task.status.is_unfinished())
            {
                self.steps.push_back(Step::Fail {
                    task: dependent,
                    failure: failure.clone(),
                    reporter: None,
                });
            }
        }
        self.pending.record(&key, News::Erred(failure.clone()));
        self.propose_if_full();
        if wanted {
            self.decisions.push(Decision::Done {
                key,
                outcome: Err(failure),
            });
        }
        self.steps.push_back(Step::Tidy(id));
    }

    /// waiting/ready/assigned → released: nothing needs it any more (a client
    /// released it). Assigned ones are cancelled; dependencies lose a waiter.
    fn transition_unfinished_released(&mut self, id: TaskId) {
        self.leave_unfinished(id, None);
        self.set_status(id, Status::Released);
        self.steps.push_back(Step::Tidy(id));
    }

    /// memory → released: nothing needs the result; its holders delete it.
    fn transition_memory_released(&mut self, id: TaskId) {
        let Some(Status::Memory { holders, .. }) = self.set_status(id, Status::Released) else {
            return;
        };
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let key = task.key().clone();
        for holder in holders {
            if let Some(state) = self.workers.get_mut(&holder) {
                state.holds.remove(&id);
            }
            self.release_to(holder, key.clone());
        }
        self.pending.record(&key, News::Released);
        self.propose_if_full();
        self.steps.push_back(Step::Tidy(id));
    }

    /// A holder of a result is gone. If it was the last: memory → waiting when the
    /// result is still needed (recomputed; dependents that were ready or assigned go
    /// back to waiting, assigned ones cancelled), memory → released otherwise.
    pub(super) fn lose_holder(&mut self, id: TaskId, worker: WorkerId) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        let Status::Memory { holders, bytes, rows } = &mut task.status else {
            return;
        };
        holders.retain(|holder| *holder != worker);
        if !holders.is_empty() {
            // Keep the table's holders exact (a worker id may come back with an empty
            // store).
            let news = News::Finished {
                workers: holders.clone(),
                bytes: *bytes,
                rows: *rows,
            };
            let key = task.key().clone();
            self.pending.record(&key, news);
            self.propose_if_full();
            return;
        }
        if task.is_needed() {
            self.transition_memory_waiting(id);
        } else {
            self.transition_memory_released(id);
        }
    }

    /// memory → waiting: the result is lost and still needed: compute it again.
    fn transition_memory_waiting(&mut self, id: TaskId) {
        self.count_recomputation(id);
        self.set_status(id, Status::Waiting);
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let key = task.key().clone();
        let dependents: Vec<TaskId> = task.dependents.iter().copied().collect();
        for dependent in dependents {
            let Some(task) = self.tasks.get_mut(&dependent) else {
                continue;
            };
            match task.status {
                Status::Waiting => task.missing += 1,
                Status::Ready => {
                    task.missing = 1;
                    self.ready.remove(&dependent);
                    self.set_status(dependent, Status::Waiting);
                }
                Status::Assigned { .. } => {
                    task.missing = 1;
                    let dependent_key = task.key().clone();
                    if let Some(worker) = self.unassign(dependent) {
                        self.cancel(worker, dependent_key);
                    }
                    self.set_status(dependent, Status::Waiting);
                }
                Status::Released | Status::Memory { .. } | Status::Erred(_) => {}
            }
        }
        self.pending.record(&key, News::Released);
        self.propose_if_full();
        self.enter_unfinished(id);
    }

    /// A worker holding a chunk is gone. If it was the last copy, ready and assigned
    /// readers fail now (assigned ones are cancelled: they cannot fetch it), waiting
    /// ones when they become ready.
    pub(super) fn lose_chunk_location(&mut self, key: &str, worker: WorkerId) {
        let Some(chunk) = self.chunks.get_mut(key) else {
            return;
        };
        chunk.locations.remove(&worker);
        if !chunk.locations.is_empty() {
            return;
        }
        for &reader in &chunk.readers {
            if let Some(task) = self.tasks.get(&reader) {
                if matches!(task.status, Status::Ready | Status::Assigned { .. }) {
                    self.steps.push_back(Step::Fail {
                        task: reader,
                        failure: chunk_failure(task.key(), key),
                        reporter: None,
                    });
                }
            }
        }
    }

    /// released/erred → forgotten: nothing needs it and no dependent refers to it.
    /// Its dependencies lose a dependent and may be forgotten in turn.
    fn transition_forgotten(&mut self, id: TaskId) {
        let Some(task) = self.tasks.remove(&id) else {
            return;
        };
        self.counts.remove(&task.status);
        self.ids.remove(task.key());
        for dependency in &task.dependencies {
            if let Some(dependency_task) = self.tasks.get_mut(dependency) {
                dependency_task.dependents.remove(&id);
                self.steps.push_back(Step::Tidy(*dependency));
            }
        }
        for chunk in &task.chunk_inputs {
            if let Some(record) = self.chunks.get_mut(chunk) {
                record.readers.remove(&id);
            }
            self.drop_chunk_if_unread(chunk);
        }
        self.pending.record(task.key(), News::Forgotten);
        self.propose_if_full();
    }
}

/// The failure of a task whose chunk input has no live copy.
fn chunk_failure(task: &crate::graph::TaskKey, chunk: &str) -> TaskFailure {
    TaskFailure {
        task: task.clone(),
        message: format!("task '{task}' cannot run: chunk '{chunk}' has no live copy"),
    }
}
