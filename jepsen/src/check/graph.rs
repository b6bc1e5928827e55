//! The `graph` checker: every task graph's result is the one its shape implies.
//!
//! Each `submit` records the graph's shape ([`crate::history::GraphSpec`]); its
//! result — `leaves × (base + length) + leaves × (leaves − 1) / 2` — is computed
//! from the shape alone. Then:
//!
//! - every `gather` that read a result must read exactly that (`wrong-result`
//!   otherwise, or if the result is not one integer);
//! - a result read for a graph whose submission definitely failed is
//!   `phantom-result`;
//! - the cluster saying a task of a graph failed is `graph-failed` (every task of
//!   these graphs is correct: a failure is the cluster's); saying it does not know
//!   an acknowledged graph (its results were never released) is `lost-graph`;
//! - after the final heal, every acknowledged graph must have had its result read
//!   (`lost-result` otherwise).
//!
//! A gather that timed out or could not reach a worker is no anomaly.

use std::collections::BTreeMap;

use crate::history::{Op, OpFn};
use crate::workload::graph::task_count;

use super::data::{bump, bump_outcome};
use super::paired::Outcome;
use super::plane::{self, PlaneOp};
use super::verdict::{Anomaly, Verdict};

/// The checker's name in its verdict.
pub const CHECKER: &str = "graph";

fn anomaly(kind: &str, key: &str, explanation: String, ops: &[PlaneOp<'_>]) -> Anomaly {
    Anomaly {
        kind: kind.to_string(),
        key: Some(key.to_string()),
        explanation,
        ops: ops.iter().flat_map(PlaneOp::indexes).collect(),
    }
}

/// Checks the graph workload's submissions and results (see the module documentation).
pub fn check(history: &[Op]) -> Verdict {
    let (ops, malformed) = plane::pair(history, &[OpFn::Submit, OpFn::Gather]);
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();

    let mut submits: BTreeMap<&str, (PlaneOp<'_>, i128)> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.invoke.f == OpFn::Submit) {
        bump(&mut stats, "graphs");
        bump_outcome(&mut stats, "submits", op.outcome());
        let Some(spec) = &op.invoke.extra.graph else {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!("{} records no graph", op.describe()),
                &[*op],
            ));
            continue;
        };
        if spec.tasks != task_count(spec.leaves, spec.length, spec.fanout) || spec.leaves == 0 {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!(
                    "{} records {spec:?}, whose task count is not its shape's",
                    op.describe()
                ),
                &[*op],
            ));
        }
        if op.outcome() == Outcome::Ok {
            *stats.entry("tasks_acknowledged".to_string()).or_default() += u64::from(spec.tasks);
        }
        if submits.insert(op.key(), (*op, spec.expected())).is_some() {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!("{} reuses a graph id", op.describe()),
                &[*op],
            ));
        }
    }

    let mut read: BTreeMap<&str, bool> = BTreeMap::new();
    // The final phase ran if anything is marked final (its gathers, or the status
    // sample taken after it).
    let any_final = history.iter().any(|op| op.is_final);
    for op in ops.iter().filter(|op| op.invoke.f == OpFn::Gather) {
        bump(&mut stats, "gathers");
        let Some((submit, expected)) = submits.get(op.key()) else {
            undecided.push(anomaly(
                "inconsistent-history",
                op.key(),
                format!("{} gathers a graph never submitted", op.describe()),
                &[*op],
            ));
            continue;
        };
        let completion = op.completion;
        match op.outcome() {
            Outcome::Ok => {
                bump(&mut stats, "results");
                read.insert(op.key(), true);
                let result = completion.and_then(|c| c.extra.result);
                if result.map(i128::from) != Some(*expected) {
                    anomalies.push(anomaly(
                        "wrong-result",
                        op.key(),
                        format!(
                            "{} read {}, but the graph of {} computes {expected}",
                            op.describe(),
                            result.map_or_else(
                                || format!(
                                    "no integer ({})",
                                    completion.and_then(|c| c.error.clone()).unwrap_or_default()
                                ),
                                |r| r.to_string()
                            ),
                            submit.describe()
                        ),
                        &[*op, *submit],
                    ));
                } else {
                    bump(&mut stats, "results_correct");
                }
                if submit.outcome() == Outcome::Fail {
                    anomalies.push(anomaly(
                        "phantom-result",
                        op.key(),
                        format!("{} read a result, but {} failed", op.describe(), submit.describe()),
                        &[*op, *submit],
                    ));
                }
            }
            _ => {
                bump(&mut stats, "gathers_failed");
                let said = completion.and_then(|c| c.value.as_deref());
                let error = completion.and_then(|c| c.error.clone()).unwrap_or_default();
                match said {
                    Some("task-failed") => anomalies.push(anomaly(
                        "graph-failed",
                        op.key(),
                        format!(
                            "{}: the cluster says a task of the graph failed, but every task is a correct inc or \
                             sum: {error}",
                            op.describe()
                        ),
                        &[*op, *submit],
                    )),
                    Some("not-found") if submit.outcome() == Outcome::Ok => anomalies.push(anomaly(
                        "lost-graph",
                        op.key(),
                        format!(
                            "{}: the cluster does not know the graph, but {} was acknowledged and its result never \
                             released: {error}",
                            op.describe(),
                            submit.describe()
                        ),
                        &[*op, *submit],
                    )),
                    _ => {}
                }
            }
        }
    }

    if any_final {
        for (id, (submit, expected)) in &submits {
            if submit.outcome() == Outcome::Ok && !read.contains_key(id) {
                let gathers: Vec<PlaneOp<'_>> = ops
                    .iter()
                    .filter(|op| op.invoke.f == OpFn::Gather && op.key() == *id)
                    .rev()
                    .take(3)
                    .copied()
                    .collect();
                let last_error = gathers
                    .first()
                    .and_then(|op| op.completion.and_then(|c| c.error.clone()))
                    .unwrap_or_else(|| "never gathered".to_string());
                let mut involved = vec![*submit];
                involved.extend(gathers);
                anomalies.push(anomaly(
                    "lost-result",
                    id,
                    format!(
                        "{} was acknowledged (it computes {expected}), but its result was never read, even after \
                         the final heal (last: {last_error})",
                        submit.describe()
                    ),
                    &involved,
                ));
            }
        }
    } else {
        stats.insert("final_skipped".to_string(), 1);
    }
    for kind in [
        "wrong-result",
        "phantom-result",
        "graph-failed",
        "lost-graph",
        "lost-result",
    ] {
        let n = anomalies.iter().filter(|a| a.kind == kind).count() as u64;
        stats.insert(kind.replace('-', "_"), n);
    }
    super::verdict(CHECKER, anomalies, undecided, &malformed, stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::check::verdict::Validity;
    use crate::history::{Extra, GraphSpec, OpType};

    fn spec(base: i64) -> GraphSpec {
        GraphSpec {
            base,
            leaves: 4,
            length: 3,
            fanout: 2,
            tasks: task_count(4, 3, 2),
        }
    }

    struct B(Vec<Op>);

    impl B {
        #[allow(clippy::too_many_arguments)]
        fn push(
            &mut self,
            process: u64,
            kind: OpType,
            f: OpFn,
            key: &str,
            value: Option<&str>,
            extra: Extra,
            final_: bool,
        ) {
            let index = self.0.len() as u64;
            self.0.push(Op {
                index,
                time_ns: (index + 1) * 1_000_000,
                process,
                kind,
                f,
                key: Some(key.to_string()),
                value: value.map(str::to_string),
                names: None,
                error: (kind == OpType::Fail).then(|| "nope".to_string()),
                is_final: final_,
                extra,
            });
        }

        fn submit(&mut self, process: u64, id: &str, spec: &GraphSpec, outcome: OpType) -> &mut Self {
            let extra = Extra {
                graph: Some(spec.clone()),
                ..Extra::default()
            };
            self.push(process, OpType::Invoke, OpFn::Submit, id, None, extra, false);
            self.push(process, outcome, OpFn::Submit, id, None, Extra::default(), false);
            self
        }

        fn gather(&mut self, process: u64, id: &str, result: Result<i64, Option<&str>>, final_: bool) -> &mut Self {
            self.push(
                process,
                OpType::Invoke,
                OpFn::Gather,
                id,
                None,
                Extra::default(),
                final_,
            );
            match result {
                Ok(value) => {
                    let extra = Extra {
                        result: Some(value),
                        ..Extra::default()
                    };
                    self.push(process, OpType::Ok, OpFn::Gather, id, None, extra, final_);
                }
                Err(said) => self.push(process, OpType::Fail, OpFn::Gather, id, said, Extra::default(), final_),
            }
            self
        }
    }

    fn kinds(history: &[Op]) -> (Validity, Vec<String>) {
        let verdict = check(history);
        for a in &verdict.anomalies {
            println!("{}: {}", a.kind, a.explanation);
        }
        (
            verdict.validity,
            verdict.anomalies.iter().map(|a| a.kind.clone()).collect(),
        )
    }

    #[test]
    fn right_results_and_timeouts_are_valid() {
        let mut b = B(Vec::new());
        let right = i64::try_from(spec(100).expected()).unwrap();
        b.submit(1, "g1", &spec(100), OpType::Ok)
            .gather(1, "g1", Err(None), false);
        b.gather(9, "g1", Ok(right), true);
        b.submit(2, "g2", &spec(5), OpType::Info);
        assert_eq!(kinds(&b.0), (Validity::Valid, vec![]));
    }

    #[test]
    fn wrong_failed_phantom_and_lost_results_are_anomalies() {
        let mut b = B(Vec::new());
        b.submit(1, "g1", &spec(100), OpType::Ok).gather(1, "g1", Ok(7), false);
        b.submit(1, "g2", &spec(1), OpType::Ok)
            .gather(1, "g2", Err(Some("task-failed")), false);
        b.submit(1, "g3", &spec(2), OpType::Fail).gather(
            1,
            "g3",
            Ok(i64::try_from(spec(2).expected()).unwrap()),
            false,
        );
        b.submit(1, "g4", &spec(3), OpType::Ok)
            .gather(9, "g4", Err(Some("not-found")), true);
        let (validity, kinds) = kinds(&b.0);
        assert_eq!(validity, Validity::Invalid);
        assert_eq!(
            kinds,
            vec![
                "wrong-result",
                "graph-failed",
                "phantom-result",
                "lost-graph",
                "lost-result",
                "lost-result"
            ]
        );
    }
}
