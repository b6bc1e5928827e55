//! The openraft type configuration and the opaque command/outcome payloads.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A scheduler replica's id in the Raft group (`--id`).
pub type NodeId = u64;

/// A replica's address, as members of the Raft group see it.
pub type Node = openraft::BasicNode;

/// A command proposed to the Raft log: bytes encoded by the replicated application
/// (`cairn-scheduler`), opaque to this crate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// What applying a [`Command`] returned: bytes encoded by the replicated application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command({} bytes)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Cairn's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle with Cairn's types.
pub type Raft = openraft::Raft<TypeConfig>;
/// openraft's log id with Cairn's types.
pub type LogId = openraft::LogId<NodeId>;
/// openraft's storage error with Cairn's types.
pub type RaftStorageError = openraft::StorageError<NodeId>;
/// A log entry with Cairn's types.
pub type Entry = openraft::Entry<TypeConfig>;
/// The membership as stored with the applied state.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Metrics with Cairn's types.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
