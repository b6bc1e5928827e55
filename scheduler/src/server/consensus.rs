//! Proposing control commands and linearizable reads, in the server's error terms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_raft::codec;
use cairn_raft::{Command, Replica, ReplicaError, StateHandle};

use super::bugs::InjectedBugs;
use super::error::ServerError;
use crate::control::{ControlCommand, ControlOutcome, ControlState};

/// A replica's entry point to the replicated state.
#[derive(Clone)]
pub struct Consensus {
    /// The Raft replica.
    pub replica: Replica,
    /// Read access to the applied state.
    pub state: StateHandle<ControlState>,
    /// How long a proposal or a read barrier may take before the client is told
    /// "timeout" (and, for a write, that its outcome is unknown).
    pub request_timeout: Duration,
    /// Deliberate bugs (fault-injection testing only).
    pub injected_bugs: InjectedBugs,
}

/// The leader's wall clock, stamped into commands (the state machine never reads one).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

impl From<ReplicaError> for ServerError {
    fn from(error: ReplicaError) -> ServerError {
        match error {
            ReplicaError::NotLeader { leader_id, leader_addr } => ServerError::NotLeader { leader_id, leader_addr },
            ReplicaError::Timeout { operation, after } => ServerError::Timeout { operation, after },
            ReplicaError::Membership { reason } => ServerError::Membership { reason },
            ReplicaError::Stopped { reason } => ServerError::Unavailable { reason },
        }
    }
}

/// The Raft command carrying `command`.
fn encode(command: &ControlCommand) -> Result<Command, ServerError> {
    let bytes = codec::encode("control command", command).map_err(|error| ServerError::InvalidRequest {
        reason: error.to_string(),
    })?;
    Ok(Command(bytes))
}

impl Consensus {
    /// Proposes `command` and returns its outcome once it is committed and applied.
    pub async fn propose(&self, command: &ControlCommand) -> Result<ControlOutcome, ServerError> {
        let outcome = self.replica.propose(encode(command)?, self.request_timeout).await?;
        codec::decode("control outcome", &outcome.0).map_err(|error| ServerError::Unavailable {
            reason: format!("undecodable outcome: {error}"),
        })
    }

    /// Deliberate bug `ack-before-commit` only: appends `command` to the leader's log
    /// and returns before it is committed.
    pub async fn propose_without_commit(&self, command: &ControlCommand) -> Result<(), ServerError> {
        Ok(self.replica.propose_without_commit(encode(command)?).await?)
    }

    /// Waits until reads of the local state are linearizable (ReadIndex).
    pub async fn read_barrier(&self) -> Result<(), ServerError> {
        if self.injected_bugs.local_reads {
            // Deliberate bug: believing to lead is not knowing to lead.
            return Ok(self.replica.ensure_leader()?);
        }
        Ok(self.replica.read_barrier(self.request_timeout).await?)
    }
}
