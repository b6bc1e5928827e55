//! Performs the task queue's instructions on `--nthreads` dedicated threads, off the
//! async runtime: a thread takes a task, reads its inputs from the local store (or
//! uses those fetched from peers beforehand, asynchronously, over Arrow Flight),
//! runs its operation, stores the result under the task's key, reports, and takes
//! the next one — no hand-off to the async runtime between tasks, so a burst of
//! small tasks costs one queue operation each.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use cairn_client::{literal_from_wire, Client};
use cairn_proto::v1 as pb;
use tokio::sync::mpsc;

use super::queue::{Instruction, TaskQueue};
use crate::ops::{OpContext, OpRegistry, OpValue};
use crate::store::{ChunkStore, StoreError};
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
        perform(&self.inner, instructions);
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

fn perform(inner: &Arc<Inner>, instructions: Vec<Instruction>) {
    for instruction in instructions {
        match instruction {
            Instruction::Start { assignment, cancelled } => start(inner, assignment, cancelled),
            Instruction::ReportCancelled(key) => report(inner, Report::Cancelled(key)),
            Instruction::Release(keys) => {
                let store = inner.store.clone();
                inner.runtime.spawn_blocking(move || {
                    for key in keys {
                        let Ok(chunk) = ChunkKey::parse(&key) else {
                            continue;
                        };
                        if let Err(error) = store.delete(&chunk) {
                            tracing::warn!(%key, %error, "cannot release a task result");
                        }
                    }
                });
            }
        }
    }
}

/// Queues a task for the threads: at once when its inputs are all here, else after
/// fetching the others from peers (asynchronously, so no thread waits on the network).
fn start(inner: &Arc<Inner>, assignment: pb::Assignment, cancelled: Arc<AtomicBool>) {
    let remote: Vec<pb::InputLocation> = assignment
        .inputs
        .iter()
        .filter(|input| ChunkKey::parse(&input.key).is_ok_and(|key| !inner.store.contains(&key)))
        .cloned()
        .collect();
    let job = Job {
        assignment,
        cancelled,
        fetched: HashMap::new(),
        fetch_error: None,
    };
    if remote.is_empty() {
        enqueue(inner, job);
        return;
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
                Err(message) => {
                    job.fetch_error = Some(message);
                    break;
                }
            }
        }
        enqueue(&inner, job);
    });
}

/// One input from the first holder that answers. A holder that fails may be dying:
/// the fetch tries again (with backoff) until the leader notices, re-runs the input
/// elsewhere and cancels this task — so a lost input does not fail the task — or
/// until [`FETCH_PATIENCE`] runs out.
async fn fetch(inner: &Inner, input: &pb::InputLocation, cancelled: &AtomicBool) -> Result<RecordBatch, String> {
    let deadline = Instant::now() + FETCH_PATIENCE;
    let mut pause = Duration::from_millis(20);
    let mut last_error = "no worker holds it".to_string();
    loop {
        let client = lock(&inner.client)
            .clone()
            .ok_or("this worker is not linked to the cluster")?;
        for holder in &input.holders {
            match client.read_chunk_from(&holder.addr, &input.key).await {
                Ok(batch) => return Ok(batch),
                Err(error) => last_error = error.to_string(),
            }
        }
        if cancelled.load(Ordering::Relaxed) || Instant::now() + pause >= deadline {
            return Err(format!("cannot fetch input '{}': {last_error}", input.key));
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

fn run_job(inner: &Arc<Inner>, job: Job) {
    let key = job
        .assignment
        .task
        .as_ref()
        .map(|task| task.key.clone())
        .unwrap_or_default();
    let cancelled = job.cancelled.clone();
    let outcome = match job.fetch_error.clone() {
        Some(message) => Err(message),
        None => run(inner, job),
    };
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
    let instructions = lock(&inner.queue).ended(&key);
    perform(inner, instructions);
}

/// Runs one job on this thread; the result's (bytes, rows) or why it failed.
fn run(inner: &Inner, job: Job) -> Result<(u64, u64), String> {
    let task = job.assignment.task.ok_or("an assignment without a task")?;
    let key = ChunkKey::parse(&task.key).map_err(|error| error.to_string())?;
    if let Some(chunk) = inner.store.chunk(&key) {
        // Computed before (e.g. under a previous leader): the result stands.
        return Ok((chunk.memory_bytes, chunk.rows));
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
            Err(local) => inner
                .runtime
                .block_on(fetch(inner, input, &job.cancelled))
                .map_err(|remote| {
                    format!(
                        "cannot read input '{}' here ({local}) or from its holders: {remote}",
                        input.key
                    )
                })?,
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
    store_result(inner, key, batch)
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
