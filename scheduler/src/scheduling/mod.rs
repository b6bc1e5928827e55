//! The deterministic scheduling core (SPEC §2 "Task graphs"): it decides which
//! worker runs which task, when results are released, and what is recorded through
//! Raft. It runs only on the Raft leader, in memory; a runtime (`server/dispatch.rs`)
//! feeds it [`Event`]s and performs the [`Decision`]s each returns. No I/O, no clock,
//! no randomness: the same events give the same decisions.
//!
//! The model is HyperQueue's tako reactor (events handled as plain functions over the
//! state, `sanity_check` of the invariants) and Dask's scheduler (its task states and
//! named `_transition_*` functions, `who_wants`, `waiters`, `KilledWorker`).
//!
//! A task is *released* (known, not needed, no result — kept as lineage while a
//! dependent might need it recomputed), *waiting* (needed; a dependency is not in
//! memory), *ready* (in the core's queue, by submission order), *assigned* to a
//! worker, in *memory* on one or more workers, or *erred* (final); a task nothing
//! needs and no dependent refers to is *forgotten* (removed). Each event does
//! O(degree · log n) work: counters (`missing`, `waiters`) replace scans, and
//! follow-up changes go through a queue of steps rather than recursion.
//!
//! # Layout
//!
//! - [`config`]: [`CoreConfig`] — allowed failures, slots per thread, batch size.
//! - [`event`]: [`Event`], [`ExternalChunk`] — what the runtime reports.
//! - [`decision`]: [`Decision`], [`InputLocation`], [`ResultLocation`],
//!   [`TaskFailure`] — what the core asks for.
//! - [`batch`]: [`TaskBatch`], [`FinishedTask`] — the updates proposed through Raft,
//!   gathered so that each key appears once per batch.
//! - [`recovered`]: [`Recovered`], [`RecoveredTask`] — a new leader's starting point.
//! - `core.rs`: [`Core`] — the state, the event handlers, the read accessors
//!   ([`TaskStatus`], [`StatusCounts`], [`WorkerLoad`]).
//! - `transitions.rs`: every task state change, one method each.
//! - `placement.rs`: choosing a worker, input locations, stealing.
//! - `sanity.rs`: [`Core::sanity_check`], the invariants.
//! - `state.rs`: the private records of tasks, workers and chunks.
//! - `tests.rs`, `proptests.rs`: unit tests per rule; random graphs on a simulated
//!   cluster with failures, checked after every step.

pub mod batch;
pub mod config;
mod core;
pub mod decision;
pub mod event;
mod placement;
pub mod recovered;
mod sanity;
mod state;
mod transitions;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use self::core::{Core, RecoveryCounts, StatusCounts, TaskStatus, WorkerLoad};
pub use batch::{FinishedTask, TaskBatch};
pub use config::CoreConfig;
pub use decision::{Decision, InputLocation, ResultLocation, TaskFailure};
pub use event::{Event, ExternalChunk};
pub use recovered::{Recovered, RecoveredTask};
