//! Task graphs from the client's side (SPEC §5): [`Delayed`] tasks built lazily,
//! submitted as one graph, and [`TaskFuture`]s that follow their results — Dask's
//! `delayed`, `client.compute`, `Future.result()`, `client.gather`.
//!
//! ```no_run
//! use cairn_client::{Client, TaskArg};
//!
//! # async fn demo(client: Client) -> Result<(), cairn_client::Error> {
//! let one = client.task("inc", [TaskArg::from(1)]);
//! let two = client.task("inc", [TaskArg::from(&one)]);
//! let total = client.task("sum", [TaskArg::from(&one), TaskArg::from(&two)]);
//! let batch = client.compute(&total).await?;       // a 1-row batch, column "value"
//! assert_eq!(cairn_client::scalar_i64(&batch), Some(5));
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use cairn_proto::v1 as pb;
use cairn_proto::v1::scheduler_client::SchedulerClient;
use tonic::transport::Channel;

use crate::client::MAX_MESSAGE_BYTES;
use crate::error::Error;
use crate::task_types::Literal;
use crate::Client;

/// How long one `WaitTasks` call waits at the scheduler before answering.
const WAIT_SLICE: Duration = Duration::from_secs(5);
/// How long a submission may take (validation and Raft batches of a large graph).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(120);

/// A task not yet submitted: an operation, its arguments, and (through them) the
/// tasks it depends on. Cheap to clone; the same `Delayed` used twice in a graph is
/// one task.
///
/// ```
/// use cairn_client::{Delayed, TaskArg};
/// let x = Delayed::new("inc", [TaskArg::from(41)]);
/// assert!(x.key().starts_with("inc-"));
/// assert_eq!(x.op(), "inc");
/// ```
#[derive(Clone)]
pub struct Delayed {
    node: Arc<Node>,
}

impl std::fmt::Debug for Delayed {
    /// Shows the task's dependencies by key, not nested (a deep graph would overflow
    /// the stack).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed")
            .field("key", &self.node.key)
            .field("op", &self.node.op)
            .field("args", &ArgsByKey(&self.node.args))
            .finish()
    }
}

/// Arguments shown with each task by its key.
struct ArgsByKey<'a>(&'a [TaskArg]);

impl std::fmt::Debug for ArgsByKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for arg in self.0 {
            match arg {
                TaskArg::Task(delayed) => list.entry(&format_args!("Task({:?})", delayed.key())),
                TaskArg::List(items) => list.entry(&format_args!("List({:?})", ArgsByKey(items))),
                TaskArg::Literal(_) | TaskArg::Held(_) | TaskArg::Chunk(_) => list.entry(arg),
            };
        }
        list.finish()
    }
}

struct Node {
    key: String,
    op: String,
    args: Vec<TaskArg>,
}

impl Drop for Node {
    /// Drops the nodes only this one holds one after another, not nested: the default
    /// drop recurses once per level, and a chain of 100,000 tasks overflowed the stack.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.args);
        while let Some(arg) = pending.pop() {
            match arg {
                TaskArg::Task(delayed) => {
                    if let Ok(mut node) = Arc::try_unwrap(delayed.node) {
                        pending.append(&mut node.args);
                    }
                }
                TaskArg::List(items) => pending.extend(items),
                TaskArg::Literal(_) | TaskArg::Held(_) | TaskArg::Chunk(_) => {}
            }
        }
    }
}

/// One argument of a task.
///
/// ```
/// use cairn_client::{Delayed, TaskArg};
/// let x = Delayed::new("inc", [TaskArg::from(1)]);
/// let args = vec![TaskArg::from(&x), TaskArg::from("a string"), TaskArg::list([TaskArg::from(2.5)])];
/// assert_eq!(args.len(), 3);
/// ```
#[derive(Debug, Clone)]
pub enum TaskArg {
    /// A value given in the graph.
    Literal(Literal),
    /// The result of a task in the same graph.
    Task(Delayed),
    /// The result of a task the cluster already holds for this client (a future).
    Held(TaskFuture),
    /// A chunk of a published persisted dataset, by chunk key.
    Chunk(String),
    /// Several arguments as one.
    List(Vec<TaskArg>),
}

impl TaskArg {
    /// A list argument.
    ///
    /// ```
    /// let list = cairn_client::TaskArg::list([1.into(), 2.into()]);
    /// assert!(matches!(list, cairn_client::TaskArg::List(ref items) if items.len() == 2));
    /// ```
    pub fn list(items: impl IntoIterator<Item = TaskArg>) -> TaskArg {
        TaskArg::List(items.into_iter().collect())
    }

    /// The argument for the wire.
    pub(crate) fn to_wire(&self) -> pb::TaskArg {
        use pb::task_arg::Arg;
        let arg = match self {
            TaskArg::Literal(literal) => Arg::Literal(literal_to_wire(literal)),
            TaskArg::Task(delayed) => Arg::Task(delayed.key().to_string()),
            TaskArg::Held(future) => Arg::Task(future.key().to_string()),
            TaskArg::Chunk(key) => Arg::Chunk(key.clone()),
            TaskArg::List(items) => Arg::List(pb::TaskArgList {
                items: items.iter().map(TaskArg::to_wire).collect(),
            }),
        };
        pb::TaskArg { arg: Some(arg) }
    }

    /// Calls `visit` on every not-yet-submitted task this argument names.
    fn visit_tasks<'a>(&'a self, visit: &mut impl FnMut(&'a Delayed)) {
        match self {
            TaskArg::Task(delayed) => visit(delayed),
            TaskArg::List(items) => items.iter().for_each(|item| item.visit_tasks(visit)),
            TaskArg::Literal(_) | TaskArg::Held(_) | TaskArg::Chunk(_) => {}
        }
    }
}

pub(crate) fn literal_to_wire(literal: &Literal) -> pb::Literal {
    use pb::literal::Value;
    let value = match literal {
        Literal::Null => Value::Null(true),
        Literal::Bool(value) => Value::BoolValue(*value),
        Literal::Int(value) => Value::IntValue(*value),
        Literal::Float(value) => Value::FloatValue(*value),
        Literal::Str(value) => Value::StrValue(value.clone()),
        Literal::Bytes(value) => Value::BytesValue(value.clone()),
    };
    pb::Literal { value: Some(value) }
}

impl From<Literal> for TaskArg {
    fn from(literal: Literal) -> TaskArg {
        TaskArg::Literal(literal)
    }
}

impl From<i64> for TaskArg {
    fn from(value: i64) -> TaskArg {
        TaskArg::Literal(Literal::Int(value))
    }
}

impl From<i32> for TaskArg {
    fn from(value: i32) -> TaskArg {
        TaskArg::Literal(Literal::Int(value.into()))
    }
}

impl From<f64> for TaskArg {
    fn from(value: f64) -> TaskArg {
        TaskArg::Literal(Literal::Float(value))
    }
}

impl From<bool> for TaskArg {
    fn from(value: bool) -> TaskArg {
        TaskArg::Literal(Literal::Bool(value))
    }
}

impl From<&str> for TaskArg {
    fn from(value: &str) -> TaskArg {
        TaskArg::Literal(Literal::Str(value.to_string()))
    }
}

impl From<String> for TaskArg {
    fn from(value: String) -> TaskArg {
        TaskArg::Literal(Literal::Str(value))
    }
}

impl From<&Delayed> for TaskArg {
    fn from(delayed: &Delayed) -> TaskArg {
        TaskArg::Task(delayed.clone())
    }
}

impl From<Delayed> for TaskArg {
    fn from(delayed: Delayed) -> TaskArg {
        TaskArg::Task(delayed)
    }
}

impl From<&TaskFuture> for TaskArg {
    fn from(future: &TaskFuture) -> TaskArg {
        TaskArg::Held(future.clone())
    }
}

/// A fresh key for an operation's task: `<op>-<16 hex digits>` (the op cut to the
/// key rules).
pub(crate) fn fresh_key(op: &str) -> String {
    let prefix: String = op
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(48)
        .collect();
    let prefix = if prefix.is_empty() { "task".to_string() } else { prefix };
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

impl Delayed {
    /// A task running `op` on `args`, with a fresh key.
    ///
    /// ```
    /// let x = cairn_client::Delayed::new("sleep", [1.into(), 100.into()]);
    /// assert_eq!(x.op(), "sleep");
    /// ```
    pub fn new(op: &str, args: impl IntoIterator<Item = TaskArg>) -> Delayed {
        Delayed::with_key(fresh_key(op), op, args)
    }

    /// A task with a key of the caller's choosing (letters, digits, `-`, `_`, `.`; at
    /// most 128 bytes). Keys name results across the cluster: the same key is the
    /// same task, computed once while someone holds it.
    ///
    /// ```
    /// let x = cairn_client::Delayed::with_key("inc-1", "inc", [1.into()]);
    /// assert_eq!(x.key(), "inc-1");
    /// ```
    pub fn with_key(key: impl Into<String>, op: &str, args: impl IntoIterator<Item = TaskArg>) -> Delayed {
        Delayed {
            node: Arc::new(Node {
                key: key.into(),
                op: op.to_string(),
                args: args.into_iter().collect(),
            }),
        }
    }

    /// The task's key (also its result's chunk key on workers).
    ///
    /// ```
    /// let x = cairn_client::Delayed::with_key("k", "inc", [1.into()]);
    /// assert_eq!(x.key(), "k");
    /// ```
    pub fn key(&self) -> &str {
        &self.node.key
    }

    /// The operation's name.
    ///
    /// ```
    /// assert_eq!(cairn_client::Delayed::new("inc", [1.into()]).op(), "inc");
    /// ```
    pub fn op(&self) -> &str {
        &self.node.op
    }

    /// The task's arguments.
    ///
    /// ```
    /// assert_eq!(cairn_client::Delayed::new("inc", [1.into()]).args().len(), 1);
    /// ```
    pub fn args(&self) -> &[TaskArg] {
        &self.node.args
    }

    fn to_wire(&self) -> pb::TaskSpec {
        pb::TaskSpec {
            key: self.node.key.clone(),
            op: self.node.op.clone(),
            args: self.node.args.iter().map(TaskArg::to_wire).collect(),
        }
    }
}

/// The graph of `outputs` and everything they depend on that is not yet held, each
/// task once, dependencies first; and the futures it refers to (kept alive until the
/// graph is submitted).
pub(crate) fn graph_of(outputs: &[&Delayed]) -> (Vec<pb::TaskSpec>, Vec<TaskFuture>) {
    let mut seen: HashSet<*const Node> = HashSet::new();
    let mut tasks = Vec::new();
    let mut held = Vec::new();
    // Iterative post-order: a task is emitted after its dependencies.
    let mut stack: Vec<(&Delayed, bool)> = outputs.iter().rev().map(|delayed| (*delayed, false)).collect();
    while let Some((delayed, expanded)) = stack.pop() {
        let id = Arc::as_ptr(&delayed.node);
        if expanded {
            tasks.push(delayed.to_wire());
            continue;
        }
        if !seen.insert(id) {
            continue;
        }
        stack.push((delayed, true));
        let mut dependencies = Vec::new();
        for arg in &delayed.node.args {
            arg.visit_tasks(&mut |dependency| dependencies.push(dependency));
            collect_held(arg, &mut held);
        }
        for dependency in dependencies.into_iter().rev() {
            if !seen.contains(&Arc::as_ptr(&dependency.node)) {
                stack.push((dependency, false));
            }
        }
    }
    (tasks, held)
}

fn collect_held(arg: &TaskArg, held: &mut Vec<TaskFuture>) {
    match arg {
        TaskArg::Held(future) => held.push(future.clone()),
        TaskArg::List(items) => items.iter().for_each(|item| collect_held(item, held)),
        TaskArg::Literal(_) | TaskArg::Task(_) | TaskArg::Chunk(_) => {}
    }
}

/// A task's state as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for inputs, queued or running.
    Pending,
    /// The result is held by workers.
    Finished {
        /// Its rows.
        rows: u64,
        /// Its size in worker memory.
        bytes: u64,
        /// The workers holding it (id, address).
        holders: Vec<(String, String)>,
    },
    /// The task (or a dependency) raised.
    Erred {
        /// The task that raised.
        task: String,
        /// Its message.
        message: String,
    },
    /// The cluster does not know the key (released, or never submitted).
    Unknown,
}

impl TaskState {
    fn from_wire(result: &pb::TaskResult) -> TaskState {
        match result.state.as_str() {
            "memory" => TaskState::Finished {
                rows: result.rows,
                bytes: result.bytes,
                holders: result
                    .locations
                    .iter()
                    .map(|location| (location.worker_id.clone(), location.addr.clone()))
                    .collect(),
            },
            "erred" => TaskState::Erred {
                task: result.error_task.clone(),
                message: result.error_message.clone(),
            },
            "pending" => TaskState::Pending,
            _ => TaskState::Unknown,
        }
    }

    /// Whether the task is finished or failed.
    ///
    /// ```
    /// assert!(!cairn_client::TaskState::Pending.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        matches!(self, TaskState::Finished { .. } | TaskState::Erred { .. })
    }

    /// Whether `key` in this state is finished (`Ok(true)`) or still pending
    /// (`Ok(false)`); a failed task is [`Error::TaskFailed`], an unknown key
    /// [`Error::NotFound`].
    pub(crate) fn settled(&self, key: &str) -> Result<bool, Error> {
        match self {
            TaskState::Finished { .. } => Ok(true),
            TaskState::Pending => Ok(false),
            TaskState::Erred { task, message } => Err(Error::TaskFailed {
                key: key.to_string(),
                task: task.clone(),
                message: message.clone(),
            }),
            TaskState::Unknown => Err(Error::NotFound {
                message: format!("task '{key}' is not known to the cluster (released, or never submitted)"),
            }),
        }
    }
}

/// A submitted task whose result this client wants (Dask's `Future`): the cluster
/// keeps the result while any clone of the future lives, and releases it after the
/// last one is dropped (or [`TaskFuture::cancel`] is called).
///
/// ```no_run
/// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
/// let future = client.submit(&client.task("inc", [1.into()])).await?;
/// println!("{:?}", future.status().await?);
/// let batch = future.result().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TaskFuture {
    inner: Arc<FutureInner>,
}

#[derive(Debug)]
struct FutureInner {
    key: String,
    client: Client,
    /// Set once released explicitly, so the drop does not release again.
    released: std::sync::atomic::AtomicBool,
}

impl Drop for FutureInner {
    fn drop(&mut self) {
        if self.released.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        // Released in the background, as Dask does when a future is collected.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let key = self.key.clone();
            runtime.spawn(async move {
                if let Err(error) = client.release_keys(vec![key.clone()]).await {
                    tracing::debug!(%key, %error, "cannot release a dropped future's key");
                }
            });
        }
    }
}

impl TaskFuture {
    /// The task's key.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let future = client.submit(&client.task("inc", [1.into()])).await?;
    /// println!("{}", future.key());
    /// # Ok(()) }
    /// ```
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// The task's state now.
    ///
    /// ```no_run
    /// # async fn demo(future: cairn_client::TaskFuture) -> Result<(), cairn_client::Error> {
    /// if future.status().await?.is_done() { println!("done"); }
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<TaskState, Error> {
        let states = self
            .inner
            .client
            .task_states(&[self.key().to_string()], Duration::ZERO)
            .await?;
        Ok(states.into_iter().next().unwrap_or(TaskState::Unknown))
    }

    /// Waits for the result and reads it from a worker holding it.
    ///
    /// ```no_run
    /// # async fn demo(future: cairn_client::TaskFuture) -> Result<(), cairn_client::Error> {
    /// let batch = future.result().await?;
    /// println!("{} rows", batch.num_rows());
    /// # Ok(()) }
    /// ```
    pub async fn result(&self) -> Result<RecordBatch, Error> {
        let mut results = self.inner.client.gather(std::slice::from_ref(self)).await?;
        results.pop().ok_or_else(|| Error::Protocol {
            message: "gather returned nothing".to_string(),
        })
    }

    /// Notes that the key was released (by a bulk release), so the drop does not
    /// release it again.
    pub(crate) fn mark_released(&self) {
        self.inner.released.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Tells the cluster this client no longer wants the result: a task not yet run
    /// that nothing else needs is cancelled; a result is released.
    ///
    /// ```no_run
    /// # async fn demo(future: cairn_client::TaskFuture) -> Result<(), cairn_client::Error> {
    /// future.cancel().await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self) -> Result<(), Error> {
        self.inner.client.release_keys(vec![self.key().to_string()]).await?;
        self.inner.released.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

fn scheduler(channel: Channel) -> SchedulerClient<Channel> {
    SchedulerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The single value of a 1-row result with a `value` column (or its first column),
/// as an integer.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// let batch = RecordBatch::try_from_iter([("value", Arc::new(Int64Array::from(vec![7])) as _)]).unwrap();
/// assert_eq!(cairn_client::scalar_i64(&batch), Some(7));
/// ```
pub fn scalar_i64(batch: &RecordBatch) -> Option<i64> {
    let column = batch.column_by_name("value").or_else(|| batch.columns().first())?;
    let values = column.as_any().downcast_ref::<Int64Array>()?;
    (values.len() == 1 && values.is_valid(0)).then(|| values.value(0))
}

/// The single value of a 1-row result with a `value` column (or its first column),
/// as a float (integers convert).
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Float64Array, RecordBatch};
/// let batch = RecordBatch::try_from_iter([("value", Arc::new(Float64Array::from(vec![2.5])) as _)]).unwrap();
/// assert_eq!(cairn_client::scalar_f64(&batch), Some(2.5));
/// ```
pub fn scalar_f64(batch: &RecordBatch) -> Option<f64> {
    let column = batch.column_by_name("value").or_else(|| batch.columns().first())?;
    if let Some(values) = column.as_any().downcast_ref::<Float64Array>() {
        return (values.len() == 1 && values.is_valid(0)).then(|| values.value(0));
    }
    scalar_i64(batch).map(|value| value as f64)
}

/// The operations the cluster's workers offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCatalogue {
    /// Each operation once, by name.
    pub operations: Vec<crate::OpSignature>,
    /// How many workers have their task stream open to the leader.
    pub connected_workers: u32,
}

fn signature_from_wire(signature: pb::OpSignature) -> crate::OpSignature {
    crate::OpSignature {
        name: signature.name,
        params: signature
            .params
            .into_iter()
            .map(|param| crate::ParamSpec {
                name: param.name,
                kind: crate::ParamKind::parse(&param.kind).unwrap_or(crate::ParamKind::Any),
                optional: param.optional,
            })
            .collect(),
        variadic: signature.variadic,
    }
}

impl Client {
    /// The operations the live workers offer, with their signatures.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// for op in client.operations().await?.operations {
    ///     println!("{}", op.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn operations(&self) -> Result<OperationCatalogue, Error> {
        let reply = self
            .call("list operations", |channel| async move {
                scheduler(channel).list_operations(pb::ListOperationsRequest {}).await
            })
            .await?;
        Ok(OperationCatalogue {
            operations: reply.operations.into_iter().map(signature_from_wire).collect(),
            connected_workers: reply.connected_workers,
        })
    }

    /// A lazy task running `op` on `args` (Dask's `delayed(op)(*args)`); nothing runs
    /// until it is computed or submitted.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let x = client.task("inc", [1.into()]);
    /// let y = client.task("inc", [(&x).into()]);
    /// # Ok(()) }
    /// ```
    pub fn task(&self, op: &str, args: impl IntoIterator<Item = TaskArg>) -> Delayed {
        Delayed::new(op, args)
    }

    /// Submits the graphs of `outputs` as one graph and returns a future per output.
    /// A malformed graph is refused whole with [`Error::InvalidGraph`], naming the
    /// task.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let tasks: Vec<_> = (0..10).map(|i| client.task("inc", [i.into()])).collect();
    /// let futures = client.submit_all(&tasks.iter().collect::<Vec<_>>()).await?;
    /// let results = client.gather(&futures).await?;
    /// # Ok(()) }
    /// ```
    pub async fn submit_all(&self, outputs: &[&Delayed]) -> Result<Vec<TaskFuture>, Error> {
        let (tasks, held) = graph_of(outputs);
        let wanted: Vec<String> = outputs.iter().map(|delayed| delayed.key().to_string()).collect();
        self.submit_graph(tasks, wanted.clone()).await?;
        drop(held);
        Ok(wanted.into_iter().map(|key| self.future(key)).collect())
    }

    /// Submits one task's graph; returns its future.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let future = client.submit(&client.task("inc", [1.into()])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn submit(&self, output: &Delayed) -> Result<TaskFuture, Error> {
        let mut futures = self.submit_all(&[output]).await?;
        futures.pop().ok_or_else(|| Error::Protocol {
            message: "submit returned no future".to_string(),
        })
    }

    /// Computes one task and returns its result (Dask's `dask.compute(x)`); the
    /// result is released on the cluster afterwards.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let batch = client.compute(&client.task("inc", [1.into()])).await?;
    /// assert_eq!(cairn_client::scalar_i64(&batch), Some(2));
    /// # Ok(()) }
    /// ```
    pub async fn compute(&self, output: &Delayed) -> Result<RecordBatch, Error> {
        let future = self.submit(output).await?;
        let result = future.result().await;
        let _ = future.cancel().await;
        result
    }

    /// A future for `key`, which this client wants.
    pub(crate) fn future(&self, key: String) -> TaskFuture {
        TaskFuture {
            inner: Arc::new(FutureInner {
                key,
                client: self.clone(),
                released: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Submits raw task specs; `wanted` keys are kept for this client.
    pub(crate) async fn submit_graph(&self, tasks: Vec<pb::TaskSpec>, wanted: Vec<String>) -> Result<u64, Error> {
        let request = pb::SubmitGraphRequest {
            client_id: self.client_id().to_vec(),
            tasks,
            wanted,
        };
        let reply = self
            .call_within("submit graph", SUBMIT_TIMEOUT, SUBMIT_TIMEOUT, |channel| {
                let request = request.clone();
                async move { scheduler(channel).submit_graph(request).await }
            })
            .await?;
        Ok(reply.log_index)
    }

    /// The keys' states, after waiting up to `wait` for all to finish or fail.
    pub(crate) async fn task_states(&self, keys: &[String], wait: Duration) -> Result<Vec<TaskState>, Error> {
        let attempt = wait + self.timeout();
        let reply = self
            .call_within("wait for tasks", attempt + self.timeout(), attempt, |channel| {
                let request = pb::WaitTasksRequest {
                    keys: keys.to_vec(),
                    timeout_ms: wait.as_millis() as u64,
                };
                async move { scheduler(channel).wait_tasks(request).await }
            })
            .await?;
        Ok(reply.results.iter().map(TaskState::from_wire).collect())
    }

    /// Tells the cluster this client no longer wants `keys`.
    pub(crate) async fn release_keys(&self, keys: Vec<String>) -> Result<(), Error> {
        let request = pb::ReleaseKeysRequest {
            client_id: self.client_id().to_vec(),
            keys,
        };
        self.call("release keys", |channel| {
            let request = request.clone();
            async move { scheduler(channel).release_keys(request).await }
        })
        .await?;
        Ok(())
    }

    /// Waits for every future and reads their results, in order (Dask's
    /// `client.gather`). The first failed task ends it with [`Error::TaskFailed`].
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client, futures: Vec<cairn_client::TaskFuture>) -> Result<(), cairn_client::Error> {
    /// for batch in client.gather(&futures).await? {
    ///     println!("{} rows", batch.num_rows());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn gather(&self, futures: &[TaskFuture]) -> Result<Vec<RecordBatch>, Error> {
        let keys: Vec<String> = futures.iter().map(|future| future.key().to_string()).collect();
        let deadline = Instant::now() + self.task_timeout();
        let mut results: Vec<Option<RecordBatch>> = vec![None; keys.len()];
        loop {
            let missing: Vec<usize> = (0..keys.len()).filter(|at| results[*at].is_none()).collect();
            if missing.is_empty() {
                return Ok(results.into_iter().flatten().collect());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    operation: "gather",
                    after: self.task_timeout(),
                    last_error: format!("{} of {} results not ready", missing.len(), keys.len()),
                });
            }
            let asked: Vec<String> = missing.iter().map(|at| keys[*at].clone()).collect();
            let states = self.task_states(&asked, WAIT_SLICE).await?;
            let finished_before = results.iter().filter(|result| result.is_some()).count();
            for (at, state) in missing.into_iter().zip(states) {
                if !state.settled(&keys[at])? {
                    continue;
                }
                let TaskState::Finished { holders, .. } = state else {
                    continue;
                };
                for (_, addr) in &holders {
                    match self.read_chunk_from(addr, &keys[at]).await {
                        Ok(batch) => {
                            results[at] = Some(batch);
                            break;
                        }
                        Err(error) => {
                            tracing::debug!(key = %keys[at], %addr, %error, "cannot read a result; trying another holder")
                        }
                    }
                }
            }
            if results.iter().filter(|result| result.is_some()).count() == finished_before {
                // No progress (a holder unreachable until the leader notices): pause.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{graph_of, Delayed, TaskArg};

    /// A chain deeper than any stack allows recursion for is built, turned into a
    /// graph and dropped (the drop once overflowed the stack at 100,000).
    #[test]
    fn a_chain_of_200_000_tasks_is_built_submitted_and_dropped() {
        let mut last = Delayed::new("inc", [TaskArg::from(0)]);
        for _ in 1..200_000 {
            last = Delayed::new("inc", [TaskArg::list([TaskArg::from(&last)])]);
        }
        let shared = last.clone();
        let shown = format!("{last:?}");
        assert!(
            shown.starts_with("Delayed { key: \"inc-") && shown.contains("args: [List([Task(\"inc-"),
            "{shown}"
        );
        let (tasks, held) = graph_of(&[&last]);
        assert_eq!(tasks.len(), 200_000);
        assert!(held.is_empty());
        drop(last);
        assert_eq!(shared.op(), "inc", "a clone keeps the graph");
        drop(shared);
    }
}
