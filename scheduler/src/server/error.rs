//! Server errors, and the one place that maps them to gRPC statuses.
//!
//! Every status carries a `cairn-error` metadata key with a stable kind, so clients
//! never parse messages; a not-leader status also carries the leader's id and address.

use std::time::Duration;

use cairn_raft::NodeId;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::catalog::CatalogError;
use crate::control::SubmitRefused;
use crate::graph::GraphError;

/// Metadata key holding the error kind.
pub const ERROR_KIND_KEY: &str = "cairn-error";
/// Metadata key holding the leader's id on a not-leader error.
pub const LEADER_ID_KEY: &str = "cairn-leader-id";
/// Metadata key holding the leader's address on a not-leader error.
pub const LEADER_ADDR_KEY: &str = "cairn-leader-addr";

/// Why a request to a scheduler failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The catalog refused the operation; nothing changed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// This replica is not the leader.
    #[error("{}", not_leader_message(.leader_id, .leader_addr))]
    NotLeader {
        /// The leader, if known.
        leader_id: Option<NodeId>,
        /// Its address, if known.
        leader_addr: Option<String>,
    },
    /// No majority answered in time; for a write, its outcome is unknown.
    #[error("{operation} did not complete within {after:?}: no quorum of schedulers answered")]
    Timeout {
        /// What timed out.
        operation: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The replica is shutting down or its Raft stopped.
    #[error("this scheduler is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The request is malformed (missing fields, bad ids).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// A membership change was refused.
    #[error("membership change refused: {reason}")]
    Membership {
        /// Why.
        reason: String,
    },
    /// A submitted graph is malformed; nothing of it was applied.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A batch of a graph was refused by the state machine; nothing of it was applied.
    #[error(transparent)]
    SubmitRefused(#[from] SubmitRefused),
    /// A worker's data dir belongs to another cluster.
    #[error("the worker's data dir belongs to cluster {worker_cluster}, but this is cluster {cluster}; give the worker its own data dir")]
    OtherCluster {
        /// The cluster recorded in the worker's data dir.
        worker_cluster: String,
        /// This cluster.
        cluster: String,
    },
}

fn not_leader_message(leader_id: &Option<NodeId>, leader_addr: &Option<String>) -> String {
    match (leader_id, leader_addr) {
        (Some(id), Some(addr)) => format!("not the leader; the leader is node {id} at {addr}"),
        _ => "not the leader, and no leader is known yet (an election may be under way)".to_string(),
    }
}

impl ServerError {
    fn code_and_kind(&self) -> (Code, &'static str) {
        match self {
            ServerError::Catalog(error) => match error {
                CatalogError::AlreadyExists { .. } => (Code::AlreadyExists, "already-exists"),
                CatalogError::NotFound { .. } => (Code::NotFound, "not-found"),
                CatalogError::SessionExpired => (Code::FailedPrecondition, "session-expired"),
                CatalogError::ValueTooLarge { .. } | CatalogError::PublishTooLarge { .. } => {
                    (Code::InvalidArgument, "too-large")
                }
                CatalogError::InvalidName { .. } => (Code::InvalidArgument, "invalid-name"),
                CatalogError::NotEnoughWorkers { .. } | CatalogError::UnknownWorker { .. } => {
                    (Code::FailedPrecondition, "not-enough-workers")
                }
                CatalogError::InvalidCollection { .. } => (Code::InvalidArgument, "invalid-argument"),
                CatalogError::DuplicateName { .. }
                | CatalogError::NothingToPublish
                | CatalogError::InvalidMetadata { .. }
                | CatalogError::MalformedCommand { .. } => (Code::InvalidArgument, "invalid-argument"),
            },
            ServerError::Graph(_) | ServerError::SubmitRefused(_) => (Code::InvalidArgument, "invalid-graph"),
            ServerError::NotLeader { .. } => (Code::Unavailable, "not-leader"),
            ServerError::Timeout { .. } => (Code::DeadlineExceeded, "timeout"),
            ServerError::Unavailable { .. } => (Code::Unavailable, "unavailable"),
            ServerError::InvalidRequest { .. } => (Code::InvalidArgument, "invalid-argument"),
            ServerError::Membership { .. } => (Code::FailedPrecondition, "membership"),
            ServerError::OtherCluster { .. } => (Code::FailedPrecondition, "other-cluster"),
        }
    }
}

impl From<ServerError> for Status {
    fn from(error: ServerError) -> Status {
        let (code, kind) = error.code_and_kind();
        let mut status = Status::new(code, error.to_string());
        let metadata = status.metadata_mut();
        metadata.insert(ERROR_KIND_KEY, MetadataValue::from_static(kind));
        if let ServerError::NotLeader {
            leader_id: Some(id),
            leader_addr: Some(addr),
        } = &error
        {
            metadata.insert(LEADER_ID_KEY, MetadataValue::from(*id));
            if let Ok(value) = addr.parse() {
                metadata.insert(LEADER_ADDR_KEY, value);
            }
        }
        status
    }
}
