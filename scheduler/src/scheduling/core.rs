//! The core: its state, the event handlers and the read accessors. The state
//! changes themselves are in `transitions.rs`, placement and stealing in
//! `placement.rs`, the invariants in `sanity.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::batch::{News, PendingBatch};
use super::config::CoreConfig;
use super::decision::{Decision, ResultLocation, TaskFailure};
use super::event::{Event, ExternalChunk};
use super::recovered::Recovered;
use super::state::{Chunk, FixedHashMap, Load, Status, Task, TaskId, TaskMap, Worker};
use crate::control::ClientId;
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::WorkerId;

/// Where a task is, as the runtime and clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// Some dependency is not in memory yet.
    Waiting,
    /// Every input is available; queued in the core until a worker has a free slot.
    Ready,
    /// Sent to this worker.
    Assigned(WorkerId),
    /// Its result is held by workers.
    Memory {
        /// Live holders, by id.
        holders: Vec<WorkerId>,
        /// The result's size.
        bytes: u64,
        /// The result's rows.
        rows: u64,
    },
    /// It or a dependency failed.
    Erred(TaskFailure),
}

/// How many tasks are in each state (for status pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Known only as lineage: no one needs them, no result.
    pub released: u64,
    /// Waiting for a dependency.
    pub waiting: u64,
    /// In the ready queue.
    pub ready: u64,
    /// Sent to workers.
    pub assigned: u64,
    /// Results in worker memory.
    pub memory: u64,
    /// Failed.
    pub erred: u64,
}

impl StatusCounts {
    /// The counter of `status`.
    fn counter(&mut self, status: &Status) -> &mut u64 {
        match status {
            Status::Released => &mut self.released,
            Status::Waiting => &mut self.waiting,
            Status::Ready => &mut self.ready,
            Status::Assigned { .. } => &mut self.assigned,
            Status::Memory { .. } => &mut self.memory,
            Status::Erred(_) => &mut self.erred,
        }
    }

    /// Counts one more task in `status`.
    pub(super) fn add(&mut self, status: &Status) {
        *self.counter(status) += 1;
    }

    /// Counts one task less in `status`.
    pub(super) fn remove(&mut self, status: &Status) {
        let counter = self.counter(status);
        *counter = counter.saturating_sub(1);
    }
}

/// One worker's load, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Its threads.
    pub nthreads: u32,
    /// Tasks assigned to it (running or queued there).
    pub assigned: usize,
    /// How many it may have assigned.
    pub capacity: usize,
    /// Task results it holds.
    pub results: usize,
}

/// A follow-up state change, processed in order until none is left: the core never
/// recurses over the graph, so a chain of 100,000 tasks costs no stack.
#[derive(Debug)]
pub(super) enum Step {
    /// A released task may be needed now: compute it (released → waiting).
    Compute(TaskId),
    /// A waiting task may have every dependency now (waiting → ready).
    MakeReady(TaskId),
    /// An unfinished task fails (→ erred) with this failure.
    Fail {
        /// The task.
        task: TaskId,
        /// The original failure.
        failure: TaskFailure,
        /// The worker that reported it, which needs no `Cancel`.
        reporter: Option<WorkerId>,
    },
    /// Something about a task changed: release it, forget it, or compute it, as
    /// its needs now say.
    Tidy(TaskId),
}

/// The deterministic scheduling core: events in, decisions out (module docs).
#[derive(Debug)]
pub struct Core {
    /// The knobs.
    pub(super) config: CoreConfig,
    /// Every task the core knows, by number.
    pub(super) tasks: TaskMap<Task>,
    /// Task numbers by key (looked up, never iterated).
    pub(super) ids: FixedHashMap<TaskKey, TaskId>,
    /// The number the next new task gets.
    pub(super) next_id: u64,
    /// Ready tasks, by priority (the task number).
    pub(super) ready: BTreeSet<TaskId>,
    /// Live workers.
    pub(super) workers: BTreeMap<WorkerId, Worker>,
    /// Live workers ordered by load, so placement and stealing find the least and
    /// most loaded in O(log workers).
    pub(super) by_load: BTreeSet<(Load, WorkerId)>,
    /// Published chunks that known tasks read.
    pub(super) chunks: BTreeMap<String, Chunk>,
    /// Tasks per state, kept as they change.
    pub(super) counts: StatusCounts,
    /// Updates not yet proposed.
    pub(super) pending: PendingBatch,
    /// The order number of the next assignment.
    pub(super) next_assignment: u64,
    /// Follow-up state changes of the event being handled.
    pub(super) steps: VecDeque<Step>,
    /// Decisions of the event being handled.
    pub(super) decisions: Vec<Decision>,
    /// Results to release, per worker, for the event being handled (one `Release`
    /// per worker).
    pub(super) releases: BTreeMap<WorkerId, Vec<TaskKey>>,
    /// After a rebuild: the workers whose reports the core waits for before it
    /// assigns anything (a result a reconnecting worker holds is not recomputed).
    pub(super) awaiting_reports: BTreeSet<WorkerId>,
    /// What recovery did since the last [`Core::take_recovery`].
    pub(super) recovery: RecoveryCounts,
    /// Tasks a reporting worker runs that were not ready when it reported (an input's
    /// holder had not reported yet): given to that worker when they become ready,
    /// instead of being run a second time elsewhere.
    pub(super) running_claims: Vec<(TaskId, WorkerId)>,
}

/// What the core did to recover from failures, counted until taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryCounts {
    /// Results that had been in memory, were lost with their workers while still
    /// needed, and are computed again.
    pub tasks_recomputed: u64,
    /// Results learned from a worker's report that the core did not know that worker
    /// held (after a leader change: results not yet recorded, or recorded elsewhere).
    pub chunks_reregistered: u64,
}

impl Core {
    /// An empty core.
    pub fn new(config: CoreConfig) -> Core {
        Core {
            config,
            tasks: TaskMap::default(),
            ids: FixedHashMap::default(),
            next_id: 0,
            ready: BTreeSet::new(),
            workers: BTreeMap::new(),
            by_load: BTreeSet::new(),
            chunks: BTreeMap::new(),
            counts: StatusCounts::default(),
            pending: PendingBatch::default(),
            next_assignment: 0,
            steps: VecDeque::new(),
            decisions: Vec::new(),
            releases: BTreeMap::new(),
            awaiting_reports: BTreeSet::new(),
            recovery: RecoveryCounts::default(),
            running_claims: Vec::new(),
        }
    }

    /// Rebuilds the leader's view from the replicated state after a leader change:
    /// tasks with their recorded results (on live workers), failures and wanters,
    /// live workers, pinned keys, known chunks. Tasks without a recorded result that
    /// something needs are (re)computed; recorded results nothing needs are released.
    /// `Done` is emitted only for outcomes reached during the rebuild.
    ///
    /// With `await_reports`, nothing is assigned until every live worker has reported
    /// ([`Event::WorkerReported`]) or the runtime gives up waiting
    /// ([`Event::StopWaitingForReports`]).
    pub fn rebuild(config: CoreConfig, recovered: Recovered, await_reports: bool) -> (Core, Vec<Decision>) {
        let mut core = Core::new(config);
        for (worker, nthreads) in recovered.workers {
            if !core.workers.contains_key(&worker) {
                core.add_worker(worker, nthreads);
                if await_reports {
                    // Its results count, but it gets tasks only once its stream
                    // to this leader is open (its report).
                    core.awaiting_reports.insert(worker);
                    core.change_worker(worker, |state| state.connected = false);
                }
            }
        }
        let chunk_keys: Vec<String> = recovered.chunks.iter().map(|chunk| chunk.key.clone()).collect();
        for chunk in recovered.chunks {
            core.update_chunk(chunk);
        }
        let mut tasks = recovered.tasks;
        tasks.sort_by_key(|task| task.order);
        let mut outcomes = Vec::with_capacity(tasks.len());
        let mut specs = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push((task.spec.key.clone(), task.result, task.error, task.wanted_by));
            specs.push(task.spec);
        }
        core.add_tasks(specs);
        for key in chunk_keys {
            core.drop_chunk_if_unread(&key);
        }
        for (key, result, error, wanted_by) in outcomes {
            let Some(&id) = core.ids.get(&key) else {
                continue;
            };
            if let Some(task) = core.tasks.get_mut(&id) {
                task.wanted_by.extend(wanted_by);
            }
            if let Some(failure) = error {
                core.set_status(id, Status::Erred(failure));
            } else if let Some((workers, bytes, rows)) = result {
                let mut holders: Vec<WorkerId> = workers
                    .into_iter()
                    .filter(|worker| core.workers.contains_key(worker))
                    .collect();
                holders.sort();
                holders.dedup();
                if let Some(task) = core.tasks.get_mut(&id) {
                    task.computed = true;
                }
                if holders.is_empty() {
                    // Lost with its workers: tell the table, compute it if needed.
                    core.pending.record(&key, News::Released);
                    continue;
                }
                for holder in &holders {
                    if let Some(worker) = core.workers.get_mut(holder) {
                        worker.holds.insert(id);
                    }
                }
                core.set_status(id, Status::Memory { holders, bytes, rows });
            }
        }
        for key in recovered.pinned {
            if let Some(task) = core.ids.get(&key).and_then(|id| core.tasks.get_mut(id)) {
                task.pinned = true;
            }
        }
        // First what is needed (so waiters are counted), then what is not.
        let mut ids: Vec<TaskId> = core.tasks.keys().copied().collect();
        ids.sort();
        for &id in &ids {
            if core
                .tasks
                .get(&id)
                .is_some_and(|task| !task.wanted_by.is_empty() || task.pinned)
            {
                core.steps.push_back(Step::Compute(id));
            }
        }
        core.drain();
        core.steps.extend(ids.into_iter().map(Step::Tidy));
        core.drain();
        core.schedule();
        let decisions = core.finish();
        (core, decisions)
    }

    /// Handles one event and returns what to do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Decision> {
        match event {
            Event::GraphSubmitted {
                client,
                tasks,
                wanted,
                chunks,
            } => self.graph_submitted(client, tasks, wanted, chunks),
            Event::WorkerJoined { worker, nthreads } => {
                self.remove_worker(worker);
                self.add_worker(worker, nthreads);
            }
            Event::WorkerReported {
                worker,
                nthreads,
                held,
                running,
            } => self.worker_reported(worker, nthreads, held, running),
            Event::StopWaitingForReports => self.awaiting_reports.clear(),
            Event::WorkerDisconnected { worker } => self.worker_disconnected(worker),
            Event::WorkerGone { worker } => {
                self.awaiting_reports.remove(&worker);
                self.remove_worker(worker);
            }
            Event::TaskFinished {
                worker,
                key,
                bytes,
                rows,
            } => self.task_finished(worker, key, bytes, rows),
            Event::TaskErred { worker, key, message } => self.task_erred(worker, key, message),
            Event::InputMissing {
                worker,
                key,
                input,
                holders,
            } => self.input_missing(worker, key, &input, holders),
            Event::TaskCancelled { worker, key } => {
                if let Some(state) = self.workers.get_mut(&worker) {
                    state.cancelling.remove(&key);
                }
            }
            Event::KeysReleased { client, keys } => self.keys_released(client, keys),
            Event::Pinned { keys } => self.set_pinned(keys, true),
            Event::Unpinned { keys } => self.set_pinned(keys, false),
            Event::Flush => self.propose(),
        }
        self.drain();
        self.schedule();
        self.finish()
    }

    /// Where a task is; `None` if the core does not know it, or keeps only its
    /// definition (released: nothing needs it, and it has no result).
    pub fn task_status(&self, key: &TaskKey) -> Option<TaskStatus> {
        let task = self.task_by_key(key)?;
        Some(match &task.status {
            Status::Released => return None,
            Status::Waiting => TaskStatus::Waiting,
            Status::Ready => TaskStatus::Ready,
            Status::Assigned { worker, .. } => TaskStatus::Assigned(*worker),
            Status::Memory { holders, bytes, rows } => TaskStatus::Memory {
                holders: holders.clone(),
                bytes: *bytes,
                rows: *rows,
            },
            Status::Erred(failure) => TaskStatus::Erred(failure.clone()),
        })
    }

    /// Where a task's result is, if it is in memory.
    pub fn result_location(&self, key: &TaskKey) -> Option<ResultLocation> {
        match &self.task_by_key(key)?.status {
            Status::Memory { holders, bytes, rows } => Some(ResultLocation {
                workers: holders.clone(),
                bytes: *bytes,
                rows: *rows,
            }),
            _ => None,
        }
    }

    /// Whether a worker's chunk of this key is a task result the core keeps or may
    /// soon receive (the task is waiting, ready, assigned or in memory): such a chunk
    /// must not be deleted as an orphan.
    pub fn is_held(&self, key: &str) -> bool {
        let Ok(key) = TaskKey::parse(key) else {
            return false;
        };
        self.task_by_key(&key)
            .is_some_and(|task| task.status.is_unfinished() || matches!(task.status, Status::Memory { .. }))
    }

    /// Whether the core knows a task of this key (released ones included).
    pub fn knows(&self, key: &TaskKey) -> bool {
        self.ids.contains_key(key)
    }

    /// The clients that want a key.
    pub fn wanted_by(&self, key: &TaskKey) -> Vec<ClientId> {
        self.task_by_key(key)
            .map(|task| task.wanted_by.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Tasks per state.
    pub fn status_counts(&self) -> StatusCounts {
        self.counts
    }

    /// The counts a status line shows: (waiting or ready, assigned, in memory, erred).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let counts = self.counts;
        (
            counts.waiting + counts.ready,
            counts.assigned,
            counts.memory,
            counts.erred,
        )
    }

    /// One live worker's load.
    pub fn worker_load(&self, worker: WorkerId) -> Option<WorkerLoad> {
        let state = self.workers.get(&worker)?;
        Some(WorkerLoad {
            nthreads: state.nthreads,
            assigned: state.assigned.len(),
            capacity: state.capacity(self.config.max_assigned_per_thread),
            results: state.holds.len(),
        })
    }

    /// The live workers, by id.
    pub fn workers(&self) -> Vec<WorkerId> {
        self.workers.keys().copied().collect()
    }

    /// The workers whose reports the core still waits for before assigning.
    pub fn awaiting_reports(&self) -> usize {
        self.awaiting_reports.len()
    }

    /// What recovery did since the last call (then counts from zero).
    pub fn take_recovery(&mut self) -> RecoveryCounts {
        std::mem::take(&mut self.recovery)
    }

    /// How many updates wait for the next proposal.
    pub fn pending_updates(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn task_by_key(&self, key: &TaskKey) -> Option<&Task> {
        self.tasks.get(self.ids.get(key)?)
    }

    /// Adds a worker with nothing assigned.
    pub(super) fn add_worker(&mut self, worker: WorkerId, nthreads: u32) {
        let state = Worker::new(nthreads);
        self.by_load.insert((state.load(), worker));
        self.workers.insert(worker, state);
    }

    /// Sets a chunk's size and live locations, creating its record if needed.
    pub(super) fn update_chunk(&mut self, chunk: ExternalChunk) {
        let live: BTreeSet<WorkerId> = chunk
            .locations
            .into_iter()
            .filter(|worker| self.workers.contains_key(worker))
            .collect();
        let record = self.chunks.entry(chunk.key.clone()).or_default();
        record.bytes = chunk.bytes;
        for gone in record.locations.difference(&live) {
            if let Some(worker) = self.workers.get_mut(gone) {
                worker.chunks.remove(&chunk.key);
            }
        }
        for holder in &live {
            if let Some(worker) = self.workers.get_mut(holder) {
                worker.chunks.insert(chunk.key.clone());
            }
        }
        record.locations = live;
    }

    /// Drops a chunk's record once no known task reads it.
    pub(super) fn drop_chunk_if_unread(&mut self, key: &str) {
        let Some(chunk) = self.chunks.get(key) else {
            return;
        };
        if !chunk.readers.is_empty() {
            return;
        }
        for holder in &chunk.locations {
            if let Some(worker) = self.workers.get_mut(holder) {
                worker.chunks.remove(key);
            }
        }
        self.chunks.remove(key);
    }

    /// Adds the tasks whose keys are new, released, with their links; returns the
    /// new tasks' numbers. A dependency the core does not know (validation should
    /// have refused it) makes the task erred.
    pub(super) fn add_tasks(&mut self, specs: Vec<TaskSpec>) -> Vec<TaskId> {
        let mut added = Vec::with_capacity(specs.len());
        self.ids.reserve(specs.len());
        self.tasks.reserve(specs.len());
        for spec in specs {
            if self.ids.contains_key(&spec.key) {
                continue;
            }
            let id = TaskId(self.next_id);
            self.next_id += 1;
            self.ids.insert(spec.key.clone(), id);
            self.pending.resubmitted(&spec.key);
            added.push((id, spec));
        }
        let mut ids = Vec::with_capacity(added.len());
        for (id, spec) in added {
            let mut dependencies = Vec::new();
            let mut unknown = None;
            for key in spec.dependencies() {
                match self.ids.get(key) {
                    Some(&dependency) => dependencies.push(dependency),
                    None => {
                        unknown.get_or_insert_with(|| key.clone());
                    }
                }
            }
            let chunk_inputs: Vec<String> = spec.chunk_inputs().into_iter().map(str::to_string).collect();
            for &dependency in &dependencies {
                if let Some(task) = self.tasks.get_mut(&dependency) {
                    task.dependents.insert(id);
                }
            }
            for chunk in &chunk_inputs {
                self.chunks.entry(chunk.clone()).or_default().readers.insert(id);
            }
            let status = match unknown {
                Some(missing) => Status::Erred(TaskFailure {
                    message: format!(
                        "task '{}' depends on '{missing}', which the scheduler does not know",
                        spec.key
                    ),
                    task: spec.key.clone(),
                }),
                None => Status::Released,
            };
            self.counts.add(&status);
            self.tasks.insert(
                id,
                Task {
                    spec,
                    dependencies,
                    dependents: BTreeSet::new(),
                    chunk_inputs,
                    status,
                    wanted_by: BTreeSet::new(),
                    pinned: false,
                    failures: 0,
                    computed: false,
                    missing: 0,
                    waiters: 0,
                },
            );
            ids.push(id);
        }
        ids
    }

    fn graph_submitted(
        &mut self,
        client: ClientId,
        tasks: Vec<TaskSpec>,
        wanted: Vec<TaskKey>,
        chunks: Vec<ExternalChunk>,
    ) {
        let chunk_keys: Vec<String> = chunks.iter().map(|chunk| chunk.key.clone()).collect();
        for chunk in chunks {
            self.update_chunk(chunk);
        }
        let added = self.add_tasks(tasks);
        for key in chunk_keys {
            self.drop_chunk_if_unread(&key);
        }
        for key in wanted {
            let Some(&id) = self.ids.get(&key) else {
                self.decisions.push(Decision::Done {
                    outcome: Err(TaskFailure {
                        message: format!("task '{key}' is not known to the scheduler"),
                        task: key.clone(),
                    }),
                    key,
                });
                continue;
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            if task.wanted_by.insert(client) {
                self.pending.rewant(client, &key);
            }
            match &task.status {
                Status::Memory { holders, bytes, rows } => self.decisions.push(Decision::Done {
                    key,
                    outcome: Ok(ResultLocation {
                        workers: holders.clone(),
                        bytes: *bytes,
                        rows: *rows,
                    }),
                }),
                Status::Erred(failure) => self.decisions.push(Decision::Done {
                    key,
                    outcome: Err(failure.clone()),
                }),
                Status::Released => self.steps.push_back(Step::Compute(id)),
                Status::Waiting | Status::Ready | Status::Assigned { .. } => {}
            }
        }
        // New tasks nothing needs (and erred ones) are forgotten or kept by their needs.
        self.steps.extend(added.into_iter().map(Step::Tidy));
    }

    fn task_finished(&mut self, worker: WorkerId, key: TaskKey, bytes: u64, rows: u64) {
        let Some(state) = self.workers.get_mut(&worker) else {
            // A gone worker's late news: its store counts as lost.
            return;
        };
        state.cancelling.remove(&key);
        let Some(&id) = self.ids.get(&key) else {
            self.release_to(worker, key);
            return;
        };
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        match &mut task.status {
            Status::Waiting | Status::Ready | Status::Assigned { .. } => {
                self.transition_unfinished_memory(id, worker, bytes, rows)
            }
            Status::Memory { .. } => {
                self.add_holder(id, worker);
            }
            Status::Released | Status::Erred(_) => self.release_to(worker, key),
        }
    }

    fn task_erred(&mut self, worker: WorkerId, key: TaskKey, message: String) {
        let Some(state) = self.workers.get_mut(&worker) else {
            return;
        };
        state.cancelling.remove(&key);
        let Some(&id) = self.ids.get(&key) else {
            return;
        };
        if self.tasks.get(&id).is_some_and(|task| task.status.is_unfinished()) {
            self.steps.push_back(Step::Fail {
                task: id,
                failure: TaskFailure { task: key, message },
                reporter: Some(worker),
            });
        }
    }

    /// See [`Event::InputMissing`].
    fn input_missing(&mut self, worker: WorkerId, key: TaskKey, input: &str, holders: Vec<WorkerId>) {
        if let Some(state) = self.workers.get_mut(&worker) {
            state.cancelling.remove(&key);
        }
        // First off its worker (which dropped it): losing the input below then moves
        // it to waiting without a cancel.
        if let Some(&id) = self.ids.get(&key) {
            let given_back = matches!(
                self.tasks.get(&id).map(|task| &task.status),
                Some(Status::Assigned { worker: assignee, .. }) if *assignee == worker
            );
            if given_back {
                self.transition_assigned_ready(id);
            }
        }
        let input_task = TaskKey::parse(input)
            .ok()
            .and_then(|input| self.ids.get(&input).copied());
        for holder in holders {
            match input_task {
                Some(input_id) => {
                    if let Some(state) = self.workers.get_mut(&holder) {
                        state.holds.remove(&input_id);
                    }
                    self.lose_holder(input_id, holder);
                }
                None if self.chunks.contains_key(input) => {
                    if let Some(state) = self.workers.get_mut(&holder) {
                        state.chunks.remove(input);
                    }
                    self.lose_chunk_location(input, holder);
                }
                None => {}
            }
        }
    }

    /// Adds a live worker as a holder of a result in memory (a second copy: after a
    /// steal both may have run it, or a reconnecting worker reports it); returns
    /// whether it was new. The table learns the holders.
    fn add_holder(&mut self, id: TaskId, worker: WorkerId) -> bool {
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        let Status::Memory { holders, bytes, rows } = &mut task.status else {
            return false;
        };
        let Err(position) = holders.binary_search(&worker) else {
            return false;
        };
        holders.insert(position, worker);
        let news = News::Finished {
            workers: holders.clone(),
            bytes: *bytes,
            rows: *rows,
        };
        let key = task.key().clone();
        if let Some(state) = self.workers.get_mut(&worker) {
            state.holds.insert(id);
        }
        self.pending.record(&key, news);
        self.propose_if_full();
        true
    }

    /// Reconciles the core's books about `worker` with its report (see
    /// [`Event::WorkerReported`]).
    fn worker_reported(
        &mut self,
        worker: WorkerId,
        nthreads: u32,
        held: Vec<(TaskKey, u64, u64)>,
        running: Vec<TaskKey>,
    ) {
        self.awaiting_reports.remove(&worker);
        if self.workers.contains_key(&worker) {
            self.change_worker(worker, |state| {
                state.nthreads = nthreads.max(1);
                state.connected = true;
            });
        } else {
            self.add_worker(worker, nthreads);
        }
        // Published chunks tasks read: its copies are what it holds now.
        let held_keys: BTreeSet<&str> = held.iter().map(|(key, _, _)| key.as_str()).collect();
        let gone: Vec<String> = self
            .workers
            .get(&worker)
            .map(|state| {
                state
                    .chunks
                    .iter()
                    .filter(|key| !held_keys.contains(key.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in gone {
            if let Some(state) = self.workers.get_mut(&worker) {
                state.chunks.remove(&key);
            }
            self.lose_chunk_location(&key, worker);
        }
        for key in held_keys {
            if let Some(chunk) = self.chunks.get_mut(key) {
                if chunk.locations.insert(worker) {
                    if let Some(state) = self.workers.get_mut(&worker) {
                        state.chunks.insert(key.to_string());
                    }
                }
            }
        }
        let held: Vec<(TaskId, u64, u64)> = held
            .into_iter()
            .filter_map(|(key, bytes, rows)| self.ids.get(&key).map(|&id| (id, bytes, rows)))
            .collect();
        let reported: BTreeSet<TaskId> = held.iter().map(|(id, _, _)| *id).collect();
        // Results it was thought to hold and no longer does (it restarted, or lost them).
        let lost: Vec<TaskId> = self
            .workers
            .get(&worker)
            .map(|state| state.holds.difference(&reported).copied().collect())
            .unwrap_or_default();
        for id in lost {
            if let Some(state) = self.workers.get_mut(&worker) {
                state.holds.remove(&id);
            }
            self.lose_holder(id, worker);
        }
        // Results it holds: kept, or learned instead of computed.
        for (id, bytes, rows) in held {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            match &mut task.status {
                Status::Waiting | Status::Ready | Status::Assigned { .. } => {
                    self.recovery.chunks_reregistered += 1;
                    self.transition_unfinished_memory(id, worker, bytes, rows);
                }
                Status::Memory { .. } => {
                    if self.add_holder(id, worker) {
                        self.recovery.chunks_reregistered += 1;
                    }
                }
                Status::Released | Status::Erred(_) => {
                    let key = task.key().clone();
                    self.release_to(worker, key);
                }
            }
        }
        // Tasks it runs stay with it; tasks assigned to it that it does not run (its
        // queue is gone) are ready again, without counting a death.
        let running: BTreeSet<TaskId> = running.iter().filter_map(|key| self.ids.get(key).copied()).collect();
        let dropped: Vec<TaskId> = self
            .workers
            .get(&worker)
            .map(|state| {
                state
                    .assigned
                    .iter()
                    .map(|(_, id)| *id)
                    .filter(|id| !running.contains(id))
                    .collect()
            })
            .unwrap_or_default();
        for id in dropped {
            self.transition_assigned_ready(id);
        }
        for id in running {
            match self.tasks.get(&id).map(|task| &task.status) {
                Some(Status::Ready) => self.transition_ready_assigned(id, worker),
                Some(Status::Waiting) => self.running_claims.push((id, worker)),
                _ => {}
            }
        }
    }

    /// See [`Event::WorkerDisconnected`].
    fn worker_disconnected(&mut self, worker: WorkerId) {
        let Some(state) = self.workers.get(&worker) else {
            return;
        };
        if !state.connected {
            return;
        }
        let assigned: Vec<TaskId> = state.assigned.iter().map(|(_, id)| *id).collect();
        for id in assigned {
            self.transition_assigned_ready(id);
        }
        self.change_worker(worker, |state| state.connected = false);
        self.running_claims.retain(|(_, claimant)| *claimant != worker);
    }

    fn keys_released(&mut self, client: ClientId, keys: Vec<TaskKey>) {
        for key in keys {
            let Some(&id) = self.ids.get(&key) else {
                continue;
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            if task.wanted_by.remove(&client) {
                self.pending.unwant(client, &key);
                self.propose_if_full();
                self.steps.push_back(Step::Tidy(id));
            }
        }
    }

    fn set_pinned(&mut self, keys: Vec<TaskKey>, pinned: bool) {
        for key in keys {
            let Some(&id) = self.ids.get(&key) else {
                continue;
            };
            if let Some(task) = self.tasks.get_mut(&id) {
                if task.pinned != pinned {
                    task.pinned = pinned;
                    self.steps.push_back(Step::Tidy(id));
                }
            }
        }
    }

    /// Removes a worker: its assigned tasks go back to the ready queue (or err after
    /// too many deaths), its results and chunk copies are lost.
    pub(super) fn remove_worker(&mut self, worker: WorkerId) {
        let Some(state) = self.workers.remove(&worker) else {
            return;
        };
        self.by_load.remove(&(state.load(), worker));
        for &(_, id) in &state.assigned {
            self.transition_assigned_ready_worker_died(id);
        }
        for &id in &state.holds {
            self.lose_holder(id, worker);
        }
        for key in &state.chunks {
            self.lose_chunk_location(key, worker);
        }
    }

    /// Emits `Propose` with everything pending, if anything is.
    pub(super) fn propose(&mut self) {
        if self.pending.len() > 0 {
            self.decisions.push(Decision::Propose(self.pending.take()));
        }
    }

    /// Emits `Propose` if the pending updates reached the configured maximum.
    pub(super) fn propose_if_full(&mut self) {
        if self.pending.len() >= self.config.max_batch_updates {
            self.propose();
        }
    }

    /// Queues the deletion of a result on a live worker.
    pub(super) fn release_to(&mut self, worker: WorkerId, key: TaskKey) {
        if self.workers.contains_key(&worker) {
            self.releases.entry(worker).or_default().push(key);
        }
    }

    /// Tells a live worker to drop a task it has not started.
    pub(super) fn cancel(&mut self, worker: WorkerId, key: TaskKey) {
        if let Some(state) = self.workers.get_mut(&worker) {
            state.cancelling.insert(key.clone());
            self.decisions.push(Decision::Cancel { worker, key });
        }
    }

    /// Ends an event: the releases, one per worker, after everything else.
    fn finish(&mut self) -> Vec<Decision> {
        for (worker, keys) in std::mem::take(&mut self.releases) {
            self.decisions.push(Decision::Release { worker, keys });
        }
        std::mem::take(&mut self.decisions)
    }
}
