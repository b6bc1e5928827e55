//! The Raft network, client side: openraft's RPCs to peer replicas over tonic gRPC.
//!
//! Each message is a bincode-encoded openraft request inside a `RaftMessage` that
//! also carries the cluster id. Transport failures map to `Unreachable` (openraft
//! backs off) or `Timeout`; a `RaftError` from the peer comes back as `RemoteError`.

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
use crate::identity::ClusterIdentity;
use crate::types::{Node, NodeId, TypeConfig};

/// The largest gRPC message a replica sends or accepts (log batches and snapshot
/// chunks stay well below it: see `RaftSettings`).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A peer's gRPC client, shared by every connection openraft asks for.
type SharedClient = Result<RaftTransportClient<Channel>, String>;

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
}

impl Network {
    /// A network factory for replica `local_id` of the cluster `identity`.
    pub fn new(local_id: NodeId, identity: ClusterIdentity) -> Network {
        Network {
            local_id,
            identity,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn client_for(&self, target: NodeId, addr: &str) -> SharedClient {
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

/// A connection to one peer. The channel connects lazily and reconnects by itself.
pub struct PeerConnection {
    /// This replica's id.
    local_id: NodeId,
    /// The peer's id.
    target: NodeId,
    /// The peer's address, for errors.
    addr: String,
    /// The cluster every message is stamped with.
    identity: ClusterIdentity,
    /// The gRPC client, or why the peer's address is unusable.
    client: Result<RaftTransportClient<Channel>, String>,
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
        let client = self.client_for(target, &node.addr);
        PeerConnection {
            local_id: self.local_id,
            target,
            addr: node.addr.clone(),
            identity: self.identity.clone(),
            client,
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
        let client = match &self.client {
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
            cluster_id: self.identity.current().unwrap_or_default(),
            payload,
        };
        let timeout = option.hard_ttl();
        let mut grpc_request = tonic::Request::new(message);
        grpc_request.set_timeout(timeout);
        let mut client = client;
        let call = async {
            match rpc {
                RPCTypes::AppendEntries => client.append_entries(grpc_request).await,
                RPCTypes::Vote => client.vote(grpc_request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(grpc_request).await,
            }
        };
        let response = match tokio::time::timeout(timeout, call).await {
            Err(_elapsed) => {
                return Err(RPCError::Timeout(Timeout {
                    action: rpc,
                    id: self.local_id,
                    target: self.target,
                    timeout,
                }))
            }
            Ok(Err(status)) => {
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
            Ok(Ok(response)) => response.into_inner(),
        };
        let reply: Result<Reply, RaftError<NodeId, E>> = codec::decode("raft reply", &response.payload)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
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
        self.send(RPCTypes::Vote, &request, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer often enough that a restarted replica catches up
        // quickly, without spinning on a dead one.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
