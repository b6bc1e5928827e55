//! The recorded history of a run: every client operation as an `invoke` followed by
//! its completion (`ok`, `fail` or `info`), one JSON object per line
//! (`history.jsonl`), plus the nemesis timeline (`nemesis.jsonl`).
//!
//! The meaning of a completion follows Jepsen:
//! - `ok`: the operation happened, with the recorded result;
//! - `fail`: it definitely did not happen (the cluster refused it and changed nothing);
//! - `info`: unknown — it may or may not have happened, now or later (a timeout). The
//!   process that issued it never issues another operation: the workload continues
//!   under a fresh process id, so each process stays sequential.
//!
//! Besides the catalog functions (`publish`, `override`, `unpublish`, `get`, `list`)
//! the history holds the data plane's: `put`/`read` of persisted datasets (with the
//! content written and read, [`DataSpec`] and [`Content`]), `submit`/`gather` of task
//! graphs ([`GraphSpec`] and the result), `status` samples of the scheduler's
//! recovery counters ([`Counters`]), `probe` writes to a worker whose disk the
//! nemesis filled, and the nemesis' own events (`nemesis`, [`NemesisNote`]), so that
//! the history alone is enough to re-check a run.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How an event ends (or starts) an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The client is about to send the operation.
    Invoke,
    /// It happened, with this result.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown whether it happened.
    Info,
}

/// What an operation does. Every function but `list` acts on one dataset name (the
/// `key`), which the checkers treat as one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpFn {
    /// `publish_dataset(key, value)` without override: takes effect only if `key` is
    /// not published (else it fails with already-exists).
    Publish,
    /// Publish with override: sets `key` to `value` whether or not it exists.
    Override,
    /// `unpublish_dataset(key)`: takes effect only if `key` exists (else not-found).
    Unpublish,
    /// `get_dataset(key)`: `value` on `ok` is what was read, `None` for not-found.
    Get,
    /// `list_datasets()`: `names` on `ok` is the list returned.
    List,
    /// Publish of a persisted dataset (fresh name, no override): `data` says what is
    /// written, `value` is the label of its content ([`Content::label`]).
    Put,
    /// Read of a persisted dataset, every chunk: on `ok`, `content` and `value` say
    /// what was read; `value` `None` = the catalog does not have the name.
    Read,
    /// Submission of a task graph (`key`: the graph's id; `graph`: its shape).
    Submit,
    /// Waiting for and reading the result of a submitted graph: `result` on `ok`.
    Gather,
    /// A sample of the leader's status: `counters` on `ok`.
    Status,
    /// A chunk written straight to one worker (`key`: `w<id>`) by the full-disk
    /// nemesis: `value` `disk-full` (must be refused with a clear error) or
    /// `disk-healed` (must be accepted again).
    Probe,
    /// A nemesis event (`key`: the fault, `nemesis`: phase and detail); type `info`.
    Nemesis,
}

impl OpFn {
    /// The lowercase name used in the history and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            OpFn::Publish => "publish",
            OpFn::Override => "override",
            OpFn::Unpublish => "unpublish",
            OpFn::Get => "get",
            OpFn::List => "list",
            OpFn::Put => "put",
            OpFn::Read => "read",
            OpFn::Submit => "submit",
            OpFn::Gather => "gather",
            OpFn::Status => "status",
            OpFn::Probe => "probe",
            OpFn::Nemesis => "nemesis",
        }
    }

    /// Whether the operation can change the cluster's state (a timeout leaves it
    /// unknown: `info`).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpFn::Publish | OpFn::Override | OpFn::Unpublish | OpFn::Put | OpFn::Submit
        )
    }

    /// Whether the catalog checkers see it: the catalog functions, and `put`/`read`
    /// projected onto them ([`catalog_projection`]).
    pub fn is_catalog(self) -> bool {
        matches!(
            self,
            OpFn::Publish | OpFn::Override | OpFn::Unpublish | OpFn::Get | OpFn::List | OpFn::Put | OpFn::Read
        )
    }

    /// Whether clients issue it (not the nemesis or the status sampler): the
    /// operations the report counts.
    pub fn is_client_op(self) -> bool {
        !matches!(self, OpFn::Status | OpFn::Probe | OpFn::Nemesis)
    }
}

/// One event of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (0, 1, 2, ...).
    pub index: u64,
    /// Nanoseconds since the start of the run (monotonic clock).
    pub time_ns: u64,
    /// The logical client process (sequential: one outstanding operation at a time).
    pub process: u64,
    /// Invoke or completion.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function.
    pub f: OpFn,
    /// The dataset name, for every function but `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Publish/override: the value written (on the invoke and the completion).
    /// Get: on `ok`, the value read, `None` when the dataset was not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// List: on `ok`, the names returned, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// On `fail` or `info`: what the client said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True for the reads of the final phase, after every fault has healed (the
    /// durability checker compares them with what was acknowledged).
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
    /// What the data-plane functions carry (all empty for the catalog's).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The fields of the data-plane functions; each is absent unless its function
/// uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extra {
    /// `put` (invoke and completion): what the dataset holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSpec>,
    /// `put`: the content expected (from `data`); `read` on `ok`: the content read
    /// (absent when the catalog does not have the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// `submit` (and its `gather`s): the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSpec>,
    /// `gather` on `ok`: the graph's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
    /// `status` on `ok`: the leader's recovery counters (absent: not reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    /// `nemesis`: the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<NemesisNote>,
}

/// A deterministic dataset (see [`crate::content`]): `chunks` chunks of
/// `rows_per_chunk` rows generated from `seed`, with `plus` added to every numeric
/// column. A dataset derived from another (`source`) by `inc` on every partition
/// has the source's seed and shape and `plus` one more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The generator's seed.
    pub seed: u64,
    /// Chunks (one per partition).
    pub chunks: u32,
    /// Rows in each chunk.
    pub rows_per_chunk: u32,
    /// Added to every numeric column.
    #[serde(default)]
    pub plus: i64,
    /// Workers that must hold each chunk durably before the publish.
    pub replicas: u32,
    /// For a derived dataset: the dataset its partitions were computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What a dataset holds, as a checker compares it: rows, chunks and an FNV-1a
/// checksum of every value in order (see [`crate::content`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Rows.
    pub rows: u64,
    /// Chunks (record batches read).
    pub chunks: u64,
    /// The checksum, 16 hex digits.
    pub checksum: String,
}

impl Content {
    /// The register value the catalog checkers see for this content.
    pub fn label(&self) -> String {
        format!("rows={} fnv={}", self.rows, self.checksum)
    }
}

/// A task graph with a known result: `leaves` chains of `length` `inc`s, chain `i`
/// starting from `base + i` (so it ends at `base + i + length`), summed by a tree
/// of `sum` tasks of fan-in `fanout`. Its result is
/// `leaves × (base + length) + leaves × (leaves − 1) / 2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSpec {
    /// The first chain's start.
    pub base: i64,
    /// Chains.
    pub leaves: u32,
    /// `inc`s per chain.
    pub length: u32,
    /// Fan-in of the `sum` tree.
    pub fanout: u32,
    /// Tasks in the graph.
    pub tasks: u32,
}

impl GraphSpec {
    /// The result the graph must produce.
    pub fn expected(&self) -> i128 {
        let leaves = i128::from(self.leaves);
        leaves * (i128::from(self.base) + i128::from(self.length)) + leaves * (leaves - 1) / 2
    }
}

/// The scheduler's replicated recovery counters (`cairn status`), as the leader
/// reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The replica that answered (the leader).
    pub leader: u64,
    /// Its term.
    pub term: u64,
    /// Leaders that took over.
    pub failovers: u64,
    /// Tasks computed again after their result had been computed once.
    pub tasks_recomputed: u64,
    /// Results a new leader learned from reconnecting workers.
    pub chunks_reregistered: u64,
    /// Copies made to bring persisted chunks back to their replica count.
    pub replicas_repaired: u64,
    /// The most log bytes beyond its commit index that any replica reported in this
    /// sample (a leader refuses writes past `uncommitted_limit`)...
    #[serde(default)]
    pub uncommitted_bytes: u64,
    /// ...and which replica reported them.
    #[serde(default)]
    pub uncommitted_node: u64,
    /// The schedulers' `--max-uncommitted-mib` in bytes; 0 when not known.
    #[serde(default)]
    pub uncommitted_limit: u64,
}

/// A nemesis event in the history (the same as the timeline's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisNote {
    /// Start, stop or info.
    pub phase: NemesisPhase,
    /// What exactly was done.
    pub detail: String,
    /// The processes it touched (`n1`, `w2`, ...), when it touched some.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// The catalog functions the catalog checkers (linearizable, stale-read, durable)
/// see: the catalog's own, plus each `put` as a `publish` and each `read` as a
/// `get` of its dataset's content label (a dataset is a register holding its
/// content). Everything else is dropped; indexes are kept.
pub fn catalog_projection(history: &[Op]) -> Vec<Op> {
    history
        .iter()
        .filter(|op| op.f.is_catalog())
        .map(|op| {
            let mut op = op.clone();
            op.f = match op.f {
                OpFn::Put => OpFn::Publish,
                OpFn::Read => OpFn::Get,
                other => other,
            };
            op
        })
        .collect()
}

/// One entry of the nemesis timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// Nanoseconds since the start of the run (same clock as [`Op::time_ns`]).
    pub time_ns: u64,
    /// `start` when the fault begins, `stop` when it is healed, `info` for a note.
    pub phase: NemesisPhase,
    /// The fault: `kill`, `pause`, `partition`, `netem`, `membership`.
    pub fault: String,
    /// What exactly, e.g. `kill leader n2` or `partition majority [1,2] | [3]`.
    pub detail: String,
}

/// Whether a nemesis event begins or ends a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NemesisPhase {
    /// The fault begins.
    Start,
    /// The fault is healed.
    Stop,
    /// A note (e.g. a fault that could not be applied, and why).
    Info,
}

/// Reads JSON lines of `T` (blank lines skipped), naming the line of a parse error.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut items = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not a valid entry", path.display(), number + 1))?;
        items.push(item);
    }
    Ok(items)
}

/// Writes `items` as JSON lines.
pub fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for item in items {
        serde_json::to_writer(&mut out, item)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
