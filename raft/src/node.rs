//! Opening a replica: its data dir, identity checks, and the openraft instance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::raft_transport_server::RaftTransportServer;
use cairn_storage::Db;

use crate::election::{Campaigns, ElectionTimer, ElectionTiming, PreVoteJudge};
use crate::identity::{derive_cluster_id, read_identity, write_identity, ClusterIdentity, StoredIdentity};
use crate::log_store::{LogBacklog, LogStore};
use crate::network::Network;
use crate::peers::KnownPeers;
use crate::state_machine::{ReplicatedState, StateHandle, StateMachineStore};
use crate::transport::RaftTransportService;
use crate::types::{Node, NodeId, Raft};
use crate::OpenError;

/// How a replica that has no state yet comes into a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// Form a new cluster of these voters (`--peers`). Ignored when the data dir
    /// already holds a cluster. A process must run
    /// [`check_before_bootstrap`](crate::bootstrap::check_before_bootstrap) first, so
    /// that a replica whose data dir was lost is not bootstrapped again.
    Peers {
        /// Every initial voter, this replica included.
        peers: BTreeMap<NodeId, String>,
        /// Distinguishes clusters bootstrapped with the same peers (`--cluster-token`).
        token: String,
        /// Whether to call openraft's `initialize` on an empty data dir. It makes the
        /// replica a candidate at once: one that starts after a peer has already
        /// formed the cluster (elected a leader) would stand in term 1 and depose that
        /// leader. Such a replica (see [`crate::bootstrap::check_before_bootstrap`])
        /// waits instead for the leader to replicate the membership to it.
        initialize: bool,
    },
    /// Wait to be added by `cairn cluster add-node` (`--join`).
    Join,
    /// Only restart an existing replica; a missing data dir is an error.
    RestartOnly,
}

/// Raft timing and log-compaction settings.
///
/// Elections (see [`crate::election`]): voters refuse other candidates for
/// `election_timeout_max_ms` (the leader's lease) after hearing from a leader; a
/// follower asks for pre-votes once the lease (or 1.5 times the longest recent silence
/// of its leader, at most three leases) has passed, plus a random delay of up to
/// `election_timeout_max_ms - election_timeout_min_ms` drawn afresh each time, and
/// stands with a majority; a vote request may take up to `election_timeout_max_ms - 1`. The leader sends heartbeats
/// every `heartbeat_ms`; an AppendEntries may take up to three of them (less than the
/// vote timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSettings {
    /// How often the leader sends heartbeats, in milliseconds.
    pub heartbeat_ms: u64,
    /// `election_timeout_max_ms` minus the range of the random election delay, in
    /// milliseconds.
    pub election_timeout_min_ms: u64,
    /// The leader's lease, in milliseconds: how long voters refuse other candidates
    /// after hearing from a leader.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log) after this many applied entries.
    pub snapshot_every: u64,
    /// How many log entries to keep behind a snapshot, so that a briefly lagging
    /// follower catches up from the log rather than a full snapshot.
    pub logs_kept_after_snapshot: u64,
    /// A leader refuses new proposals (`unavailable`) while its log holds more than
    /// this many bytes of entries not yet committed: without a quorum, clients'
    /// retries would otherwise grow its log without bound.
    pub max_uncommitted_bytes: u64,
}

impl RaftSettings {
    /// The election timing these settings give.
    pub fn election_timing(&self) -> ElectionTiming {
        let lease = self.election_timeout_max_ms;
        let vote_timeout = lease.saturating_sub(1);
        ElectionTiming {
            lease: Duration::from_millis(lease),
            vote_timeout: Duration::from_millis(vote_timeout),
            spread: Duration::from_millis(lease.saturating_sub(self.election_timeout_min_ms)),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            // openraft requires it below the vote timeout.
            append_timeout: Duration::from_millis(
                (self.heartbeat_ms * 3)
                    .min(vote_timeout.saturating_sub(1))
                    .max(self.heartbeat_ms),
            ),
        }
    }
}

/// The default bound on a leader's uncommitted log bytes: room for a few graphs'
/// entries (4 MiB each at most) pipelined at once, far below what fills a disk.
pub const DEFAULT_MAX_UNCOMMITTED_BYTES: u64 = 128 * 1024 * 1024;

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 50,
            election_timeout_min_ms: 120,
            election_timeout_max_ms: 200,
            snapshot_every: 10_000,
            logs_kept_after_snapshot: 1_000,
            max_uncommitted_bytes: DEFAULT_MAX_UNCOMMITTED_BYTES,
        }
    }
}

/// Everything needed to open one replica.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This replica's id (`--id`).
    pub node_id: NodeId,
    /// Where its database and snapshots live (`--data-dir`).
    pub data_dir: PathBuf,
    /// How it comes into a cluster the first time.
    pub bootstrap: Bootstrap,
    /// Raft timing.
    pub settings: RaftSettings,
}

/// An open replica.
pub struct RaftNode<S> {
    /// The openraft instance.
    pub raft: Raft,
    /// Read access to the replicated application.
    pub state: StateHandle<S>,
    /// Which cluster the replica belongs to.
    pub identity: ClusterIdentity,
    /// The replica id.
    pub node_id: NodeId,
    /// The peers it has exchanged Raft messages with.
    peers: KnownPeers,
    /// Answers peers' pre-votes.
    judge: PreVoteJudge,
    /// The log's uncommitted entries.
    backlog: LogBacklog,
    /// Proposals are refused beyond this many uncommitted bytes.
    max_uncommitted_bytes: u64,
}

pub(crate) fn database_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

impl<S: ReplicatedState> RaftNode<S> {
    /// Opens the replica's data dir (creating it on first start), checks that it
    /// belongs to this replica and cluster, starts openraft and, on the very first
    /// start with `Bootstrap::Peers`, initializes the cluster.
    pub async fn open(config: NodeConfig) -> Result<RaftNode<S>, OpenError> {
        let node_id = config.node_id;
        let db_dir = database_dir(&config.data_dir);
        let fresh = !db_dir.exists();
        if fresh {
            if config.bootstrap == Bootstrap::RestartOnly {
                return Err(OpenError::NoState {
                    data_dir: config.data_dir.clone(),
                });
            }
            if config.data_dir.exists() && !is_empty_dir(&config.data_dir)? {
                return Err(OpenError::NotADataDir {
                    data_dir: config.data_dir.clone(),
                });
            }
        }
        if let Bootstrap::Peers { peers, .. } = &config.bootstrap {
            if !peers.contains_key(&node_id) {
                return Err(OpenError::NotAPeer {
                    node_id,
                    peers: peers.keys().copied().collect(),
                });
            }
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| OpenError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let db = Db::open(&db_dir)?;
        let expected_cluster = match &config.bootstrap {
            Bootstrap::Peers { peers, token, .. } => Some(derive_cluster_id(peers, token)),
            Bootstrap::Join | Bootstrap::RestartOnly => None,
        };
        let stored = read_identity(&db)?;
        let identity = match stored {
            None if fresh => {
                let identity = StoredIdentity {
                    node_id,
                    cluster_id: expected_cluster.clone(),
                };
                write_identity(&db, &identity)?;
                identity
            }
            None => {
                return Err(OpenError::Corrupt {
                    data_dir: config.data_dir.clone(),
                    reason: "the database has no node identity".to_string(),
                })
            }
            Some(identity) => identity,
        };
        if identity.node_id != node_id {
            return Err(OpenError::OtherNode {
                data_dir: config.data_dir.clone(),
                stored: identity.node_id,
                requested: node_id,
            });
        }
        if let (Some(stored), Some(expected)) = (&identity.cluster_id, &expected_cluster) {
            if stored != expected {
                return Err(OpenError::OtherCluster {
                    data_dir: config.data_dir.clone(),
                    stored: stored.clone(),
                    requested: expected.clone(),
                });
            }
        }
        let cluster = ClusterIdentity::new(node_id, identity.cluster_id.clone(), db.clone());
        let peers = KnownPeers::load(node_id, db.clone())?;

        let timing = config.settings.election_timing();
        let raft_config = openraft::Config {
            cluster_name: "cairn".to_string(),
            // openraft gives each AppendEntries `heartbeat_interval` and sends its own
            // heartbeats every 1.5 of it; the election timer sends them every
            // `heartbeat_ms` and this stays longer, so that a follower slowed by a loaded
            // machine still acknowledges in time.
            heartbeat_interval: timing.append_timeout.as_millis() as u64,
            // openraft cancels a vote request after `election_timeout_min` and makes
            // voters keep the leader's lease for `election_timeout_max`; its own
            // election timer is off: `ElectionTimer` decides when to stand.
            election_timeout_min: timing.vote_timeout.as_millis() as u64,
            election_timeout_max: timing.lease.as_millis() as u64,
            enable_elect: false,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.settings.snapshot_every),
            max_in_snapshot_log_to_keep: config.settings.logs_kept_after_snapshot,
            max_payload_entries: 256,
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            install_snapshot_timeout: 2_000,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|error| OpenError::Settings {
            reason: error.to_string(),
        })?);
        let log_store = LogStore::new(db.clone())?;
        let state_machine = StateMachineStore::<S>::open(db.clone(), &config.data_dir.join("snapshot"))?;
        let state = state_machine.handle();
        let campaigns = Campaigns::default();
        let network = Network::new(node_id, cluster.clone(), peers.clone(), campaigns.clone());
        let raft = Raft::new(node_id, raft_config, network.clone(), log_store.clone(), state_machine)
            .await
            .map_err(|error| OpenError::Raft {
                reason: error.to_string(),
            })?;
        let judge = PreVoteJudge::new(raft.clone(), log_store.clone(), timing.lease);
        let backlog = log_store.backlog();
        let timer = ElectionTimer {
            raft: raft.clone(),
            node_id,
            timing,
            campaigns,
            network,
            log_store,
        };
        // Ends when Raft shuts down.
        tokio::spawn(timer.run());

        if let Bootstrap::Peers { peers, initialize, .. } = &config.bootstrap {
            let initialized = raft.is_initialized().await.map_err(|error| OpenError::Raft {
                reason: error.to_string(),
            })?;
            if !initialized && !initialize {
                tracing::info!(
                    node = node_id,
                    "a peer has already formed the cluster: waiting for its leader instead of bootstrapping"
                );
            } else if !initialized {
                let members: BTreeMap<NodeId, Node> = peers
                    .iter()
                    .map(|(id, addr)| (*id, Node { addr: addr.clone() }))
                    .collect();
                tracing::info!(node = node_id, members = ?peers, "bootstrapping a new cluster");
                if let Err(error) = raft.initialize(members).await {
                    // Another replica may have initialized us first; that is fine.
                    tracing::info!(%error, "cluster already initialized");
                }
            } else {
                tracing::info!(node = node_id, "rejoining an existing cluster; --peers ignored");
            }
        }
        Ok(RaftNode {
            raft,
            state,
            identity: cluster,
            node_id,
            peers,
            judge,
            backlog,
            max_uncommitted_bytes: config.settings.max_uncommitted_bytes,
        })
    }

    /// The application's handle on this replica.
    pub fn replica(&self) -> crate::Replica {
        crate::Replica::new(self.raft.clone(), self.backlog.clone(), self.max_uncommitted_bytes)
    }

    /// The gRPC service that peers send Raft messages to; its AppendEntries streams
    /// end once `stopping` turns true (see `transport.rs`).
    pub fn transport(&self, stopping: tokio::sync::watch::Receiver<bool>) -> RaftTransportServer<RaftTransportService> {
        RaftTransportService::new(
            self.raft.clone(),
            self.identity.clone(),
            self.peers.clone(),
            self.judge.clone(),
            stopping,
        )
    }
}

fn is_empty_dir(path: &Path) -> Result<bool, OpenError> {
    let mut entries = std::fs::read_dir(path).map_err(|source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(entries.next().is_none())
}
