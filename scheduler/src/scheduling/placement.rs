//! Where ready tasks go, and stealing for idle workers.
//!
//! Placement: among live, connected workers with a free slot (fewer assigned than `nthreads ×
//! max_assigned_per_thread`), the one holding the most bytes of the task's inputs;
//! ties go to the fewest assigned per thread, then the lowest id. Only the workers
//! holding an input are looked at, plus the least loaded one (the ordered worker
//! set), so one placement is O(inputs · holders + log workers).
//!
//! A task with no input held anywhere (a file read, a literal) goes where its
//! siblings went: the worker a fellow input of one of its dependents is assigned to
//! or held by, if it has a free slot (Dask co-assigns such root tasks too). So the
//! `x_wind` and `y_wind` reads of one time step meet on one worker and the 8 `inc`s
//! under one `sum` do, instead of alternating and fetching half of every dependent's
//! inputs from the other worker. At most [`SIBLINGS_LOOKED_AT`] siblings are looked
//! at, so a dependent with thousands of inputs costs no more.
//!
//! Stealing: when the ready queue is empty and a worker has nothing assigned, it
//! takes up to half of the most loaded worker's assigned tasks, most recently
//! assigned first, and never more than that worker has queued beyond its threads
//! (those are likely running): `Cancel` to the old worker, `Assign` to the new one.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::core::Core;
use super::decision::InputLocation;
use super::state::{Load, Status, Task, TaskId, Worker};
use crate::registry::WorkerId;

/// How many fellow inputs of its dependents a task without held inputs looks at to
/// find its siblings' worker.
const SIBLINGS_LOOKED_AT: usize = 32;

impl Core {
    /// Assigns ready tasks in priority order while some worker has a free slot, then
    /// lets idle workers steal.
    pub(super) fn schedule(&mut self) {
        if !self.awaiting_reports.is_empty() {
            // After a rebuild: a reconnecting worker may hold what is ready.
            return;
        }
        // Tasks a worker reported running go to it once ready (it is running them).
        for (id, worker) in std::mem::take(&mut self.running_claims) {
            match self.tasks.get(&id).map(|task| &task.status) {
                Some(Status::Ready) if self.workers.get(&worker).is_some_and(|state| state.connected) => {
                    self.transition_ready_assigned(id, worker)
                }
                Some(Status::Waiting) => self.running_claims.push((id, worker)),
                _ => {}
            }
        }
        while let Some(&id) = self.ready.first() {
            let Some(worker) = self.choose_worker(id) else {
                break;
            };
            self.transition_ready_assigned(id, worker);
        }
        if self.ready.is_empty() {
            self.balance();
        }
    }

    /// Changes a worker's books, keeping the load-ordered set in step.
    pub(super) fn change_worker(&mut self, worker: WorkerId, change: impl FnOnce(&mut Worker)) {
        let Some(state) = self.workers.get_mut(&worker) else {
            return;
        };
        self.by_load.remove(&(state.load(), worker));
        change(state);
        if state.connected {
            self.by_load.insert((state.load(), worker));
        }
    }

    /// Whether a worker has no free slot.
    fn is_full(&self, worker: WorkerId) -> bool {
        self.workers
            .get(&worker)
            .is_none_or(|state| state.free_slots(self.config.max_assigned_per_thread) == 0)
    }

    /// A worker's load (zero for an unknown one; only live ones are asked).
    fn load_of(&self, worker: WorkerId) -> Load {
        self.workers.get(&worker).map_or(
            Load {
                assigned: 0,
                nthreads: 1,
            },
            Worker::load,
        )
    }

    /// The worker a ready task goes to, or `None` if every worker is full.
    fn choose_worker(&self, id: TaskId) -> Option<WorkerId> {
        // Slots are per thread, so the least loaded worker is full only if all are.
        let &(_, least_loaded) = self.by_load.first()?;
        if self.is_full(least_loaded) {
            return None;
        }
        let task = self.tasks.get(&id)?;
        let mut local_bytes: BTreeMap<WorkerId, u64> = BTreeMap::new();
        for dependency in &task.dependencies {
            if let Some(Status::Memory { holders, bytes, .. }) = self.tasks.get(dependency).map(|task| &task.status) {
                for holder in holders {
                    *local_bytes.entry(*holder).or_default() += bytes;
                }
            }
        }
        for chunk in &task.chunk_inputs {
            if let Some(record) = self.chunks.get(chunk) {
                for holder in &record.locations {
                    *local_bytes.entry(*holder).or_default() += record.bytes;
                }
            }
        }
        let best_local = local_bytes
            .iter()
            .filter(|(worker, bytes)| **bytes > 0 && !self.is_full(**worker))
            .max_by_key(|(worker, bytes)| (**bytes, Reverse(self.load_of(**worker)), Reverse(**worker)))
            .map(|(worker, _)| *worker);
        if local_bytes.is_empty() {
            if let Some(worker) = self.siblings_worker(id, task) {
                return Some(worker);
            }
        }
        Some(best_local.unwrap_or(least_loaded))
    }

    /// The first worker with a free slot that a fellow input of one of `task`'s
    /// dependents is assigned to or held by (module docs).
    fn siblings_worker(&self, id: TaskId, task: &Task) -> Option<WorkerId> {
        let siblings = task
            .dependents
            .iter()
            .filter_map(|dependent| self.tasks.get(dependent))
            .flat_map(|dependent| dependent.dependencies.iter())
            .filter(|sibling| **sibling != id)
            .take(SIBLINGS_LOOKED_AT);
        for sibling in siblings {
            let workers: &[WorkerId] = match self.tasks.get(sibling).map(|sibling| &sibling.status) {
                Some(Status::Assigned { worker, .. }) => std::slice::from_ref(worker),
                Some(Status::Memory { holders, .. }) => holders,
                _ => continue,
            };
            if let Some(worker) = workers.iter().find(|worker| !self.is_full(**worker)) {
                return Some(*worker);
            }
        }
        None
    }

    /// Where each input of a task is, as seen from `worker`.
    pub(super) fn inputs(&self, id: TaskId, worker: WorkerId) -> Vec<InputLocation> {
        let Some(task) = self.tasks.get(&id) else {
            return Vec::new();
        };
        let closest_first = |holders: &mut Vec<WorkerId>| {
            holders.sort_by_key(|holder| (*holder != worker, *holder));
        };
        let mut inputs = Vec::with_capacity(task.dependencies.len() + task.chunk_inputs.len());
        for dependency in &task.dependencies {
            if let Some(dependency_task) = self.tasks.get(dependency) {
                if let Status::Memory { holders, bytes, .. } = &dependency_task.status {
                    let mut workers = holders.clone();
                    closest_first(&mut workers);
                    inputs.push(InputLocation {
                        key: dependency_task.key().to_string(),
                        workers,
                        bytes: *bytes,
                    });
                }
            }
        }
        for chunk in &task.chunk_inputs {
            if let Some(record) = self.chunks.get(chunk) {
                let mut workers: Vec<WorkerId> = record.locations.iter().copied().collect();
                closest_first(&mut workers);
                inputs.push(InputLocation {
                    key: chunk.clone(),
                    workers,
                    bytes: record.bytes,
                });
            }
        }
        inputs
    }

    /// Lets idle workers steal from the most loaded one (module docs).
    fn balance(&mut self) {
        let max_per_thread = self.config.max_assigned_per_thread;
        loop {
            let Some(&(idle_load, thief)) = self.by_load.first() else {
                return;
            };
            let Some(&(_, victim)) = self.by_load.last() else {
                return;
            };
            if idle_load.assigned != 0 || victim == thief {
                return;
            }
            let (Some(victim_state), Some(thief_state)) = (self.workers.get(&victim), self.workers.get(&thief)) else {
                return;
            };
            let assigned = victim_state.assigned.len();
            let queued = assigned.saturating_sub(victim_state.nthreads as usize);
            let count = (assigned / 2).min(queued).min(thief_state.free_slots(max_per_thread));
            if count == 0 {
                return;
            }
            let stolen: Vec<TaskId> = victim_state
                .assigned
                .iter()
                .rev()
                .take(count)
                .map(|(_, id)| *id)
                .collect();
            for id in stolen {
                self.transition_assigned_stolen(id, victim, thief);
            }
        }
    }

    /// assigned(victim) → assigned(thief): a steal.
    fn transition_assigned_stolen(&mut self, id: TaskId, victim: WorkerId, thief: WorkerId) {
        let Some(key) = self.tasks.get(&id).map(|task| task.key().clone()) else {
            return;
        };
        self.unassign(id);
        self.cancel(victim, key);
        self.set_status(id, Status::Ready);
        self.transition_ready_assigned(id, thief);
    }
}
