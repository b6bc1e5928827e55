//! The `WorkerRegistry` gRPC service: registration (through Raft), the heartbeat
//! stream (leader memory only), and the registry for clients.

use std::pin::Pin;

use cairn_proto::v1 as pb;
use cairn_proto::v1::worker_registry_server::WorkerRegistry;
use cairn_raft::identity::ClusterIdentity;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::consensus::{now_ms, Consensus};
use super::convert::worker_statuses;
use super::convert_graph::{signature, task_key};
use super::dispatch::{Dispatcher, WorkerReport};
use super::error::ServerError;
use super::liveness::Liveness;
use crate::control::{ControlCommand, ControlOutcome};
use crate::graph::TaskKey;
use crate::registry::{WorkerId, WorkerRegistration, WorkerState};
use crate::scheduling::Event;

/// Serves workers (registration, heartbeats) and clients (the registry).
pub struct WorkerService {
    /// Raft and the applied state.
    consensus: Consensus,
    /// This replica's cluster, compared with the one a worker's data dir records.
    identity: ClusterIdentity,
    /// The leader's memory of heartbeats.
    liveness: Liveness,
    /// The leader's task runtime.
    dispatcher: Dispatcher,
}

impl WorkerService {
    /// The service over `consensus`.
    pub fn new(
        consensus: Consensus,
        identity: ClusterIdentity,
        liveness: Liveness,
        dispatcher: Dispatcher,
    ) -> WorkerService {
        WorkerService {
            consensus,
            identity,
            liveness,
            dispatcher,
        }
    }
}

fn worker_id(text: &str) -> Result<WorkerId, ServerError> {
    WorkerId::parse(text).map_err(|error| ServerError::InvalidRequest {
        reason: error.to_string(),
    })
}

/// Answers one heartbeat: remembers it, reports lost chunks through Raft, and tells
/// the worker which of its chunks no dataset refers to (after a read barrier, so a
/// new leader never answers from a state behind the commit index).
async fn answer(
    consensus: &Consensus,
    liveness: &Liveness,
    beat: pb::WorkerHeartbeat,
) -> Result<pb::HeartbeatReply, ServerError> {
    consensus.replica.ensure_leader()?;
    let worker = worker_id(&beat.worker_id)?;
    if !beat.lost.is_empty() {
        tracing::warn!(%worker, lost = ?beat.lost, "worker reports lost chunks");
        consensus
            .propose(&ControlCommand::ChunksLost {
                worker,
                keys: beat.lost.clone(),
            })
            .await?;
    }
    if !beat.chunks.is_empty() {
        consensus.read_barrier().await?;
    }
    let (alive, unreferenced) = consensus.state.read(|state| {
        let alive = state
            .worker(&worker)
            .is_some_and(|record| record.state == WorkerState::Alive);
        (alive, state.unreferenced(&beat.chunks))
    });
    if alive {
        liveness.heard(worker, beat);
    }
    let dropped = {
        let dropped = consensus.dropped();
        unreferenced
            .iter()
            .filter(|key| dropped.contains(key))
            .cloned()
            .collect()
    };
    Ok(pb::HeartbeatReply {
        unreferenced,
        reregister: !alive,
        dropped,
    })
}

type HeartbeatStream = Pin<Box<dyn Stream<Item = Result<pb::HeartbeatReply, Status>> + Send>>;
type TaskMessageStream = Pin<Box<dyn Stream<Item = Result<pb::SchedulerTaskMessage, Status>> + Send>>;

/// Feeds one batch of a worker's task reports to the runtime.
fn report(dispatcher: &Dispatcher, worker: WorkerId, events: pb::TaskEvents) {
    for finished in events.finished {
        match task_key(&finished.key) {
            Ok(key) => dispatcher.event(Event::TaskFinished {
                worker,
                key,
                bytes: finished.bytes,
                rows: finished.rows,
            }),
            Err(error) => tracing::warn!(%worker, %error, "worker reported a malformed key"),
        }
    }
    for erred in events.erred {
        match task_key(&erred.key) {
            Ok(key) => dispatcher.event(Event::TaskErred {
                worker,
                key,
                message: erred.message,
            }),
            Err(error) => tracing::warn!(%worker, %error, "worker reported a malformed key"),
        }
    }
    for missing in events.missing {
        let holders = missing
            .holders
            .iter()
            .filter_map(|holder| WorkerId::parse(holder).ok())
            .collect();
        match task_key(&missing.key) {
            Ok(key) => dispatcher.event(Event::InputMissing {
                worker,
                key,
                input: missing.input,
                holders,
            }),
            Err(error) => tracing::warn!(%worker, %error, "worker reported a malformed key"),
        }
    }
    for cancelled in events.cancelled {
        if let Ok(key) = task_key(&cancelled) {
            dispatcher.event(Event::TaskCancelled { worker, key });
        }
    }
}

#[tonic::async_trait]
impl WorkerRegistry for WorkerService {
    async fn register(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        let request = request.into_inner();
        let worker = worker_id(&request.worker_id)?;
        let cluster = self.identity.current().ok_or_else(|| ServerError::Unavailable {
            reason: "this replica has not joined a cluster yet".to_string(),
        })?;
        if !request.cluster_id.is_empty() && request.cluster_id != cluster {
            return Err(ServerError::OtherCluster {
                worker_cluster: request.cluster_id,
                cluster,
            }
            .into());
        }
        if request.addr.is_empty() {
            return Err(ServerError::InvalidRequest {
                reason: "a worker must give its address".to_string(),
            }
            .into());
        }
        let command = ControlCommand::RegisterWorkerProcess {
            registration: WorkerRegistration {
                worker,
                addr: request.addr,
                nthreads: request.nthreads,
                memory_limit: request.memory_limit,
                chunks: request.chunks,
                boot: request.boot,
            },
            now_ms: now_ms(),
        };
        match self.consensus.propose(&command).await? {
            ControlOutcome::Registry { log_index } => {
                tracing::info!(%worker, log_index, "worker registered");
                Ok(Response::new(pb::RegisterWorkerReply {
                    cluster_id: cluster,
                    log_index,
                }))
            }
            other => Err(ServerError::Unavailable {
                reason: format!("registering a worker returned {other:?}"),
            }
            .into()),
        }
    }

    type HeartbeatsStream = HeartbeatStream;

    async fn heartbeats(
        &self,
        request: Request<Streaming<pb::WorkerHeartbeat>>,
    ) -> Result<Response<Self::HeartbeatsStream>, Status> {
        self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
        let mut inbound = request.into_inner();
        let (replies, receiver) = mpsc::channel(4);
        let consensus = self.consensus.clone();
        let liveness = self.liveness.clone();
        tokio::spawn(async move {
            while let Some(beat) = inbound.next().await {
                let Ok(beat) = beat else {
                    break;
                };
                let reply = answer(&consensus, &liveness, beat).await.map_err(Status::from);
                let failed = reply.is_err();
                if replies.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    type TasksStream = TaskMessageStream;

    async fn tasks(
        &self,
        request: Request<Streaming<pb::WorkerTaskMessage>>,
    ) -> Result<Response<Self::TasksStream>, Status> {
        self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(pb::WorkerTaskMessage {
                kind: Some(pb::worker_task_message::Kind::Hello(hello)),
            })) => hello,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(ServerError::InvalidRequest {
                    reason: "a task stream starts with the worker's hello".to_string(),
                }
                .into())
            }
        };
        let worker = worker_id(&hello.worker_id)?;
        let alive = self.consensus.state.read(|state| {
            state
                .worker(&worker)
                .is_some_and(|record| record.state == WorkerState::Alive)
        });
        if !alive {
            return Err(ServerError::InvalidRequest {
                reason: format!("worker {worker} is not registered as alive; register first"),
            }
            .into());
        }
        let operations = hello.operations.into_iter().map(signature).collect();
        // Keys that are not task keys are published chunks, not results: skipped.
        let hello_report = WorkerReport {
            held: hello
                .held
                .into_iter()
                .filter_map(|held| TaskKey::parse(&held.key).ok().map(|key| (key, held.bytes, held.rows)))
                .collect(),
            running: hello
                .running
                .iter()
                .filter_map(|key| TaskKey::parse(key).ok())
                .collect(),
        };
        let (outbox, receiver) = mpsc::unbounded_channel();
        let connection = self
            .dispatcher
            .connect(worker, hello.nthreads, operations, hello_report, outbox);
        let dispatcher = self.dispatcher.clone();
        tokio::spawn(async move {
            while let Some(message) = inbound.next().await {
                match message {
                    Ok(pb::WorkerTaskMessage {
                        kind: Some(pb::worker_task_message::Kind::Events(events)),
                    }) => report(&dispatcher, worker, events),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            dispatcher.disconnect(worker, connection);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(receiver),
        )))
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersReply>, Status> {
        self.consensus.read_barrier().await?;
        let workers = self
            .consensus
            .state
            .read(|state| worker_statuses(state, &self.liveness));
        Ok(Response::new(pb::ListWorkersReply { workers }))
    }
}
