//! The Raft network, client side: openraft's RPCs to peer replicas over tonic gRPC.
//!
//! Each message is a bincode-encoded openraft request inside a `RaftMessage` that
//! also carries the cluster id. Transport failures map to `Unreachable` (openraft
//! backs off) or `Timeout`; a `RaftError` from the peer comes back as `RemoteError`.
//!
//! AppendEntries (replication and heartbeats, the hot path) go over long-lived
//! `AppendEntriesStream` streams, kept per peer in a small pool: a request takes an
//! idle stream (or opens one with the request as its first message), waits for the
//! reply, and puts the stream back. One request at a time per stream, so replies
//! need no ids. A request openraft gives up on is still answered: its stream is
//! drained by a task of its own and then pooled again. Votes, snapshots and
//! pre-votes are rare and stay unary calls.
//!
//! The first reply of each peer is recorded durably ([`KnownPeers`]) before openraft
//! sees it, and every vote request is reported to the election timer ([`Campaigns`]).

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cairn_proto::v1::raft_transport_client::RaftTransportClient;
use cairn_proto::v1::RaftMessage;
use futures::FutureExt;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::RPCTypes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
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

/// At most this many idle AppendEntries streams are kept per peer (openraft has one
/// replication stream per peer, plus a heartbeat round now and then).
const MAX_IDLE_STREAMS: usize = 4;

/// A peer's channel and the AppendEntries streams open on it that nobody is using.
struct PeerLink {
    /// Tells this link's streams from those of a connection that replaced it.
    id: u64,
    client: SharedClient,
    idle: Vec<AppendStream>,
}

/// One open `AppendEntriesStream`: a request goes in, its reply comes out.
struct AppendStream {
    requests: mpsc::Sender<RaftMessage>,
    replies: tonic::Streaming<RaftMessage>,
}

impl AppendStream {
    /// Opens a stream to `client` with `first` as its first request (sent with the
    /// stream's headers).
    async fn open(mut client: RaftTransportClient<Channel>, first: RaftMessage) -> Result<AppendStream, tonic::Status> {
        let (requests, queue) = mpsc::channel(1);
        requests
            .try_send(first)
            .map_err(|_| tonic::Status::internal("a new AppendEntries stream refused its first request"))?;
        let replies = client
            .append_entries_stream(tokio_stream::wrappers::ReceiverStream::new(queue))
            .await?
            .into_inner();
        Ok(AppendStream { requests, replies })
    }

    /// Whether the stream still looks usable: its peer has not ended it, and there
    /// is no reply that nobody asked for.
    fn is_open(&mut self) -> bool {
        !self.requests.is_closed() && self.replies.message().now_or_never().is_none()
    }

    /// The next reply, or why there is none.
    async fn reply(&mut self) -> Result<RaftMessage, tonic::Status> {
        match self.replies.message().await? {
            Some(reply) => Ok(reply),
            None => Err(tonic::Status::unavailable("the peer ended the AppendEntries stream")),
        }
    }
}

/// A peer whose requests fail or time out and that has not answered for this long gets
/// a new connection (at most once per this long). After a partition that dropped
/// packets heals, the old TCP connection waits for its next retransmission, which
/// exponential backoff puts seconds away; a new connection gets through at once.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// At most about this many bytes of entries go in one AppendEntries (at least one entry
/// goes, however big). openraft 0.9 bounds a batch by count only (256 entries), and an
/// entry may hold up to 4 MiB of merged writes: a follower far behind was sent
/// hundreds of MiB at once, which never arrived within the append timeout, so it was
/// sent again, and again (`cairn-jepsen`'s data workload, after a slow network had
/// let it fall behind: the leader could commit nothing for minutes). The rest of a
/// batch goes in the next request, at once (`PartialSuccess`).
const APPEND_BUDGET_BYTES: usize = 1024 * 1024;
/// What an entry adds to a request besides its command's bytes (ids, framing): an
/// estimate, for the budget.
const ENTRY_OVERHEAD_BYTES: usize = 64;

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
    /// One HTTP/2 channel per peer address, with its idle AppendEntries streams.
    /// openraft asks for a new client for every ReadIndex round; reusing the channel
    /// and its streams saves a TCP and HTTP/2 handshake, or a new stream, each time.
    clients: Arc<Mutex<HashMap<(NodeId, String), PeerLink>>>,
    /// The id of the next [`PeerLink`].
    links: Arc<AtomicU64>,
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
            links: Arc::new(AtomicU64::new(0)),
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
        self.links().remove(&(target, addr.to_string()));
    }

    fn links(&self) -> MutexGuard<'_, HashMap<(NodeId, String), PeerLink>> {
        self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The link to `target` at `addr`, made (connecting lazily) if there is none.
    fn link<'a>(
        &self,
        links: &'a mut HashMap<(NodeId, String), PeerLink>,
        target: NodeId,
        addr: &str,
    ) -> &'a mut PeerLink {
        links.entry((target, addr.to_string())).or_insert_with(|| PeerLink {
            id: self.links.fetch_add(1, Ordering::Relaxed),
            client: lazy_channel(addr).map(|channel| {
                RaftTransportClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            }),
            idle: Vec::new(),
        })
    }

    pub(crate) fn client_for(&self, target: NodeId, addr: &str) -> SharedClient {
        let mut links = self.links();
        self.link(&mut links, target, addr).client.clone()
    }

    /// An idle AppendEntries stream to `target` that still looks open, if there is
    /// one; else the client to open one with. Either way, the id of their link.
    fn take_stream(&self, target: NodeId, addr: &str) -> (u64, Result<AppendStream, SharedClient>) {
        let mut links = self.links();
        let link = self.link(&mut links, target, addr);
        while let Some(mut stream) = link.idle.pop() {
            if stream.is_open() {
                return (link.id, Ok(stream));
            }
        }
        (link.id, Err(link.client.clone()))
    }

    /// Pools `stream` again, unless its link was replaced meanwhile or the pool is full.
    fn put_back(&self, target: NodeId, addr: &str, link: u64, stream: AppendStream) {
        let mut links = self.links();
        if let Some(current) = links.get_mut(&(target, addr.to_string())) {
            if current.id == link && current.idle.len() < MAX_IDLE_STREAMS {
                current.idle.push(stream);
            }
        }
    }

    /// Sends one AppendEntries `message` to `target` on a pooled or new stream and
    /// waits for its reply.
    async fn append_entries(
        &self,
        target: NodeId,
        addr: &str,
        message: RaftMessage,
    ) -> Result<RaftMessage, tonic::Status> {
        let (link, taken) = self.take_stream(target, addr);
        let (client, message) = match taken {
            Ok(stream) => match stream.requests.try_send(message) {
                Ok(()) => {
                    return InFlight::new(self.clone(), target, addr.to_string(), link, stream)
                        .finish()
                        .await
                }
                // The stream ended after the look, and the request did not leave.
                Err(refused) => (self.client_for(target, addr), refused.into_inner()),
            },
            Err(client) => (client, message),
        };
        let client = client.map_err(tonic::Status::unavailable)?;
        self.open_and_send(target, addr, link, client, message).await
    }

    /// Opens a stream with `message` as its first request and waits for the reply,
    /// from a task of its own: a stream is opened on a peer's first request and after
    /// a failure, when the machine may be starved, and the request must still reach
    /// the follower if openraft stops waiting (the stream is then drained and pooled
    /// as in [`InFlight`]).
    async fn open_and_send(
        &self,
        target: NodeId,
        addr: &str,
        link: u64,
        client: RaftTransportClient<Channel>,
        message: RaftMessage,
    ) -> Result<RaftMessage, tonic::Status> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let network = self.clone();
        let addr = addr.to_string();
        tokio::spawn(async move {
            let mut answer = answer;
            let opened = tokio::time::timeout(DETACHED_LIMIT, AppendStream::open(client, message)).await;
            let stream = match opened {
                Ok(Ok(stream)) => stream,
                Ok(Err(status)) => {
                    let _ = answer.send(Err(status));
                    return;
                }
                Err(_elapsed) => {
                    let _ = answer.send(Err(tonic::Status::deadline_exceeded("no answer")));
                    return;
                }
            };
            let mut flight = InFlight::new(network, target, addr, link, stream);
            tokio::select! {
                reply = flight.finish() => {
                    let _ = answer.send(reply);
                }
                // The caller is gone: dropping the flight drains the reply.
                () = answer.closed() => {}
            }
        });
        answered
            .await
            .unwrap_or_else(|_| Err(tonic::Status::internal("the task sending an AppendEntries ended")))
    }
}

/// An AppendEntries sent on `stream` and not yet answered. Dropped before its reply
/// (openraft stopped waiting), it leaves a task that waits for the reply (at most
/// [`DETACHED_LIMIT`]) and pools the stream again.
struct InFlight {
    network: Network,
    target: NodeId,
    addr: String,
    link: u64,
    stream: Option<AppendStream>,
}

impl InFlight {
    /// `stream`, its request sent, belonging to `link` of `target` at `addr`.
    fn new(network: Network, target: NodeId, addr: String, link: u64, stream: AppendStream) -> InFlight {
        InFlight {
            network,
            target,
            addr,
            link,
            stream: Some(stream),
        }
    }

    /// Waits for the reply; the stream is pooled again if it came.
    async fn finish(&mut self) -> Result<RaftMessage, tonic::Status> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(tonic::Status::internal("an AppendEntries was finished twice"));
        };
        let reply = stream.reply().await;
        let stream = self.stream.take();
        if let (Ok(_), Some(stream)) = (&reply, stream) {
            self.network.put_back(self.target, &self.addr, self.link, stream);
        }
        reply
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let network = self.network.clone();
        let (target, addr, link) = (self.target, std::mem::take(&mut self.addr), self.link);
        runtime.spawn(async move {
            if let Ok(Ok(_)) = tokio::time::timeout(DETACHED_LIMIT, stream.reply()).await {
                network.put_back(target, &addr, link, stream);
            }
        });
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
        let network = self.network.clone();
        let (target, addr) = (self.target, self.addr.clone());
        let call = async move {
            if rpc == RPCTypes::AppendEntries {
                // openraft gives an AppendEntries (heartbeats included) one heartbeat
                // interval and then drops this future; once sent, it still reaches the
                // follower (which then keeps following) even when the answer comes
                // too late to count (see `InFlight`).
                return network.append_entries(target, &addr, message).await;
            }
            // Looked up for every request: a connection replaced after a silence (see
            // `STALE_AFTER`) serves the requests of a replication stream opened before.
            let mut client = network.client_for(target, &addr).map_err(tonic::Status::unavailable)?;
            let grpc_request = tonic::Request::new(message);
            let response = match rpc {
                RPCTypes::Vote => client.vote(grpc_request).await,
                _ => client.install_snapshot(grpc_request).await,
            };
            response.map(tonic::Response::into_inner)
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
                response
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

/// How many of `entries`, from the first, fit in `budget` bytes (their commands' bytes
/// and an estimate of the rest); at least one, so that any entry gets through.
fn entries_within_budget(entries: &[openraft::Entry<TypeConfig>], budget: usize) -> usize {
    let mut bytes = 0usize;
    for (index, entry) in entries.iter().enumerate() {
        bytes += ENTRY_OVERHEAD_BYTES
            + match &entry.payload {
                openraft::EntryPayload::Normal(command) => command.0.len(),
                openraft::EntryPayload::Blank | openraft::EntryPayload::Membership(_) => 0,
            };
        if bytes > budget && index > 0 {
            return index;
        }
    }
    entries.len()
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let sent = entries_within_budget(&request.entries, APPEND_BUDGET_BYTES);
        let last_sent = (sent < request.entries.len()).then(|| {
            request.entries.truncate(sent);
            request.entries.last().map(|entry| entry.log_id)
        });
        let response = self.send(RPCTypes::AppendEntries, &request, &option).await?;
        Ok(match (response, last_sent) {
            // The follower holds what was sent: openraft sends the rest next.
            (AppendEntriesResponse::Success, Some(last)) => AppendEntriesResponse::PartialSuccess(last),
            (response, _) => response,
        })
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
    use std::pin::Pin;

    use cairn_proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
    use cairn_proto::v1::{BootstrapProbe, BootstrapProbeReply};
    use tonic::{Request, Response, Status};

    fn entry(index: u64, bytes: usize) -> openraft::Entry<TypeConfig> {
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(crate::types::Command(vec![0; bytes])),
        }
    }

    /// A batch is cut after the entries that fit the budget, never before its first
    /// entry (however big), and a batch that fits goes whole.
    #[test]
    fn append_entries_are_cut_to_the_byte_budget() {
        let budget = 1000;
        let small: Vec<_> = (1..=5).map(|index| entry(index, 100)).collect();
        assert_eq!(entries_within_budget(&small, budget), 5);
        let mixed = vec![entry(1, 400), entry(2, 400), entry(3, 400), entry(4, 10)];
        assert_eq!(entries_within_budget(&mixed, budget), 2);
        let huge = vec![entry(1, 10_000), entry(2, 10)];
        assert_eq!(entries_within_budget(&huge, budget), 1, "the first entry always goes");
        assert_eq!(entries_within_budget(&[], budget), 0);
        let blanks: Vec<_> = (1..=100)
            .map(|index| openraft::Entry::<TypeConfig> {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
                payload: openraft::EntryPayload::Blank,
            })
            .collect();
        assert_eq!(entries_within_budget(&blanks, budget), 1000 / ENTRY_OVERHEAD_BYTES);
    }

    /// A peer that echoes AppendEntries payloads on streams and counts what it saw.
    /// Payload `slow` is answered after 300 ms; payload `end` ends its stream after
    /// the reply.
    #[derive(Clone, Default)]
    struct EchoPeer {
        streams_opened: Arc<AtomicU64>,
        requests_seen: Arc<AtomicU64>,
        /// Answer a new stream's headers only after 300 ms.
        open_slowly: Arc<std::sync::atomic::AtomicBool>,
    }

    type Replies = Pin<Box<dyn futures::Stream<Item = Result<RaftMessage, Status>> + Send>>;

    #[tonic::async_trait]
    impl RaftTransport for EchoPeer {
        type AppendEntriesStreamStream = Replies;

        async fn append_entries_stream(
            &self,
            request: Request<tonic::Streaming<RaftMessage>>,
        ) -> Result<Response<Replies>, Status> {
            self.streams_opened.fetch_add(1, Ordering::SeqCst);
            if self.open_slowly.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let seen = Arc::clone(&self.requests_seen);
            let replies = futures::stream::unfold(Some(request.into_inner()), move |requests| {
                let seen = Arc::clone(&seen);
                async move {
                    let mut requests = requests?;
                    let message = requests.message().await.ok()??;
                    seen.fetch_add(1, Ordering::SeqCst);
                    if message.payload == b"slow" {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let next = if message.payload == b"end" {
                        None
                    } else {
                        Some(requests)
                    };
                    Some((Ok(message), next))
                }
            });
            Ok(Response::new(Box::pin(replies)))
        }

        async fn append_entries(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("echo peer"))
        }

        async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("echo peer"))
        }

        async fn install_snapshot(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("echo peer"))
        }

        async fn pre_vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
            Err(Status::unimplemented("echo peer"))
        }

        async fn probe_bootstrap(&self, _: Request<BootstrapProbe>) -> Result<Response<BootstrapProbeReply>, Status> {
            Err(Status::unimplemented("echo peer"))
        }
    }

    async fn echo_peer() -> (EchoPeer, String, tempfile::TempDir, Network) {
        let peer = EchoPeer::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let served = peer.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(RaftTransportServer::new(served))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let db = cairn_storage::Db::open(dir.path()).expect("database");
        let identity = ClusterIdentity::new(1, Some("test-cluster".to_string()), db.clone());
        let peers = KnownPeers::load(1, db).expect("known peers");
        let network = Network::new(1, identity, peers, Campaigns::default());
        (peer, addr, dir, network)
    }

    fn message(payload: &[u8]) -> RaftMessage {
        RaftMessage {
            cluster_id: "test-cluster".to_string(),
            payload: payload.to_vec(),
        }
    }

    /// AppendEntries share one stream one after another; concurrent ones get a
    /// stream each; a stream the peer ended is replaced without an error.
    #[tokio::test]
    async fn append_entries_reuse_streams_and_replace_ended_ones() {
        let (peer, addr, _dir, network) = echo_peer().await;
        for index in 0..5u8 {
            let reply = network
                .append_entries(2, &addr, message(&[index]))
                .await
                .expect("reply");
            assert_eq!(reply.payload, vec![index]);
        }
        assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 1);

        // The peer ends the stream after this reply; the next request finds the
        // stream closed and opens a new one, with no error.
        network
            .append_entries(2, &addr, message(b"end"))
            .await
            .expect("reply before the end");
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..3 {
            network
                .append_entries(2, &addr, message(b"x"))
                .await
                .expect("reply on a new stream");
        }
        assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 2);

        let (first, second) = tokio::join!(
            network.append_entries(2, &addr, message(b"a")),
            network.append_entries(2, &addr, message(b"b")),
        );
        assert_eq!(first.expect("first").payload, b"a");
        assert_eq!(second.expect("second").payload, b"b");
        assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 3);
        assert_eq!(peer.requests_seen.load(Ordering::SeqCst), 11);
    }

    /// Sends an AppendEntries with `payload` to node 2 and stops waiting after 20 ms,
    /// as openraft does on a timeout; it must not have been answered by then.
    async fn abandon(network: &Network, addr: &str, payload: &[u8]) {
        let abandoned = tokio::time::timeout(
            Duration::from_millis(20),
            network.append_entries(2, addr, message(payload)),
        )
        .await;
        assert!(abandoned.is_err(), "the request was answered before its caller gave up");
    }

    /// A request whose caller stops waiting while its stream is still being opened
    /// (the peer answers the stream's headers late) still reaches the peer, and the
    /// stream is pooled once the reply came.
    #[tokio::test]
    async fn an_append_entries_abandoned_while_its_stream_opens_is_delivered() {
        let (peer, addr, _dir, network) = echo_peer().await;
        peer.open_slowly.store(true, Ordering::SeqCst);
        abandon(&network, &addr, b"first").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(peer.requests_seen.load(Ordering::SeqCst), 1);
        peer.open_slowly.store(false, Ordering::SeqCst);
        let reply = network.append_entries(2, &addr, message(b"next")).await.expect("reply");
        assert_eq!(reply.payload, b"next");
        assert_eq!(
            peer.streams_opened.load(Ordering::SeqCst),
            1,
            "the stream opened late is reused"
        );
    }

    /// A request whose caller stops waiting still reaches the peer, and its stream
    /// is pooled again once the late reply came.
    #[tokio::test]
    async fn an_abandoned_append_entries_is_delivered_and_its_stream_reused() {
        let (peer, addr, _dir, network) = echo_peer().await;
        network.append_entries(2, &addr, message(b"warm")).await.expect("reply");
        abandon(&network, &addr, b"slow").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(peer.requests_seen.load(Ordering::SeqCst), 2);
        let reply = network.append_entries(2, &addr, message(b"next")).await.expect("reply");
        assert_eq!(reply.payload, b"next");
        assert_eq!(
            peer.streams_opened.load(Ordering::SeqCst),
            1,
            "the drained stream is reused"
        );
    }

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
