//! One task of a graph.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest task key, in bytes (the same rule as a chunk key: a task's result is
/// stored on workers as the chunk of the same name).
pub const MAX_TASK_KEY_BYTES: usize = crate::catalog::MAX_CHUNK_KEY_BYTES;

/// Names a task and its result across the cluster; the result is the chunk of the
/// same key in a worker's store.
///
/// Keys are ASCII letters, digits, `-`, `_` and `.` (not starting with `.`), at most
/// [`MAX_TASK_KEY_BYTES`] bytes — the chunk-key rules, so a key is a safe file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskKey(String);

/// Text that is not a valid task key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task key {key:?}: {reason}")]
pub struct InvalidTaskKey {
    /// The rejected text (cut to 64 characters).
    pub key: String,
    /// Which rule it breaks.
    pub reason: &'static str,
}

impl TaskKey {
    /// Checks `text` against the key rules.
    ///
    /// ```
    /// use cairn_scheduler::graph::TaskKey;
    /// assert!(TaskKey::parse("inc-00017").is_ok());
    /// assert!(TaskKey::parse("a/b").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<TaskKey, InvalidTaskKey> {
        if let Some(reason) = crate::catalog::chunk_key_problem(text) {
            return Err(InvalidTaskKey {
                key: text.chars().take(64).collect(),
                reason,
            });
        }
        Ok(TaskKey(text.to_string()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A literal argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text (paths, column names, serialised expressions…).
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Literal {
    /// The literal's kind as users read it in errors.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Bool(_) => "bool",
            Literal::Int(_) => "int",
            Literal::Float(_) => "float",
            Literal::Str(_) => "string",
            Literal::Bytes(_) => "bytes",
        }
    }
}

/// One argument of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Arg {
    /// A value given in the graph.
    Literal(Literal),
    /// The result of another task (a dependency).
    Task(TaskKey),
    /// A chunk of a published persisted dataset, by chunk key.
    Chunk(String),
    /// Several arguments as one (e.g. the inputs of a tree-reduction step).
    List(Vec<Arg>),
}

impl Arg {
    /// Calls `visit` on every task key this argument refers to, depth first.
    fn visit_tasks<'a>(&'a self, visit: &mut impl FnMut(&'a TaskKey)) {
        match self {
            Arg::Task(key) => visit(key),
            Arg::List(items) => items.iter().for_each(|item| item.visit_tasks(visit)),
            Arg::Literal(_) | Arg::Chunk(_) => {}
        }
    }

    /// Calls `visit` on every chunk key this argument refers to, depth first.
    fn visit_chunks<'a>(&'a self, visit: &mut impl FnMut(&'a str)) {
        match self {
            Arg::Chunk(key) => visit(key),
            Arg::List(items) => items.iter().for_each(|item| item.visit_chunks(visit)),
            Arg::Literal(_) | Arg::Task(_) => {}
        }
    }
}

/// One task: run operation `op` on `args`; the result is stored under `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's key (and its result's chunk key).
    pub key: TaskKey,
    /// The operation's name in the workers' catalogue (`inc`, `read_csv`, …).
    pub op: String,
    /// The operation's arguments, in order.
    pub args: Vec<Arg>,
}

impl TaskSpec {
    /// The tasks whose results this task needs, each once, in first-mention order.
    pub fn dependencies(&self) -> Vec<&TaskKey> {
        let mut seen = BTreeSet::new();
        let mut dependencies = Vec::new();
        for arg in &self.args {
            arg.visit_tasks(&mut |key| {
                if seen.insert(key) {
                    dependencies.push(key);
                }
            });
        }
        dependencies
    }

    /// The chunks of published datasets this task reads, each once.
    pub fn chunk_inputs(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        let mut chunks = Vec::new();
        for arg in &self.args {
            arg.visit_chunks(&mut |key| {
                if seen.insert(key) {
                    chunks.push(key);
                }
            });
        }
        chunks
    }

    /// An approximate encoded size, for bounding batches and graphs.
    pub fn approximate_bytes(&self) -> usize {
        fn arg_bytes(arg: &Arg) -> usize {
            match arg {
                Arg::Literal(Literal::Str(text)) => 8 + text.len(),
                Arg::Literal(Literal::Bytes(bytes)) => 8 + bytes.len(),
                Arg::Literal(_) => 9,
                Arg::Task(key) => 8 + key.as_str().len(),
                Arg::Chunk(key) => 8 + key.len(),
                Arg::List(items) => 8 + items.iter().map(arg_bytes).sum::<usize>(),
            }
        }
        16 + self.key.as_str().len() + self.op.len() + self.args.iter().map(arg_bytes).sum::<usize>()
    }
}

/// A test task: `inc` of 1, or of the results of `dependencies`.
#[cfg(test)]
pub(crate) fn inc_task(key: &str, dependencies: &[&str]) -> TaskSpec {
    TaskSpec {
        key: TaskKey::parse(key).expect("valid"),
        op: "inc".to_string(),
        args: if dependencies.is_empty() {
            vec![Arg::Literal(Literal::Int(1))]
        } else {
            dependencies
                .iter()
                .map(|key| Arg::Task(TaskKey::parse(key).expect("valid")))
                .collect()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> TaskKey {
        TaskKey::parse(text).expect("valid key")
    }

    #[test]
    fn dependencies_are_unique_and_ordered() {
        let task = TaskSpec {
            key: key("sum-0"),
            op: "sum".to_string(),
            args: vec![
                Arg::List(vec![Arg::Task(key("b")), Arg::Task(key("a")), Arg::Task(key("b"))]),
                Arg::Chunk("upload-1.0000".to_string()),
                Arg::Literal(Literal::Int(3)),
            ],
        };
        assert_eq!(task.dependencies(), [&key("b"), &key("a")]);
        assert_eq!(task.chunk_inputs(), ["upload-1.0000"]);
    }

    #[test]
    fn keys_follow_the_chunk_key_rules() {
        assert!(TaskKey::parse("").is_err());
        assert!(TaskKey::parse(".hidden").is_err());
        assert!(TaskKey::parse(&"x".repeat(129)).is_err());
        assert!(TaskKey::parse("read_csv-3f.0002").is_ok());
    }
}
