//! Performs the task queue's instructions on `--nthreads` dedicated threads, off the
//! async runtime: a thread takes a task, reads its inputs from the local store (or
//! uses those fetched from peers beforehand, asynchronously, over Arrow Flight),
//! runs its operation, stores the result under the task's key, reports, and takes
//! the next one — no hand-off to the async runtime between tasks, so a burst of
//! small tasks costs one queue operation each.
//!
//! A light operation (see [`crate::ops::Operation::is_light`]) whose inputs are all
//! in memory here and small runs at once on the thread that received its assignment
//! instead: the hand-off to a task thread and of its report back cost two thread
//! wake-ups, more than such a task's work (a chain of `inc` went from about 180 to
//! 150 µs per task).

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use cairn_client::{literal_from_wire, Client};
use cairn_proto::v1 as pb;
use tokio::sync::mpsc;

use super::queue::{Instruction, TaskQueue};
use crate::ops::{OpContext, OpRegistry, OpValue};
use crate::store::{batch_memory_bytes, ChunkStore, StoreError};
use crate::ChunkKey;

/// How many tasks may be started (fetching inputs, or queued for a thread) per
/// thread.
const STARTED_PER_THREAD: usize = 4;

/// How long a task keeps trying to fetch an input from its holders (longer than the
/// schedulers' default worker timeout, so a silent holder is declared gone, and the
/// task cancelled and placed again, before the fetch gives up).
const FETCH_PATIENCE: Duration = Duration::from_secs(15);

/// How long a result waits for a paused store to resume before the task fails.
const PAUSED_RESULT_WAIT: Duration = Duration::from_secs(60);

/// A light operation runs on the receiving thread when its inputs total at most this
/// many bytes (and the store has room for twice as much more): tens of µs of work at
/// most, which the worker's event loop can afford.
const INLINE_INPUT_BYTES: u64 = 64 * 1024;

/// At most this many light tasks run on the calling thread per [`perform`]: each one
/// that ends may start the next queued task there too (no hop to a task thread and
/// back per task), but the receiving thread must get back to its event loop; the
/// rest go to the task threads.
const INLINE_TASKS_PER_CALL: usize = 64;

/// Where [`perform`] runs a task whose inputs are all here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On a task thread.
    Threads,
    /// On the calling thread if the task is light and small, else on a task thread.
    HereIfLight,
}

/// What running a task's operation came to, before its result is stored.
enum Computed {
    /// The result was in the store already: its (bytes, rows).
    Stored((u64, u64)),
    /// The result, to store under the key.
    Result(ChunkKey, RecordBatch),
    /// Not run: an input gone from here is held by none of its holders either.
    InputMissing {
        /// The input.
        input: String,
        /// The worker ids that said they do not hold it.
        holders: Vec<String>,
    },
}

/// What a task came to, for the leader.
#[derive(Debug, Clone)]
pub enum Report {
    /// The result is in the store.
    Finished {
        /// The task's key.
        key: String,
        /// Its size in memory.
        bytes: u64,
        /// Its rows.
        rows: u64,
    },
    /// The operation failed (or an input could not be had).
    Erred {
        /// The task's key.
        key: String,
        /// Why, as the operation said it.
        message: String,
    },
    /// A queued assignment was dropped as asked.
    Cancelled(String),
    /// The task was dropped before it ran: every holder of an input answered that it
    /// does not hold it (the leader's books are stale). Not a failure of the task:
    /// the leader drops those holders and places it again.
    InputMissing {
        /// The task's key.
        key: String,
        /// The input.
        input: String,
        /// The worker ids that said they do not hold it.
        holders: Vec<String>,
    },
}

/// Why an input could not be had from its holders.
enum FetchFailure {
    /// Each holder answered that it does not hold it.
    Missing {
        /// Their worker ids.
        holders: Vec<String>,
    },
    /// Holders failed otherwise (unreachable, or a bad answer) until the patience ran
    /// out, or the task was cancelled.
    Failed(String),
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchFailure::Missing { holders } => write!(f, "not held by {}", holders.join(", ")),
            FetchFailure::Failed(message) => f.write_str(message),
        }
    }
}

/// A task ready to run on a thread: its inputs are local or fetched.
struct Job {
    assignment: pb::Assignment,
    cancelled: Arc<AtomicBool>,
    /// Inputs fetched from peers (the others are read from the local store).
    fetched: HashMap<String, RecordBatch>,
    /// Why an input could not be fetched: the task fails with it.
    fetch_error: Option<String>,
}

/// The threads' work queue.
#[derive(Default)]
struct Jobs {
    queue: Mutex<JobQueue>,
    ready: Condvar,
}

#[derive(Default)]
struct JobQueue {
    jobs: VecDeque<Job>,
    /// Set when the executor is dropped: the threads exit.
    closed: bool,
}

struct Inner {
    queue: Mutex<TaskQueue>,
    store: ChunkStore,
    registry: Arc<OpRegistry>,
    /// For fetching inputs from peers (its channels are reused per peer); the link's
    /// current client.
    client: Mutex<Option<Client>>,
    /// The stream reports go to; none between leaders (reports are then dropped: the
    /// next leader assigns again, and a result already stored answers at once).
    reporter: Mutex<Option<mpsc::UnboundedSender<Report>>>,
    jobs: Arc<Jobs>,
    /// The async runtime, for fetches and store deletes.
    runtime: tokio::runtime::Handle,
    /// Operations run to completion since the process started (not counting
    /// assignments answered from the store, or operations that failed or were
    /// cancelled).
    tasks_run: std::sync::atomic::AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        lock(&self.jobs.queue).closed = true;
        self.jobs.ready.notify_all();
    }
}

/// Runs tasks. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Executor {
    /// An executor running `nthreads` tasks at once on threads of its own. Must be
    /// called inside a tokio runtime.
    pub fn new(nthreads: usize, store: ChunkStore, registry: Arc<OpRegistry>) -> Executor {
        let executor = Executor {
            inner: Arc::new(Inner {
                // More tasks started than threads: a task fetching inputs from peers
                // does not hold a thread, so the threads keep busy meanwhile.
                queue: Mutex::new(TaskQueue::new(nthreads.max(1) * STARTED_PER_THREAD)),
                store,
                registry,
                client: Mutex::new(None),
                reporter: Mutex::new(None),
                jobs: Arc::new(Jobs::default()),
                runtime: tokio::runtime::Handle::current(),
                tasks_run: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        for index in 0..nthreads.max(1) {
            let weak = Arc::downgrade(&executor.inner);
            let jobs = executor.inner.jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cairn-task-{index}"))
                .spawn(move || task_thread(jobs, weak));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a task thread");
            }
        }
        executor
    }

    /// The operations this worker offers.
    pub fn registry(&self) -> &OpRegistry {
        &self.inner.registry
    }

    /// Where reports go from now on, and the client that fetches inputs.
    pub fn set_link(&self, client: Option<Client>, reporter: Option<mpsc::UnboundedSender<Report>>) {
        if client.is_some() {
            *lock(&self.inner.client) = client;
        }
        *lock(&self.inner.reporter) = reporter;
    }

    /// How many tasks wait and run.
    pub fn load(&self) -> (usize, usize) {
        lock(&self.inner.queue).load()
    }

    /// How many operations this process has run.
    pub fn tasks_run(&self) -> u64 {
        self.inner.tasks_run.load(Ordering::Relaxed)
    }

    /// A task stream opens: queued assignments are dropped; returns the started ones
    /// (see [`TaskQueue::reopen`]).
    pub fn reopen(&self) -> Vec<String> {
        lock(&self.inner.queue).reopen()
    }

    /// The results in the store, as a hello reports them (every chunk: the leader
    /// keeps those that are results of its tasks).
    pub fn held(&self) -> Vec<pb::TaskFinished> {
        self.inner
            .store
            .chunks()
            .into_iter()
            .map(|chunk| pb::TaskFinished {
                key: chunk.key.to_string(),
                bytes: chunk.memory_bytes,
                rows: chunk.rows,
            })
            .collect()
    }

    /// Handles one message from the leader.
    pub fn receive(&self, message: pb::SchedulerTaskMessage) {
        let instructions = lock(&self.inner.queue).receive(message);
        perform(&self.inner, instructions, Place::HereIfLight);
    }
}

fn report(inner: &Inner, report: Report) {
    if let Some(reporter) = lock(&inner.reporter).as_ref() {
        let _ = reporter.send(report);
    }
}

fn enqueue(inner: &Inner, job: Job) {
    lock(&inner.jobs.queue).jobs.push_back(job);
    inner.jobs.ready.notify_one();
}

fn perform(inner: &Arc<Inner>, instructions: Vec<Instruction>, place: Place) {
    let mut pending = VecDeque::from(instructions);
    let mut inline_budget = match place {
        Place::HereIfLight => INLINE_TASKS_PER_CALL,
        Place::Threads => 0,
    };
    while let Some(instruction) = pending.pop_front() {
        match instruction {
            Instruction::Start { assignment, cancelled } => {
                let place = if inline_budget > 0 { place } else { Place::Threads };
                if let Some(next) = start(inner, assignment, cancelled, place) {
                    // It ran here: what its end lets start comes next, in order.
                    inline_budget -= 1;
                    pending.extend(next);
                }
            }
            Instruction::ReportCancelled(key) => report(inner, Report::Cancelled(key)),
            Instruction::Release(keys) => {
                // A result only in memory is forgotten here and now: a start of the
                // same key that follows (in this message or a later one) computes it
                // again instead of answering "already stored" from a copy about to
                // be deleted. Results with a file go on a blocking thread (unlink and
                // directory fsync).
                let with_files: Vec<ChunkKey> = keys
                    .iter()
                    .filter_map(|key| ChunkKey::parse(key).ok())
                    .filter(|chunk| !inner.store.delete_if_in_memory_only(chunk))
                    .collect();
                if with_files.is_empty() {
                    continue;
                }
                let store = inner.store.clone();
                inner.runtime.spawn_blocking(move || {
                    for chunk in with_files {
                        if let Err(error) = store.delete(&chunk) {
                            tracing::warn!(key = %chunk, %error, "cannot release a task result");
                        }
                    }
                });
            }
        }
    }
}

/// Queues a task for the threads: at once when its inputs are all here (or runs it
/// now, if `place` allows and it is light and small), else after fetching the others
/// from peers (asynchronously, so no thread waits on the network). When it ran here,
/// returns what its end lets start (for the caller to perform).
fn start(
    inner: &Arc<Inner>,
    assignment: pb::Assignment,
    cancelled: Arc<AtomicBool>,
    place: Place,
) -> Option<Vec<Instruction>> {
    let mut job = Job {
        assignment,
        cancelled,
        fetched: HashMap::new(),
        fetch_error: None,
    };
    // Looked at first: it reads each input from the store once, so a light task's
    // inputs are not looked up a second time below.
    if place == Place::HereIfLight {
        if let Some(inputs) = small_inputs_in_memory(inner, &job) {
            job.fetched = inputs;
            return Some(run_here(inner, job));
        }
    }
    let remote: Vec<pb::InputLocation> = job
        .assignment
        .inputs
        .iter()
        .filter(|input| ChunkKey::parse(&input.key).is_ok_and(|key| !inner.store.contains(&key)))
        .cloned()
        .collect();
    if remote.is_empty() {
        enqueue(inner, job);
        return None;
    }
    let inner = inner.clone();
    let runtime = inner.runtime.clone();
    runtime.spawn(async move {
        let mut job = job;
        let fetches = remote.iter().map(|input| fetch(&inner, input, &job.cancelled));
        for (input, fetched) in remote.iter().zip(futures::future::join_all(fetches).await) {
            match fetched {
                Ok(batch) => {
                    job.fetched.insert(input.key.clone(), batch);
                }
                Err(FetchFailure::Missing { holders }) if !job.cancelled.load(Ordering::Relaxed) => {
                    let next = give_back(&inner, job_key(&job), input.key.clone(), holders);
                    perform(&inner, next, Place::Threads);
                    return;
                }
                Err(failure) => {
                    job.fetch_error = Some(format!("cannot fetch input '{}': {failure}", input.key));
                    break;
                }
            }
        }
        enqueue(&inner, job);
    });
    None
}

/// The inputs of a light task when they are all in memory here, total at most
/// [`INLINE_INPUT_BYTES`], and the store has room for the result without spilling or
/// waiting; `None` if the task must go to a task thread.
fn small_inputs_in_memory(inner: &Inner, job: &Job) -> Option<HashMap<String, RecordBatch>> {
    let task = job.assignment.task.as_ref()?;
    if !inner.registry.is_light(&task.op) || !inner.store.has_room_for(2 * INLINE_INPUT_BYTES) {
        return None;
    }
    let mut inputs = HashMap::with_capacity(job.assignment.inputs.len());
    let mut total_bytes = 0;
    for input in &job.assignment.inputs {
        let batch = inner.store.get_if_in_memory(&ChunkKey::parse(&input.key).ok()?)?;
        total_bytes += batch_memory_bytes(&batch);
        if total_bytes > INLINE_INPUT_BYTES {
            return None;
        }
        inputs.insert(input.key.clone(), batch);
    }
    Some(inputs)
}

/// Runs a light task on this (the receiving) thread, its inputs all in `job.fetched`;
/// returns what its end lets start. If the store was paused since
/// [`small_inputs_in_memory`] looked, the result waits for it on a blocking thread,
/// not here.
fn run_here(inner: &Arc<Inner>, job: Job) -> Vec<Instruction> {
    let key = job_key(&job);
    let cancelled = job.cancelled.clone();
    let outcome = match compute(inner, job) {
        Ok(Computed::InputMissing { input, holders }) => return give_back(inner, key, input, holders),
        Ok(Computed::Stored(outcome)) => Ok(outcome),
        Ok(Computed::Result(chunk, batch)) => match inner.store.put(chunk.clone(), batch.clone()) {
            Ok(stored) => Ok((stored.memory_bytes, stored.rows)),
            Err(StoreError::Paused { .. }) => {
                let inner = inner.clone();
                let runtime = inner.runtime.clone();
                runtime.spawn_blocking(move || {
                    let outcome = store_result(&inner, chunk, batch);
                    let next = finish(&inner, key, &cancelled, outcome);
                    perform(&inner, next, Place::Threads);
                });
                return Vec::new();
            }
            Err(error) => Err(format!("cannot store the result: {error}")),
        },
        Err(message) => Err(message),
    };
    finish(inner, key, &cancelled, outcome)
}

/// One input from the first holder that answers. A holder that fails may be dying:
/// the fetch tries again (with backoff) until the leader notices, re-runs the input
/// elsewhere and cancels this task — so a lost input does not fail the task — or
/// until [`FETCH_PATIENCE`] runs out. When every holder answers that it does not hold
/// the input, asking again would not help: [`FetchFailure::Missing`] at once.
async fn fetch(inner: &Inner, input: &pb::InputLocation, cancelled: &AtomicBool) -> Result<RecordBatch, FetchFailure> {
    let deadline = Instant::now() + FETCH_PATIENCE;
    let mut pause = Duration::from_millis(20);
    let mut last_error = "no worker holds it".to_string();
    loop {
        let client = lock(&inner.client)
            .clone()
            .ok_or_else(|| FetchFailure::Failed("this worker is not linked to the cluster".to_string()))?;
        let mut not_holding = Vec::new();
        for holder in &input.holders {
            match client.read_chunk_from(&holder.addr, &input.key).await {
                Ok(batch) => return Ok(batch),
                Err(error) => {
                    if matches!(error, cairn_client::Error::NotFound { .. }) {
                        not_holding.push(holder.worker_id.clone());
                    }
                    last_error = error.to_string();
                }
            }
        }
        if !input.holders.is_empty() && not_holding.len() == input.holders.len() {
            return Err(FetchFailure::Missing { holders: not_holding });
        }
        if cancelled.load(Ordering::Relaxed) || Instant::now() + pause >= deadline {
            return Err(FetchFailure::Failed(last_error));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// One task thread: runs jobs until the executor is gone (it holds the executor
/// only while running a job, so dropping the executor ends the threads).
fn task_thread(jobs: Arc<Jobs>, inner: std::sync::Weak<Inner>) {
    loop {
        let job = {
            let mut queue = lock(&jobs.queue);
            loop {
                if queue.closed {
                    return;
                }
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                queue = jobs.ready.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        run_job(&strong, job);
    }
}

/// The key of a job's task.
fn job_key(job: &Job) -> String {
    job.assignment
        .task
        .as_ref()
        .map(|task| task.key.clone())
        .unwrap_or_default()
}

/// Runs a job on this task thread, waiting for a paused store if need be.
fn run_job(inner: &Arc<Inner>, job: Job) {
    let key = job_key(&job);
    let cancelled = job.cancelled.clone();
    let outcome = match job.fetch_error.clone() {
        Some(message) => Err(message),
        None => match compute(inner, job) {
            Ok(Computed::InputMissing { input, holders }) => {
                let next = give_back(inner, key, input, holders);
                perform(inner, next, Place::HereIfLight);
                return;
            }
            Ok(Computed::Stored(outcome)) => Ok(outcome),
            Ok(Computed::Result(chunk, batch)) => store_result(inner, chunk, batch),
            Err(message) => Err(message),
        },
    };
    // A task thread may run light successors itself, as the receiving thread does.
    let next = finish(inner, key, &cancelled, outcome);
    perform(inner, next, Place::HereIfLight);
}

/// Gives a task back to the leader without running it: every holder of `input`
/// answered that it does not hold it ([`Report::InputMissing`]); returns what its end
/// lets start.
fn give_back(inner: &Arc<Inner>, key: String, input: String, holders: Vec<String>) -> Vec<Instruction> {
    tracing::info!(%key, %input, ?holders, "an input is not where the leader said: giving the task back");
    report(
        inner,
        Report::InputMissing {
            key: key.clone(),
            input,
            holders,
        },
    );
    lock(&inner.queue).ended(&key)
}

/// Reports a task's outcome (its result's (bytes, rows), or why it failed); returns
/// what its end lets start, for the caller to [`perform`].
fn finish(
    inner: &Arc<Inner>,
    key: String,
    cancelled: &AtomicBool,
    outcome: Result<(u64, u64), String>,
) -> Vec<Instruction> {
    let outcome_report = match outcome {
        Ok((bytes, rows)) => Report::Finished {
            key: key.clone(),
            bytes,
            rows,
        },
        // Cancelled while running (the leader moved it elsewhere): not a failure.
        Err(_) if cancelled.load(Ordering::Relaxed) => Report::Cancelled(key.clone()),
        Err(message) => {
            tracing::debug!(%key, %message, "task failed");
            Report::Erred {
                key: key.clone(),
                message,
            }
        }
    };
    report(inner, outcome_report);
    lock(&inner.queue).ended(&key)
}

/// Runs one job's operation on this thread; its result (not yet stored) or why it
/// failed. Inputs not in `job.fetched` are read from the store, or, if gone from it,
/// fetched from their holders, waiting: only a task thread may be missing one.
fn compute(inner: &Inner, job: Job) -> Result<Computed, String> {
    let task = job.assignment.task.ok_or("an assignment without a task")?;
    let key = ChunkKey::parse(&task.key).map_err(|error| error.to_string())?;
    if let Some(chunk) = inner.store.chunk(&key) {
        // Computed before (e.g. under a previous leader): the result stands.
        return Ok(Computed::Stored((chunk.memory_bytes, chunk.rows)));
    }
    let mut inputs = job.fetched;
    for input in &job.assignment.inputs {
        if inputs.contains_key(&input.key) {
            continue;
        }
        let chunk = ChunkKey::parse(&input.key).map_err(|error| error.to_string())?;
        let batch = match inner.store.get(&chunk) {
            Ok(batch) => batch,
            // Gone from here since the task started (released, or a corrupt file
            // dropped): read it from its holders like any remote input (this is a
            // task thread, outside the runtime, so it may wait on it).
            Err(local) => match inner.runtime.block_on(fetch(inner, input, &job.cancelled)) {
                Ok(batch) => batch,
                Err(FetchFailure::Missing { holders }) if !job.cancelled.load(Ordering::Relaxed) => {
                    return Ok(Computed::InputMissing {
                        input: input.key.clone(),
                        holders,
                    });
                }
                Err(remote) => {
                    return Err(format!(
                        "cannot read input '{}' here ({local}) or from its holders: {remote}",
                        input.key
                    ))
                }
            },
        };
        inputs.insert(input.key.clone(), batch);
    }
    let args = task
        .args
        .into_iter()
        .map(|arg| op_value(arg, &inputs))
        .collect::<Result<Vec<_>, _>>()?;
    if job.cancelled.load(Ordering::Relaxed) {
        // Cancelled while it waited for a thread (stolen, or moved by the leader).
        return Err(format!("task '{}' was cancelled before it ran", task.key));
    }
    let context = OpContext {
        task_key: task.key.clone(),
        cancelled: job.cancelled,
    };
    let batch = inner
        .registry
        .run(&task.op, args, &context)
        .map_err(|error| error.to_string())?;
    inner.tasks_run.fetch_add(1, Ordering::Relaxed);
    tracing::trace!(key = %task.key, op = %task.op, "task ran");
    Ok(Computed::Result(key, batch))
}

/// Stores a result, waiting (bounded) while the store is paused.
fn store_result(inner: &Inner, key: ChunkKey, batch: RecordBatch) -> Result<(u64, u64), String> {
    let deadline = Instant::now() + PAUSED_RESULT_WAIT;
    loop {
        match inner.store.put(key.clone(), batch.clone()) {
            Ok(chunk) => return Ok((chunk.memory_bytes, chunk.rows)),
            Err(StoreError::Paused { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => return Err(format!("cannot store the result: {error}")),
        }
    }
}

/// One argument as the operation sees it.
fn op_value(arg: pb::TaskArg, inputs: &HashMap<String, RecordBatch>) -> Result<OpValue, String> {
    use pb::task_arg::Arg;
    let data = |key: String| {
        inputs
            .get(&key)
            .cloned()
            .map(OpValue::Data)
            .ok_or_else(|| format!("input '{key}' was not provided with the assignment"))
    };
    match arg.arg {
        None => Err("an empty argument".to_string()),
        Some(Arg::Literal(literal)) => Ok(OpValue::Literal(literal_from_wire(literal))),
        Some(Arg::Task(key)) | Some(Arg::Chunk(key)) => data(key),
        Some(Arg::List(list)) => Ok(OpValue::List(
            list.items
                .into_iter()
                .map(|item| op_value(item, inputs))
                .collect::<Result<_, _>>()?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use cairn_client::{OpSignature, ParamKind, ParamSpec};
    use cairn_proto::v1 as pb;
    use tokio::sync::mpsc;

    use super::{Executor, Report};
    use crate::ops::{OpContext, OpError, OpRegistry, OpValue, Operation};
    use crate::store::{ChunkStore, StoreConfig};
    use crate::ChunkKey;

    /// Returns its input unchanged and records the name of the thread it ran on.
    struct RecordsThread {
        name: &'static str,
        light: bool,
        threads: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Operation for RecordsThread {
        fn signature(&self) -> OpSignature {
            OpSignature {
                name: self.name.into(),
                params: vec![ParamSpec::required("x", ParamKind::Data)],
                variadic: false,
            }
        }

        fn run(&self, mut args: Vec<OpValue>, _context: &OpContext) -> Result<RecordBatch, OpError> {
            let thread = std::thread::current().name().unwrap_or_default().to_string();
            self.threads.lock().expect("not poisoned").push(thread);
            match args.pop() {
                Some(OpValue::Data(batch)) => Ok(batch),
                _ => unreachable!("the registry checked the signature"),
            }
        }

        fn is_light(&self) -> bool {
            self.light
        }
    }

    struct Fixture {
        store: ChunkStore,
        executor: Executor,
        reports: mpsc::UnboundedReceiver<Report>,
        threads: Arc<std::sync::Mutex<Vec<String>>>,
        _dir: tempfile::TempDir,
    }

    /// An executor with one task thread over a store of `memory_limit` bytes, offering
    /// the light `light_op` and the not light `heavy_op`.
    fn fixture(memory_limit: u64) -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let (store, _) = ChunkStore::open(StoreConfig::new(dir.path(), memory_limit))?;
        let threads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut registry = OpRegistry::empty();
        for (name, light) in [("light_op", true), ("heavy_op", false)] {
            registry.register(RecordsThread {
                name,
                light,
                threads: threads.clone(),
            })?;
        }
        let executor = Executor::new(1, store.clone(), Arc::new(registry));
        let (sender, reports) = mpsc::unbounded_channel();
        executor.set_link(None, Some(sender));
        Ok(Fixture {
            store,
            executor,
            reports,
            threads,
            _dir: dir,
        })
    }

    fn int_batch(rows: usize) -> RecordBatch {
        let values: Vec<i64> = (0..rows as i64).collect();
        RecordBatch::try_from_iter([("value", Arc::new(Int64Array::from(values)) as _)]).expect("valid batch")
    }

    fn key(text: &str) -> ChunkKey {
        ChunkKey::parse(text).expect("valid key")
    }

    /// Assigns `op(input)` as task `out`; returns the thread the operation ran on, once
    /// the task is reported finished with its result in the store.
    async fn run_task(fixture: &mut Fixture, op: &str, input: &str) -> anyhow::Result<String> {
        fixture.executor.receive(pb::SchedulerTaskMessage {
            term: 1,
            assign: vec![pb::Assignment {
                task: Some(pb::TaskSpec {
                    key: "out".into(),
                    op: op.into(),
                    args: vec![pb::TaskArg {
                        arg: Some(pb::task_arg::Arg::Task(input.into())),
                    }],
                }),
                inputs: vec![pb::InputLocation {
                    key: input.into(),
                    holders: vec![],
                }],
                priority: 0,
            }],
            cancel: vec![],
            release: vec![],
        });
        let report = tokio::time::timeout(std::time::Duration::from_secs(10), fixture.reports.recv()).await?;
        match report {
            Some(Report::Finished { key, .. }) if key == "out" => {}
            other => anyhow::bail!("expected 'out' finished, got {other:?}"),
        }
        assert_eq!(fixture.store.get(&key("out"))?, fixture.store.get(&key(input))?);
        let threads = fixture.threads.lock().expect("not poisoned");
        Ok(threads.last().cloned().unwrap_or_default())
    }

    /// The leader releases a result and assigns its task again in one message (it lost
    /// track of the copy, then needs the result): the task is computed again and its
    /// result stays, instead of being answered "already stored" from the copy the
    /// release then deletes (the leader would believe the worker holds a result it no
    /// longer has).
    #[tokio::test]
    async fn a_result_released_and_assigned_again_in_one_message_is_computed_and_kept() -> anyhow::Result<()> {
        let mut fixture = fixture(64 << 20)?;
        fixture.store.put(key("small"), int_batch(100))?;
        fixture.store.put(key("out"), int_batch(3))?;
        fixture.executor.receive(pb::SchedulerTaskMessage {
            term: 1,
            assign: vec![pb::Assignment {
                task: Some(pb::TaskSpec {
                    key: "out".into(),
                    op: "light_op".into(),
                    args: vec![pb::TaskArg {
                        arg: Some(pb::task_arg::Arg::Task("small".into())),
                    }],
                }),
                inputs: vec![pb::InputLocation {
                    key: "small".into(),
                    holders: vec![],
                }],
                priority: 0,
            }],
            cancel: vec![],
            release: vec!["out".into()],
        });
        let report = tokio::time::timeout(std::time::Duration::from_secs(10), fixture.reports.recv()).await?;
        assert!(
            matches!(&report, Some(Report::Finished { key, rows: 100, .. }) if key == "out"),
            "{report:?}"
        );
        // Any delete still on its way would land meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(fixture.store.get(&key("out"))?, int_batch(100));
        assert_eq!(fixture.threads.lock().expect("not poisoned").len(), 1, "computed again");
        Ok(())
    }

    fn on_task_thread(thread: &str) -> bool {
        thread.starts_with("cairn-task-")
    }

    /// A light operation on a small input in memory runs on the thread that received
    /// the assignment; the same operation not light goes to a task thread.
    #[tokio::test]
    async fn light_tasks_on_small_inputs_run_where_they_are_received() -> anyhow::Result<()> {
        let mut fixture = fixture(64 << 20)?;
        fixture.store.put(key("small"), int_batch(100))?;
        let thread = run_task(&mut fixture, "light_op", "small").await?;
        assert!(!on_task_thread(&thread), "ran on {thread}");

        let mut fixture = self::fixture(64 << 20)?;
        fixture.store.put(key("small"), int_batch(100))?;
        let thread = run_task(&mut fixture, "heavy_op", "small").await?;
        assert!(on_task_thread(&thread), "ran on {thread}");
        Ok(())
    }

    /// A light operation goes to a task thread when its input is large, when its input
    /// is on disk only (reading it is file I/O), or when the store has no room for the
    /// result without spilling.
    #[tokio::test]
    async fn light_tasks_go_to_task_threads_on_large_or_spilled_inputs_or_a_full_store() -> anyhow::Result<()> {
        let mut fixture = fixture(64 << 20)?;
        fixture.store.put(key("large"), int_batch(10_000))?; // 80,000 bytes
        let thread = run_task(&mut fixture, "light_op", "large").await?;
        assert!(on_task_thread(&thread), "large input: ran on {thread}");

        // 4 MiB: the spill target is 2,516,582 managed bytes. Three 900,000-byte chunks
        // after the input push it, least recently used, to disk, then one of them.
        let mut fixture = self::fixture(4 << 20)?;
        fixture.store.put(key("spilled"), int_batch(100))?;
        for filler in ["f1", "f2", "f3"] {
            fixture.store.put(key(filler), int_batch(112_500))?;
        }
        assert!(fixture.store.get_if_in_memory(&key("spilled")).is_none());
        assert!(fixture.store.has_room_for(128 << 10));
        let thread = run_task(&mut fixture, "light_op", "spilled").await?;
        assert!(on_task_thread(&thread), "spilled input: ran on {thread}");

        // 1 MiB: the spill target is 629,145 bytes; 568,800 are held.
        let mut fixture = self::fixture(1 << 20)?;
        fixture.store.put(key("filler"), int_batch(70_000))?;
        fixture.store.put(key("small"), int_batch(100))?;
        assert!(!fixture.store.has_room_for(128 << 10));
        let thread = run_task(&mut fixture, "light_op", "small").await?;
        assert!(on_task_thread(&thread), "full store: ran on {thread}");
        Ok(())
    }
}
