//! The `recovery-counters` checker: the scheduler's replicated recovery counters
//! (`StatusReply.recovery`: failovers, tasks recomputed, chunks re-registered,
//! replicas repaired), sampled from the leader at the start, every few seconds and
//! at the end, against the faults the history records.
//!
//! - The counters are reported as the deltas between the first and the last sample.
//! - A replicated counter never decreases: the last sample (taken after the final
//!   heal and the final phase) below a value seen before is `counters-went-backwards`.
//! - A task is recomputed only when a result was lost with a worker: every increase
//!   of `tasks_recomputed` must fall within a worker fault (`kill-worker`,
//!   `pause-worker`, `partition-worker`, `full-disk`, `restart-all`) or the
//!   [`GRACE_NS`] after it, else `recomputation-without-worker-loss`. In a run whose
//!   nemeses touch only schedulers every result stays held by a live worker, so any
//!   recomputation is one.
//! - At most the tasks that were wanted when a worker fault began can be lost to
//!   it: `tasks_recomputed` above the sum, over worker faults, of the tasks of the
//!   graphs (and the partitions of derived datasets) in flight at the fault's start
//!   is `excess-recomputation`.
//!
//! - A leader cut off from its quorum takes writes only until its uncommitted log
//!   reaches the schedulers' bound (`--max-uncommitted-mib`, which every sample
//!   carries), then refuses them: a replica reporting more than the bound plus
//!   [`UNCOMMITTED_SLACK_BYTES`] is `uncommitted-log-over-bound`.
//!
//! Without a single sample carrying counters (a scheduler that does not report
//! them) the verdict is `unknown`.

use std::collections::BTreeMap;

use crate::history::{Counters, NemesisPhase, Op, OpFn, OpType};
use crate::nemesis::WORKER_FAULTS;

use super::paired::{ms, Outcome};
use super::plane;
use super::verdict::{Anomaly, Verdict};

/// The checker's name in its verdict.
pub const CHECKER: &str = "recovery-counters";

/// How long after a worker fault heals its consequences may still be counted: the
/// leader's worker timeout, a restart, and the recomputation itself.
pub const GRACE_NS: u64 = 20_000_000_000;

/// How far past its bound a leader's uncommitted log may go: the bound is checked
/// before each proposal, so each proposer that found it under may append one more
/// (client writes go in 2 batches of at most 4 MiB; workers, the task runtime and
/// graph submissions propose besides).
pub const UNCOMMITTED_SLACK_BYTES: u64 = 16 * 1024 * 1024;

/// A worker fault's interval.
#[derive(Debug, Clone)]
struct Window {
    fault: String,
    start_ns: u64,
    end_ns: u64,
    index: u64,
}

fn worker_fault_windows(history: &[Op], end_ns: u64) -> Vec<Window> {
    let mut open: Vec<Window> = Vec::new();
    let mut closed = Vec::new();
    for op in history.iter().filter(|op| op.f == OpFn::Nemesis) {
        let (Some(fault), Some(note)) = (op.key.as_deref(), op.extra.nemesis.as_ref()) else {
            continue;
        };
        if !WORKER_FAULTS.contains(&fault) {
            continue;
        }
        match note.phase {
            NemesisPhase::Start => open.push(Window {
                fault: fault.to_string(),
                start_ns: op.time_ns,
                end_ns,
                index: op.index,
            }),
            NemesisPhase::Stop => {
                if let Some(at) = open.iter().position(|window| window.fault == fault) {
                    let mut window = open.remove(at);
                    window.end_ns = op.time_ns;
                    closed.push(window);
                }
            }
            NemesisPhase::Info => {}
        }
    }
    closed.extend(open);
    closed.sort_by_key(|window| window.start_ns);
    closed
}

/// Task-holding work in flight: (from, until, tasks).
fn task_lifetimes(history: &[Op], end_ns: u64) -> Vec<(u64, u64, u64)> {
    let (ops, _) = plane::pair(history, &[OpFn::Submit, OpFn::Gather, OpFn::Put]);
    let mut last_gather: BTreeMap<&str, u64> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.invoke.f == OpFn::Gather) {
        let until = if op.outcome() == Outcome::Ok {
            op.end_ns()
        } else {
            end_ns
        };
        let entry = last_gather.entry(op.key()).or_default();
        *entry = (*entry).max(until);
    }
    let mut lifetimes = Vec::new();
    for op in &ops {
        match op.invoke.f {
            OpFn::Submit if op.outcome() != Outcome::Fail => {
                let tasks = op.invoke.extra.graph.as_ref().map_or(0, |graph| u64::from(graph.tasks));
                let until = match op.outcome() {
                    Outcome::Ok => last_gather.get(op.key()).copied().unwrap_or(end_ns),
                    _ => op.end_ns().saturating_add(GRACE_NS),
                };
                lifetimes.push((op.invoke.time_ns, until, tasks));
            }
            OpFn::Put if op.outcome() != Outcome::Fail => {
                if let Some(spec) = op.invoke.extra.data.as_ref().filter(|spec| spec.source.is_some()) {
                    lifetimes.push((
                        op.invoke.time_ns,
                        op.end_ns().saturating_add(GRACE_NS),
                        u64::from(spec.chunks),
                    ));
                }
            }
            _ => {}
        }
    }
    lifetimes
}

fn field(counters: &Counters) -> [(&'static str, u64); 4] {
    [
        ("failovers", counters.failovers),
        ("tasks_recomputed", counters.tasks_recomputed),
        ("chunks_reregistered", counters.chunks_reregistered),
        ("replicas_repaired", counters.replicas_repaired),
    ]
}

/// Checks the recovery counters against the faults (see the module documentation).
pub fn check(history: &[Op]) -> Verdict {
    let (ops, malformed) = plane::pair(history, &[OpFn::Status]);
    let end_ns = history.iter().map(|op| op.time_ns).max().unwrap_or(0);
    let mut stats: BTreeMap<String, u64> = BTreeMap::new();
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    let answered: Vec<&Op> = ops
        .iter()
        .filter_map(|op| op.completion)
        .filter(|completion| completion.kind == OpType::Ok)
        .collect();
    let samples: Vec<(&Op, &Counters)> = answered
        .iter()
        .filter_map(|op| op.extra.counters.as_ref().map(|counters| (*op, counters)))
        .collect();
    stats.insert("samples".to_string(), samples.len() as u64);
    stats.insert("status_calls".to_string(), ops.len() as u64);
    let windows = worker_fault_windows(history, end_ns);
    stats.insert("worker_faults".to_string(), windows.len() as u64);
    let (Some((first_op, first)), Some((last_op, last))) = (samples.first(), samples.last()) else {
        let explanation = if answered.is_empty() {
            "no status sample was answered by a leader: the recovery counters could not be read".to_string()
        } else {
            format!(
                "the leader answered {} status calls without recovery counters (StatusReply.recovery is unset): \
                 recomputations cannot be counted",
                answered.len()
            )
        };
        undecided.push(Anomaly {
            kind: "counters-unreported".to_string(),
            key: None,
            explanation,
            ops: answered.iter().take(3).map(|op| op.index).collect(),
        });
        return super::verdict(CHECKER, anomalies, undecided, &malformed, stats);
    };
    for ((name, start), (_, end)) in field(first).into_iter().zip(field(last)) {
        stats.insert(name.to_string(), end.saturating_sub(start));
    }

    // A leader without a quorum stops appending at its bound.
    if let Some((op, worst)) = samples.iter().max_by_key(|(_, counters)| counters.uncommitted_bytes) {
        stats.insert("max_uncommitted_bytes".to_string(), worst.uncommitted_bytes);
        let allowed = worst.uncommitted_limit.saturating_add(UNCOMMITTED_SLACK_BYTES);
        if worst.uncommitted_limit > 0 && worst.uncommitted_bytes > allowed {
            anomalies.push(Anomaly {
                kind: "uncommitted-log-over-bound".to_string(),
                key: Some(format!("n{}", worst.uncommitted_node)),
                explanation: format!(
                    "at {} ms n{} held {} bytes of log it had not committed, over its bound of {} bytes \
                     (plus {} of slack): a leader without a quorum kept appending what clients retried",
                    ms(op.time_ns),
                    worst.uncommitted_node,
                    worst.uncommitted_bytes,
                    worst.uncommitted_limit,
                    UNCOMMITTED_SLACK_BYTES
                ),
                ops: vec![op.index],
            });
        }
    }

    // Never backwards: the last sample (all healed) holds every value seen before.
    for (op, counters) in &samples {
        for ((name, seen), (_, at_end)) in field(counters).into_iter().zip(field(last)) {
            if at_end < seen {
                anomalies.push(Anomaly {
                    kind: "counters-went-backwards".to_string(),
                    key: Some(name.to_string()),
                    explanation: format!(
                        "{name} was {seen} at {} ms (leader n{} term {}), but the last sample, after the final heal, \
                         says {at_end} (leader n{} term {}): a replicated counter lost increments",
                        ms(op.time_ns),
                        counters.leader,
                        counters.term,
                        last.leader,
                        last.term
                    ),
                    ops: vec![op.index, last_op.index],
                });
                break;
            }
        }
        if anomalies.len() >= 4 {
            break;
        }
    }

    // Recomputations only where a worker fault can explain them.
    let mut high = first.tasks_recomputed;
    let mut previous: &Op = first_op;
    for (op, counters) in samples.iter().skip(1) {
        if counters.tasks_recomputed > high {
            let (from, until) = (previous.time_ns, op.time_ns);
            let explained = windows
                .iter()
                .any(|window| window.start_ns <= until && window.end_ns.saturating_add(GRACE_NS) >= from);
            if !explained {
                let why = if windows.is_empty() {
                    "this run's nemeses touch only schedulers, so every result stayed on a live worker and \
                     nothing should have been recomputed"
                        .to_string()
                } else {
                    format!(
                        "no worker fault was in force then, nor in the {} s before",
                        GRACE_NS / 1_000_000_000
                    )
                };
                anomalies.push(Anomaly {
                    kind: "recomputation-without-worker-loss".to_string(),
                    key: None,
                    explanation: format!(
                        "tasks_recomputed went from {high} to {} between {} ms and {} ms (leader n{} term {}): {why}",
                        counters.tasks_recomputed,
                        ms(from),
                        ms(until),
                        counters.leader,
                        counters.term
                    ),
                    ops: vec![previous.index, op.index],
                });
            }
            high = counters.tasks_recomputed;
        }
        previous = op;
    }

    // No more recomputations than the tasks in flight at the worker faults.
    let lifetimes = task_lifetimes(history, end_ns);
    let exposure: u64 = windows
        .iter()
        .map(|window| {
            lifetimes
                .iter()
                .filter(|(from, until, _)| *from <= window.start_ns && *until >= window.start_ns)
                .map(|(_, _, tasks)| tasks)
                .sum::<u64>()
        })
        .sum();
    stats.insert("tasks_exposed_to_worker_faults".to_string(), exposure);
    let recomputed = last.tasks_recomputed.saturating_sub(first.tasks_recomputed);
    if !windows.is_empty() && recomputed > exposure {
        anomalies.push(Anomaly {
            kind: "excess-recomputation".to_string(),
            key: None,
            explanation: format!(
                "{recomputed} tasks were recomputed, but the {} worker faults found only {exposure} tasks in flight \
                 (graphs submitted and not yet gathered, derived datasets being published) when they began: \
                 results that survived were computed again",
                windows.len()
            ),
            ops: windows.iter().map(|window| window.index).take(20).collect(),
        });
    }
    super::verdict(CHECKER, anomalies, undecided, &malformed, stats)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::check::verdict::Validity;
    use crate::history::{Extra, GraphSpec, NemesisNote};

    struct B(Vec<Op>);

    impl B {
        fn push(&mut self, time_s: u64, process: u64, kind: OpType, f: OpFn, key: Option<&str>, extra: Extra) {
            let index = self.0.len() as u64;
            self.0.push(Op {
                index,
                time_ns: time_s * 1_000_000_000 + index,
                process,
                kind,
                f,
                key: key.map(str::to_string),
                value: None,
                names: None,
                error: None,
                is_final: false,
                extra,
            });
        }

        fn sample(&mut self, time_s: u64, recomputed: Option<u64>) -> &mut Self {
            self.push(
                time_s,
                77,
                OpType::Invoke,
                OpFn::Status,
                Some("leader"),
                Extra::default(),
            );
            let extra = Extra {
                counters: recomputed.map(|tasks_recomputed| Counters {
                    leader: 1,
                    term: 2,
                    tasks_recomputed,
                    ..Counters::default()
                }),
                ..Extra::default()
            };
            self.push(time_s, 77, OpType::Ok, OpFn::Status, Some("leader"), extra);
            self
        }

        fn nemesis(&mut self, time_s: u64, fault: &str, phase: NemesisPhase) -> &mut Self {
            let extra = Extra {
                nemesis: Some(NemesisNote {
                    phase,
                    detail: String::new(),
                    hosts: vec![],
                }),
                ..Extra::default()
            };
            self.push(time_s, 99, OpType::Info, OpFn::Nemesis, Some(fault), extra);
            self
        }

        fn graph(&mut self, time_s: u64, done_s: u64, tasks: u32) -> &mut Self {
            let id = format!("g{time_s}");
            let extra = Extra {
                graph: Some(GraphSpec {
                    base: 0,
                    leaves: 1,
                    length: 1,
                    fanout: 2,
                    tasks,
                }),
                ..Extra::default()
            };
            self.push(time_s, 5, OpType::Invoke, OpFn::Submit, Some(&id), extra);
            self.push(time_s, 5, OpType::Ok, OpFn::Submit, Some(&id), Extra::default());
            self.push(time_s, 5, OpType::Invoke, OpFn::Gather, Some(&id), Extra::default());
            self.push(done_s, 5, OpType::Ok, OpFn::Gather, Some(&id), Extra::default());
            self
        }
    }

    fn kinds(b: &B) -> (Validity, Vec<String>) {
        let verdict = check(&b.0);
        for a in &verdict.anomalies {
            println!("{}: {}", a.kind, a.explanation);
        }
        (
            verdict.validity,
            verdict.anomalies.iter().map(|a| a.kind.clone()).collect(),
        )
    }

    #[test]
    fn unreported_counters_are_undecided() {
        let mut b = B(Vec::new());
        b.sample(0, None).sample(10, None);
        assert_eq!(kinds(&b), (Validity::Unknown, vec!["counters-unreported".to_string()]));
    }

    #[test]
    fn scheduler_faults_must_not_cause_recomputation() {
        let mut b = B(Vec::new());
        b.sample(0, Some(0))
            .nemesis(1, "kill", NemesisPhase::Start)
            .sample(2, Some(0));
        b.nemesis(3, "kill", NemesisPhase::Stop).sample(4, Some(0));
        assert_eq!(kinds(&b), (Validity::Valid, vec![]));
        b.sample(6, Some(3));
        assert_eq!(
            kinds(&b),
            (Validity::Invalid, vec!["recomputation-without-worker-loss".to_string()])
        );
    }

    #[test]
    fn recomputation_is_bounded_by_a_worker_fault_and_the_tasks_in_flight() {
        let mut b = B(Vec::new());
        b.sample(0, Some(5)).graph(1, 30, 12);
        b.nemesis(2, "kill-worker", NemesisPhase::Start).sample(4, Some(10));
        b.nemesis(8, "kill-worker", NemesisPhase::Stop).sample(12, Some(17));
        // 12 recomputed, 12 tasks in flight at the fault: fine; 5 counted before the start.
        assert_eq!(kinds(&b), (Validity::Valid, vec![]));
        assert_eq!(check(&b.0).stats["tasks_recomputed"], 12);
        // One more, long after the fault: unexplained and above the bound.
        b.sample(50, Some(17)).sample(100, Some(18));
        assert_eq!(
            kinds(&b).1,
            vec!["recomputation-without-worker-loss", "excess-recomputation"]
        );
    }

    /// Sets the last sample's uncommitted log figures.
    fn backlog(b: &mut B, bytes: u64, limit: u64) {
        let counters = b.0.last_mut().unwrap().extra.counters.as_mut().unwrap();
        counters.uncommitted_bytes = bytes;
        counters.uncommitted_node = 3;
        counters.uncommitted_limit = limit;
    }

    #[test]
    fn an_uncommitted_log_past_its_bound_is_an_anomaly() {
        let limit = 16 * 1024 * 1024;
        let mut b = B(Vec::new());
        b.sample(0, Some(0)).sample(2, Some(0));
        backlog(&mut b, limit + UNCOMMITTED_SLACK_BYTES, limit);
        assert_eq!(kinds(&b), (Validity::Valid, vec![]));
        assert_eq!(
            check(&b.0).stats["max_uncommitted_bytes"],
            limit + UNCOMMITTED_SLACK_BYTES
        );
        b.sample(4, Some(0));
        backlog(&mut b, limit + UNCOMMITTED_SLACK_BYTES + 1, limit);
        assert_eq!(
            kinds(&b),
            (Validity::Invalid, vec!["uncommitted-log-over-bound".to_string()])
        );
    }

    #[test]
    fn counters_must_not_go_backwards() {
        let mut b = B(Vec::new());
        b.sample(0, Some(0)).graph(0, 9, 5);
        b.nemesis(1, "restart-all", NemesisPhase::Start).sample(2, Some(4));
        b.nemesis(3, "restart-all", NemesisPhase::Stop).sample(5, Some(1));
        assert_eq!(kinds(&b).1, vec!["counters-went-backwards"]);
    }
}
