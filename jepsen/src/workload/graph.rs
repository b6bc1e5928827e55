//! The `graph` workload: task graphs whose result the checker computes from the
//! history alone.
//!
//! A graph ([`GraphSpec`]) is `leaves` chains of `length` `inc` tasks, chain `i`
//! starting from the literal `base + i`, summed by a tree of `sum` tasks of fan-in
//! `fanout`; every key starts with the graph's id (`jg-<run>-<process>-<n>`), so no
//! two graphs share a task. Each client, until the run stops, submits a graph
//! (`submit`) and waits for its result (`gather`); a result not ready within the
//! operation timeout stays wanted (its future is kept) and is gathered again later,
//! one time in five, or in the final phase after the heal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{scalar_i64, Client, Delayed, Error, TaskArg, TaskFuture};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{classify, perform_with, retry_in_lanes, Completion, Invocation, Recorder, WorkerContext, FAIL_BACKOFF};
use crate::history::{Extra, GraphSpec, OpFn, OpType};

/// A graph submitted (acknowledged) whose result was not read yet: its future keeps
/// the result wanted.
pub struct PendingGraph {
    /// The graph's id.
    pub id: String,
    /// Its shape.
    pub spec: GraphSpec,
    /// The future of its root task.
    pub future: TaskFuture,
}

/// Builds the graph `spec` with keys under `id`; returns its root.
pub fn build(id: &str, spec: &GraphSpec) -> Delayed {
    let mut level: Vec<Delayed> = (0..spec.leaves)
        .map(|leaf| {
            let start = spec.base + i64::from(leaf);
            let mut task = Delayed::with_key(format!("{id}-c{leaf}-0"), "inc", [TaskArg::from(start)]);
            for step in 1..spec.length {
                task = Delayed::with_key(format!("{id}-c{leaf}-{step}"), "inc", [TaskArg::from(&task)]);
            }
            task
        })
        .collect();
    let mut depth = 0;
    while level.len() > 1 || depth == 0 {
        level = level
            .chunks(spec.fanout.max(2) as usize)
            .enumerate()
            .map(|(at, group)| Delayed::with_key(format!("{id}-s{depth}-{at}"), "sum", group.iter().map(TaskArg::from)))
            .collect();
        depth += 1;
    }
    level
        .pop()
        .unwrap_or_else(|| Delayed::with_key(format!("{id}-empty"), "inc", [TaskArg::from(0)]))
}

/// How many tasks [`build`] makes for `leaves`, `length` and `fanout`.
pub fn task_count(leaves: u32, length: u32, fanout: u32) -> u32 {
    let mut tasks = leaves * length;
    let mut width = leaves;
    loop {
        width = width.div_ceil(fanout.max(2));
        tasks += width;
        if width <= 1 {
            return tasks;
        }
    }
}

/// A fresh graph shape.
fn random_spec(rng: &mut StdRng) -> GraphSpec {
    let leaves = rng.random_range(2..=12);
    let length = rng.random_range(1..=5);
    let fanout = rng.random_range(2..=4);
    GraphSpec {
        base: rng.random_range(0..1_000_000_000),
        leaves,
        length,
        fanout,
        tasks: task_count(leaves, length, fanout),
    }
}

/// Gathers `graph` once (not final): once read, its future is released; if not, it
/// goes back to `pending` for a later try. True when it was read.
async fn gather_or_keep(
    context: &WorkerContext,
    process: u64,
    graph: PendingGraph,
    pending: &mut Vec<PendingGraph>,
) -> bool {
    let read = perform_gather(
        &context.recorder,
        &context.client,
        process,
        &graph,
        false,
        context.op_timeout,
    )
    .await;
    if read {
        let _ = graph.future.cancel().await;
    } else {
        pending.push(graph);
    }
    read
}

/// Waits for and reads the graph's result, and records it as a `gather`; true when
/// it was read.
async fn perform_gather(
    recorder: &Recorder,
    client: &Client,
    process: u64,
    pending: &PendingGraph,
    is_final: bool,
    op_timeout: Duration,
) -> bool {
    let invocation = Invocation {
        process,
        f: OpFn::Gather,
        key: Some(pending.id.clone()),
        value: None,
        is_final,
        extra: Extra {
            graph: Some(pending.spec.clone()),
            ..Extra::default()
        },
    };
    let completion = perform_with(recorder, invocation, op_timeout, async {
        match client.gather(std::slice::from_ref(&pending.future)).await {
            Ok(batches) => match batches.first().and_then(scalar_i64) {
                Some(result) => Completion {
                    kind: OpType::Ok,
                    value: None,
                    names: None,
                    error: None,
                    extra: Extra {
                        result: Some(result),
                        ..Extra::default()
                    },
                },
                None => Completion {
                    kind: OpType::Ok,
                    value: Some("not-a-number".to_string()),
                    names: None,
                    error: Some(format!("the result is not one integer: {batches:?}")),
                    extra: Extra::default(),
                },
            },
            Err(error) => {
                let mut completion = Completion::not_ok(OpFn::Gather, OpType::Fail, None, error.to_string());
                completion.value = match error {
                    Error::TaskFailed { .. } => Some("task-failed".to_string()),
                    Error::NotFound { .. } => Some("not-found".to_string()),
                    _ => None,
                };
                completion
            }
        }
    })
    .await;
    completion.kind == OpType::Ok
}

/// One graph client: submits and gathers until the run stops. Returns the graphs
/// whose result it has not read.
pub async fn worker(context: &WorkerContext) -> Vec<PendingGraph> {
    let mut rng = StdRng::seed_from_u64(context.seed);
    let mut process = context.worker;
    let mut counter = 0u64;
    let mut pending: Vec<PendingGraph> = Vec::new();
    while !*context.stop.borrow() {
        if !pending.is_empty() && rng.random_bool(0.2) {
            let at = rng.random_range(0..pending.len());
            let graph = pending.swap_remove(at);
            if !gather_or_keep(context, process, graph, &mut pending).await {
                tokio::time::sleep(FAIL_BACKOFF).await;
            }
            continue;
        }
        counter += 1;
        let id = format!("jg-{}-{process}-{counter}", context.nonce);
        let spec = random_spec(&mut rng);
        let root = build(&id, &spec);
        let invocation = Invocation {
            process,
            f: OpFn::Submit,
            key: Some(id.clone()),
            value: None,
            is_final: false,
            extra: Extra {
                graph: Some(spec.clone()),
                ..Extra::default()
            },
        };
        let client = &context.client;
        let mut submitted: Option<TaskFuture> = None;
        let completion = perform_with(&context.recorder, invocation, context.op_timeout, async {
            match client.submit(&root).await {
                Ok(future) => {
                    submitted = Some(future);
                    Completion::ok(None)
                }
                Err(error) => Completion::not_ok(OpFn::Submit, classify(OpFn::Submit, &error), None, error.to_string()),
            }
        })
        .await;
        match (completion.kind, submitted) {
            (OpType::Ok, Some(future)) => {
                let graph = PendingGraph { id, spec, future };
                gather_or_keep(context, process, graph, &mut pending).await;
            }
            // The submission may still happen: this process is done.
            (OpType::Info, _) => process += context.concurrency,
            _ => tokio::time::sleep(FAIL_BACKOFF).await,
        }
    }
    pending
}

/// The final phase: gathers every graph not yet read, each retried until its
/// result is read, the cluster says it failed or does not know it, or `limit`
/// passes. Returns whether every gather completed.
pub async fn final_gathers(
    recorder: Arc<Recorder>,
    client: Client,
    graphs: Vec<PendingGraph>,
    first_process: u64,
    limit: Duration,
    op_timeout: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    retry_in_lanes(
        graphs,
        8,
        first_process,
        deadline,
        Duration::from_millis(200),
        move |process, graph| {
            let (recorder, client) = (recorder.clone(), client.clone());
            async move {
                if !perform_gather(&recorder, &client, process, &graph, true, op_timeout).await {
                    return false;
                }
                let _ = graph.future.cancel().await;
                true
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_have_the_tasks_counted_and_unique_keys() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..200 {
            let spec = random_spec(&mut rng);
            let root = build("g", &spec);
            let mut keys = std::collections::BTreeSet::new();
            let mut stack = vec![root];
            while let Some(task) = stack.pop() {
                assert!(keys.insert(task.key().to_string()), "{} twice", task.key());
                for arg in task.args() {
                    if let TaskArg::Task(dependency) = arg {
                        if !keys.contains(dependency.key()) {
                            stack.push(dependency.clone());
                        }
                    }
                }
            }
            assert_eq!(keys.len() as u32, spec.tasks, "{spec:?}");
        }
    }

    #[test]
    fn the_expected_result_is_the_sum_of_the_chains() {
        let spec = GraphSpec {
            base: 10,
            leaves: 3,
            length: 2,
            fanout: 2,
            tasks: task_count(3, 2, 2),
        };
        // chains: 10+2, 11+2, 12+2 = 12 + 13 + 14
        assert_eq!(spec.expected(), 39);
        assert_eq!(spec.tasks, 6 + 2 + 1);
    }
}
