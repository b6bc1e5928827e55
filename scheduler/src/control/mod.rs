//! The replicated control state: a deterministic function of the Raft log.
//!
//! [`ControlState`] implements `cairn_raft::ReplicatedState`: `apply` takes a
//! [`ControlCommand`], changes memory, and lists the rows to write; nothing here reads
//! a clock, draws a random number or does I/O. Time comes from the leader, stamped
//! into each command (`now_ms`), and only ever moves forward in the state.

mod command;
mod sessions;
mod state;
mod tasks;

pub use command::{
    ClientId, ControlCommand, ControlOutcome, Operation, RecoveryCounters, RequestId, WriteAck, WriteOutcome,
};
pub use sessions::{MAX_OUTCOMES_PER_SESSION, MAX_SESSIONS, SESSION_TTL_MS};
pub use state::{Availability, ControlState};
pub use tasks::{SubmitRefused, TaskOutcome, TaskRecord, TaskTable};
