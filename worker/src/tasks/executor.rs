//! Performs the task queue's instructions: resolves a task's inputs from the local
//! store or a peer (Arrow Flight), runs its operation on a blocking thread, and
//! stores the result under the task's key.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use cairn_client::{Client, Literal};
use cairn_proto::v1 as pb;
use tokio::sync::mpsc;

use super::queue::{Instruction, TaskQueue};
use crate::ops::{OpContext, OpRegistry, OpValue};
use crate::store::{ChunkStore, StoreError};
use crate::ChunkKey;

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
    /// An executor running `nthreads` tasks at once.
    pub fn new(nthreads: usize, store: ChunkStore, registry: Arc<OpRegistry>) -> Executor {
        Executor {
            inner: Arc::new(Inner {
                queue: Mutex::new(TaskQueue::new(nthreads)),
                store,
                registry,
                client: Mutex::new(None),
                reporter: Mutex::new(None),
            }),
        }
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

    fn report(&self, report: Report) {
        if let Some(reporter) = lock(&self.inner.reporter).as_ref() {
            let _ = reporter.send(report);
        }
    }

    /// Handles one message from the leader.
    pub fn receive(&self, message: pb::SchedulerTaskMessage) {
        let instructions = lock(&self.inner.queue).receive(message);
        self.perform(instructions);
    }

    fn perform(&self, instructions: Vec<Instruction>) {
        for instruction in instructions {
            match instruction {
                Instruction::Start { assignment, cancelled } => {
                    let executor = self.clone();
                    tokio::spawn(async move { executor.execute(assignment, cancelled).await });
                }
                Instruction::ReportCancelled(key) => self.report(Report::Cancelled(key)),
                Instruction::Release(keys) => {
                    let store = self.inner.store.clone();
                    tokio::task::spawn_blocking(move || {
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

    async fn execute(self, assignment: pb::Assignment, cancelled: Arc<AtomicBool>) {
        let key = assignment
            .task
            .as_ref()
            .map(|task| task.key.clone())
            .unwrap_or_default();
        let outcome = self.run(assignment, cancelled.clone()).await;
        let report = match outcome {
            Ok((bytes, rows)) => Report::Finished {
                key: key.clone(),
                bytes,
                rows,
            },
            // Cancelled while running (the leader moved it elsewhere): not a failure.
            Err(_) if cancelled.load(std::sync::atomic::Ordering::Relaxed) => Report::Cancelled(key.clone()),
            Err(message) => {
                tracing::debug!(%key, %message, "task failed");
                Report::Erred {
                    key: key.clone(),
                    message,
                }
            }
        };
        self.report(report);
        let instructions = lock(&self.inner.queue).ended(&key);
        self.perform(instructions);
    }

    /// Runs one assignment; the result's (bytes, rows) or why it failed.
    async fn run(&self, assignment: pb::Assignment, cancelled: Arc<AtomicBool>) -> Result<(u64, u64), String> {
        let task = assignment.task.ok_or("an assignment without a task")?;
        let key = ChunkKey::parse(&task.key).map_err(|error| error.to_string())?;
        if let Some(chunk) = self.inner.store.chunk(&key) {
            // Computed before (e.g. under a previous leader): the result stands.
            return Ok((chunk.memory_bytes, chunk.rows));
        }
        let mut inputs = HashMap::with_capacity(assignment.inputs.len());
        for input in assignment.inputs {
            let batch = self.fetch(&input).await?;
            inputs.insert(input.key, batch);
        }
        let args = task
            .args
            .into_iter()
            .map(|arg| op_value(arg, &inputs))
            .collect::<Result<Vec<_>, _>>()?;
        let registry = self.inner.registry.clone();
        let context = OpContext {
            task_key: task.key.clone(),
            cancelled,
        };
        let op = task.op;
        let batch = tokio::task::spawn_blocking(move || registry.run(&op, args, &context))
            .await
            .map_err(|error| format!("the task's thread failed: {error}"))?
            .map_err(|error| error.to_string())?;
        self.store_result(key, batch).await
    }

    /// Stores a result, waiting (bounded) while the store is paused.
    async fn store_result(&self, key: ChunkKey, batch: RecordBatch) -> Result<(u64, u64), String> {
        let deadline = Instant::now() + PAUSED_RESULT_WAIT;
        loop {
            let store = self.inner.store.clone();
            let (chunk_key, result_batch) = (key.clone(), batch.clone());
            let stored = tokio::task::spawn_blocking(move || store.put(chunk_key, result_batch))
                .await
                .map_err(|error| format!("the store's thread failed: {error}"))?;
            match stored {
                Ok(chunk) => return Ok((chunk.memory_bytes, chunk.rows)),
                Err(StoreError::Paused { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(format!("cannot store the result: {error}")),
            }
        }
    }

    /// One input: from the local store, else from the first holder that answers.
    async fn fetch(&self, input: &pb::InputLocation) -> Result<RecordBatch, String> {
        if let Ok(key) = ChunkKey::parse(&input.key) {
            if self.inner.store.contains(&key) {
                let store = self.inner.store.clone();
                let local = tokio::task::spawn_blocking(move || store.get(&key))
                    .await
                    .map_err(|error| format!("the store's thread failed: {error}"))?;
                match local {
                    Ok(batch) => return Ok(batch),
                    Err(error) => tracing::warn!(key = %input.key, %error, "local input unreadable; fetching it"),
                }
            }
        }
        let mut last_error = "no worker holds it".to_string();
        let client = lock(&self.inner.client)
            .clone()
            .ok_or("this worker is not linked to the cluster")?;
        for holder in &input.holders {
            match client.read_chunk_from(&holder.addr, &input.key).await {
                Ok(batch) => return Ok(batch),
                Err(error) => last_error = error.to_string(),
            }
        }
        Err(format!("cannot fetch input '{}': {last_error}", input.key))
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
        Some(Arg::Literal(literal)) => Ok(OpValue::Literal(self::literal(literal))),
        Some(Arg::Task(key)) | Some(Arg::Chunk(key)) => data(key),
        Some(Arg::List(list)) => Ok(OpValue::List(
            list.items
                .into_iter()
                .map(|item| op_value(item, inputs))
                .collect::<Result<_, _>>()?,
        )),
    }
}

fn literal(literal: pb::Literal) -> Literal {
    use pb::literal::Value;
    match literal.value {
        None | Some(Value::Null(_)) => Literal::Null,
        Some(Value::BoolValue(value)) => Literal::Bool(value),
        Some(Value::IntValue(value)) => Literal::Int(value),
        Some(Value::FloatValue(value)) => Literal::Float(value),
        Some(Value::StrValue(value)) => Literal::Str(value),
        Some(Value::BytesValue(value)) => Literal::Bytes(value),
    }
}
