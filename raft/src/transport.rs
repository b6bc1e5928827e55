//! The Raft network, server side: receives peers' openraft RPCs over gRPC, and
//! answers the bootstrap probe of a replica about to start with an empty data dir.
//!
//! AppendEntries arrive on long-lived streams (`AppendEntriesStream`): the requests
//! of one stream are answered one after another, in order. A stream ends when its
//! sender closes it, after an error (which its sender receives as the call's status),
//! or when this replica starts to stop, so that a graceful shutdown does not wait on
//! peers' streams.

use std::pin::Pin;

use cairn_proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use cairn_proto::v1::{BootstrapProbe, BootstrapProbeReply, RaftMessage};
use futures::Stream;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::election::{PreVoteJudge, PreVoteRequest};
use crate::identity::ClusterIdentity;
use crate::network::MAX_MESSAGE_BYTES;
use crate::peers::KnownPeers;
use crate::types::{NodeId, Raft, TypeConfig};

/// Serves `RaftTransport` for one replica.
#[derive(Clone)]
pub struct RaftTransportService {
    /// The local Raft instance the RPCs are delivered to.
    raft: Raft,
    /// Which cluster this replica belongs to; messages of another cluster are refused.
    identity: ClusterIdentity,
    /// The peers this replica has heard from.
    peers: KnownPeers,
    /// Answers pre-votes.
    judge: PreVoteJudge,
    /// Turns true when the replica starts to stop: AppendEntries streams then end.
    stopping: watch::Receiver<bool>,
}

/// The replies of one AppendEntries stream.
type ReplyStream = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send + 'static>>;

impl RaftTransportService {
    /// The gRPC service delivering peers' messages to `raft`; its AppendEntries
    /// streams end once `stopping` turns true.
    pub fn new(
        raft: Raft,
        identity: ClusterIdentity,
        peers: KnownPeers,
        judge: PreVoteJudge,
        stopping: watch::Receiver<bool>,
    ) -> RaftTransportServer<RaftTransportService> {
        RaftTransportServer::new(RaftTransportService {
            raft,
            identity,
            peers,
            judge,
            stopping,
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    async fn admit(&self, message: &RaftMessage) -> Result<(), Status> {
        self.identity
            .admit(&message.cluster_id)
            .await
            .map_err(|error| Status::failed_precondition(error.to_string()))
    }

    /// Records the sender of an admitted request (a candidate or a leader of this
    /// cluster) as a peer that holds a data dir of it.
    async fn record_sender(&self, sender: Option<NodeId>) -> Result<(), Status> {
        let Some(sender) = sender else {
            return Ok(());
        };
        self.peers
            .record(sender)
            .await
            .map_err(|error| Status::unavailable(format!("cannot record node {sender} as a peer: {error}")))
    }

    /// Delivers one AppendEntries to the local Raft and encodes its answer.
    async fn answer_append_entries(&self, message: RaftMessage) -> Result<RaftMessage, Status> {
        self.admit(&message).await?;
        let request: AppendEntriesRequest<TypeConfig> = decode_request(&message)?;
        self.record_sender(request.vote.leader_id().voted_for()).await?;
        let reply = self.raft.append_entries(request).await;
        encode_reply(&self.identity, &reply)
    }
}

/// Waits until `stopping` turns true; forever if its sender is gone without it.
async fn stop_requested(mut stopping: watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn decode_request<T: DeserializeOwned>(message: &RaftMessage) -> Result<T, Status> {
    codec::decode("raft request", &message.payload).map_err(|error| Status::invalid_argument(error.to_string()))
}

fn encode_reply<T: Serialize>(identity: &ClusterIdentity, reply: &T) -> Result<RaftMessage, Status> {
    let payload = codec::encode("raft reply", reply).map_err(|error| Status::internal(error.to_string()))?;
    Ok(RaftMessage {
        cluster_id: identity.current().unwrap_or_default(),
        payload,
    })
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    type AppendEntriesStreamStream = ReplyStream;

    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.answer_append_entries(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn append_entries_stream(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let requests = request.into_inner();
        let service = self.clone();
        // Polled by the connection's task for this stream: one request is read,
        // answered and its reply sent before the next is read.
        let replies = futures::stream::unfold(Some((requests, service)), |state| async move {
            let (mut requests, service) = state?;
            let next = tokio::select! {
                biased;
                () = stop_requested(service.stopping.clone()) => return None,
                next = requests.message() => next,
            };
            match next {
                Ok(Some(message)) => match service.answer_append_entries(message).await {
                    Ok(reply) => Some((Ok(reply), Some((requests, service)))),
                    Err(status) => Some((Err(status), None)),
                },
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.admit(&message).await?;
        let request: VoteRequest<NodeId> = decode_request(&message)?;
        self.record_sender(request.vote.leader_id().voted_for()).await?;
        let reply = self.raft.vote(request).await;
        encode_reply(&self.identity, &reply).map(Response::new)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.admit(&message).await?;
        let request: InstallSnapshotRequest<TypeConfig> = decode_request(&message)?;
        self.record_sender(request.vote.leader_id().voted_for()).await?;
        let reply = self.raft.install_snapshot(request).await;
        encode_reply(&self.identity, &reply).map(Response::new)
    }

    async fn pre_vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.admit(&message).await?;
        let request: PreVoteRequest = decode_request(&message)?;
        self.record_sender(Some(request.candidate)).await?;
        let reply = self.judge.judge(&request).await;
        encode_reply(&self.identity, &reply).map(Response::new)
    }

    /// Never adopts the asker's cluster id (a `--join` replica must learn it from its
    /// cluster's leader): only says whether it knows the asker in that cluster.
    async fn probe_bootstrap(&self, request: Request<BootstrapProbe>) -> Result<Response<BootstrapProbeReply>, Status> {
        let probe = request.into_inner();
        let ours = self.identity.current();
        let same_cluster = ours.as_deref() == Some(probe.cluster_id.as_str());
        let knows_node = same_cluster && self.peers.knows(probe.node_id);
        let metrics = self.raft.metrics().borrow().clone();
        if knows_node {
            tracing::warn!(
                node = probe.node_id,
                "node {} asks whether it may bootstrap with an empty data dir; it was a member before: telling it no",
                probe.node_id
            );
        }
        Ok(Response::new(BootstrapProbeReply {
            cluster_id: ours.unwrap_or_default(),
            node_id: self.identity.node_id(),
            knows_node,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map(|log_id| log_id.index).unwrap_or(0),
        }))
    }
}
