//! Task graphs (SPEC §2 "Task graphs"): the model a client submits and the checks
//! it must pass before anything enters the Raft log. Pure code: no I/O.
//!
//! # Layout
//!
//! - [`task`]: [`TaskKey`], [`Literal`], [`Arg`], [`TaskSpec`] — one task: its key, its
//!   operation's name and its arguments (literals, other tasks' results, chunks of
//!   published datasets).
//! - [`signature`]: [`OpSignature`] — what a worker says an operation accepts, so the
//!   scheduler can refuse a wrong argument before running anything.
//! - [`order`]: [`dependency_order`] — each task after its dependencies, for
//!   submitting a large graph in batches.
//! - [`validate`]: [`validate_graph`] — cycles, missing dependencies, unknown
//!   operations, wrong argument kinds, duplicate keys; each error names the task.

pub mod order;
pub mod signature;
pub mod task;
pub mod validate;

pub use order::dependency_order;
pub use signature::{OpSignature, ParamKind, ParamSpec};
pub use task::{Arg, InvalidTaskKey, Literal, TaskKey, TaskSpec, MAX_TASK_KEY_BYTES};
pub use validate::{validate_graph, GraphError, KnownKeys};
