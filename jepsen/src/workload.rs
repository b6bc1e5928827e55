//! The workloads: concurrent clients, each its own `cairn_client::Client`, recording
//! every operation as an invoke and a completion.
//!
//! - `catalog`: publish / override / unpublish / get / list on a few names at a time;
//!   each name is a register and takes a bounded number of operations before a fresh
//!   one replaces it (so each per-name history stays small enough to check). One
//!   client in five only reads.
//! - `durable`: publishes of fresh names with unique values; at the end, every
//!   acknowledged publish must be readable with exactly its value.
//! - `data` ([`data`]): puts of persisted datasets of known content (uploaded, or
//!   derived from another by an `inc` task per partition), and reads of them.
//! - `graph` ([`graph`]): task graphs with known results (chains of `inc` summed by
//!   trees of `sum`), submitted and gathered.
//!
//! Each ends with a final phase after every fault has healed: reads of every name
//! (catalog, durable), of every dataset (data), the result of every graph not yet
//! gathered (graph).

use std::collections::BTreeSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::{Client, Error};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::history::{Extra, Op, OpFn, OpType};

pub mod data;
pub mod graph;

/// How long a data or graph client waits after an operation the cluster refused or
/// could not answer, as a real client backs off (a refusal is fast: without it the
/// history fills with thousands of identical failures per second).
pub(crate) const FAIL_BACKOFF: Duration = Duration::from_millis(100);

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Registers: publish / override / unpublish / get / list on a few names.
    Catalog,
    /// A set: publishes of fresh names, all read back at the end.
    Durable,
    /// Persisted datasets of known content: put, read, all read back at the end.
    Data,
    /// Task graphs of known results: submitted, gathered, all gathered at the end.
    Graph,
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(text: &str) -> Result<Workload, String> {
        match text {
            "catalog" => Ok(Workload::Catalog),
            "durable" => Ok(Workload::Durable),
            "data" => Ok(Workload::Data),
            "graph" => Ok(Workload::Graph),
            other => Err(format!("unknown workload `{other}` (catalog, durable, data, graph)")),
        }
    }
}

impl Workload {
    /// The name used in flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Catalog => "catalog",
            Workload::Durable => "durable",
            Workload::Data => "data",
            Workload::Graph => "graph",
        }
    }

    /// Whether the workload needs worker processes.
    pub fn needs_workers(self) -> bool {
        matches!(self, Workload::Data | Workload::Graph)
    }
}

/// Records the history: every event gets the next index and a timestamp under one
/// lock, so index order is time order.
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

/// What an event says, besides its index and time.
pub struct Event {
    /// The process.
    pub process: u64,
    /// Invoke or completion.
    pub kind: OpType,
    /// The function.
    pub f: OpFn,
    /// The name.
    pub key: Option<String>,
    /// Value written or read.
    pub value: Option<String>,
    /// Names listed.
    pub names: Option<Vec<String>>,
    /// The client's error.
    pub error: Option<String>,
    /// A final-phase read.
    pub is_final: bool,
    /// The data-plane fields.
    pub extra: Extra,
}

impl Recorder {
    /// A recorder whose clock starts at `start`.
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Appends an event.
    pub fn record(&self, event: Event) {
        if let Ok(mut ops) = self.ops.lock() {
            let op = Op {
                index: ops.len() as u64,
                time_ns: self.start.elapsed().as_nanos() as u64,
                process: event.process,
                kind: event.kind,
                f: event.f,
                key: event.key,
                value: event.value,
                names: event.names,
                error: event.error,
                is_final: event.is_final,
                extra: event.extra,
            };
            ops.push(op);
        }
    }

    /// The history so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().map(|ops| ops.clone()).unwrap_or_default()
    }

    /// Time since the start of the run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// When the run's clock started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// How many completions so far.
    pub fn completed(&self) -> usize {
        self.ops
            .lock()
            .map(|ops| ops.iter().filter(|op| op.kind != OpType::Invoke).count())
            .unwrap_or(0)
    }
}

/// The names the catalog workload works on: `slots` names at a time, each replaced
/// by a fresh one after `ops_per_key` operations.
pub struct KeyPool {
    slots: Mutex<Vec<(u64, u64)>>,
    ops_per_key: u64,
}

impl KeyPool {
    /// A pool of `slots` names.
    pub fn new(slots: usize, ops_per_key: u64) -> KeyPool {
        KeyPool {
            slots: Mutex::new(vec![(0, 0); slots.max(1)]),
            ops_per_key: ops_per_key.max(1),
        }
    }

    /// A name for the next operation.
    pub fn pick(&self, rng: &mut StdRng) -> String {
        let Ok(mut slots) = self.slots.lock() else {
            return "jepsen-poisoned".to_string();
        };
        let slot = rng.random_range(0..slots.len());
        let (generation, count) = &mut slots[slot];
        if *count >= self.ops_per_key {
            *generation += 1;
            *count = 0;
        }
        *count += 1;
        format!("jepsen-r{slot}-g{generation}")
    }
}

/// What one client worker needs.
pub struct WorkerContext {
    /// The workload.
    pub workload: Workload,
    /// This worker's number (0-based); its first process id.
    pub worker: u64,
    /// How many workers (process ids advance by this after an `info`).
    pub concurrency: u64,
    /// The worker's own client.
    pub client: Client,
    /// The history.
    pub recorder: Arc<Recorder>,
    /// Names for the catalog workload.
    pub keys: Arc<KeyPool>,
    /// Seed for this worker's choices.
    pub seed: u64,
    /// How long an operation may take before it is recorded as `info`.
    pub op_timeout: Duration,
    /// Turns true when the run ends.
    pub stop: watch::Receiver<bool>,
    /// The datasets put so far (data workload).
    pub pool: Arc<data::DataPool>,
    /// Copies of each chunk (data workload).
    pub replicas: u32,
    /// Unique to the run, in every task key (graph workload).
    pub nonce: String,
}

/// What a client worker leaves for the final phase.
#[derive(Default)]
pub struct Leftovers {
    /// Graphs submitted whose result was not read yet (graph workload).
    pub graphs: Vec<graph::PendingGraph>,
}

/// How an operation ended.
pub struct Completion {
    kind: OpType,
    value: Option<String>,
    names: Option<Vec<String>>,
    error: Option<String>,
    extra: Extra,
}

impl Completion {
    fn ok(value: Option<String>) -> Completion {
        Completion {
            kind: OpType::Ok,
            value,
            names: None,
            error: None,
            extra: Extra::default(),
        }
    }

    /// A completion that is not `ok`: writes repeat the value they tried to write.
    fn not_ok(f: OpFn, kind: OpType, written: Option<&str>, error: String) -> Completion {
        Completion {
            kind,
            value: if f.is_write() {
                written.map(str::to_string)
            } else {
                None
            },
            names: None,
            error: Some(error),
            extra: Extra::default(),
        }
    }
}

/// How an operation that got no answer ends: a write may still happen (`info`), a
/// read had no effect (`fail`).
fn unanswered(f: OpFn) -> OpType {
    if f.is_write() {
        OpType::Info
    } else {
        OpType::Fail
    }
}

/// Classifies a client error for `f`: a refused write (already exists, not found,
/// invalid, expired session) definitely did not happen; a write that timed out may
/// have; a read that failed had no effect either way.
pub fn classify(f: OpFn, error: &Error) -> OpType {
    if !f.is_write() {
        return OpType::Fail;
    }
    match error {
        Error::AlreadyExists { .. }
        | Error::NotFound { .. }
        | Error::InvalidName { .. }
        | Error::TooLarge { .. }
        | Error::InvalidArgument { .. }
        | Error::SessionExpired { .. }
        | Error::InvalidAddress { .. }
        | Error::Membership { .. }
        | Error::NotEnoughWorkers { .. }
        | Error::OtherCluster { .. }
        | Error::InvalidGraph { .. }
        | Error::TaskFailed { .. }
        // Workers could not store the data: the publish itself was never sent.
        | Error::Unavailable { .. } => OpType::Fail,
        Error::Timeout { .. } | Error::Protocol { .. } => unanswered(f),
    }
}

/// Runs one operation against the cluster.
pub async fn execute(client: &Client, f: OpFn, key: Option<&str>, value: Option<&str>) -> Completion {
    let key = key.unwrap_or_default();
    let value_text = value.unwrap_or_default();
    let result: Result<Completion, Error> = match f {
        OpFn::Publish => client
            .publish_dataset(key, value_text)
            .await
            .map(|_| Completion::ok(value.map(str::to_string))),
        OpFn::Override => client
            .publish_datasets(vec![cairn_client::Dataset::new(key, value_text)], true)
            .await
            .map(|_| Completion::ok(value.map(str::to_string))),
        OpFn::Unpublish => client.unpublish_dataset(key).await.map(|_| Completion::ok(None)),
        OpFn::Get => match client.get_dataset(key).await {
            Ok(dataset) => Ok(Completion::ok(Some(
                String::from_utf8_lossy(dataset.value().map_or(&[][..], |value| &value.data)).into_owned(),
            ))),
            Err(Error::NotFound { .. }) => Ok(Completion::ok(None)),
            Err(error) => Err(error),
        },
        OpFn::List => client.list_datasets().await.map(|names| Completion {
            kind: OpType::Ok,
            value: None,
            names: Some(names),
            error: None,
            extra: Extra::default(),
        }),
        other => Err(Error::InvalidArgument {
            message: format!("`{}` is not a catalog operation", other.as_str()),
        }),
    };
    result.unwrap_or_else(|error| Completion::not_ok(f, classify(f, &error), value, error.to_string()))
}

/// One operation to perform.
pub(crate) struct Invocation {
    process: u64,
    f: OpFn,
    key: Option<String>,
    value: Option<String>,
    is_final: bool,
    extra: Extra,
}

/// Invokes, executes (bounded by `op_timeout`) and completes one operation; returns
/// how it ended and, for a list, the names returned.
async fn perform(
    recorder: &Recorder,
    client: &Client,
    invocation: Invocation,
    op_timeout: Duration,
) -> (OpType, Option<Vec<String>>) {
    let (f, key, value) = (invocation.f, invocation.key.clone(), invocation.value.clone());
    let completion = perform_with(recorder, invocation, op_timeout, async move {
        execute(client, f, key.as_deref(), value.as_deref()).await
    })
    .await;
    (completion.kind, completion.names)
}

/// Invokes `invocation`, runs `operation` (bounded by `op_timeout`: past it a write
/// is `info`, a read `fail`) and records its completion.
pub(crate) async fn perform_with(
    recorder: &Recorder,
    invocation: Invocation,
    op_timeout: Duration,
    operation: impl Future<Output = Completion>,
) -> Completion {
    let Invocation {
        process,
        f,
        key,
        value,
        is_final,
        extra,
    } = invocation;
    recorder.record(Event {
        process,
        kind: OpType::Invoke,
        f,
        key: key.clone(),
        value: value.clone(),
        names: None,
        error: None,
        is_final,
        extra,
    });
    let completion = match tokio::time::timeout(op_timeout, operation).await {
        Ok(completion) => completion,
        Err(_) => Completion::not_ok(
            f,
            unanswered(f),
            value.as_deref(),
            format!("no answer within {op_timeout:?}"),
        ),
    };
    recorder.record(Event {
        process,
        kind: completion.kind,
        f,
        key,
        value: completion.value.clone(),
        names: completion.names.clone(),
        error: completion.error.clone(),
        is_final,
        extra: completion.extra.clone(),
    });
    completion
}

/// One client worker: operations back to back until the run stops. Returns what
/// the final phase must finish.
pub async fn worker(context: WorkerContext) -> Leftovers {
    match context.workload {
        Workload::Data => {
            data::worker(&context).await;
            Leftovers::default()
        }
        Workload::Graph => Leftovers {
            graphs: graph::worker(&context).await,
        },
        Workload::Catalog | Workload::Durable => {
            catalog_worker(&context).await;
            Leftovers::default()
        }
    }
}

/// A catalog or durable client: operations back to back until the run stops.
async fn catalog_worker(context: &WorkerContext) {
    let mut rng = StdRng::seed_from_u64(context.seed);
    let mut process = context.worker;
    let mut counter = 0u64;
    // The client's own deadline is shorter than the op timeout, so the client gives
    // up (and reports Timeout) before the recorder does.
    while !*context.stop.borrow() {
        counter += 1;
        let value = format!("v{process}-{counter}");
        let (f, key, value) = match context.workload {
            Workload::Durable | Workload::Data | Workload::Graph => {
                (OpFn::Publish, Some(format!("jepsen-d{process}-{counter}")), Some(value))
            }
            Workload::Catalog => {
                // One client in five only reads, as dashboards do: it keeps the
                // leader it knows for as long as that replica answers, so a deposed
                // leader serving reads is exposed for the whole fault.
                let roll = if context.worker % 5 == 4 {
                    rng.random_range(50..100)
                } else {
                    rng.random_range(0..100)
                };
                let f = match roll {
                    0..=24 => OpFn::Publish,
                    25..=34 => OpFn::Override,
                    35..=49 => OpFn::Unpublish,
                    50..=94 => OpFn::Get,
                    _ => OpFn::List,
                };
                let key = (f != OpFn::List).then(|| context.keys.pick(&mut rng));
                let value = matches!(f, OpFn::Publish | OpFn::Override).then_some(value);
                (f, key, value)
            }
        };
        let invocation = Invocation {
            process,
            f,
            key,
            value,
            is_final: false,
            extra: Extra::default(),
        };
        let (kind, _) = perform(&context.recorder, &context.client, invocation, context.op_timeout).await;
        if kind == OpType::Info {
            // The operation may still happen: this process is done, a fresh one
            // takes over so that every process stays sequential.
            process += context.concurrency;
        }
    }
}

/// The final phase: after healing, list once and get every name the history wrote
/// or the list returned, retrying each until it answers (or `limit` passes).
/// Returns whether every final read completed.
pub async fn final_reads(recorder: Arc<Recorder>, client: Client, first_process: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let op_timeout = Duration::from_secs(5);
    let process = first_process;
    let mut listed: Option<Vec<String>> = None;
    while Instant::now() < deadline {
        let invocation = Invocation {
            process,
            f: OpFn::List,
            key: None,
            value: None,
            is_final: true,
            extra: Extra::default(),
        };
        if let (OpType::Ok, names) = perform(&recorder, &client, invocation, op_timeout).await {
            listed = names;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(listed) = listed else { return false };
    let mut keys: BTreeSet<String> = recorder
        .ops()
        .into_iter()
        .filter(|op| matches!(op.f, OpFn::Publish | OpFn::Override | OpFn::Unpublish))
        .filter_map(|op| op.key)
        .collect();
    keys.extend(listed);
    let keys: Vec<String> = keys.into_iter().collect();
    retry_in_lanes(
        keys,
        16,
        process + 1,
        deadline,
        Duration::from_millis(100),
        move |lane_process, key| {
            let (recorder, client) = (recorder.clone(), client.clone());
            async move {
                let invocation = Invocation {
                    process: lane_process,
                    f: OpFn::Get,
                    key: Some(key.as_ref().clone()),
                    value: None,
                    is_final: true,
                    extra: Extra::default(),
                };
                perform(&recorder, &client, invocation, op_timeout).await.0 == OpType::Ok
            }
        },
    )
    .await
}

/// The final phases' loop: runs `attempt(process, item)` for every item, spread
/// round-robin over `lanes` concurrent lanes (lane `n` records as process
/// `first_process + n`), trying an item again every `pause` until it returns true or
/// `deadline` passes (then the lane goes on to its next item). Returns whether every
/// item succeeded.
pub(crate) async fn retry_in_lanes<T, F, Fut>(
    items: Vec<T>,
    lanes: usize,
    first_process: u64,
    deadline: Instant,
    pause: Duration,
    attempt: F,
) -> bool
where
    T: Send + Sync + 'static,
    F: Fn(u64, Arc<T>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let mut by_lane: Vec<Vec<Arc<T>>> = (0..lanes.max(1)).map(|_| Vec::new()).collect();
    let count = by_lane.len();
    for (at, item) in items.into_iter().enumerate() {
        by_lane[at % count].push(Arc::new(item));
    }
    let mut tasks = Vec::new();
    for (lane, lane_items) in by_lane.into_iter().enumerate() {
        let attempt = attempt.clone();
        let process = first_process + lane as u64;
        tasks.push(tokio::spawn(async move {
            let mut complete = true;
            for item in lane_items {
                while !attempt(process, item.clone()).await {
                    if Instant::now() > deadline {
                        complete = false;
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
            complete
        }));
    }
    let mut complete = true;
    for task in tasks {
        complete &= task.await.unwrap_or(false);
    }
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_writes_fail_timeouts_are_unknown_and_failed_reads_fail() {
        let timeout = Error::Timeout {
            operation: "publish",
            after: Duration::from_secs(1),
            last_error: "x".to_string(),
        };
        let exists = Error::AlreadyExists {
            message: "x".to_string(),
        };
        assert_eq!(classify(OpFn::Publish, &timeout), OpType::Info);
        assert_eq!(classify(OpFn::Publish, &exists), OpType::Fail);
        assert_eq!(classify(OpFn::Get, &timeout), OpType::Fail);
    }

    #[test]
    fn key_pool_rotates_names_after_their_quota() {
        let pool = KeyPool::new(1, 3);
        let mut rng = StdRng::seed_from_u64(1);
        let names: Vec<String> = (0..7).map(|_| pool.pick(&mut rng)).collect();
        assert_eq!(names[0], "jepsen-r0-g0");
        assert_eq!(names[2], "jepsen-r0-g0");
        assert_eq!(names[3], "jepsen-r0-g1");
        assert_eq!(names[6], "jepsen-r0-g2");
    }
}
