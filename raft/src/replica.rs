//! A replica's handle for the application: propose, linearizable read barrier,
//! membership changes and status — in Cairn's own types, so no other crate needs
//! to know openraft.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};

use crate::log_store::LogBacklog;
use crate::types::{Command, NodeId, Outcome, Raft, RaftMetrics};

/// How long a read barrier waits before another try after missing the quorum.
const QUORUM_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why a replica could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// This replica is not the leader.
    #[error("not the leader")]
    NotLeader {
        /// The leader, if known.
        leader_id: Option<NodeId>,
        /// Its address, if known.
        leader_addr: Option<String>,
    },
    /// No quorum answered in time. For a proposal, it may still commit later.
    #[error("{operation} did not complete within {after:?}: no quorum answered")]
    Timeout {
        /// What timed out.
        operation: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// A membership change was refused.
    #[error("membership change refused: {reason}")]
    Membership {
        /// Why.
        reason: String,
    },
    /// The leader's log already holds this much it could not commit yet (no quorum
    /// answers, or followers are far behind); it takes no more until that commits.
    #[error(
        "the leader holds {entries} log entries ({bytes} bytes) not yet committed, over its bound of {limit} bytes: \
         no quorum is keeping up; try again later"
    )]
    Backlog {
        /// Uncommitted entries.
        entries: usize,
        /// Their encoded bytes.
        bytes: usize,
        /// The bound (`--max-uncommitted-mib`).
        limit: u64,
    },
    /// Raft has stopped (shutdown or a fatal storage error).
    #[error("raft has stopped: {reason}")]
    Stopped {
        /// Why.
        reason: String,
    },
}

/// One member of the Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// Whether it votes (else it is a learner).
    pub voter: bool,
}

/// A replica's view of the group (a diagnostic; not linearizable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// This replica.
    pub node_id: NodeId,
    /// "leader", "follower", "candidate", "learner" or "shutdown".
    pub state: &'static str,
    /// The leader, if known.
    pub leader_id: Option<NodeId>,
    /// The leader's address, if known.
    pub leader_addr: Option<String>,
    /// The current term.
    pub term: u64,
    /// The last log index.
    pub last_log_index: u64,
    /// The commit index as this replica knows it.
    pub commit_index: u64,
    /// The last applied index.
    pub applied_index: u64,
    /// The last snapshot's index.
    pub snapshot_index: u64,
    /// Encoded bytes of the entries appended and not yet known committed.
    pub uncommitted_bytes: u64,
    /// The membership.
    pub members: Vec<Member>,
}

/// The application's handle on its replica. Cheap to clone.
#[derive(Clone)]
pub struct Replica {
    /// The openraft instance.
    raft: Raft,
    /// The log's uncommitted entries.
    backlog: LogBacklog,
    /// Proposals are refused while the backlog's bytes are over this.
    max_uncommitted_bytes: u64,
}

fn not_leader(forward: ForwardToLeader<NodeId, BasicNode>) -> ReplicaError {
    ReplicaError::NotLeader {
        leader_id: forward.leader_id,
        leader_addr: forward.leader_node.map(|node| node.addr),
    }
}

fn write_error(error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ReplicaError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => not_leader(forward),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => ReplicaError::Membership {
            reason: error.to_string(),
        },
        RaftError::Fatal(fatal) => ReplicaError::Stopped {
            reason: fatal.to_string(),
        },
    }
}

fn state_label(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl Replica {
    /// The handle over `raft`, whose log store's backlog is `backlog`.
    pub fn new(raft: Raft, backlog: LogBacklog, max_uncommitted_bytes: u64) -> Replica {
        Replica {
            raft,
            backlog,
            max_uncommitted_bytes,
        }
    }

    /// Refuses a new proposal while the log's uncommitted bytes are over the bound.
    /// Checked before appending, so one proposal (a graph's pipelined entries) may
    /// cross it; the next waits until commits bring the backlog under it again. A
    /// replica that does not lead lets openraft answer `not-leader` instead, so the
    /// client follows the leader.
    fn admit(&self) -> Result<(), ReplicaError> {
        let (entries, bytes) = self.backlog.now();
        if bytes as u64 > self.max_uncommitted_bytes && self.ensure_leader().is_ok() {
            return Err(ReplicaError::Backlog {
                entries,
                bytes,
                limit: self.max_uncommitted_bytes,
            });
        }
        Ok(())
    }

    fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// Proposes `command`; returns its outcome once committed and applied here.
    pub async fn propose(&self, command: Command, timeout: Duration) -> Result<Outcome, ReplicaError> {
        self.admit()?;
        match tokio::time::timeout(timeout, self.raft.client_write(command)).await {
            Err(_elapsed) => Err(ReplicaError::Timeout {
                operation: "the write",
                after: timeout,
            }),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(error)) => Err(write_error(error)),
        }
    }

    /// Proposes `commands` so that they are appended to the log in this order, each
    /// without waiting for the one before to commit (they replicate and apply in a
    /// pipeline); returns their outcomes in order once all are applied here, or the
    /// first error. Each may take `timeout` after the one before it was applied.
    pub async fn propose_in_order(
        &self,
        commands: Vec<Command>,
        timeout: Duration,
    ) -> Result<Vec<Outcome>, ReplicaError> {
        self.admit()?;
        let mut pending = Vec::with_capacity(commands.len());
        for command in commands {
            // Returns once the command is queued to Raft's core, which appends in
            // the order it receives.
            let receiver = self
                .raft
                .client_write_ff(command)
                .await
                .map_err(|fatal| ReplicaError::Stopped {
                    reason: fatal.to_string(),
                })?;
            pending.push(receiver);
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for receiver in pending {
            match tokio::time::timeout(timeout, receiver).await {
                Err(_elapsed) => {
                    return Err(ReplicaError::Timeout {
                        operation: "the write",
                        after: timeout,
                    })
                }
                Ok(Err(_dropped)) => {
                    return Err(ReplicaError::Stopped {
                        reason: "Raft stopped before answering the write".to_string(),
                    })
                }
                Ok(Ok(Ok(response))) => outcomes.push(response.data),
                Ok(Ok(Err(error))) => return Err(write_error(RaftError::APIError(error))),
            }
        }
        Ok(outcomes)
    }

    /// Hands `command` to Raft (appended to this leader's log, in order) and returns
    /// without waiting for a quorum to commit it. Exists only for the scheduler's
    /// deliberate `ack-before-commit` bug, which the fault-injection suite must catch;
    /// nothing else may acknowledge a write this way.
    pub async fn propose_without_commit(&self, command: Command) -> Result<(), ReplicaError> {
        self.admit()?;
        self.raft
            .client_write_ff(command)
            .await
            .map_err(|fatal| ReplicaError::Stopped {
                reason: fatal.to_string(),
            })?;
        Ok(())
    }

    /// ReadIndex: confirms leadership with a quorum and waits until everything
    /// committed before the call is applied here. Reads after it are linearizable.
    /// A round that misses the quorum (a slow heartbeat under load) is tried again
    /// until `timeout`.
    pub async fn read_barrier(&self, timeout: Duration) -> Result<(), ReplicaError> {
        let timed_out = ReplicaError::Timeout {
            operation: "the read",
            after: timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.raft.ensure_linearizable()).await {
                Err(_elapsed) => return Err(timed_out),
                Ok(Ok(_read_log_id)) => return Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                    return Err(not_leader(forward))
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(error)))) => {
                    tracing::debug!(%error, "read barrier without a quorum; trying again");
                    if tokio::time::Instant::now() + QUORUM_RETRY_PAUSE >= deadline {
                        return Err(timed_out);
                    }
                    tokio::time::sleep(QUORUM_RETRY_PAUSE).await;
                }
                Ok(Err(RaftError::Fatal(fatal))) => {
                    return Err(ReplicaError::Stopped {
                        reason: fatal.to_string(),
                    })
                }
            }
        }
    }

    /// The term this replica leads in, if it believes it leads.
    pub fn leading_term(&self) -> Option<u64> {
        let status = self.status_now(None);
        (status.leader_id == Some(status.node_id)).then_some(status.term)
    }

    /// Fails with `NotLeader` unless this replica believes it leads.
    pub fn ensure_leader(&self) -> Result<(), ReplicaError> {
        let status = self.status_now(None);
        if status.leader_id == Some(status.node_id) {
            return Ok(());
        }
        Err(ReplicaError::NotLeader {
            leader_id: status.leader_id,
            leader_addr: status.leader_addr,
        })
    }

    fn status_now(&self, commit_index: Option<u64>) -> ReplicaStatus {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let leader_addr = metrics
            .current_leader
            .and_then(|leader| membership.get_node(&leader))
            .map(|node| node.addr.clone());
        let applied_index = metrics.last_applied.map(|log_id| log_id.index).unwrap_or(0);
        ReplicaStatus {
            node_id: metrics.id,
            state: state_label(metrics.state),
            leader_id: metrics.current_leader,
            leader_addr,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            commit_index: commit_index.unwrap_or(applied_index),
            applied_index,
            snapshot_index: metrics.snapshot.map(|log_id| log_id.index).unwrap_or(0),
            uncommitted_bytes: self.backlog.now().1 as u64,
            members,
        }
    }

    /// This replica's view of the group.
    pub async fn status(&self) -> ReplicaStatus {
        let commit_index = self
            .raft
            .with_raft_state(|state| state.committed.map(|log_id| log_id.index))
            .await
            .ok()
            .flatten();
        self.status_now(commit_index)
    }

    /// Adds `id` at `addr` as a learner, waits until it has caught up, then makes it
    /// a voter. Returns the log index of the membership change.
    pub async fn add_voter(&self, id: NodeId, addr: String, timeout: Duration) -> Result<u64, ReplicaError> {
        self.ensure_leader()?;
        if self
            .status_now(None)
            .members
            .iter()
            .any(|member| member.id == id && member.voter)
        {
            return Err(ReplicaError::Membership {
                reason: format!("node {id} is already a voting member"),
            });
        }
        tracing::info!(node = id, %addr, "adding a learner");
        let added = tokio::time::timeout(timeout, self.raft.add_learner(id, BasicNode { addr }, true))
            .await
            .map_err(|_| ReplicaError::Timeout {
                operation: "catching up the new node",
                after: timeout,
            })?;
        added.map_err(write_error)?;
        tracing::info!(node = id, "promoting the learner to voter");
        let changed = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(write_error)?;
        Ok(changed.log_id.index)
    }

    /// Removes `id` from the voters and learners. Returns the log index of the change.
    pub async fn remove_node(&self, id: NodeId) -> Result<u64, ReplicaError> {
        self.ensure_leader()?;
        let members = self.status_now(None).members;
        let Some(member) = members.iter().find(|member| member.id == id) else {
            let ids: Vec<NodeId> = members.iter().map(|member| member.id).collect();
            return Err(ReplicaError::Membership {
                reason: format!("node {id} is not a member of the cluster (members: {ids:?})"),
            });
        };
        let change = if member.voter {
            let voters: BTreeSet<NodeId> = members
                .iter()
                .filter(|member| member.voter && member.id != id)
                .map(|member| member.id)
                .collect();
            if voters.is_empty() {
                return Err(ReplicaError::Membership {
                    reason: "cannot remove the last voter".to_string(),
                });
            }
            ChangeMembers::ReplaceAllVoters(voters)
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        tracing::info!(node = id, "removing a node");
        let changed = self.raft.change_membership(change, false).await.map_err(write_error)?;
        Ok(changed.log_id.index)
    }

    /// Stops Raft.
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft did not shut down cleanly");
        }
    }
}
