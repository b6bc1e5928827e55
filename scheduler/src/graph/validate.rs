//! Checks a graph before it enters the Raft log: nothing that fails here is ever
//! proposed, so the replicated state and the scheduling core only see graphs whose
//! dependencies exist, whose operations some worker offers, whose arguments have the
//! right kinds, and which have no cycle.
//!
//! Every check is linear in the graph's size (tasks + edges + argument items); the
//! cycle check is Kahn's algorithm, iterative, so a chain of 100,000 tasks costs no
//! stack.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use super::signature::{OpSignature, ParamKind};
use super::task::{Arg, Literal, TaskKey, TaskSpec};

/// The most tasks one submission may carry (larger graphs are submitted in parts,
/// each after its dependencies).
pub const MAX_TASKS_PER_GRAPH: usize = 1_000_000;

/// The largest one task may be, by [`TaskSpec::approximate_bytes`] (its literals
/// travel through the Raft log with it).
pub const MAX_TASK_BYTES: usize = 1024 * 1024;

/// How many keys of a cycle an error message lists before it says "…".
const MAX_CYCLE_KEYS_SHOWN: usize = 10;

/// What the cluster already knows: tasks submitted earlier (still held in the
/// replicated state) and chunks of published datasets.
pub trait KnownKeys {
    /// Whether a task of this key is known (a graph may depend on it without
    /// carrying it, and may carry it again: it is then reused).
    fn has_task(&self, key: &TaskKey) -> bool;
    /// Whether a published dataset holds a chunk of this key.
    fn has_chunk(&self, key: &str) -> bool;
}

/// Why a graph is refused. Each variant that concerns one task names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The submission has no task.
    #[error("the graph has no tasks")]
    Empty,
    /// Two tasks of the submission have the same key.
    #[error("task '{key}' appears more than once in the graph")]
    DuplicateKey {
        /// The repeated key.
        key: TaskKey,
    },
    /// A task depends on a key neither in the graph nor known to the cluster.
    #[error("task '{task}' depends on '{missing}', which is neither in the graph nor known to the cluster")]
    MissingDependency {
        /// The task with the dependency.
        task: TaskKey,
        /// The unknown key.
        missing: TaskKey,
    },
    /// Some tasks depend on each other in a circle.
    #[error("graph has a cycle: {}", describe_cycle(tasks))]
    Cycle {
        /// The tasks on the cycle, each depending on the next, the last on the first.
        tasks: Vec<TaskKey>,
    },
    /// No live worker offers the task's operation.
    #[error("task '{task}' uses operation '{op}' that no live worker offers")]
    UnknownOperation {
        /// The task.
        task: TaskKey,
        /// The operation it names.
        op: String,
    },
    /// The task passes too few or too many arguments.
    #[error("task '{task}': {op} takes {expected} arguments, found {found}")]
    WrongArgumentCount {
        /// The task.
        task: TaskKey,
        /// Its operation.
        op: String,
        /// How many the operation takes, as text ("2", "1 to 3", "at least 1").
        expected: String,
        /// How many the task passes.
        found: usize,
    },
    /// An argument is not of the kind its parameter takes.
    #[error("task '{task}': argument '{param}' of {op} must be {expected}, found {found}")]
    WrongArgument {
        /// The task.
        task: TaskKey,
        /// Its operation.
        op: String,
        /// The parameter's name.
        param: String,
        /// The kind the parameter takes ([`ParamKind::name`]).
        expected: String,
        /// What the task passes ("string", "task result", "list", …).
        found: String,
    },
    /// The task reads a chunk that no published dataset holds.
    #[error("task '{task}' reads chunk '{chunk}', which no published dataset holds")]
    UnknownChunk {
        /// The task.
        task: TaskKey,
        /// The chunk key.
        chunk: String,
    },
    /// The submission has more tasks than one submission may.
    #[error("the graph has {count} tasks; at most {limit} may be submitted at once")]
    TooManyTasks {
        /// How many tasks the submission has.
        count: usize,
        /// [`MAX_TASKS_PER_GRAPH`].
        limit: usize,
    },
    /// One task is larger than [`MAX_TASK_BYTES`].
    #[error("task '{task}' is about {bytes} bytes; at most {limit} are allowed per task")]
    OversizedTask {
        /// The task.
        task: TaskKey,
        /// Its approximate size.
        bytes: usize,
        /// [`MAX_TASK_BYTES`].
        limit: usize,
    },
}

/// "a -> b -> a", at most [`MAX_CYCLE_KEYS_SHOWN`] keys.
fn describe_cycle(tasks: &[TaskKey]) -> String {
    let mut text = String::new();
    for key in tasks.iter().take(MAX_CYCLE_KEYS_SHOWN) {
        text.push_str(key.as_str());
        text.push_str(" -> ");
    }
    if tasks.len() > MAX_CYCLE_KEYS_SHOWN {
        text.push_str(&format!("… ({} tasks in all)", tasks.len()));
    } else if let Some(first) = tasks.first() {
        text.push_str(first.as_str());
    }
    text
}

/// Checks a submission against the cluster's knowledge and the live workers'
/// operations. The first problem found is returned: sizes first, then each task in
/// the submitted order (size, duplicate key, operation and arguments, chunks,
/// dependencies), then cycles.
///
/// A key both in `tasks` and already known is allowed (Dask's semantics: same key,
/// same task — it is reused); a key twice within `tasks` is not.
pub fn validate_graph(
    tasks: &[TaskSpec],
    known: &dyn KnownKeys,
    operations: &BTreeMap<String, OpSignature>,
) -> Result<(), GraphError> {
    if tasks.is_empty() {
        return Err(GraphError::Empty);
    }
    if tasks.len() > MAX_TASKS_PER_GRAPH {
        return Err(GraphError::TooManyTasks {
            count: tasks.len(),
            limit: MAX_TASKS_PER_GRAPH,
        });
    }
    let mut position_by_key: HashMap<&TaskKey, usize> = HashMap::with_capacity(tasks.len());
    for (position, task) in tasks.iter().enumerate() {
        let bytes = task.approximate_bytes();
        if bytes > MAX_TASK_BYTES {
            return Err(GraphError::OversizedTask {
                task: task.key.clone(),
                bytes,
                limit: MAX_TASK_BYTES,
            });
        }
        if position_by_key.insert(&task.key, position).is_some() {
            return Err(GraphError::DuplicateKey { key: task.key.clone() });
        }
    }
    // The dependency edges within the submission, as positions, for the cycle check.
    let mut dependencies_in_graph: Vec<Vec<usize>> = Vec::with_capacity(tasks.len());
    for task in tasks {
        let Some(signature) = operations.get(&task.op) else {
            return Err(GraphError::UnknownOperation {
                task: task.key.clone(),
                op: task.op.clone(),
            });
        };
        check_arguments(task, signature)?;
        if let Some(chunk) = task.chunk_inputs().into_iter().find(|chunk| !known.has_chunk(chunk)) {
            return Err(GraphError::UnknownChunk {
                task: task.key.clone(),
                chunk: chunk.to_string(),
            });
        }
        let mut edges = Vec::new();
        for dependency in task.dependencies() {
            match position_by_key.get(dependency) {
                Some(&position) => edges.push(position),
                None if known.has_task(dependency) => {}
                None => {
                    return Err(GraphError::MissingDependency {
                        task: task.key.clone(),
                        missing: dependency.clone(),
                    })
                }
            }
        }
        dependencies_in_graph.push(edges);
    }
    match find_cycle(&dependencies_in_graph) {
        Some(cycle) => Err(GraphError::Cycle {
            tasks: cycle.into_iter().map(|position| tasks[position].key.clone()).collect(),
        }),
        None => Ok(()),
    }
}

/// Kahn's algorithm over `dependencies[task] = positions it depends on`; if some
/// tasks never become free, walks from one of them along dependencies that are not
/// free either until a task repeats, and returns that cycle (each depending on the
/// next, the last on the first). O(tasks + edges), no recursion.
fn find_cycle(dependencies: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut unresolved: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); dependencies.len()];
    for (task, edges) in dependencies.iter().enumerate() {
        for &dependency in edges {
            dependents[dependency].push(task);
        }
    }
    let mut free: Vec<usize> = (0..dependencies.len()).filter(|&task| unresolved[task] == 0).collect();
    let mut resolved = vec![false; dependencies.len()];
    while let Some(task) = free.pop() {
        resolved[task] = true;
        for &dependent in &dependents[task] {
            unresolved[dependent] -= 1;
            if unresolved[dependent] == 0 {
                free.push(dependent);
            }
        }
    }
    // Every unresolved task has an unresolved dependency, so the walk never stops
    // before it meets a task twice.
    let start = resolved.iter().position(|&done| !done)?;
    let mut step_of: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut current = start;
    loop {
        if let Some(&first) = step_of.get(&current) {
            return Some(path.split_off(first));
        }
        step_of.insert(current, path.len());
        path.push(current);
        current = *dependencies[current]
            .iter()
            .find(|&&dependency| !resolved[dependency])?;
    }
}

/// Checks the number and kinds of a task's arguments against its operation.
fn check_arguments(task: &TaskSpec, signature: &OpSignature) -> Result<(), GraphError> {
    let params = &signature.params;
    let required = params.iter().filter(|param| !param.optional).count();
    let found = task.args.len();
    let (too_few, too_many) = if signature.variadic {
        (found < required, false)
    } else {
        (found < required, found > params.len())
    };
    if too_few || too_many {
        let expected = match (signature.variadic, required, params.len()) {
            (true, minimum, _) => format!("at least {minimum}"),
            (false, minimum, maximum) if minimum == maximum => format!("{minimum}"),
            (false, minimum, maximum) => format!("{minimum} to {maximum}"),
        };
        return Err(GraphError::WrongArgumentCount {
            task: task.key.clone(),
            op: signature.name.clone(),
            expected,
            found,
        });
    }
    for (position, arg) in task.args.iter().enumerate() {
        // With `variadic`, arguments past the last parameter take its kind; the count
        // check above guarantees `params` is not empty here.
        let Some(param) = params.get(position).or_else(|| params.last()) else {
            break;
        };
        // An optional parameter may be given as null (the worker treats it as left out).
        let left_out = param.optional && matches!(arg, Arg::Literal(Literal::Null));
        if !left_out && !accepts(param.kind, arg) {
            return Err(GraphError::WrongArgument {
                task: task.key.clone(),
                op: signature.name.clone(),
                param: param.name.clone(),
                expected: param.kind.name().to_string(),
                found: describe_argument(arg),
            });
        }
    }
    Ok(())
}

/// Whether an argument of a task is data: another task's result or a chunk.
fn is_data(arg: &Arg) -> bool {
    matches!(arg, Arg::Task(_) | Arg::Chunk(_))
}

/// Whether a parameter of kind `kind` accepts `arg`.
fn accepts(kind: ParamKind, arg: &Arg) -> bool {
    match kind {
        ParamKind::Any => true,
        ParamKind::Data => is_data(arg),
        ParamKind::DataList => match arg {
            Arg::List(items) => items.iter().all(is_data),
            other => is_data(other),
        },
        ParamKind::Int => matches!(arg, Arg::Literal(Literal::Int(_))),
        ParamKind::Number => matches!(arg, Arg::Literal(Literal::Int(_) | Literal::Float(_))),
        ParamKind::Str => matches!(arg, Arg::Literal(Literal::Str(_))),
        ParamKind::Bool => matches!(arg, Arg::Literal(Literal::Bool(_))),
        ParamKind::IntOrData => matches!(arg, Arg::Literal(Literal::Int(_))) || is_data(arg),
    }
}

/// An argument's kind as users read it in errors.
fn describe_argument(arg: &Arg) -> String {
    match arg {
        Arg::Literal(literal) => literal.kind_name().to_string(),
        Arg::Task(_) => "task result".to_string(),
        Arg::Chunk(_) => "chunk".to_string(),
        Arg::List(items) => match items.iter().find(|item| !is_data(item)) {
            Some(item) => format!("list containing {}", describe_argument(item)),
            None => "list".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Instant;

    use super::*;
    use crate::graph::ParamSpec;

    fn key(text: &str) -> TaskKey {
        TaskKey::parse(text).expect("valid key")
    }

    fn param(name: &str, kind: ParamKind, optional: bool) -> ParamSpec {
        ParamSpec {
            name: name.to_string(),
            kind,
            optional,
        }
    }

    /// `inc(x: int or data)`, `head(data: data, n: int, label: string?)`,
    /// `sum(parts: list of data...)`, `scale(factor: number, flag: bool?)`, `show(value: any)`.
    fn operations() -> BTreeMap<String, OpSignature> {
        let signatures = [
            OpSignature {
                name: "inc".to_string(),
                params: vec![param("x", ParamKind::IntOrData, false)],
                variadic: false,
            },
            OpSignature {
                name: "head".to_string(),
                params: vec![
                    param("data", ParamKind::Data, false),
                    param("n", ParamKind::Int, false),
                    param("label", ParamKind::Str, true),
                ],
                variadic: false,
            },
            OpSignature {
                name: "sum".to_string(),
                params: vec![param("parts", ParamKind::DataList, false)],
                variadic: true,
            },
            OpSignature {
                name: "scale".to_string(),
                params: vec![
                    param("factor", ParamKind::Number, false),
                    param("flag", ParamKind::Bool, true),
                ],
                variadic: false,
            },
            OpSignature {
                name: "show".to_string(),
                params: vec![param("value", ParamKind::Any, false)],
                variadic: false,
            },
        ];
        signatures
            .into_iter()
            .map(|signature| (signature.name.clone(), signature))
            .collect()
    }

    /// Known task keys and chunk keys.
    #[derive(Default)]
    struct Known {
        tasks: BTreeSet<TaskKey>,
        chunks: BTreeSet<String>,
    }

    impl KnownKeys for Known {
        fn has_task(&self, key: &TaskKey) -> bool {
            self.tasks.contains(key)
        }
        fn has_chunk(&self, key: &str) -> bool {
            self.chunks.contains(key)
        }
    }

    fn task(name: &str, op: &str, args: Vec<Arg>) -> TaskSpec {
        TaskSpec {
            key: key(name),
            op: op.to_string(),
            args,
        }
    }

    fn int(value: i64) -> Arg {
        Arg::Literal(Literal::Int(value))
    }

    fn on(name: &str) -> Arg {
        Arg::Task(key(name))
    }

    fn inc_of(name: &str, dependency: &str) -> TaskSpec {
        task(name, "inc", vec![on(dependency)])
    }

    fn check(tasks: &[TaskSpec]) -> Result<(), GraphError> {
        validate_graph(tasks, &Known::default(), &operations())
    }

    #[test]
    fn a_valid_graph_passes() {
        let mut known = Known::default();
        known.chunks.insert("upload-1.0000".to_string());
        known.tasks.insert(key("earlier"));
        let tasks = vec![
            task("a", "inc", vec![int(1)]),
            task("b", "head", vec![Arg::Chunk("upload-1.0000".to_string()), int(5)]),
            task(
                "c",
                "sum",
                vec![
                    Arg::List(vec![on("a"), on("b")]),
                    on("earlier"),
                    Arg::Chunk("upload-1.0000".to_string()),
                ],
            ),
            task(
                "d",
                "scale",
                vec![Arg::Literal(Literal::Float(0.5)), Arg::Literal(Literal::Bool(true))],
            ),
            task("e", "show", vec![Arg::List(vec![int(1), Arg::Literal(Literal::Null)])]),
            // Submitting a known key again is a reuse, not an error.
            task("earlier", "inc", vec![int(0)]),
        ];
        assert_eq!(validate_graph(&tasks, &known, &operations()), Ok(()));
    }

    #[test]
    fn an_empty_graph_is_refused() {
        assert_eq!(check(&[]), Err(GraphError::Empty));
    }

    #[test]
    fn a_key_twice_is_refused() {
        let tasks = vec![task("a", "inc", vec![int(1)]), task("a", "inc", vec![int(2)])];
        assert_eq!(check(&tasks), Err(GraphError::DuplicateKey { key: key("a") }));
        assert_eq!(
            check(&tasks).expect_err("duplicate").to_string(),
            "task 'a' appears more than once in the graph"
        );
    }

    #[test]
    fn a_missing_dependency_names_the_task_and_the_key() {
        let tasks = vec![inc_of("b", "a")];
        let error = check(&tasks).expect_err("missing dependency");
        assert_eq!(
            error,
            GraphError::MissingDependency {
                task: key("b"),
                missing: key("a")
            }
        );
        assert!(error.to_string().contains("task 'b' depends on 'a'"), "{error}");
    }

    #[test]
    fn a_cycle_lists_its_keys() {
        let tasks = vec![task("root", "inc", vec![int(0)]), inc_of("a", "b"), inc_of("b", "a")];
        let error = check(&tasks).expect_err("cycle");
        assert_eq!(error.to_string(), "graph has a cycle: a -> b -> a");
        let self_loop = vec![inc_of("x", "x")];
        assert_eq!(
            check(&self_loop).expect_err("self loop").to_string(),
            "graph has a cycle: x -> x"
        );
    }

    #[test]
    fn a_long_cycle_is_cut_in_the_message() {
        let count = 50;
        let tasks: Vec<TaskSpec> = (0..count)
            .map(|at| inc_of(&format!("t{at}"), &format!("t{}", (at + 1) % count)))
            .collect();
        let GraphError::Cycle { tasks: cycle } = check(&tasks).expect_err("cycle") else {
            panic!("expected a cycle");
        };
        assert_eq!(cycle.len(), count);
        let message = GraphError::Cycle { tasks: cycle }.to_string();
        assert!(message.ends_with("… (50 tasks in all)"), "{message}");
        assert_eq!(message.matches(" -> ").count(), MAX_CYCLE_KEYS_SHOWN);
    }

    #[test]
    fn a_task_downstream_of_a_cycle_does_not_hide_it() {
        // "z" depends on the cycle but is not on it: the reported cycle is a <-> b.
        let tasks = vec![inc_of("z", "a"), inc_of("a", "b"), inc_of("b", "a")];
        let GraphError::Cycle { tasks: cycle } = check(&tasks).expect_err("cycle") else {
            panic!("expected a cycle");
        };
        assert_eq!(
            cycle.iter().collect::<BTreeSet<_>>(),
            [key("a"), key("b")].iter().collect()
        );
    }

    #[test]
    fn an_unknown_operation_is_refused() {
        let error = check(&[task("x", "frob", vec![])]).expect_err("unknown op");
        assert_eq!(
            error.to_string(),
            "task 'x' uses operation 'frob' that no live worker offers"
        );
    }

    #[test]
    fn argument_counts_follow_optional_and_variadic_parameters() {
        let too_many = check(&[task("x", "inc", vec![int(1), int(2)])]).expect_err("too many");
        assert_eq!(too_many.to_string(), "task 'x': inc takes 1 arguments, found 2");
        let too_few = check(&[task("x", "head", vec![Arg::Chunk("c".to_string())])]).expect_err("too few");
        assert!(
            matches!(&too_few, GraphError::WrongArgumentCount { expected, found: 1, .. } if expected == "2 to 3"),
            "{too_few}"
        );
        let none_for_variadic = check(&[task("x", "sum", vec![])]).expect_err("variadic needs one");
        assert!(
            matches!(&none_for_variadic, GraphError::WrongArgumentCount { expected, .. } if expected == "at least 1")
        );
        assert_eq!(check(&[task("x", "scale", vec![int(2)])]), Ok(()));
    }

    #[test]
    fn argument_kinds_are_checked() {
        let mut known = Known::default();
        known.chunks.insert("c".to_string());
        let run = |tasks: &[TaskSpec]| validate_graph(tasks, &known, &operations());
        let wrong_int = run(&[
            task("src", "inc", vec![int(1)]),
            task(
                "x",
                "head",
                vec![on("src"), Arg::Literal(Literal::Str("five".to_string()))],
            ),
        ])
        .expect_err("string for int");
        assert_eq!(
            wrong_int.to_string(),
            "task 'x': argument 'n' of head must be int, found string"
        );
        let literal_for_data = run(&[task("x", "head", vec![int(3), int(5)])]).expect_err("int for data");
        assert!(
            matches!(&literal_for_data, GraphError::WrongArgument { param, found, .. } if param == "data" && found == "int")
        );
        let list_with_literal = run(&[task(
            "x",
            "sum",
            vec![Arg::List(vec![Arg::Chunk("c".to_string()), int(1)])],
        )])
        .expect_err("literal in a data list");
        assert!(
            matches!(&list_with_literal, GraphError::WrongArgument { found, .. } if found == "list containing int")
        );
        let variadic_tail = run(&[task(
            "x",
            "sum",
            vec![Arg::Chunk("c".to_string()), Arg::Literal(Literal::Bool(true))],
        )])
        .expect_err("bool in the variadic tail");
        assert!(
            matches!(&variadic_tail, GraphError::WrongArgument { param, found, .. } if param == "parts" && found == "bool")
        );
        let null = Arg::Literal(Literal::Null);
        let optional_null = run(&[
            task("src", "inc", vec![int(1)]),
            task("x", "head", vec![on("src"), int(5), null.clone()]),
        ]);
        assert_eq!(optional_null, Ok(()), "an optional parameter may be given as null");
        let required_null = run(&[
            task("src", "inc", vec![int(1)]),
            task("x", "head", vec![on("src"), null]),
        ])
        .expect_err("null for a required parameter");
        assert!(
            matches!(&required_null, GraphError::WrongArgument { found, .. } if found == "null"),
            "{required_null}"
        );
        let bool_for_number = run(&[task("x", "scale", vec![Arg::Literal(Literal::Bool(true))])]).expect_err("bool");
        assert!(matches!(&bool_for_number, GraphError::WrongArgument { expected, .. } if expected == "number"));
        let int_for_bool = run(&[task("x", "scale", vec![int(1), int(1)])]).expect_err("int for bool");
        assert!(matches!(&int_for_bool, GraphError::WrongArgument { param, .. } if param == "flag"));
        let float_for_int_or_data =
            run(&[task("x", "inc", vec![Arg::Literal(Literal::Float(1.0))])]).expect_err("float");
        assert!(
            matches!(&float_for_int_or_data, GraphError::WrongArgument { expected, .. } if expected == "int or data")
        );
    }

    #[test]
    fn an_unknown_chunk_is_refused() {
        let error = check(&[task("x", "inc", vec![Arg::Chunk("gone.0001".to_string())])]).expect_err("chunk");
        assert_eq!(
            error,
            GraphError::UnknownChunk {
                task: key("x"),
                chunk: "gone.0001".to_string()
            }
        );
    }

    #[test]
    fn an_oversized_task_is_refused() {
        let huge = task("x", "show", vec![Arg::Literal(Literal::Bytes(vec![0; MAX_TASK_BYTES]))]);
        let error = check(&[huge]).expect_err("oversized");
        assert!(
            matches!(&error, GraphError::OversizedTask { task, limit: MAX_TASK_BYTES, .. } if task.as_str() == "x"),
            "{error}"
        );
    }

    #[test]
    fn too_many_tasks_are_refused_before_anything_else() {
        let tasks = vec![task("a", "inc", vec![int(1)]); MAX_TASKS_PER_GRAPH + 1];
        assert_eq!(
            check(&tasks),
            Err(GraphError::TooManyTasks {
                count: MAX_TASKS_PER_GRAPH + 1,
                limit: MAX_TASKS_PER_GRAPH
            })
        );
    }

    /// A 100,000-task graph (a chain of 10,000 plus a fan-in tree) validates quickly
    /// and without deep recursion.
    #[test]
    fn a_large_graph_validates_fast() {
        let chain = 10_000;
        let mut tasks: Vec<TaskSpec> = Vec::with_capacity(100_000);
        tasks.push(task("c0", "inc", vec![int(0)]));
        for at in 1..chain {
            tasks.push(inc_of(&format!("c{at}"), &format!("c{}", at - 1)));
        }
        for at in 0..80_000 {
            tasks.push(inc_of(&format!("leaf{at}"), &format!("c{}", at % chain)));
        }
        let mut level: Vec<String> = (0..80_000).map(|at| format!("leaf{at}")).collect();
        let mut depth = 0;
        while level.len() > 1 {
            let mut next = Vec::new();
            for (group, parts) in level.chunks(32).enumerate() {
                let name = format!("sum{depth}-{group}");
                tasks.push(task(
                    &name,
                    "sum",
                    vec![Arg::List(parts.iter().map(|part| on(part)).collect())],
                ));
                next.push(name);
            }
            level = next;
            depth += 1;
        }
        let started = Instant::now();
        assert_eq!(check(&tasks), Ok(()));
        eprintln!("validated {} tasks in {:?}", tasks.len(), started.elapsed());
        // The same graph with one back edge is a cycle of the whole chain.
        tasks[0] = inc_of("c0", &format!("c{}", chain - 1));
        let GraphError::Cycle { tasks: cycle } = check(&tasks).expect_err("cycle") else {
            panic!("expected a cycle");
        };
        assert_eq!(cycle.len(), chain);
    }
}
