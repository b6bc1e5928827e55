//! Pairs every invoke with its completion (by process) into one [`Operation`], and
//! collects what is malformed about the history instead of panicking.

use std::collections::HashMap;

use crate::history::{Op, OpFn, OpType};

use super::verdict::Anomaly;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: an `info` completion, or no completion at all.
    Info,
}

/// One operation: an invoke and its completion.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// The logical client process.
    pub process: u64,
    /// The function.
    pub f: OpFn,
    /// The dataset name (every function but `list`).
    pub key: Option<String>,
    /// Publish/override: the value written (`None` only in a malformed history).
    /// Get on `ok`: the value read (`None` = not found).
    pub value: Option<String>,
    /// List on `ok`: the names returned.
    pub names: Option<Vec<String>>,
    /// How it ended.
    pub outcome: Outcome,
    /// `Op::index` of the invoke.
    pub invoke_index: u64,
    /// `Op::index` of the completion, if any.
    pub complete_index: Option<u64>,
    /// When it was invoked (ns).
    pub invoke_ns: u64,
    /// When it completed (ns), if it did.
    pub complete_ns: Option<u64>,
    /// A read of the final phase.
    pub is_final: bool,
    /// False when the operation cannot be attributed (e.g. a keyed function without a key).
    pub usable: bool,
}

impl Operation {
    /// The latest time the operation may take effect: its completion for `ok` and
    /// `fail`, `None` (+∞) for an unknown one.
    pub fn end(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok | Outcome::Fail => self.complete_ns,
            Outcome::Info => None,
        }
    }

    /// `end()` with +∞ as `u64::MAX`.
    pub fn end_or_max(&self) -> u64 {
        self.end().unwrap_or(u64::MAX)
    }

    /// The history indexes of the invoke and the completion.
    pub fn indexes(&self) -> Vec<u64> {
        let mut out = vec![self.invoke_index];
        out.extend(self.complete_index);
        out
    }

    /// Whether it is a publish or an override (a write that sets a value).
    pub fn is_set(&self) -> bool {
        matches!(self.f, OpFn::Publish | OpFn::Override)
    }

    /// A short description, e.g. `publish "a" [index 12→15, process 3, 1.000–2.000 ms, ok]`
    /// (what a get read is left to the sentence; see [`Operation::describe_with_result`]).
    pub fn describe(&self) -> String {
        self.description(false)
    }

    /// [`Operation::describe`], with what an `ok` get read (`get → "a" [...]`).
    pub fn describe_with_result(&self) -> String {
        self.description(true)
    }

    fn description(&self, result: bool) -> String {
        let what = match self.f {
            OpFn::Publish | OpFn::Override => format!("{} {}", self.f.as_str(), quote(self.value.as_deref())),
            OpFn::Get if result && self.outcome == Outcome::Ok => format!("get → {}", quote(self.value.as_deref())),
            _ => self.f.as_str().to_string(),
        };
        let indexes = match self.complete_index {
            Some(c) => format!("{}→{}", self.invoke_index, c),
            None => format!("{}→(none)", self.invoke_index),
        };
        let times = match self.complete_ns {
            Some(c) => format!("{}–{} ms", ms(self.invoke_ns), ms(c)),
            None => format!("{}– ms", ms(self.invoke_ns)),
        };
        let outcome = match self.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info if self.complete_index.is_some() => "info",
            Outcome::Info => "never completed",
        };
        format!("{what} [index {indexes}, process {}, {times}, {outcome}]", self.process)
    }
}

/// Nanoseconds as milliseconds with three decimals.
pub(crate) fn ms(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000, (ns / 1_000) % 1_000)
}

/// A value as the report shows it: quoted, or `absent` for `None`.
pub(crate) fn quote(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "absent".to_string(),
    }
}

/// The history as operations, plus what is malformed about it.
#[derive(Debug, Default)]
pub(crate) struct Paired {
    /// Operations in invoke order.
    pub ops: Vec<Operation>,
    /// One `malformed-history` anomaly per problem found.
    pub malformed: Vec<Anomaly>,
    /// The `ok` lists, indexed by name.
    pub lists: ListIndex,
}

/// The `ok` lists, and for each name the lists that include it.
#[derive(Debug, Default)]
pub(crate) struct ListIndex {
    /// Indexes in [`Paired::ops`] of the usable `ok` lists, by invoke time.
    pub lists: Vec<usize>,
    /// For `lists[p]`: the latest completion among `lists[..=p]` (+∞ = `u64::MAX`).
    pub max_end: Vec<u64>,
    /// Name → positions in `lists` of the lists that include it (ascending, once each).
    pub containing: HashMap<String, Vec<usize>>,
}

impl ListIndex {
    fn new(ops: &[Operation]) -> Self {
        let mut lists: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].usable && ops[i].f == OpFn::List && ops[i].outcome == Outcome::Ok)
            .filter(|&i| ops[i].names.is_some())
            .collect();
        lists.sort_by_key(|&i| (ops[i].invoke_ns, i));
        let mut max_end = Vec::with_capacity(lists.len());
        let mut containing: HashMap<String, Vec<usize>> = HashMap::new();
        for (position, &i) in lists.iter().enumerate() {
            let end = ops[i].end_or_max();
            max_end.push(max_end.last().map_or(end, |&m: &u64| m.max(end)));
            for name in ops[i].names.iter().flatten() {
                let positions = match containing.get_mut(name.as_str()) {
                    Some(positions) => positions,
                    None => containing.entry(name.clone()).or_default(),
                };
                if positions.last() != Some(&position) {
                    positions.push(position);
                }
            }
        }
        ListIndex {
            lists,
            max_end,
            containing,
        }
    }

    /// The positions of the lists that include `name`.
    pub fn containing(&self, name: &str) -> &[usize] {
        self.containing.get(name).map_or(&[], Vec::as_slice)
    }

    /// The first position from which every list may complete at or after `t` (all
    /// lists before it completed before `t`).
    pub fn first_ending_from(&self, t: u64) -> usize {
        self.max_end.partition_point(|&m| m < t)
    }
}

fn malformed(explanation: String, ops: Vec<u64>) -> Anomaly {
    Anomaly {
        kind: "malformed-history".to_string(),
        key: None,
        explanation,
        ops,
    }
}

/// Pairs invokes with completions by process. Never panics: anything unexpected becomes
/// a `malformed-history` anomaly and is handled conservatively (an operation whose
/// completion is missing or does not match is treated as unknown).
pub(crate) fn pair(history: &[Op]) -> Paired {
    let mut ops: Vec<Operation> = Vec::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut problems = Vec::new();
    for op in history {
        if op.kind == OpType::Invoke {
            if let Some(previous) = pending.remove(&op.process) {
                problems.push(malformed(
                    format!(
                        "process {} invoked index {} while its operation at index {} had not completed; \
                         the earlier operation is treated as unknown",
                        op.process, op.index, ops[previous].invoke_index
                    ),
                    vec![ops[previous].invoke_index, op.index],
                ));
            }
            let mut usable = true;
            if op.f != OpFn::List && op.key.is_none() {
                problems.push(malformed(
                    format!("{} at index {} has no key; ignored", op.f.as_str(), op.index),
                    vec![op.index],
                ));
                usable = false;
            }
            if matches!(op.f, OpFn::Publish | OpFn::Override) && op.value.is_none() {
                problems.push(malformed(
                    format!(
                        "{} at index {} has no value; it is treated as writing an unknown value",
                        op.f.as_str(),
                        op.index
                    ),
                    vec![op.index],
                ));
            }
            pending.insert(op.process, ops.len());
            ops.push(Operation {
                process: op.process,
                f: op.f,
                key: if op.f == OpFn::List { None } else { op.key.clone() },
                value: if op.f.is_write() { op.value.clone() } else { None },
                names: None,
                outcome: Outcome::Info,
                invoke_index: op.index,
                complete_index: None,
                invoke_ns: op.time_ns,
                complete_ns: None,
                is_final: op.is_final,
                usable,
            });
            continue;
        }
        let Some(i) = pending.remove(&op.process) else {
            problems.push(malformed(
                format!(
                    "completion at index {} ({} by process {}) has no outstanding invoke; ignored",
                    op.index,
                    op.f.as_str(),
                    op.process
                ),
                vec![op.index],
            ));
            continue;
        };
        let invoked = &mut ops[i];
        let key_mismatch = invoked.f != OpFn::List && invoked.key != op.key;
        let value_mismatch =
            matches!(op.f, OpFn::Publish | OpFn::Override) && op.value.is_some() && op.value != invoked.value;
        if invoked.f != op.f || key_mismatch || value_mismatch {
            problems.push(malformed(
                format!(
                    "completion at index {} does not match its invoke at index {} (function, key or value differ); \
                     the invoke is treated as unknown",
                    op.index, invoked.invoke_index
                ),
                vec![invoked.invoke_index, op.index],
            ));
            continue;
        }
        if op.time_ns < invoked.invoke_ns {
            problems.push(malformed(
                format!(
                    "completion at index {} is timed before its invoke at index {}; its time is taken as the invoke's",
                    op.index, invoked.invoke_index
                ),
                vec![invoked.invoke_index, op.index],
            ));
        }
        invoked.complete_index = Some(op.index);
        invoked.complete_ns = Some(op.time_ns.max(invoked.invoke_ns));
        invoked.is_final |= op.is_final;
        invoked.outcome = match op.kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        };
        if invoked.outcome == Outcome::Ok {
            match op.f {
                OpFn::Get => invoked.value = op.value.clone(),
                OpFn::List => match &op.names {
                    Some(names) => invoked.names = Some(names.clone()),
                    None => {
                        problems.push(malformed(
                            format!("ok list at index {} has no names; treated as unknown", op.index),
                            vec![invoked.invoke_index, op.index],
                        ));
                        invoked.outcome = Outcome::Info;
                    }
                },
                _ => {}
            }
        }
    }
    let lists = ListIndex::new(&ops);
    Paired {
        ops,
        malformed: problems,
        lists,
    }
}
