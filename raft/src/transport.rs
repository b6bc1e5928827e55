//! The Raft network, server side: receives peers' openraft RPCs over gRPC.

use cairn_proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use cairn_proto::v1::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::codec;
use crate::identity::ClusterIdentity;
use crate::network::MAX_MESSAGE_BYTES;
use crate::types::Raft;

/// Serves `RaftTransport` for one replica.
#[derive(Clone)]
pub struct RaftTransportService {
    /// The local Raft instance the RPCs are delivered to.
    raft: Raft,
    /// Which cluster this replica belongs to; messages of another cluster are refused.
    identity: ClusterIdentity,
}

impl RaftTransportService {
    /// The gRPC service delivering peers' messages to `raft`.
    pub fn new(raft: Raft, identity: ClusterIdentity) -> RaftTransportServer<RaftTransportService> {
        RaftTransportServer::new(RaftTransportService { raft, identity })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    async fn admit(&self, message: &RaftMessage) -> Result<(), Status> {
        self.identity
            .admit(&message.cluster_id)
            .await
            .map_err(|error| Status::failed_precondition(error.to_string()))
    }
}

fn decode_request<T: DeserializeOwned>(message: &RaftMessage) -> Result<T, Status> {
    codec::decode("raft request", &message.payload).map_err(|error| Status::invalid_argument(error.to_string()))
}

fn encode_reply<T: Serialize>(identity: &ClusterIdentity, reply: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = codec::encode("raft reply", reply).map_err(|error| Status::internal(error.to_string()))?;
    Ok(Response::new(RaftMessage {
        cluster_id: identity.current().unwrap_or_default(),
        payload,
    }))
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.admit(&message).await?;
        let reply = self.raft.append_entries(decode_request(&message)?).await;
        encode_reply(&self.identity, &reply)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.admit(&message).await?;
        let reply = self.raft.vote(decode_request(&message)?).await;
        encode_reply(&self.identity, &reply)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.admit(&message).await?;
        let reply = self.raft.install_snapshot(decode_request(&message)?).await;
        encode_reply(&self.identity, &reply)
    }
}
