//! Raft for Cairn's scheduler replicas: openraft's types, the RocksDB log store and
//! state machine, and the gRPC Raft network.
//!
//! # Layout
//!
//! - [`types`]: the openraft type configuration; commands and outcomes are opaque bytes.
//! - [`log_store`]: the Raft log and vote in RocksDB (synced before acknowledged).
//! - [`state_machine`]: applies committed commands to a [`ReplicatedState`] and writes
//!   its rows, the applied log id and the membership in one synced batch; snapshots.
//! - [`network`] / [`transport`]: Raft RPCs to and from peers over tonic.
//! - [`identity`]: which node and cluster a data dir belongs to.
//! - [`peers`]: the peers a replica has exchanged Raft messages with (durable).
//! - [`bootstrap`]: before bootstrapping with an empty data dir, asking the peers
//!   whether they know this replica (then its data dir was lost).
//! - [`election`]: when a replica stands for election (Cairn's timer, not openraft's).
//! - [`node`]: opening a replica and bootstrapping a cluster.
//! - [`replica`]: the application's handle: propose, ReadIndex, membership, status.
//!
//! This is the only crate that knows openraft. It knows nothing of datasets: the
//! application (`cairn-scheduler`) plugs in through [`ReplicatedState`].

// openraft's storage traits mandate `openraft::StorageError` (over 200 bytes) as the
// error type; boxing it in our helpers would only add conversions at every call.
#![allow(clippy::result_large_err)]

pub mod bootstrap;
pub mod codec;
pub mod election;
pub mod identity;
pub mod log_store;
pub mod network;
pub mod node;
pub mod peers;
pub mod replica;
pub mod state_machine;
mod state_writer;
pub mod transport;
pub mod types;

use std::path::PathBuf;

pub use bootstrap::{check_before_bootstrap, BootstrapCheck, BootstrapFindings};
pub use node::{Bootstrap, NodeConfig, RaftNode, RaftSettings};
pub use replica::{Member, Replica, ReplicaError, ReplicaStatus};
pub use state_machine::{ApplyContext, LoadError, ReplicatedState, StateHandle, StateWrites};
pub use types::{Command, NodeId, Outcome, Raft, RaftMetrics};

/// Why a replica could not open its data dir or start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data dir does not exist and nothing says to create a cluster.
    #[error(
        "{data_dir} holds no Cairn state: pass --peers to bootstrap a new cluster, or --join to wait to be added to one"
    )]
    NoState {
        /// The data dir.
        data_dir: PathBuf,
    },
    /// The data dir holds files that are not a Cairn database.
    #[error("{data_dir} is not empty and is not a Cairn data dir; refusing to use it")]
    NotADataDir {
        /// The data dir.
        data_dir: PathBuf,
    },
    /// The data dir belongs to another replica id.
    #[error("{data_dir} belongs to node {stored}, not to --id {requested}")]
    OtherNode {
        /// The data dir.
        data_dir: PathBuf,
        /// The id recorded in it.
        stored: NodeId,
        /// The id asked for.
        requested: NodeId,
    },
    /// The data dir belongs to another cluster.
    #[error(
        "{data_dir} belongs to cluster {stored}, but --peers/--cluster-token describe cluster {requested}; \
         use the data dir of this cluster, or restart with the original --peers"
    )]
    OtherCluster {
        /// The data dir.
        data_dir: PathBuf,
        /// The cluster id recorded in it.
        stored: String,
        /// The cluster id the flags describe.
        requested: String,
    },
    /// The data dir is empty but a peer has exchanged Raft messages with this replica:
    /// its data dir was lost, and bootstrapping it again is unsafe.
    #[error(
        "refusing to bootstrap node {node_id} with --peers: its data dir {data_dir} is empty, but node {peer} \
         (at {peer_addr}, term {term}, log index {last_log_index}) has exchanged Raft messages with node {node_id} \
         in this cluster before, so node {node_id} lost its data dir. Bootstrapping it again could make it vote twice \
         in one term and elect two leaders. The safe way back into the cluster: \
         (1) remove the old member: `cairn cluster remove-node --id {node_id} --cluster {others}`; \
         (2) start this replica with an empty data dir and --join instead of --peers: \
         `cairn scheduler --id {node_id} --listen {listen} --data-dir {data_dir} --join`; \
         (3) add it back: `cairn cluster add-node --id {node_id} --addr {addr} --cluster {others}`"
    )]
    DataDirLost {
        /// This replica.
        node_id: NodeId,
        /// Its (empty) data dir.
        data_dir: PathBuf,
        /// The peer that knows it.
        peer: NodeId,
        /// That peer's address.
        peer_addr: String,
        /// That peer's term.
        term: u64,
        /// That peer's last log index.
        last_log_index: u64,
        /// This replica's `--listen`.
        listen: String,
        /// This replica's address in `--peers`.
        addr: String,
        /// The other peers' addresses, comma-separated.
        others: String,
    },
    /// `--id` is not among `--peers`.
    #[error("--id {node_id} is not among the --peers ({peers:?})")]
    NotAPeer {
        /// The id asked for.
        node_id: NodeId,
        /// The ids in `--peers`.
        peers: Vec<NodeId>,
    },
    /// The data dir is damaged.
    #[error("{data_dir} is damaged: {reason}")]
    Corrupt {
        /// The data dir.
        data_dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The database could not be opened or read.
    #[error(transparent)]
    Storage(#[from] cairn_storage::StorageError),
    /// Stored bytes could not be decoded.
    #[error("the data dir is damaged: {0}")]
    Codec(#[from] codec::CodecError),
    /// The application could not rebuild its state.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The Raft settings are invalid.
    #[error("invalid raft settings: {reason}")]
    Settings {
        /// What openraft said.
        reason: String,
    },
    /// openraft failed to start.
    #[error("raft failed to start: {reason}")]
    Raft {
        /// What openraft said.
        reason: String,
    },
}
