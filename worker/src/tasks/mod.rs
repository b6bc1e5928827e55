//! Task execution on a worker (SPEC §5): the leader's assignments arrive on one task
//! stream; tasks run on `--nthreads` threads off the async runtime (light ones on
//! small inputs in memory run where they are received); inputs held by
//! other workers are fetched over Arrow Flight; results go into the chunk store under
//! the task's key (and may spill); finished, failed and cancelled tasks are reported
//! back in batches.
//!
//! # Layout
//!
//! - [`queue`]: [`TaskQueue`], the worker's task bookkeeping as a state machine —
//!   messages and completions in, instructions out (start, report cancelled,
//!   release), with term fencing. Pure: tested without sockets.
//! - [`executor`]: performs the instructions: resolves inputs (local store or a
//!   peer), runs the operation on a task thread (or, light and small, at once),
//!   stores the result.
//! - [`stream`]: the task stream to the leader and the batching of reports.

pub mod executor;
pub mod queue;
pub mod stream;

pub use executor::Executor;
pub use queue::{Instruction, TaskQueue};
pub use stream::run_task_stream;
