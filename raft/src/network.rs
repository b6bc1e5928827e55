//! The Raft network, client side: openraft's RPCs to peer replicas over tonic gRPC.
//!
//! Each message is a bincode-encoded openraft request inside a `RaftMessage` that
//! also carries the cluster id. Transport failures map to `Unreachable` (openraft
//! backs off) or `Timeout`; a `RaftError` from the peer comes back as `RemoteError`.
//!
//! The first reply of each peer is recorded durably ([`KnownPeers`]) before openraft
//! sees it, and every vote request is reported to the election timer ([`Campaigns`]).

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::v1::raft_transport_client::RaftTransportClient;
use cairn_proto::v1::RaftMessage;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::RPCTypes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::codec;
use crate::election::{Campaigns, PreVoteReply, PreVoteRequest};
use crate::identity::ClusterIdentity;
use crate::peers::KnownPeers;
use crate::types::{Node, NodeId, TypeConfig};

/// The largest gRPC message a replica sends or accepts (log batches and snapshot
/// chunks stay well below it: see `RaftSettings`).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How long an AppendEntries may run on after openraft stopped waiting for it.
const DETACHED_LIMIT: Duration = Duration::from_secs(2);

/// A peer's gRPC client, shared by every connection openraft asks for.
type SharedClient = Result<RaftTransportClient<Channel>, String>;

/// A peer whose requests fail or time out and that has not answered for this long gets
/// a new connection (at most once per this long). After a partition that dropped
/// packets heals, the old TCP connection waits for its next retransmission, which
/// exponential backoff puts seconds away; a new connection gets through at once.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// When a peer last answered, and when its connection was last replaced.
#[derive(Debug, Clone, Copy)]
struct PeerHealth {
    last_answer: Option<std::time::Instant>,
    last_reconnect: std::time::Instant,
}

impl PeerHealth {
    /// After a failed request at `now`: replace the connection? Only when the peer
    /// has been silent for [`STALE_AFTER`], and not twice within it.
    fn reconnect_after_failure(&mut self, now: std::time::Instant) -> bool {
        let silent = self
            .last_answer
            .is_none_or(|at| now.saturating_duration_since(at) >= STALE_AFTER);
        if !silent || now.saturating_duration_since(self.last_reconnect) < STALE_AFTER {
            return false;
        }
        self.last_reconnect = now;
        true
    }
}

/// Creates connections to peers.
#[derive(Clone)]
pub struct Network {
    /// This replica's id, for timeout errors.
    local_id: NodeId,
    /// The cluster every message is stamped with.
    identity: ClusterIdentity,
    /// One HTTP/2 channel per peer address. openraft asks for a new client for every
    /// ReadIndex round; reusing the channel saves a TCP and HTTP/2 handshake each time.
    clients: Arc<Mutex<HashMap<(NodeId, String), SharedClient>>>,
    /// The peers that have answered (recorded before openraft sees their reply).
    peers: KnownPeers,
    /// This replica's campaigns, for the election timer.
    campaigns: Campaigns,
    /// Per peer: when it last answered (see [`STALE_AFTER`]).
    health: Arc<Mutex<HashMap<NodeId, PeerHealth>>>,
}

impl Network {
    /// A network factory for replica `local_id` of the cluster `identity`.
    pub fn new(local_id: NodeId, identity: ClusterIdentity, peers: KnownPeers, campaigns: Campaigns) -> Network {
        Network {
            local_id,
            identity,
            clients: Arc::new(Mutex::new(HashMap::new())),
            peers,
            campaigns,
            health: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// `target` answered a request.
    fn answered(&self, target: NodeId) {
        let now = std::time::Instant::now();
        let mut health = self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        health
            .entry(target)
            .or_insert(PeerHealth {
                last_answer: None,
                last_reconnect: now,
            })
            .last_answer = Some(now);
    }

    /// A request to `target` at `addr` failed or timed out: if it has not answered
    /// for [`STALE_AFTER`], the next request opens a new connection.
    fn unanswered(&self, target: NodeId, addr: &str) {
        let now = std::time::Instant::now();
        {
            let mut health = self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let peer = health.entry(target).or_insert(PeerHealth {
                last_answer: None,
                last_reconnect: now,
            });
            if !peer.reconnect_after_failure(now) {
                return;
            }
        }
        tracing::debug!(peer = target, %addr, "no answer for a while: opening a new connection");
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clients.remove(&(target, addr.to_string()));
    }

    pub(crate) fn client_for(&self, target: NodeId, addr: &str) -> SharedClient {
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry((target, addr.to_string()))
            .or_insert_with(|| {
                lazy_channel(addr).map(|channel| {
                    RaftTransportClient::new(channel)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES)
                })
            })
            .clone()
    }
}

impl Network {
    /// Asks `target` at `addr` for a pre-vote, waiting at most `timeout`.
    pub(crate) async fn pre_vote(
        &self,
        target: NodeId,
        addr: &str,
        request: &PreVoteRequest,
        timeout: Duration,
    ) -> Result<PreVoteReply, String> {
        let mut client = self.client_for(target, addr)?;
        let payload = codec::encode("pre-vote request", request).map_err(|error| error.to_string())?;
        let message = RaftMessage {
            cluster_id: self.identity.current().unwrap_or_default(),
            payload,
        };
        let response = match tokio::time::timeout(timeout, client.pre_vote(message)).await {
            Ok(Ok(response)) => {
                self.answered(target);
                response.into_inner()
            }
            Ok(Err(status)) => {
                if is_transport_failure(status.code()) {
                    self.unanswered(target, addr);
                } else {
                    self.answered(target);
                }
                return Err(status.to_string());
            }
            Err(_elapsed) => {
                self.unanswered(target, addr);
                return Err(format!("no answer within {timeout:?}"));
            }
        };
        codec::decode("pre-vote reply", &response.payload).map_err(|error| error.to_string())
    }
}

/// A connection to one peer. The channel connects lazily and reconnects by itself.
pub struct PeerConnection {
    /// This replica's id.
    local_id: NodeId,
    /// The peer's id.
    target: NodeId,
    /// The peer's address.
    addr: String,
    /// The factory: the shared channel, the cluster id, the known peers, the
    /// campaigns; told whether the peer answers.
    network: Network,
}

/// Whether a gRPC status says the request did not get an answer from the peer.
fn is_transport_failure(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
    )
}

/// Builds a lazily connecting gRPC channel to `addr` (`host:port`).
pub fn lazy_channel(addr: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| format!("invalid peer address `{addr}`: {error}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(endpoint.connect_lazy())
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            local_id: self.local_id,
            target,
            addr: node.addr.clone(),
            network: self.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct TransportError {
    message: String,
}

impl PeerConnection {
    async fn send<Request, Reply, E>(
        &mut self,
        rpc: RPCTypes,
        request: &Request,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Request: Serialize,
        Reply: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        // Looked up for every request: a connection replaced after a silence (see
        // `STALE_AFTER`) serves the requests of a replication stream opened before.
        let client = match &self.network.client_for(self.target, &self.addr) {
            Ok(client) => client.clone(),
            Err(message) => {
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError {
                    message: message.clone(),
                })))
            }
        };
        let payload =
            codec::encode("raft request", request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let message = RaftMessage {
            cluster_id: self.network.identity.current().unwrap_or_default(),
            payload,
        };
        let timeout = option.hard_ttl();
        // No `grpc-timeout` on the request: tonic would enforce it on this side as
        // `Cancelled`, which reads as "unreachable" and makes openraft back off from a
        // peer that is only slow, leaving it without heartbeats (and soon electing).
        let grpc_request = tonic::Request::new(message);
        let mut client = client;
        let call = async move {
            match rpc {
                RPCTypes::AppendEntries => client.append_entries(grpc_request).await,
                RPCTypes::Vote => client.vote(grpc_request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(grpc_request).await,
            }
        };
        // openraft gives an AppendEntries (heartbeats included) one heartbeat interval
        // and then drops this future. On a starved machine the request may not even
        // have left by then; sent from its own task, it still reaches the follower
        // (which then keeps following) even when the answer comes too late to count.
        let call = async move {
            if rpc == RPCTypes::AppendEntries {
                let detached = tokio::spawn(tokio::time::timeout(DETACHED_LIMIT, call));
                match detached.await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_elapsed)) => Err(tonic::Status::deadline_exceeded("no answer")),
                    Err(join_error) => Err(tonic::Status::internal(join_error.to_string())),
                }
            } else {
                call.await
            }
        };
        let response = match tokio::time::timeout(timeout, call).await {
            Err(_elapsed) => {
                self.network.unanswered(self.target, &self.addr);
                return Err(RPCError::Timeout(Timeout {
                    action: rpc,
                    id: self.local_id,
                    target: self.target,
                    timeout,
                }));
            }
            Ok(Err(status)) => {
                if is_transport_failure(status.code()) {
                    self.network.unanswered(self.target, &self.addr);
                } else {
                    self.network.answered(self.target);
                }
                let error = TransportError {
                    message: format!("{rpc} to node {} at {} failed: {status}", self.target, self.addr),
                };
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                        RPCError::Unreachable(Unreachable::new(&error))
                    }
                    tonic::Code::DeadlineExceeded => RPCError::Timeout(Timeout {
                        action: rpc,
                        id: self.local_id,
                        target: self.target,
                        timeout,
                    }),
                    _ => RPCError::Network(NetworkError::new(&error)),
                });
            }
            Ok(Ok(response)) => {
                self.network.answered(self.target);
                response.into_inner()
            }
        };
        let reply: Result<Reply, RaftError<NodeId, E>> = codec::decode("raft reply", &response.payload)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        // The peer holds a data dir of this cluster: record it before openraft acts on
        // its answer, so that a later bootstrap of the same id with an empty data dir
        // is refused (see `bootstrap.rs`).
        self.network.peers.record(self.target).await.map_err(|error| {
            RPCError::Unreachable(Unreachable::new(&TransportError {
                message: format!("cannot record node {} as a peer: {error}", self.target),
            }))
        })?;
        reply.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.send(RPCTypes::AppendEntries, &request, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        self.send(RPCTypes::InstallSnapshot, &request, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        // The guard tells the election timer when this request is over, also when
        // openraft drops this future at its vote timeout.
        let mut campaign = self
            .network
            .campaigns
            .request_started(request.vote.leader_id().get_term());
        let started = std::time::Instant::now();
        let last_log_id = request.last_log_id;
        let reply: Result<VoteResponse<NodeId>, _> = self.send(RPCTypes::Vote, &request, &option).await;
        match &reply {
            Ok(response) => {
                if response.last_log_id > last_log_id {
                    campaign.saw_greater_log();
                }
                tracing::debug!(
                    target = self.target,
                    term = request.vote.leader_id().get_term(),
                    granted = response.vote_granted,
                    took_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "vote answered"
                );
            }
            Err(error) => tracing::debug!(
                target = self.target,
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                %error,
                "vote request failed"
            ),
        }
        reply
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer often enough that a restarted replica catches up
        // quickly, without spinning on a dead one.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer gets a new connection only after a second without any answer, and not
    /// more than once a second; a slow peer that still answers keeps its connection.
    #[test]
    fn a_silent_peer_gets_a_new_connection() {
        let start = std::time::Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut health = PeerHealth {
            last_answer: None,
            last_reconnect: start,
        };
        assert!(!health.reconnect_after_failure(at(500)));
        assert!(health.reconnect_after_failure(at(1000)));
        assert!(!health.reconnect_after_failure(at(1500)));
        assert!(health.reconnect_after_failure(at(2100)));

        health.last_answer = Some(at(2500));
        assert!(!health.reconnect_after_failure(at(3200)));
        assert!(health.reconnect_after_failure(at(3600)));
    }
}
