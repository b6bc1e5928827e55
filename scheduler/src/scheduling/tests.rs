//! Unit tests, one rule each: the core is driven event by event and its invariants
//! are checked after every event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use super::*;
use crate::control::ClientId;
use crate::graph::{Arg, Literal, TaskKey, TaskSpec};
use crate::registry::WorkerId;

pub(super) fn key(text: &str) -> TaskKey {
    TaskKey::parse(text).expect("valid key")
}

pub(super) fn client(number: u8) -> ClientId {
    ClientId([number; 16])
}

fn w(number: u64) -> WorkerId {
    WorkerId(number)
}

/// `inc` of its dependencies' results (or of 1 without any), reading `chunks` too.
pub(super) fn inc(name: &str, dependencies: &[&str], chunks: &[&str]) -> TaskSpec {
    let mut args: Vec<Arg> = dependencies
        .iter()
        .map(|dependency| Arg::Task(key(dependency)))
        .collect();
    args.extend(chunks.iter().map(|chunk| Arg::Chunk(chunk.to_string())));
    if args.is_empty() {
        args.push(Arg::Literal(Literal::Int(1)));
    }
    TaskSpec {
        key: key(name),
        op: "inc".to_string(),
        args,
    }
}

/// A core whose invariants are checked after every event.
struct Harness {
    core: Core,
}

impl Harness {
    fn new(config: CoreConfig) -> Harness {
        Harness {
            core: Core::new(config),
        }
    }

    fn with_workers(config: CoreConfig, workers: &[(u64, u32)]) -> Harness {
        let mut harness = Harness::new(config);
        for &(worker, nthreads) in workers {
            harness.handle(Event::WorkerJoined {
                worker: w(worker),
                nthreads,
            });
        }
        harness
    }

    fn handle(&mut self, event: Event) -> Vec<Decision> {
        let decisions = self.core.handle(event);
        if let Err(problem) = self.core.sanity_check() {
            panic!("invariant broken: {problem}\ndecisions: {decisions:#?}");
        }
        decisions
    }

    fn submit(&mut self, client_number: u8, tasks: Vec<TaskSpec>, wanted: &[&str]) -> Vec<Decision> {
        self.handle(Event::GraphSubmitted {
            client: client(client_number),
            tasks,
            wanted: wanted.iter().map(|name| key(name)).collect(),
            chunks: Vec::new(),
        })
    }

    fn finish(&mut self, worker: u64, name: &str, bytes: u64) -> Vec<Decision> {
        self.handle(Event::TaskFinished {
            worker: w(worker),
            key: key(name),
            bytes,
            rows: 1,
        })
    }

    fn status(&self, name: &str) -> Option<TaskStatus> {
        self.core.task_status(&key(name))
    }
}

/// The (worker, key) of each `Assign`, in order.
fn assigned(decisions: &[Decision]) -> Vec<(u64, String)> {
    decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Assign { worker, task, .. } => Some((worker.0, task.key.to_string())),
            _ => None,
        })
        .collect()
}

/// The (worker, key) of each `Cancel`, in order.
fn cancelled(decisions: &[Decision]) -> Vec<(u64, String)> {
    decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Cancel { worker, key } => Some((worker.0, key.to_string())),
            _ => None,
        })
        .collect()
}

/// The (worker, keys) of each `Release`.
fn released(decisions: &[Decision]) -> Vec<(u64, Vec<String>)> {
    decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Release { worker, keys } => Some((worker.0, keys.iter().map(|key| key.to_string()).collect())),
            _ => None,
        })
        .collect()
}

/// The outcome of each `Done`, by key (the last one wins).
fn done(decisions: &[Decision]) -> BTreeMap<String, Result<ResultLocation, TaskFailure>> {
    decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Done { key, outcome } => Some((key.to_string(), outcome.clone())),
            _ => None,
        })
        .collect()
}

/// Every proposed batch, in order.
fn proposed(decisions: &[Decision]) -> Vec<TaskBatch> {
    decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Propose(batch) => Some(batch.clone()),
            _ => None,
        })
        .collect()
}

fn names(keys: &[TaskKey]) -> Vec<String> {
    keys.iter().map(|key| key.to_string()).collect()
}

/// A chain runs one task at a time, each only once its dependency is in memory;
/// intermediate results are released once their dependent has finished, and the
/// wanted key is done with its location.
#[test]
fn a_chain_runs_in_dependency_order() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 2)]);
    let decisions = harness.submit(
        1,
        vec![inc("a", &[], &[]), inc("b", &["a"], &[]), inc("c", &["b"], &[])],
        &["c"],
    );
    assert_eq!(assigned(&decisions), [(1, "a".to_string())]);
    assert_eq!(harness.status("b"), Some(TaskStatus::Waiting));
    let decisions = harness.finish(1, "a", 10);
    assert_eq!(assigned(&decisions), [(1, "b".to_string())]);
    let Some(Decision::Assign { inputs, priority, .. }) = decisions.first() else {
        panic!("expected an assignment first: {decisions:?}");
    };
    assert_eq!(
        inputs,
        &[InputLocation {
            key: "a".to_string(),
            workers: vec![w(1)],
            bytes: 10
        }]
    );
    assert_eq!(*priority, 1);
    let decisions = harness.finish(1, "b", 10);
    assert_eq!(assigned(&decisions), [(1, "c".to_string())]);
    assert_eq!(released(&decisions), [(1, vec!["a".to_string()])]);
    // "a" is kept as lineage (c could need b recomputed), without a result.
    assert!(harness.core.knows(&key("a")));
    assert_eq!(harness.status("a"), None);
    let decisions = harness.finish(1, "c", 7);
    assert_eq!(
        done(&decisions).get("c"),
        Some(&Ok(ResultLocation {
            workers: vec![w(1)],
            bytes: 7,
            rows: 1
        }))
    );
    assert_eq!(released(&decisions), [(1, vec!["b".to_string()])]);
    let batch = proposed(&harness.handle(Event::Flush)).pop().expect("a batch");
    assert_eq!(
        batch
            .finished
            .iter()
            .map(|task| task.key.to_string())
            .collect::<Vec<_>>(),
        ["c"]
    );
    assert_eq!(names(&batch.released), ["a", "b"]);
    assert!(harness.core.is_held("c"));
    assert!(!harness.core.is_held("a"));
}

/// A task goes to the worker holding the most bytes of its inputs; ties go to the
/// fewest assigned per thread, then the lowest id.
#[test]
fn placement_follows_the_input_bytes_then_the_load_then_the_id() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1), (2, 1), (3, 4)]);
    let decisions = harness.submit(
        1,
        vec![inc("a", &[], &[]), inc("b", &[], &[]), inc("c", &[], &[])],
        &["a", "b", "c"],
    );
    // All idle: the lowest id first; then 2 and 3 tie at nothing assigned (2 wins);
    // then 3 has nothing per thread.
    assert_eq!(
        assigned(&decisions),
        [(1, "a".to_string()), (2, "b".to_string()), (3, "c".to_string())]
    );
    harness.finish(1, "a", 100);
    harness.finish(2, "b", 10);
    harness.finish(3, "c", 10);
    let decisions = harness.submit(1, vec![inc("d", &["a", "b"], &[])], &["d"]);
    assert_eq!(
        assigned(&decisions),
        [(1, "d".to_string())],
        "a's 100 bytes are on worker 1"
    );
    // 10 bytes on 2 and on 3, both idle: the lowest id.
    let decisions = harness.submit(1, vec![inc("e", &["b", "c"], &[])], &["e"]);
    assert_eq!(assigned(&decisions), [(2, "e".to_string())]);
    // Again 10 and 10, but worker 2 has one task per thread and worker 3 none.
    let decisions = harness.submit(1, vec![inc("f", &["b", "c"], &[])], &["f"]);
    assert_eq!(assigned(&decisions), [(3, "f".to_string())]);
}

/// Tasks with no input held anywhere go where their siblings (the other inputs of a
/// dependent) are assigned or held, while that worker has a free slot; otherwise the
/// least loaded worker.
#[test]
fn root_tasks_follow_their_siblings() {
    let config = CoreConfig {
        max_assigned_per_thread: 3,
        ..CoreConfig::default()
    };
    let mut harness = Harness::with_workers(config, &[(1, 1), (2, 1)]);
    // Two time steps of two reads each, and what combines each pair.
    let decisions = harness.submit(
        1,
        vec![
            inc("x0", &[], &[]),
            inc("y0", &[], &[]),
            inc("x1", &[], &[]),
            inc("y1", &[], &[]),
            inc("hypot0", &["x0", "y0"], &[]),
            inc("hypot1", &["x1", "y1"], &[]),
        ],
        &["hypot0", "hypot1"],
    );
    assert_eq!(
        assigned(&decisions),
        [
            (1, "x0".to_string()),
            (1, "y0".to_string()),
            (2, "x1".to_string()),
            (2, "y1".to_string())
        ],
        "each pair meets on one worker; the pairs spread"
    );
    // A sibling held (not assigned) counts too; a full worker does not.
    harness.finish(1, "x0", 10);
    let decisions = harness.submit(
        1,
        vec![
            inc("z0", &[], &[]),
            inc("z1", &[], &[]),
            inc("z2", &[], &[]),
            inc("z3", &[], &[]),
            inc("all", &["x0", "z0", "z1", "z2", "z3"], &[]),
        ],
        &["all"],
    );
    assert_eq!(
        assigned(&decisions),
        [(1, "z0".to_string()), (1, "z1".to_string()), (2, "z2".to_string())],
        "worker 1 holds x0 and takes its siblings until its 3 slots (y0 is one) are full; \
         then the least loaded worker, until every slot is taken"
    );
    assert_eq!(harness.status("z3"), Some(TaskStatus::Ready));
}

/// A worker takes at most `nthreads × max_assigned_per_thread` tasks; the rest wait
/// in the ready queue, in submission order, until a slot frees or a worker joins.
#[test]
fn slots_bound_assignments_and_free_slots_pull_from_the_ready_queue() {
    let config = CoreConfig {
        max_assigned_per_thread: 2,
        ..CoreConfig::default()
    };
    let mut harness = Harness::with_workers(config, &[(1, 1)]);
    let tasks: Vec<TaskSpec> = (0..5).map(|at| inc(&format!("t{at}"), &[], &[])).collect();
    let decisions = harness.submit(1, tasks, &["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(assigned(&decisions), [(1, "t0".to_string()), (1, "t1".to_string())]);
    assert_eq!(harness.status("t2"), Some(TaskStatus::Ready));
    assert_eq!(harness.core.counts(), (3, 2, 0, 0));
    let decisions = harness.finish(1, "t1", 1);
    assert_eq!(assigned(&decisions), [(1, "t2".to_string())]);
    let decisions = harness.handle(Event::WorkerJoined {
        worker: w(2),
        nthreads: 1,
    });
    assert_eq!(assigned(&decisions), [(2, "t3".to_string()), (2, "t4".to_string())]);
    assert_eq!(
        harness.core.worker_load(w(2)),
        Some(WorkerLoad {
            nthreads: 1,
            assigned: 2,
            capacity: 2,
            results: 0
        })
    );
}

/// An idle worker with nothing in the ready queue steals up to half of the most
/// loaded worker's tasks, most recently assigned first, never those likely running.
/// Either worker's finish is accepted; a later duplicate adds a holder.
#[test]
fn an_idle_worker_steals_the_most_recent_assignments() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 2)]);
    let tasks: Vec<TaskSpec> = (0..8).map(|at| inc(&format!("t{at}"), &[], &[])).collect();
    let wanted: Vec<String> = (0..8).map(|at| format!("t{at}")).collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    assert_eq!(assigned(&harness.submit(1, tasks, &wanted)).len(), 8);
    let decisions = harness.handle(Event::WorkerJoined {
        worker: w(2),
        nthreads: 2,
    });
    let expected: Vec<(u64, String)> = ["t7", "t6", "t5", "t4"]
        .iter()
        .map(|name| (1, name.to_string()))
        .collect();
    assert_eq!(cancelled(&decisions), expected);
    assert_eq!(
        assigned(&decisions),
        expected.iter().map(|(_, name)| (2, name.clone())).collect::<Vec<_>>()
    );
    // Worker 1 had started t7 anyway: its finish wins, worker 2's copy is cancelled.
    let decisions = harness.finish(1, "t7", 3);
    assert_eq!(cancelled(&decisions), [(2, "t7".to_string())]);
    assert!(done(&decisions).contains_key("t7"));
    // Worker 2 finished it too: a second holder.
    harness.finish(2, "t7", 3);
    assert_eq!(
        harness
            .core
            .result_location(&key("t7"))
            .map(|location| location.workers),
        Some(vec![w(1), w(2)])
    );
    // Worker 1 dropped t6 as asked.
    harness.handle(Event::TaskCancelled {
        worker: w(1),
        key: key("t6"),
    });
    assert_eq!(harness.status("t6"), Some(TaskStatus::Assigned(w(2))));
    // Two busy workers: no stealing back and forth.
    assert!(assigned(&harness.finish(2, "t6", 1)).is_empty());
}

/// A dead worker's tasks go back to the ready queue and elsewhere; a task whose
/// workers died more often than allowed errs (Dask's KilledWorker).
#[test]
fn a_task_whose_workers_keep_dying_errs() {
    let config = CoreConfig {
        allowed_failures: 1,
        ..CoreConfig::default()
    };
    let mut harness = Harness::with_workers(config, &[(1, 1), (2, 1), (3, 1)]);
    harness.submit(1, vec![inc("a", &[], &[]), inc("b", &["a"], &[])], &["b"]);
    assert_eq!(harness.status("a"), Some(TaskStatus::Assigned(w(1))));
    let decisions = harness.handle(Event::WorkerGone { worker: w(1) });
    assert_eq!(assigned(&decisions), [(2, "a".to_string())]);
    let decisions = harness.handle(Event::WorkerGone { worker: w(2) });
    assert!(assigned(&decisions).is_empty());
    let failure = TaskFailure {
        task: key("a"),
        message: "task 'a' failed: its worker died 2 times (allowed 1)".to_string(),
    };
    assert_eq!(done(&decisions).get("b"), Some(&Err(failure.clone())));
    assert_eq!(harness.status("b"), Some(TaskStatus::Erred(failure)));
    // "a" is not wanted, but b (erred, wanted) refers to it: it stays, erred.
    assert!(matches!(harness.status("a"), Some(TaskStatus::Erred(_))));
}

/// A result lost with its only worker is recomputed if still needed, recursively
/// through released dependencies; a task assigned elsewhere that needed it is
/// cancelled and waits again.
#[test]
fn lost_results_are_recomputed_from_lineage() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(
        1,
        vec![
            inc("a", &[], &[]),
            inc("b", &["a"], &[]),
            inc("c", &["b"], &[]),
            inc("z", &[], &[]),
            inc("d", &["c", "z"], &[]),
        ],
        &["d"],
    );
    harness.finish(1, "a", 1);
    harness.finish(1, "z", 1);
    harness.finish(1, "b", 1);
    harness.handle(Event::WorkerJoined {
        worker: w(2),
        nthreads: 1,
    });
    harness.finish(1, "c", 1);
    assert_eq!(harness.status("d"), Some(TaskStatus::Assigned(w(1))));
    // Worker 1 dies with d assigned and every result on it.
    let decisions = harness.handle(Event::WorkerGone { worker: w(1) });
    // c was lost and d needs it: c waits for b, which waits for a, which runs now.
    assert_eq!(assigned(&decisions), [(2, "a".to_string()), (2, "z".to_string())]);
    assert_eq!(harness.status("c"), Some(TaskStatus::Waiting));
    assert_eq!(harness.status("d"), Some(TaskStatus::Waiting));
    for name in ["a", "z", "b", "c"] {
        harness.finish(2, name, 1);
    }
    assert_eq!(harness.status("d"), Some(TaskStatus::Assigned(w(2))));
    assert!(done(&harness.finish(2, "d", 1)).contains_key("d"));
}

/// A task assigned on one worker whose input is lost on another is cancelled and
/// waits for the input's recomputation.
#[test]
fn an_assigned_task_whose_input_is_lost_is_cancelled() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1), (2, 1)]);
    harness.submit(
        1,
        vec![inc("x", &[], &[]), inc("y", &[], &[]), inc("z", &["x", "y"], &[])],
        &["z"],
    );
    harness.finish(1, "x", 1);
    let decisions = harness.finish(2, "y", 100);
    assert_eq!(assigned(&decisions), [(2, "z".to_string())]);
    let decisions = harness.handle(Event::WorkerGone { worker: w(1) });
    assert_eq!(cancelled(&decisions), [(2, "z".to_string())]);
    assert_eq!(assigned(&decisions), [(2, "x".to_string())]);
    assert_eq!(harness.status("z"), Some(TaskStatus::Waiting));
    let decisions = harness.finish(2, "x", 1);
    assert_eq!(assigned(&decisions), [(2, "z".to_string())]);
}

/// A task that raises errs, and so does every task depending on it, transitively,
/// with the original failure; each wanted one is done.
#[test]
fn a_failure_propagates_unchanged_to_every_dependent() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 4)]);
    harness.submit(
        1,
        vec![
            inc("a", &[], &[]),
            inc("b", &["a"], &[]),
            inc("c", &["b"], &[]),
            inc("d", &["a"], &[]),
            inc("ok", &[], &[]),
        ],
        &["c", "d", "ok"],
    );
    let decisions = harness.handle(Event::TaskErred {
        worker: w(1),
        key: key("a"),
        message: "ZeroDivisionError".to_string(),
    });
    let failure = TaskFailure {
        task: key("a"),
        message: "ZeroDivisionError".to_string(),
    };
    let outcomes = done(&decisions);
    assert_eq!(outcomes.get("c"), Some(&Err(failure.clone())));
    assert_eq!(outcomes.get("d"), Some(&Err(failure.clone())));
    assert!(!outcomes.contains_key("ok"));
    let batch = proposed(&harness.handle(Event::Flush)).pop().expect("a batch");
    let erred: Vec<String> = batch.erred.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(erred, ["a", "b", "d", "c"]);
    assert!(batch.erred.iter().all(|(_, recorded)| *recorded == failure));
}

/// A worker gives a task back because the holder named for its input answered that
/// it does not hold it (it restarted, say): the holder is dropped, the input computed
/// again, and the task runs after it; no failure, no recorded error, and no `Cancel`
/// to the worker that gave it back. A second holder left: the task is placed again
/// at once and nothing is recomputed.
#[test]
fn a_task_given_back_for_a_missing_input_runs_once_the_input_is_back() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[]), inc("b", &["a"], &[])], &["b"]);
    let decisions = harness.finish(1, "a", 8);
    assert_eq!(assigned(&decisions), [(1, "b".to_string())]);

    let decisions = harness.handle(Event::InputMissing {
        worker: w(1),
        key: key("b"),
        input: "a".to_string(),
        holders: vec![w(1)],
    });
    assert_eq!(assigned(&decisions), [(1, "a".to_string())]);
    assert!(cancelled(&decisions).is_empty(), "{decisions:?}");
    assert!(done(&decisions).is_empty(), "{decisions:?}");
    assert_eq!(harness.status("b"), Some(TaskStatus::Waiting));
    assert_eq!(harness.core.take_recovery().tasks_recomputed, 1);

    let decisions = harness.finish(1, "a", 8);
    assert_eq!(assigned(&decisions), [(1, "b".to_string())]);
    let decisions = harness.finish(1, "b", 8);
    assert!(matches!(done(&decisions).get("b"), Some(Ok(_))), "{decisions:?}");
    let batch = proposed(&harness.handle(Event::Flush)).pop().expect("a batch");
    assert!(batch.erred.is_empty(), "{batch:?}");

    // Two holders, one stale: the task goes back to the ready queue and is placed
    // again with the good holder only.
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1), (2, 1)]);
    let decisions = harness.submit(2, vec![inc("x", &[], &[]), inc("y", &["x"], &[])], &["y"]);
    let worker = assigned(&decisions)
        .first()
        .map(|(worker, _)| *worker)
        .expect("x assigned");
    let other = if worker == 1 { 2 } else { 1 };
    harness.finish(worker, "x", 8);
    harness.finish(other, "x", 8);
    let Some(TaskStatus::Assigned(assignee)) = harness.status("y") else {
        panic!("y not assigned: {:?}", harness.status("y"));
    };
    let decisions = harness.handle(Event::InputMissing {
        worker: assignee,
        key: key("y"),
        input: "x".to_string(),
        holders: vec![w(other)],
    });
    let again = decisions
        .iter()
        .find_map(|decision| match decision {
            Decision::Assign { task, inputs, .. } if task.key == key("y") => Some(inputs.clone()),
            _ => None,
        })
        .expect("y placed again");
    assert_eq!(again[0].workers, vec![w(worker)]);
    assert!(cancelled(&decisions).is_empty(), "{decisions:?}");
    assert_eq!(harness.core.take_recovery().tasks_recomputed, 0);
}

/// A key already in memory or erred is done as soon as a client asks for it; an
/// existing key is reused, not recomputed.
#[test]
fn known_keys_are_reused_and_done_at_submit() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[]), inc("bad", &[], &[])], &["a", "bad"]);
    harness.finish(1, "a", 4);
    harness.handle(Event::TaskErred {
        worker: w(1),
        key: key("bad"),
        message: "boom".to_string(),
    });
    let decisions = harness.submit(
        2,
        vec![
            inc("a", &[], &[]),
            inc("bad", &[], &[]),
            inc("b", &["a"], &[]),
            inc("c", &["bad"], &[]),
        ],
        &["a", "bad", "b", "c"],
    );
    let outcomes = done(&decisions);
    assert!(matches!(outcomes.get("a"), Some(Ok(location)) if location.bytes == 4));
    assert!(matches!(outcomes.get("bad"), Some(Err(failure)) if failure.message == "boom"));
    assert!(matches!(outcomes.get("c"), Some(Err(failure)) if failure.task == key("bad")));
    assert_eq!(assigned(&decisions), [(1, "b".to_string())]);
    assert_eq!(harness.core.wanted_by(&key("a")), [client(1), client(2)]);
}

/// A result no client wants, not pinned, that no unfinished task needs is released
/// on its holders and forgotten; a key another client still wants stays.
#[test]
fn released_keys_are_forgotten_when_nothing_else_needs_them() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[])], &["a"]);
    harness.submit(2, vec![inc("a", &[], &[])], &["a"]);
    harness.finish(1, "a", 1);
    let decisions = harness.handle(Event::KeysReleased {
        client: client(1),
        keys: vec![key("a")],
    });
    assert!(released(&decisions).is_empty(), "client 2 still wants it");
    let decisions = harness.handle(Event::KeysReleased {
        client: client(2),
        keys: vec![key("a")],
    });
    assert_eq!(released(&decisions), [(1, vec!["a".to_string()])]);
    assert!(!harness.core.knows(&key("a")));
    let batch = proposed(&harness.handle(Event::Flush)).pop().expect("a batch");
    assert_eq!(batch.unwanted, [(client(1), key("a")), (client(2), key("a"))]);
    assert_eq!(names(&batch.forgotten), ["a"]);
    assert!(batch.finished.is_empty(), "news are replaced, not accumulated");
}

/// Releasing a key still to run cancels it and forgets it and its dependencies that
/// nothing else needs.
#[test]
fn releasing_an_unfinished_key_cancels_it() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(
        1,
        vec![inc("a", &[], &[]), inc("b", &["a"], &[]), inc("shared", &[], &[])],
        &["b", "shared"],
    );
    harness.submit(2, vec![inc("shared", &[], &[]), inc("c", &["shared"], &[])], &["c"]);
    let decisions = harness.handle(Event::KeysReleased {
        client: client(1),
        keys: vec![key("b"), key("shared")],
    });
    assert_eq!(cancelled(&decisions), [(1, "a".to_string())]);
    assert!(!harness.core.knows(&key("a")) && !harness.core.knows(&key("b")));
    assert_eq!(
        harness.status("shared"),
        Some(TaskStatus::Assigned(w(1))),
        "c still needs it"
    );
}

/// A pinned result is never released, whoever releases it; unpinned, it goes.
#[test]
fn pinned_results_stay() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[])], &["a"]);
    harness.finish(1, "a", 1);
    harness.handle(Event::Pinned { keys: vec![key("a")] });
    let decisions = harness.handle(Event::KeysReleased {
        client: client(1),
        keys: vec![key("a")],
    });
    assert!(released(&decisions).is_empty());
    assert!(harness.core.is_held("a"));
    let decisions = harness.handle(Event::Unpinned { keys: vec![key("a")] });
    assert_eq!(released(&decisions), [(1, vec!["a".to_string()])]);
}

/// A task never runs before its chunk has a live copy; when the last copy goes,
/// ready readers fail at once and waiting ones when they become ready, naming the
/// chunk.
#[test]
fn a_chunk_without_a_live_copy_fails_its_readers() {
    let config = CoreConfig {
        max_assigned_per_thread: 1,
        ..CoreConfig::default()
    };
    let mut harness = Harness::with_workers(config, &[(1, 1), (2, 1)]);
    harness.handle(Event::GraphSubmitted {
        client: client(1),
        tasks: vec![
            inc("x1", &[], &[]),
            inc("x2", &[], &[]),
            inc("r", &[], &["data.0001"]),
            inc("s", &["x1"], &["data.0001"]),
        ],
        wanted: vec![key("x1"), key("x2"), key("r"), key("s")],
        chunks: vec![ExternalChunk {
            key: "data.0001".to_string(),
            bytes: 1000,
            locations: vec![w(2)],
        }],
    });
    assert_eq!(harness.status("r"), Some(TaskStatus::Ready), "both workers are full");
    let decisions = harness.handle(Event::WorkerGone { worker: w(2) });
    let failure = TaskFailure {
        task: key("r"),
        message: "task 'r' cannot run: chunk 'data.0001' has no live copy".to_string(),
    };
    assert_eq!(done(&decisions).get("r"), Some(&Err(failure)));
    assert_eq!(harness.status("s"), Some(TaskStatus::Waiting));
    let decisions = harness.finish(1, "x1", 1);
    assert!(assigned(&decisions).iter().all(|(_, name)| name != "s"));
    assert!(matches!(harness.status("s"), Some(TaskStatus::Erred(failure)) if failure.task == key("s")));
}

/// Finish reports for tasks the core does not keep are released on that worker;
/// reports from workers the core counts as gone are ignored.
#[test]
fn stray_results_are_released() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    let decisions = harness.finish(1, "nobody-asked", 1);
    assert_eq!(released(&decisions), [(1, vec!["nobody-asked".to_string()])]);
    let decisions = harness.finish(9, "from-a-stranger", 1);
    assert!(decisions.is_empty());
}

/// Updates are proposed on `Flush`, or on their own once `max_batch_updates` are
/// pending; each key appears once per batch.
#[test]
fn batches_are_proposed_on_flush_or_when_full() {
    let config = CoreConfig {
        max_batch_updates: 3,
        ..CoreConfig::default()
    };
    let mut harness = Harness::with_workers(config, &[(1, 4)]);
    let tasks: Vec<TaskSpec> = (0..4).map(|at| inc(&format!("t{at}"), &[], &[])).collect();
    harness.submit(1, tasks, &["t0", "t1", "t2", "t3"]);
    assert!(proposed(&harness.finish(1, "t0", 1)).is_empty());
    assert!(proposed(&harness.finish(1, "t1", 1)).is_empty());
    let batches = proposed(&harness.finish(1, "t2", 1));
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].finished.len(), 3);
    assert!(proposed(&harness.handle(Event::Flush)).is_empty() || harness.core.pending_updates() == 0);
    harness.finish(1, "t3", 1);
    let batches = proposed(&harness.handle(Event::Flush));
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].finished[0].key, key("t3"));
    assert!(proposed(&harness.handle(Event::Flush)).is_empty());
}

/// A known worker that joins again is treated as a new one: its tasks are
/// reassigned (to it, if it is the only one) and its results count as lost.
#[test]
fn a_reconnecting_worker_starts_afresh() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[]), inc("b", &[], &[])], &["a", "b"]);
    harness.finish(1, "a", 1);
    let decisions = harness.handle(Event::WorkerJoined {
        worker: w(1),
        nthreads: 1,
    });
    assert_eq!(assigned(&decisions), [(1, "a".to_string()), (1, "b".to_string())]);
}

/// A new leader rebuilds from the recorded table: recorded results on live workers
/// are kept, lost or unrecorded ones recomputed if needed, recorded failures kept,
/// and results nothing needs released.
#[test]
fn rebuild_recomputes_only_what_is_missing() {
    let recovered = Recovered {
        tasks: vec![
            RecoveredTask {
                spec: inc("b", &["a"], &[]),
                order: 7,
                result: None,
                error: None,
                wanted_by: vec![client(1)],
            },
            RecoveredTask {
                spec: inc("a", &[], &[]),
                order: 3,
                result: Some((vec![w(1), w(9)], 5, 1)),
                error: None,
                wanted_by: Vec::new(),
            },
            RecoveredTask {
                spec: inc("lost", &[], &[]),
                order: 8,
                result: Some((vec![w(9)], 5, 1)),
                error: None,
                wanted_by: vec![client(1)],
            },
            RecoveredTask {
                spec: inc("bad", &[], &[]),
                order: 9,
                result: None,
                error: Some(TaskFailure {
                    task: key("bad"),
                    message: "boom".to_string(),
                }),
                wanted_by: vec![client(2)],
            },
            RecoveredTask {
                spec: inc("unneeded", &[], &[]),
                order: 10,
                result: Some((vec![w(1)], 5, 1)),
                error: None,
                wanted_by: Vec::new(),
            },
        ],
        workers: vec![(w(1), 2)],
        pinned: Vec::new(),
        chunks: Vec::new(),
    };
    let (core, decisions) = Core::rebuild(CoreConfig::default(), recovered, false);
    core.sanity_check().expect("rebuilt core is sane");
    assert_eq!(assigned(&decisions), [(1, "b".to_string()), (1, "lost".to_string())]);
    assert_eq!(released(&decisions), [(1, vec!["unneeded".to_string()])]);
    assert!(matches!(core.task_status(&key("bad")), Some(TaskStatus::Erred(_))));
    let Some(Decision::Assign { priority, .. }) = decisions
        .iter()
        .find(|decision| matches!(decision, Decision::Assign { .. }))
    else {
        panic!("no assignment");
    };
    assert!(*priority < 2, "priorities follow the recorded order");
}

/// Duplicate and stale reports after a leader change or a steal never break the
/// invariants: an erred report for a task already in memory is ignored.
#[test]
fn late_reports_are_harmless() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1), (2, 1)]);
    harness.submit(1, vec![inc("a", &[], &[])], &["a"]);
    harness.finish(2, "a", 1);
    harness.handle(Event::TaskErred {
        worker: w(1),
        key: key("a"),
        message: "late".to_string(),
    });
    assert!(matches!(harness.status("a"), Some(TaskStatus::Memory { .. })));
    harness.handle(Event::TaskCancelled {
        worker: w(1),
        key: key("a"),
    });
}

/// Runs a graph through the core with a simulated cluster that runs each worker's
/// queue in order; returns how many tasks were finished.
fn run_simulated(core: &mut Core, mut decisions: Vec<Decision>, workers: &[WorkerId]) -> usize {
    let mut queues: HashMap<WorkerId, VecDeque<TaskKey>> =
        workers.iter().map(|worker| (*worker, VecDeque::new())).collect();
    let mut finished = 0;
    loop {
        for decision in decisions.drain(..) {
            match decision {
                Decision::Assign { worker, task, .. } => queues.entry(worker).or_default().push_back(task.key),
                Decision::Cancel { worker, key } => {
                    if let Some(queue) = queues.get_mut(&worker) {
                        queue.retain(|queued| *queued != key);
                    }
                }
                Decision::Release { .. } | Decision::Propose(_) | Decision::Done { .. } => {}
            }
        }
        let mut progressed = false;
        for worker in workers {
            let Some(next) = queues.get_mut(worker).and_then(VecDeque::pop_front) else {
                continue;
            };
            progressed = true;
            finished += 1;
            decisions.extend(core.handle(Event::TaskFinished {
                worker: *worker,
                key: next,
                bytes: 8,
                rows: 1,
            }));
        }
        if !progressed {
            return finished;
        }
    }
}

/// 100,000 tasks (an `inc` fan-out from one root, then a tree sum of fan-in 32) run
/// through the core on two simulated workers quickly: no per-event scans.
#[test]
fn a_hundred_thousand_task_graph_runs_fast() {
    let leaves = 96_000;
    let mut tasks = Vec::with_capacity(100_000);
    tasks.push(inc("root", &[], &[]));
    let mut level: Vec<String> = (0..leaves).map(|at| format!("inc-{at}")).collect();
    for name in &level {
        tasks.push(inc(name, &["root"], &[]));
    }
    let mut depth = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for (group, parts) in level.chunks(32).enumerate() {
            let name = format!("sum-{depth}-{group}");
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            tasks.push(inc(&name, &parts, &[]));
            next.push(name);
        }
        level = next;
        depth += 1;
    }
    let total = tasks.len();
    let final_key = level[0].clone();
    let workers = [w(1), w(2)];
    let started = Instant::now();
    let mut core = Core::new(CoreConfig::default());
    let mut decisions = Vec::new();
    for worker in workers {
        decisions.extend(core.handle(Event::WorkerJoined { worker, nthreads: 4 }));
    }
    decisions.extend(core.handle(Event::GraphSubmitted {
        client: client(1),
        tasks,
        wanted: vec![key(&final_key)],
        chunks: Vec::new(),
    }));
    let submitted = started.elapsed();
    let finished = run_simulated(&mut core, decisions, &workers);
    let elapsed = started.elapsed();
    eprintln!("{total} tasks through the core on 2 simulated workers in {elapsed:?} (submission {submitted:?})");
    assert!(finished >= total, "{finished} of {total} finished");
    assert!(matches!(
        core.task_status(&key(&final_key)),
        Some(TaskStatus::Memory { .. })
    ));
    core.sanity_check().expect("sane at the end");
    assert_eq!(core.status_counts().memory, 1, "only the wanted result is kept");
}

/// News not yet proposed never undo a later submission: a key released and wanted
/// again before the flush is not recorded as unwanted, and a key forgotten and
/// submitted again is recorded as having no result rather than as forgotten (the
/// table still holds it, and the submission reused it there).
#[test]
fn pending_news_do_not_undo_a_later_submission() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[])], &["a"]);
    harness.finish(1, "a", 1);
    harness.handle(Event::Flush);
    harness.handle(Event::KeysReleased {
        client: client(1),
        keys: vec![key("a")],
    });
    assert!(!harness.core.knows(&key("a")));
    harness.submit(1, vec![inc("a", &[], &[])], &["a"]);
    let batch = proposed(&harness.handle(Event::Flush)).pop().expect("a batch");
    assert!(batch.unwanted.is_empty(), "{batch:?}");
    assert!(batch.forgotten.is_empty(), "{batch:?}");
    assert_eq!(names(&batch.released), ["a"]);
    assert_eq!(harness.status("a"), Some(TaskStatus::Assigned(w(1))));
}

/// The batch keeps each key's latest news only: a result that finished and was
/// then released before the flush is recorded as released, once.
#[test]
fn a_batch_carries_the_latest_news_of_each_key() {
    let mut harness = Harness::with_workers(CoreConfig::default(), &[(1, 1)]);
    harness.submit(1, vec![inc("a", &[], &[]), inc("b", &["a"], &[])], &["b"]);
    harness.finish(1, "a", 1);
    harness.finish(1, "b", 1);
    let batch = proposed(&harness.handle(Event::Flush)).pop().expect("a batch");
    assert_eq!(batch.len(), 2);
    assert_eq!(names(&batch.released), ["a"]);
    assert_eq!(
        batch
            .finished
            .iter()
            .map(|task| task.key.to_string())
            .collect::<Vec<_>>(),
        ["b"]
    );
}
