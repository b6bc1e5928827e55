//! The leader's task runtime: owns the scheduling core (`crate::scheduling::Core`)
//! while this replica leads, feeds it events (graphs committed, workers' reports,
//! releases, a flush tick) and performs its decisions: assignments, cancellations and
//! releases to workers over their task streams, batches of news proposed through Raft,
//! and answers to clients waiting on keys.
//!
//! One reign per term: on becoming leader the runtime waits for a read barrier (so
//! everything committed is applied), rebuilds the core from the replicated task table
//! and the registry, and starts dispatching; on losing leadership it drops the core,
//! closes every worker's task stream (workers reconnect to the new leader) and every
//! waiting client's wait (clients retry at the new leader).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::v1 as pb;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::consensus::Consensus;
use super::convert_graph::task_to_wire;
use crate::control::{ClientId, ControlCommand, ControlState, RecoveryCounters, TaskOutcome};
use crate::graph::{OpSignature, TaskKey, TaskSpec};
use crate::registry::{WorkerId, WorkerState};
use crate::scheduling::{
    Core, CoreConfig, Decision, Event, ExternalChunk, InputLocation, Recovered, RecoveredTask, TaskBatch, TaskStatus,
};

/// How often the runtime's timer ticks: leadership checked, the wait for workers'
/// reports and the status counts looked at.
const TICK_INTERVAL: Duration = Duration::from_millis(5);
/// How often pending task news is proposed through Raft. Nothing waits on it (clients
/// hear of a finished key at once; only deleting released results waits for its
/// commit), so the interval trades a little more recomputation after a leader crash
/// (a worker's hello still reports what it holds) against the cost of every entry on
/// 3 replicas: at 5 ms the replicas' work per entry slowed a chain of tasks by a
/// quarter (330 → 260 µs per task, `cairn bench tasks`).
const RECORD_INTERVAL: Duration = Duration::from_millis(20);
/// How often a replica that does not lead looks whether it leads now.
const FOLLOWER_POLL: Duration = Duration::from_millis(50);
/// How many inputs one burst handles before messages go out.
const MAX_BURST: usize = 4096;
/// How long a new leader waits for the live workers' reports (what they hold and
/// run) before it assigns anything: long enough for a worker to find the new leader
/// and register again, short enough that a worker that died with the old leader
/// does not hold the graph up for long (the registry marks it gone later).
const REPORT_WAIT: Duration = Duration::from_secs(3);
/// A graph of at least this many tasks is handled on blocking threads, not on the
/// server's runtime thread: converted and ordered (`TaskService::submit_graph`), and
/// added to the core here. Adding and placing 100,000 tasks takes 0.1–0.2 s of CPU at
/// once, and on the one runtime thread that silenced the leader's heartbeats for longer
/// than its lease (the followers held an election in the middle of `cairn bench
/// tasks`). Smaller graphs stay on the runtime thread: the hop to another thread and
/// back costs more than they take.
pub(super) const OFFLOADED_GRAPH_TASKS: usize = 5_000;
/// How often recovery counters are recorded through Raft (when they moved).
const COUNTER_INTERVAL: Duration = Duration::from_millis(200);

/// A worker's outgoing task stream.
pub type Outbox = mpsc::UnboundedSender<Result<pb::SchedulerTaskMessage, Status>>;

/// What the runtime is asked to do.
enum Input {
    /// A core event, as is.
    Event(Event),
    /// A graph was committed; chunk inputs are resolved from the state here.
    Submitted {
        client: ClientId,
        tasks: Vec<TaskSpec>,
        wanted: Vec<TaskKey>,
    },
    /// A worker opened its task stream.
    Connect {
        worker: WorkerId,
        nthreads: u32,
        operations: Vec<OpSignature>,
        report: WorkerReport,
        outbox: Outbox,
        connection: u64,
    },
    /// A worker's task stream ended.
    Disconnect { worker: WorkerId, connection: u64 },
    /// The registry marked a worker gone.
    Gone(WorkerId),
    /// A client waits for keys to finish or fail.
    Wait {
        keys: Vec<TaskKey>,
        reply: oneshot::Sender<Vec<pb::TaskResult>>,
    },
    /// A client asks for keys' states now.
    States {
        keys: Vec<TaskKey>,
        reply: oneshot::Sender<Vec<pb::TaskResult>>,
    },
}

/// What a worker says in its hello: the task results it holds (key, bytes, rows) and
/// the tasks it runs.
#[derive(Debug, Default)]
pub struct WorkerReport {
    /// Results in its store.
    pub held: Vec<(TaskKey, u64, u64)>,
    /// Tasks it runs now.
    pub running: Vec<TaskKey>,
}

/// Shared with the gRPC handlers.
#[derive(Debug, Default)]
struct Shared {
    /// The term this runtime currently leads, if any.
    term: Option<u64>,
    /// The operations each connected worker offers.
    operations: BTreeMap<WorkerId, Vec<OpSignature>>,
    /// Task counts for status: (waiting or ready, assigned, in memory, erred).
    counts: (u64, u64, u64, u64),
}

/// The handle the gRPC services use. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inputs: mpsc::UnboundedSender<Input>,
    shared: Arc<Mutex<Shared>>,
    connections: Arc<std::sync::atomic::AtomicU64>,
}

impl Dispatcher {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the runtime for `consensus`; it runs until the process ends.
    pub fn start(consensus: Consensus, config: CoreConfig) -> Dispatcher {
        let (inputs, receiver) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            inputs,
            shared: Arc::default(),
            connections: Arc::default(),
        };
        tokio::spawn(run(consensus, config, receiver, dispatcher.shared.clone()));
        dispatcher
    }

    /// The operations the connected workers offer (their union, by name).
    pub fn operations(&self) -> BTreeMap<String, OpSignature> {
        let shared = self.shared();
        let mut union = BTreeMap::new();
        for signatures in shared.operations.values() {
            for signature in signatures {
                union.entry(signature.name.clone()).or_insert_with(|| signature.clone());
            }
        }
        union
    }

    /// How many workers have their task stream open (as far as operations go).
    pub fn connected_workers(&self) -> usize {
        self.shared().operations.len()
    }

    /// The term this runtime leads in, if it does.
    pub fn term(&self) -> Option<u64> {
        self.shared().term
    }

    /// Task counts (waiting or ready, assigned, in memory, erred) on the leader.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        self.shared().counts
    }

    fn send(&self, input: Input) {
        // The runtime lives as long as the process: a failed send means shutdown.
        let _ = self.inputs.send(input);
    }

    /// A graph was committed.
    pub fn submitted(&self, client: ClientId, tasks: Vec<TaskSpec>, wanted: Vec<TaskKey>) {
        self.send(Input::Submitted { client, tasks, wanted });
    }

    /// Feeds one core event.
    pub fn event(&self, event: Event) {
        self.send(Input::Event(event));
    }

    /// A worker opened its task stream; returns the connection number to give to
    /// [`Dispatcher::disconnect`].
    pub fn connect(
        &self,
        worker: WorkerId,
        nthreads: u32,
        operations: Vec<OpSignature>,
        report: WorkerReport,
        outbox: Outbox,
    ) -> u64 {
        let connection = self.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.send(Input::Connect {
            worker,
            nthreads,
            operations,
            report,
            outbox,
            connection,
        });
        connection
    }

    /// A worker's task stream ended.
    pub fn disconnect(&self, worker: WorkerId, connection: u64) {
        self.send(Input::Disconnect { worker, connection });
    }

    /// The registry marked `worker` gone.
    pub fn worker_gone(&self, worker: WorkerId) {
        self.send(Input::Gone(worker));
    }

    /// Waits until every key is finished or failed; `None` when this replica stopped
    /// leading meanwhile.
    pub async fn wait(&self, keys: Vec<TaskKey>) -> Option<Vec<pb::TaskResult>> {
        let (reply, answer) = oneshot::channel();
        self.send(Input::Wait { keys, reply });
        answer.await.ok()
    }

    /// The keys' states now; `None` when this replica does not lead.
    pub async fn states(&self, keys: Vec<TaskKey>) -> Option<Vec<pb::TaskResult>> {
        let (reply, answer) = oneshot::channel();
        self.send(Input::States { keys, reply });
        answer.await.ok()
    }
}

/// One connected worker.
struct Connection {
    outbox: Outbox,
    connection: u64,
}

/// A client waiting on keys.
struct Waiter {
    keys: Vec<TaskKey>,
    remaining: HashSet<TaskKey>,
    reply: oneshot::Sender<Vec<pb::TaskResult>>,
}

/// Messages to one worker, gathered over a burst.
#[derive(Default)]
struct Outgoing {
    assign: Vec<pb::Assignment>,
    cancel: Vec<String>,
    release: Vec<String>,
}

impl Outgoing {
    /// Adds `later`'s messages after these.
    fn append(&mut self, later: Outgoing) {
        self.assign.extend(later.assign);
        self.cancel.extend(later.cancel);
        self.release.extend(later.release);
    }
}

/// The runtime while this replica leads in one term.
struct Reign {
    term: u64,
    core: Core,
    consensus: Consensus,
    connections: HashMap<WorkerId, Connection>,
    /// Messages for workers not (yet) connected: sent when they connect.
    backlog: HashMap<WorkerId, Outgoing>,
    outgoing: HashMap<WorkerId, Outgoing>,
    addresses: HashMap<WorkerId, String>,
    waiters: HashMap<u64, Waiter>,
    waiting_on: HashMap<TaskKey, Vec<u64>>,
    next_waiter: u64,
    proposals: mpsc::UnboundedSender<(TaskBatch, Releases)>,
    /// Releases decided since the last proposal: they go out after it commits.
    held_releases: Releases,
}

/// Results to delete, per worker.
type Releases = Vec<(WorkerId, Vec<String>)>;

async fn run(
    consensus: Consensus,
    config: CoreConfig,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    shared: Arc<Mutex<Shared>>,
) {
    let set_term = |term: Option<u64>| {
        let mut guard = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.term = term;
        if term.is_none() {
            guard.operations.clear();
        }
    };
    loop {
        // Not leading: refuse what needs a leader, until this replica leads.
        let term = loop {
            if let Some(term) = consensus.replica.leading_term() {
                if consensus.read_barrier().await.is_ok() && consensus.replica.leading_term() == Some(term) {
                    break term;
                }
            }
            match tokio::time::timeout(FOLLOWER_POLL, inputs.recv()).await {
                Ok(None) => return,
                Ok(Some(Input::Connect { outbox, .. })) => {
                    let _ = outbox.send(Err(Status::unavailable("this scheduler does not lead")));
                }
                Ok(Some(_)) | Err(_) => {}
            }
        };
        tracing::info!(term, "task runtime leading");
        set_term(Some(term));
        let (proposals, proposal_receiver) = mpsc::unbounded_channel();
        let (committed, mut committed_releases) = mpsc::unbounded_channel();
        let proposer = tokio::spawn(propose_batches(consensus.clone(), proposal_receiver, committed));
        // Off the runtime thread too: rebuilding a big task table takes a while.
        let reading = consensus.clone();
        let rebuilt = tokio::task::spawn_blocking(move || {
            let (recovered, addresses) = reading.state.read(recover);
            let (core, decisions) = Core::rebuild(config, recovered, true);
            (core, decisions, addresses)
        })
        .await;
        let Ok((core, decisions, addresses)) = rebuilt else {
            tracing::error!(term, "rebuilding the scheduling core failed; trying again");
            proposer.abort();
            set_term(None);
            tokio::time::sleep(FOLLOWER_POLL).await;
            continue;
        };
        let reign_started = tokio::time::Instant::now();
        let mut counters = RecoveryCounters {
            failovers: 1,
            ..RecoveryCounters::default()
        };
        let mut counters_recorded = reign_started;
        let mut reign = Reign {
            term,
            core,
            consensus: consensus.clone(),
            connections: HashMap::new(),
            backlog: HashMap::new(),
            outgoing: HashMap::new(),
            addresses,
            waiters: HashMap::new(),
            waiting_on: HashMap::new(),
            next_waiter: 0,
            proposals,
            held_releases: Vec::new(),
        };
        reign.perform(decisions);
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recorded = reign_started;
        loop {
            tokio::select! {
                input = inputs.recv() => {
                    let Some(input) = input else {
                        proposer.abort();
                        return;
                    };
                    let input = match input {
                        Input::Submitted { client, tasks, wanted } if tasks.len() >= OFFLOADED_GRAPH_TASKS => {
                            let event = reign.graph_submitted(client, tasks, wanted);
                            let mut core = std::mem::replace(&mut reign.core, Core::new(config));
                            let handled = tokio::task::spawn_blocking(move || {
                                let decisions = core.handle(event);
                                (core, decisions)
                            })
                            .await;
                            let Ok((core, decisions)) = handled else {
                                // The core is gone with the thread: a new reign
                                // rebuilds it from what is recorded.
                                tracing::error!(term, "adding a graph to the scheduling core failed; starting over");
                                break;
                            };
                            reign.core = core;
                            reign.perform(decisions);
                            reign.send_outgoing();
                            continue;
                        }
                        input => input,
                    };
                    reign.handle(input, &shared);
                    let mut handled = 1;
                    while handled < MAX_BURST {
                        match inputs.try_recv() {
                            Ok(input) => reign.handle(input, &shared),
                            Err(_) => break,
                        }
                        handled += 1;
                    }
                    reign.send_outgoing();
                }
                Some(releases) = committed_releases.recv() => {
                    for (worker, keys) in releases {
                        reign.outgoing_for(worker).release.extend(keys);
                    }
                    reign.send_outgoing();
                }
                _ = tick.tick() => {
                    if consensus.replica.leading_term() != Some(term) {
                        break;
                    }
                    if reign.core.awaiting_reports() > 0 && reign_started.elapsed() >= REPORT_WAIT {
                        tracing::warn!(
                            term,
                            missing = reign.core.awaiting_reports(),
                            "some live workers did not report in time; scheduling without them"
                        );
                        let decisions = reign.core.handle(Event::StopWaitingForReports);
                        reign.perform(decisions);
                    }
                    if recorded.elapsed() >= RECORD_INTERVAL {
                        recorded = tokio::time::Instant::now();
                        let decisions = reign.core.handle(Event::Flush);
                        reign.perform(decisions);
                        reign.send_outgoing();
                    }
                    let recovered = reign.core.take_recovery();
                    counters.tasks_recomputed += recovered.tasks_recomputed;
                    counters.chunks_reregistered += recovered.chunks_reregistered;
                    if counters != RecoveryCounters::default() && counters_recorded.elapsed() >= COUNTER_INTERVAL {
                        counters_recorded = tokio::time::Instant::now();
                        record_counters(&consensus, std::mem::take(&mut counters));
                    }
                    let counts = reign.core.counts();
                    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).counts = counts;
                }
            }
        }
        if counters != RecoveryCounters::default() {
            record_counters(&consensus, counters);
        }
        tracing::info!(term, "task runtime no longer leading");
        set_term(None);
        proposer.abort();
        // Dropping the reign closes every worker stream and every client wait.
        drop(reign);
    }
}

/// The replicated task table and registry as the core's starting point, and the
/// registered workers' addresses.
fn recover(state: &ControlState) -> (Recovered, HashMap<WorkerId, String>) {
    let mut tasks: Vec<RecoveredTask> = state
        .tasks()
        .iter()
        .map(|(_, record)| RecoveredTask {
            spec: record.spec.clone(),
            order: record.order,
            result: match &record.outcome {
                TaskOutcome::Finished { workers, bytes, rows } => Some((workers.clone(), *bytes, *rows)),
                TaskOutcome::Pending | TaskOutcome::Erred(_) => None,
            },
            error: match &record.outcome {
                TaskOutcome::Erred(failure) => Some(failure.clone()),
                TaskOutcome::Pending | TaskOutcome::Finished { .. } => None,
            },
            wanted_by: record.wanted_by.iter().copied().collect(),
        })
        .collect();
    tasks.sort_by_key(|task| task.order);
    let workers = state
        .workers()
        .into_iter()
        .filter(|record| record.state == WorkerState::Alive)
        .map(|record| (record.worker, record.nthreads))
        .collect();
    let chunks = external_chunks(state, tasks.iter().map(|task| &task.spec));
    let pinned = state
        .pinned_keys()
        .filter_map(|key| TaskKey::parse(key).ok())
        .filter(|key| state.tasks().contains(key))
        .collect();
    let addresses = state
        .workers()
        .into_iter()
        .map(|record| (record.worker, record.addr.clone()))
        .collect();
    (
        Recovered {
            tasks,
            workers,
            pinned,
            chunks,
        },
        addresses,
    )
}

/// The published chunks `tasks` read, with their sizes and locations.
fn external_chunks<'a>(state: &ControlState, tasks: impl Iterator<Item = &'a TaskSpec>) -> Vec<ExternalChunk> {
    let mut seen = HashSet::new();
    let mut chunks = Vec::new();
    for task in tasks {
        for key in task.chunk_inputs() {
            if !seen.insert(key.to_string()) {
                continue;
            }
            if let Some((bytes, locations)) = state.chunk_location(key) {
                let live = locations
                    .into_iter()
                    .filter(|worker| {
                        state
                            .worker(worker)
                            .is_some_and(|record| record.state == WorkerState::Alive)
                    })
                    .collect();
                chunks.push(ExternalChunk {
                    key: key.to_string(),
                    bytes,
                    locations: live,
                });
            }
        }
    }
    chunks
}

/// Adds to the replicated recovery counters (in the background: increments commute,
/// and a leader that loses its term loses only what it had not recorded).
fn record_counters(consensus: &Consensus, counters: RecoveryCounters) {
    let consensus = consensus.clone();
    tokio::spawn(async move {
        if let Err(error) = consensus.propose(&ControlCommand::CountRecovery { counters }).await {
            tracing::debug!(%error, ?counters, "cannot record recovery counters");
        }
    });
}

/// Proposes batches in order, merging those that queued up behind a proposal.
async fn propose_batches(
    consensus: Consensus,
    mut batches: mpsc::UnboundedReceiver<(TaskBatch, Releases)>,
    committed: mpsc::UnboundedSender<Releases>,
) {
    while let Some((batch, mut releases)) = batches.recv().await {
        // Batches that queued up behind a proposal go in one entry, still in order.
        let mut queued = vec![batch];
        while let Ok((more, more_releases)) = batches.try_recv() {
            queued.push(more);
            releases.extend(more_releases);
        }
        let updates: usize = queued.iter().map(TaskBatch::len).sum();
        match consensus
            .propose(&ControlCommand::RecordTasks { batches: queued })
            .await
        {
            Ok(_) => {
                // A result a published dataset refers to stays (belt and braces: the
                // core is told about pins too).
                let releases: Releases = consensus.state.read(|state| {
                    releases
                        .into_iter()
                        .map(|(worker, keys)| (worker, keys.into_iter().filter(|key| !state.is_pinned(key)).collect()))
                        .filter(|(_, keys): &(WorkerId, Vec<String>)| !keys.is_empty())
                        .collect()
                });
                if !releases.is_empty() {
                    let _ = committed.send(releases);
                }
            }
            Err(error) => {
                // The next leader rebuilds from what was recorded and recomputes the
                // rest; the results not released stay until the heartbeat backstop.
                tracing::warn!(%error, updates, "cannot record a batch of task news");
            }
        }
    }
}

/// A worker's operations no longer count for graph validation (its stream closed,
/// or it is gone); its next hello brings them back.
fn forget_operations(worker: WorkerId, shared: &Arc<Mutex<Shared>>) {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .operations
        .remove(&worker);
}

impl Reign {
    /// The core's event for a committed graph: its chunk inputs resolved from the
    /// state (and the workers' addresses refreshed).
    fn graph_submitted(&mut self, client: ClientId, tasks: Vec<TaskSpec>, wanted: Vec<TaskKey>) -> Event {
        let chunks = self.consensus.state.read(|state| {
            for record in state.workers() {
                self.addresses.insert(record.worker, record.addr.clone());
            }
            external_chunks(state, tasks.iter())
        });
        Event::GraphSubmitted {
            client,
            tasks,
            wanted,
            chunks,
        }
    }

    fn handle(&mut self, input: Input, shared: &Arc<Mutex<Shared>>) {
        match input {
            Input::Event(event) => {
                let decisions = self.core.handle(event);
                self.perform(decisions);
            }
            Input::Submitted { client, tasks, wanted } => {
                let event = self.graph_submitted(client, tasks, wanted);
                let decisions = self.core.handle(event);
                self.perform(decisions);
            }
            Input::Connect {
                worker,
                nthreads,
                operations,
                report,
                outbox,
                connection,
            } => {
                if let Some(addr) = self
                    .consensus
                    .state
                    .read(|state| state.worker(&worker).map(|record| record.addr.clone()))
                {
                    self.addresses.insert(worker, addr);
                }
                tracing::info!(
                    %worker,
                    nthreads,
                    operations = operations.len(),
                    held = report.held.len(),
                    running = report.running.len(),
                    term = self.term,
                    "worker task stream open"
                );
                shared
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .operations
                    .insert(worker, operations);
                if let Some(previous) = self.connections.insert(worker, Connection { outbox, connection }) {
                    drop(previous);
                }
                // The worker dropped its queue when it opened the stream: assignments
                // and cancels kept for it are moot (the core gives back what it does not
                // run); deletions still go.
                if let Some(backlog) = self.backlog.remove(&worker) {
                    self.outgoing.entry(worker).or_default().release.extend(backlog.release);
                }
                // The core reconciles its books with what the worker holds and runs:
                // nothing a live worker holds is computed again.
                let decisions = self.core.handle(Event::WorkerReported {
                    worker,
                    nthreads,
                    held: report.held,
                    running: report.running,
                });
                self.perform(decisions);
            }
            Input::Disconnect { worker, connection } => {
                let current = self.connections.get(&worker).map(|open| open.connection);
                if current != Some(connection) {
                    return;
                }
                tracing::warn!(
                    %worker,
                    "worker task stream closed; its tasks go elsewhere, its results stay until it reconnects or is marked gone"
                );
                self.connections.remove(&worker);
                // Assignments and cancels kept for it are moot (it drops its queue
                // when it reconnects); deletions still go then.
                if let Some(backlog) = self.backlog.get_mut(&worker) {
                    backlog.assign.clear();
                    backlog.cancel.clear();
                }
                forget_operations(worker, shared);
                let decisions = self.core.handle(Event::WorkerDisconnected { worker });
                self.perform(decisions);
            }
            Input::Gone(worker) => self.worker_gone(worker, shared),
            Input::Wait { keys, reply } => self.wait(keys, reply),
            Input::States { keys, reply } => {
                let results = keys.iter().map(|key| self.result(key)).collect();
                let _ = reply.send(results);
            }
        }
    }

    /// The registry marked a worker gone: its connection, queued messages and
    /// advertised operations go, and the core moves its work and loses its results.
    fn worker_gone(&mut self, worker: WorkerId, shared: &Arc<Mutex<Shared>>) {
        self.connections.remove(&worker);
        self.backlog.remove(&worker);
        forget_operations(worker, shared);
        let decisions = self.core.handle(Event::WorkerGone { worker });
        self.perform(decisions);
    }

    fn wait(&mut self, keys: Vec<TaskKey>, reply: oneshot::Sender<Vec<pb::TaskResult>>) {
        let remaining: HashSet<TaskKey> = keys
            .iter()
            .filter(|key| {
                matches!(
                    self.core.task_status(key),
                    Some(TaskStatus::Waiting | TaskStatus::Ready | TaskStatus::Assigned(_))
                )
            })
            .cloned()
            .collect();
        if remaining.is_empty() {
            let results = keys.iter().map(|key| self.result(key)).collect();
            let _ = reply.send(results);
            return;
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        for key in &remaining {
            self.waiting_on.entry(key.clone()).or_default().push(id);
        }
        self.waiters.insert(id, Waiter { keys, remaining, reply });
    }

    /// What a client is told about `key`.
    fn result(&self, key: &TaskKey) -> pb::TaskResult {
        let mut result = pb::TaskResult {
            key: key.to_string(),
            ..Default::default()
        };
        match self.core.task_status(key) {
            None => result.state = "unknown".to_string(),
            Some(TaskStatus::Waiting | TaskStatus::Ready | TaskStatus::Assigned(_)) => {
                result.state = "pending".to_string()
            }
            Some(TaskStatus::Memory { holders, bytes, rows }) => {
                result.state = "memory".to_string();
                result.bytes = bytes;
                result.rows = rows;
                result.locations = holders
                    .iter()
                    .map(|worker| pb::ChunkLocation {
                        worker_id: worker.to_string(),
                        addr: self.addresses.get(worker).cloned().unwrap_or_default(),
                        live: self.connections.contains_key(worker),
                    })
                    .collect();
            }
            Some(TaskStatus::Erred(failure)) => {
                result.state = "erred".to_string();
                result.error_task = failure.task.to_string();
                result.error_message = failure.message;
            }
        }
        result
    }

    fn location(&self, input: InputLocation) -> pb::InputLocation {
        pb::InputLocation {
            key: input.key,
            holders: input
                .workers
                .iter()
                .map(|worker| pb::ChunkLocation {
                    worker_id: worker.to_string(),
                    addr: self.addresses.get(worker).cloned().unwrap_or_default(),
                    live: true,
                })
                .collect(),
        }
    }

    fn outgoing_for(&mut self, worker: WorkerId) -> &mut Outgoing {
        if self.connections.contains_key(&worker) {
            self.outgoing.entry(worker).or_default()
        } else {
            self.backlog.entry(worker).or_default()
        }
    }

    fn perform(&mut self, decisions: Vec<Decision>) {
        for decision in decisions {
            match decision {
                Decision::Assign {
                    worker,
                    task,
                    inputs,
                    priority,
                } => {
                    let assignment = pb::Assignment {
                        task: Some(task_to_wire(&task)),
                        inputs: inputs.into_iter().map(|input| self.location(input)).collect(),
                        priority,
                    };
                    self.outgoing_for(worker).assign.push(assignment);
                }
                Decision::Cancel { worker, key } => self.outgoing_for(worker).cancel.push(key.to_string()),
                Decision::Release { worker, keys } => {
                    // Deleted only once the batch that records the release commits:
                    // a new leader must never trust a copy that is already gone.
                    // (No look at the replicated state here: `apply` holds it while it
                    // records a batch, and the runtime must not wait on that.)
                    let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
                    if !keys.is_empty() {
                        self.held_releases.push((worker, keys));
                    }
                }
                Decision::Propose(batch) => {
                    let releases = std::mem::take(&mut self.held_releases);
                    let _ = self.proposals.send((batch, releases));
                }
                Decision::Done { key, .. } => self.wake(&key),
            }
        }
    }

    fn wake(&mut self, key: &TaskKey) {
        let Some(ids) = self.waiting_on.remove(key) else {
            return;
        };
        for id in ids {
            let finished = match self.waiters.get_mut(&id) {
                Some(waiter) => {
                    waiter.remaining.remove(key);
                    waiter.remaining.is_empty() || waiter.reply.is_closed()
                }
                None => false,
            };
            if finished {
                if let Some(waiter) = self.waiters.remove(&id) {
                    for other in &waiter.remaining {
                        if let Some(ids) = self.waiting_on.get_mut(other) {
                            ids.retain(|waiting| *waiting != id);
                        }
                    }
                    let results = waiter.keys.iter().map(|key| self.result(key)).collect();
                    let _ = waiter.reply.send(results);
                }
            }
        }
    }

    fn send_outgoing(&mut self) {
        for (worker, outgoing) in std::mem::take(&mut self.outgoing) {
            let Some(connection) = self.connections.get(&worker) else {
                self.backlog.entry(worker).or_default().append(outgoing);
                continue;
            };
            let message = pb::SchedulerTaskMessage {
                term: self.term,
                assign: outgoing.assign,
                cancel: outgoing.cancel,
                release: outgoing.release,
            };
            // A closed stream shows up as a Disconnect input soon.
            let _ = connection.outbox.send(Ok(message));
        }
    }
}
