//! The `Admin` gRPC service: status and membership changes.

use cairn_proto::v1 as pb;
use cairn_proto::v1::admin_server::Admin;
use cairn_raft::identity::ClusterIdentity;
use cairn_raft::Member;
use tonic::{Request, Response, Status};

use std::collections::BTreeMap;
use std::time::Duration;

use super::consensus::Consensus;
use super::convert::{recovery_counters, unavailable_datasets, worker_statuses};
use super::dispatch::Dispatcher;
use super::error::ServerError;
use super::liveness::Liveness;
use super::reconfig::check_quorum_after;

/// How much longer than a plain request a new node may take to catch up.
const CATCH_UP_FACTOR: u32 = 12;

/// Serves status and membership administration for one replica.
pub struct AdminService {
    /// Raft and the applied state.
    consensus: Consensus,
    /// This replica's cluster identity, for status.
    identity: ClusterIdentity,
    /// The leader's memory of worker heartbeats, for status.
    liveness: Liveness,
    /// The leader's task runtime, for task counts.
    dispatcher: Dispatcher,
}

impl AdminService {
    /// The service over `consensus`.
    pub fn new(
        consensus: Consensus,
        identity: ClusterIdentity,
        liveness: Liveness,
        dispatcher: Dispatcher,
    ) -> AdminService {
        AdminService {
            consensus,
            identity,
            liveness,
            dispatcher,
        }
    }

    /// The voters (id → address) after applying `change` to the current ones, and
    /// this replica's id; refuses unless this replica leads.
    async fn voters_after(
        &self,
        change: impl FnOnce(&mut BTreeMap<u64, String>),
    ) -> Result<(u64, BTreeMap<u64, String>), ServerError> {
        self.consensus.replica.ensure_leader()?;
        let status = self.consensus.replica.status().await;
        let mut voters: BTreeMap<u64, String> = status
            .members
            .iter()
            .filter(|member| member.voter)
            .map(|member| (member.id, member.addr.clone()))
            .collect();
        change(&mut voters);
        Ok((status.node_id, voters))
    }

    /// How long a replica may take to answer the reconfiguration probe (short, so the
    /// refusal reaches a client well within its attempt timeout).
    fn probe_limit(&self) -> Duration {
        (self.consensus.request_timeout / 4).min(Duration::from_millis(500))
    }

    async fn members_reply(&self, log_index: u64) -> pb::MembershipReply {
        let status = self.consensus.replica.status().await;
        pb::MembershipReply {
            members: status.members.iter().map(member).collect(),
            log_index,
        }
    }
}

fn member(member: &Member) -> pb::Member {
    pb::Member {
        id: member.id,
        addr: member.addr.clone(),
        role: if member.voter { "voter" } else { "learner" }.to_string(),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusReply>, Status> {
        let status = self.consensus.replica.status().await;
        let (datasets, workers, tasks, recovery, unavailable) = self.consensus.state.read(|state| {
            (
                state.dataset_count() as u64,
                worker_statuses(state, &self.liveness),
                state.tasks().len() as u64,
                recovery_counters(state.recovery()),
                unavailable_datasets(state),
            )
        });
        Ok(Response::new(pb::StatusReply {
            node_id: status.node_id,
            cluster_id: self.identity.current().unwrap_or_default(),
            state: status.state.to_string(),
            leader_id: status.leader_id.unwrap_or(0),
            leader_addr: status.leader_addr.unwrap_or_default(),
            term: status.term,
            last_log_index: status.last_log_index,
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            members: status.members.iter().map(member).collect(),
            datasets,
            snapshot_index: status.snapshot_index,
            workers,
            tasks,
            task_counts: self.dispatcher.term().map(|_| {
                let (waiting, assigned, memory, erred) = self.dispatcher.counts();
                pb::TaskCounts {
                    waiting,
                    assigned,
                    memory,
                    erred,
                }
            }),
            recovery: Some(recovery),
            unavailable,
            uncommitted_bytes: status.uncommitted_bytes,
        }))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> Result<Response<pb::MembershipReply>, Status> {
        let request = request.into_inner();
        if request.id == 0 {
            return Err(ServerError::InvalidRequest {
                reason: "node ids start at 1".to_string(),
            }
            .into());
        }
        if request.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ServerError::InvalidRequest {
                reason: format!("`{}` is not an ip:port address", request.addr),
            }
            .into());
        }
        let (this_node, voters) = self
            .voters_after(|voters| {
                voters.entry(request.id).or_insert_with(|| request.addr.clone());
            })
            .await?;
        let change = format!("add node {}", request.id);
        check_quorum_after(&change, this_node, &voters, self.probe_limit()).await?;
        let timeout = self.consensus.request_timeout * CATCH_UP_FACTOR;
        let log_index = self
            .consensus
            .replica
            .add_voter(request.id, request.addr, timeout)
            .await
            .map_err(ServerError::from)?;
        Ok(Response::new(self.members_reply(log_index).await))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let request = request.into_inner();
        let (this_node, voters) = self
            .voters_after(|voters| {
                voters.remove(&request.id);
            })
            .await?;
        if !voters.is_empty() {
            let change = format!("remove node {}", request.id);
            check_quorum_after(&change, this_node, &voters, self.probe_limit()).await?;
        }
        let log_index = self
            .consensus
            .replica
            .remove_node(request.id)
            .await
            .map_err(ServerError::from)?;
        Ok(Response::new(self.members_reply(log_index).await))
    }
}
