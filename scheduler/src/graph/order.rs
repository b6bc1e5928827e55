//! Dependency order for submitting a graph in batches.

use foldhash::HashMap;

use super::task::{TaskKey, TaskSpec};

/// `tasks` reordered so that each comes after every dependency within `tasks`
/// (dependencies outside `tasks` are ignored: they are already held). Among tasks
/// free to go, the submitted order is kept. The graph must be acyclic (validated
/// before); tasks on a cycle would be left out, so the caller validates first.
pub fn dependency_order(tasks: Vec<TaskSpec>) -> Vec<TaskSpec> {
    let index: HashMap<&TaskKey, usize> = tasks.iter().enumerate().map(|(at, task)| (&task.key, at)).collect();
    let mut pending_dependencies = vec![0usize; tasks.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (at, task) in tasks.iter().enumerate() {
        for dependency in task.dependencies() {
            if let Some(&before) = index.get(dependency) {
                pending_dependencies[at] += 1;
                dependents[before].push(at);
            }
        }
    }
    // A stack in reverse submitted order pops the earliest free task first; a task
    // freed later goes on top, which runs a chain depth first (like Dask's order).
    let mut free: Vec<usize> = (0..tasks.len())
        .rev()
        .filter(|at| pending_dependencies[*at] == 0)
        .collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(at) = free.pop() {
        order.push(at);
        for &dependent in dependents[at].iter().rev() {
            pending_dependencies[dependent] -= 1;
            if pending_dependencies[dependent] == 0 {
                free.push(dependent);
            }
        }
    }
    drop(index);
    let mut slots: Vec<Option<TaskSpec>> = tasks.into_iter().map(Some).collect();
    order.into_iter().filter_map(|at| slots[at].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::task::inc_task as task;

    #[test]
    fn dependencies_come_first() {
        let tasks = vec![
            task("c", &["b"]),
            task("b", &["a"]),
            task("a", &[]),
            task("d", &["held"]),
        ];
        let order: Vec<String> = dependency_order(tasks)
            .iter()
            .map(|task| task.key.to_string())
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }
}
