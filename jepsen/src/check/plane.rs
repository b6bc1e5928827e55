//! Pairing of the data plane's operations (`put`, `read`, `submit`, `gather`,
//! `status`, `probe`): each invoke with the next completion of its process, keeping
//! the whole events (the checkers read their data-plane fields). What does not pair
//! becomes a `malformed-history` anomaly, never a panic.

use std::collections::HashMap;

use crate::history::{Op, OpFn, OpType};

use super::paired::{ms, Outcome};
use super::verdict::Anomaly;

/// One data-plane operation: its invoke and its completion (none: never completed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlaneOp<'a> {
    /// The invoke.
    pub invoke: &'a Op,
    /// The completion, if any.
    pub completion: Option<&'a Op>,
}

impl<'a> PlaneOp<'a> {
    /// How it ended (no completion: unknown).
    pub fn outcome(&self) -> Outcome {
        match self.completion.map(|op| op.kind) {
            Some(OpType::Ok) => Outcome::Ok,
            Some(OpType::Fail) => Outcome::Fail,
            _ => Outcome::Info,
        }
    }

    /// The key (dataset name, graph id, worker).
    pub fn key(&self) -> &'a str {
        self.invoke.key.as_deref().unwrap_or_default()
    }

    /// When it completed (its invoke time if it never did).
    pub fn end_ns(&self) -> u64 {
        self.completion.map_or(self.invoke.time_ns, |op| op.time_ns)
    }

    /// Whether it belongs to the final phase.
    pub fn is_final(&self) -> bool {
        self.invoke.is_final || self.completion.is_some_and(|op| op.is_final)
    }

    /// History indexes of the invoke and the completion.
    pub fn indexes(&self) -> Vec<u64> {
        let mut out = vec![self.invoke.index];
        out.extend(self.completion.map(|op| op.index));
        out
    }

    /// A short description: `put "jd-1-2" [index 4→9, process 1, 1.000–2.000 ms, ok]`.
    pub fn describe(&self) -> String {
        let outcome = match (self.outcome(), self.completion.is_some()) {
            (Outcome::Ok, _) => "ok",
            (Outcome::Fail, _) => "fail",
            (Outcome::Info, true) => "info",
            (Outcome::Info, false) => "never completed",
        };
        let indexes = match self.completion {
            Some(op) => format!("{}→{}", self.invoke.index, op.index),
            None => format!("{}→(none)", self.invoke.index),
        };
        format!(
            "{} {:?} [index {indexes}, process {}, {}–{} ms, {outcome}]",
            self.invoke.f.as_str(),
            self.key(),
            self.invoke.process,
            ms(self.invoke.time_ns),
            ms(self.end_ns())
        )
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

/// Pairs the operations of `history` whose function is one of `fns`, in invoke
/// order.
pub(crate) fn pair<'a>(history: &'a [Op], fns: &[OpFn]) -> (Vec<PlaneOp<'a>>, Vec<Anomaly>) {
    let mut ops: Vec<PlaneOp<'a>> = Vec::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut problems = Vec::new();
    for op in history.iter().filter(|op| fns.contains(&op.f)) {
        if op.kind == OpType::Invoke {
            if let Some(previous) = pending.insert(op.process, ops.len()) {
                problems.push(malformed(
                    format!(
                        "process {} invoked index {} while its operation at index {} had not completed",
                        op.process, op.index, ops[previous].invoke.index
                    ),
                    vec![ops[previous].invoke.index, op.index],
                ));
            }
            if op.key.is_none() {
                problems.push(malformed(
                    format!("{} at index {} has no key", op.f.as_str(), op.index),
                    vec![op.index],
                ));
            }
            ops.push(PlaneOp {
                invoke: op,
                completion: None,
            });
            continue;
        }
        match pending.remove(&op.process) {
            Some(at) if ops[at].invoke.f == op.f && ops[at].invoke.key == op.key => ops[at].completion = Some(op),
            Some(at) => problems.push(malformed(
                format!(
                    "completion at index {} does not match its invoke at index {}",
                    op.index, ops[at].invoke.index
                ),
                vec![ops[at].invoke.index, op.index],
            )),
            None => problems.push(malformed(
                format!(
                    "completion at index {} ({} by process {}) has no outstanding invoke",
                    op.index,
                    op.f.as_str(),
                    op.process
                ),
                vec![op.index],
            )),
        }
    }
    (ops, problems)
}
