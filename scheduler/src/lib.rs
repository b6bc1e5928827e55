//! The Cairn scheduler: the deterministic control-plane core and the scheduler server.
//!
//! # Layout
//!
//! - [`catalog`]: dataset names, entries, limits and errors (pure, no I/O).
//! - [`registry`]: the worker registry's types (ids, records, states).
//! - [`control`]: the replicated control state — the catalog and client sessions —
//!   and its deterministic `apply` (implements `cairn_raft::ReplicatedState`).
//! - [`graph`]: task graphs — keys, tasks, operation signatures — and their validation.
//! - [`scheduling`]: the leader's deterministic scheduling core: events in, decisions out.
//! - [`server`]: one replica's gRPC server (Catalog, Admin, Raft transport), the
//!   proposal and ReadIndex paths, and the one mapping of errors to gRPC statuses.

pub mod catalog;
pub mod control;
pub mod graph;
pub mod registry;
pub mod scheduling;
pub mod server;

pub use server::{run, SchedulerConfig, SchedulerError};
