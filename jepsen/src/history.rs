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
        }
    }

    /// Whether the operation can change the catalog.
    pub fn is_write(self) -> bool {
        matches!(self, OpFn::Publish | OpFn::Override | OpFn::Unpublish)
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
