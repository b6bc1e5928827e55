//! The core's invariants, checked from scratch (O(everything)): after every step of
//! the tests, and whenever a runtime wants to (e.g. in debug builds).

use std::collections::BTreeSet;

use super::core::{Core, StatusCounts};
use super::state::Status;

impl Core {
    /// Checks every invariant; the first broken one is described in the error.
    ///
    /// - keys and task numbers map one to one; dependencies and dependents are
    ///   symmetric; each task's `waiters` counts its unfinished dependents and an
    ///   unfinished task's `missing` counts its dependencies not in memory;
    /// - a released task is not needed (wanted, pinned, or a dependency of an
    ///   unfinished task) and has a dependent (else it would be forgotten); an erred
    ///   one is wanted, pinned or has a dependent;
    /// - waiting, ready and assigned tasks are needed and have no erred dependency; a
    ///   waiting task misses a dependency; a ready one misses none, its chunks have a
    ///   live copy and it is in the ready queue (which holds exactly the ready
    ///   tasks); an assigned one has every dependency in memory and is in its live
    ///   worker's books under the same assignment number;
    /// - a result in memory is needed, and its holders are live workers, sorted,
    ///   never none, each listing it among the results it holds;
    /// - each worker's books (assigned, held results, chunks) point back to it; the
    ///   load-ordered set matches the workers; no worker is over its slot limit;
    /// - chunk locations are live workers and every chunk is read by a known task;
    /// - the per-state counts match; fewer updates are pending than a batch allows;
    ///   nothing of a handled event is left over.
    pub fn sanity_check(&self) -> Result<(), String> {
        self.check_tasks()?;
        self.check_workers()?;
        self.check_chunks()?;
        if !self.steps.is_empty() || !self.decisions.is_empty() || !self.releases.is_empty() {
            return Err("steps, decisions or releases left over after an event".to_string());
        }
        if self.config.max_batch_updates > 0 && self.pending.len() >= self.config.max_batch_updates {
            return Err(format!(
                "{} updates pending, the batch limit is {}",
                self.pending.len(),
                self.config.max_batch_updates
            ));
        }
        Ok(())
    }

    fn check_tasks(&self) -> Result<(), String> {
        if self.ids.len() != self.tasks.len() {
            return Err(format!("{} keys but {} tasks", self.ids.len(), self.tasks.len()));
        }
        let mut counts = StatusCounts::default();
        let mut ready = BTreeSet::new();
        for (&id, task) in &self.tasks {
            let key = task.key();
            if self.ids.get(key) != Some(&id) {
                return Err(format!("task '{key}' is not found by its key"));
            }
            counts.add(&task.status);
            let mut missing = 0;
            for dependency in &task.dependencies {
                let Some(dependency_task) = self.tasks.get(dependency) else {
                    return Err(format!("task '{key}' depends on a forgotten task"));
                };
                if !dependency_task.dependents.contains(&id) {
                    return Err(format!(
                        "'{}' does not list its dependent '{key}'",
                        dependency_task.key()
                    ));
                }
                match &dependency_task.status {
                    Status::Memory { .. } => {}
                    Status::Erred(_) if task.status.is_unfinished() => {
                        return Err(format!(
                            "task '{key}' is unfinished but its dependency '{}' erred",
                            dependency_task.key()
                        ))
                    }
                    _ => missing += 1,
                }
            }
            let mut waiters = 0;
            for dependent in &task.dependents {
                let Some(dependent_task) = self.tasks.get(dependent) else {
                    return Err(format!("task '{key}' lists a forgotten dependent"));
                };
                if !dependent_task.dependencies.contains(&id) {
                    return Err(format!(
                        "'{}' does not list its dependency '{key}'",
                        dependent_task.key()
                    ));
                }
                if dependent_task.status.is_unfinished() {
                    waiters += 1;
                }
            }
            if waiters != task.waiters {
                return Err(format!("task '{key}' counts {} waiters, has {waiters}", task.waiters));
            }
            if task.status.is_unfinished() && missing != task.missing {
                return Err(format!("task '{key}' counts {} missing, has {missing}", task.missing));
            }
            let needed = task.is_needed();
            match &task.status {
                Status::Released => {
                    if needed {
                        return Err(format!("task '{key}' is needed but released"));
                    }
                    if task.is_forgettable() {
                        return Err(format!("task '{key}' is released and should be forgotten"));
                    }
                }
                Status::Erred(_) => {
                    if task.is_forgettable() {
                        return Err(format!("task '{key}' erred and should be forgotten"));
                    }
                }
                Status::Waiting | Status::Ready | Status::Assigned { .. } if !needed => {
                    return Err(format!("task '{key}' is unfinished but not needed"));
                }
                Status::Memory { .. } if !needed => {
                    return Err(format!("task '{key}' is in memory but not needed"));
                }
                Status::Waiting => {
                    if missing == 0 {
                        return Err(format!("task '{key}' is waiting with every dependency in memory"));
                    }
                }
                Status::Ready => {
                    ready.insert(id);
                    if missing != 0 {
                        return Err(format!(
                            "task '{key}' is ready with {missing} dependencies not in memory"
                        ));
                    }
                    for chunk in &task.chunk_inputs {
                        if self.chunks.get(chunk).is_none_or(|record| record.locations.is_empty()) {
                            return Err(format!("task '{key}' is ready but chunk '{chunk}' has no live copy"));
                        }
                    }
                }
                Status::Assigned { worker, sequence } => {
                    if missing != 0 {
                        return Err(format!(
                            "task '{key}' is assigned with {missing} dependencies not in memory"
                        ));
                    }
                    let Some(state) = self.workers.get(worker) else {
                        return Err(format!("task '{key}' is assigned to gone worker {worker}"));
                    };
                    if !state.assigned.contains(&(*sequence, id)) {
                        return Err(format!("task '{key}' is not in the books of its worker {worker}"));
                    }
                }
                Status::Memory { holders, .. } => {
                    if holders.is_empty() {
                        return Err(format!("task '{key}' is in memory nowhere"));
                    }
                    if holders.windows(2).any(|pair| pair[0] >= pair[1]) {
                        return Err(format!("task '{key}' has unsorted holders {holders:?}"));
                    }
                    for holder in holders {
                        if !self.workers.get(holder).is_some_and(|state| state.holds.contains(&id)) {
                            return Err(format!(
                                "task '{key}' is held by {holder}, which is gone or does not know"
                            ));
                        }
                    }
                }
            }
        }
        if counts != self.counts {
            return Err(format!("counts {:?} but the tasks say {counts:?}", self.counts));
        }
        if ready != self.ready {
            return Err(format!(
                "the ready queue has {} tasks, {} tasks are ready",
                self.ready.len(),
                ready.len()
            ));
        }
        Ok(())
    }

    fn check_workers(&self) -> Result<(), String> {
        let expected: BTreeSet<_> = self
            .workers
            .iter()
            .filter(|(_, state)| state.connected)
            .map(|(worker, state)| (state.load(), *worker))
            .collect();
        if expected.len() != self.by_load.len()
            || expected
                .iter()
                .zip(&self.by_load)
                .any(|(a, b)| a.1 != b.1 || a.0.assigned != b.0.assigned)
        {
            return Err("the load-ordered worker set does not match the workers".to_string());
        }
        for (worker, state) in &self.workers {
            if state.assigned.len() > state.capacity(self.config.max_assigned_per_thread) {
                return Err(format!(
                    "worker {worker} has {} tasks assigned, over its limit",
                    state.assigned.len()
                ));
            }
            for &(sequence, id) in &state.assigned {
                let assigned_here = self.tasks.get(&id).is_some_and(|task| {
                    task.status
                        == Status::Assigned {
                            worker: *worker,
                            sequence,
                        }
                });
                if !assigned_here {
                    return Err(format!("worker {worker} lists a task not assigned to it"));
                }
            }
            for id in &state.holds {
                let held = self.tasks.get(id).is_some_and(
                    |task| matches!(&task.status, Status::Memory { holders, .. } if holders.contains(worker)),
                );
                if !held {
                    return Err(format!("worker {worker} lists a result it does not hold"));
                }
            }
            for chunk in &state.chunks {
                if !self
                    .chunks
                    .get(chunk)
                    .is_some_and(|record| record.locations.contains(worker))
                {
                    return Err(format!("worker {worker} lists chunk '{chunk}' not located on it"));
                }
            }
        }
        Ok(())
    }

    fn check_chunks(&self) -> Result<(), String> {
        for (key, chunk) in &self.chunks {
            if chunk.readers.is_empty() {
                return Err(format!("chunk '{key}' is kept but no task reads it"));
            }
            for reader in &chunk.readers {
                if !self
                    .tasks
                    .get(reader)
                    .is_some_and(|task| task.chunk_inputs.iter().any(|input| input == key))
                {
                    return Err(format!("chunk '{key}' lists a reader that does not read it"));
                }
            }
            for location in &chunk.locations {
                if !self
                    .workers
                    .get(location)
                    .is_some_and(|state| state.chunks.contains(key))
                {
                    return Err(format!(
                        "chunk '{key}' is located on {location}, which is gone or does not know"
                    ));
                }
            }
        }
        Ok(())
    }
}
