//! The `Scheduler` gRPC service: graph submission (validated, then committed through
//! Raft in bounded batches), waiting on keys, releasing them, and the operation list.

use std::time::Duration;

use cairn_proto::v1 as pb;
use cairn_proto::v1::scheduler_server::Scheduler;
use tonic::{Request, Response, Status};

use super::consensus::Consensus;
use super::convert_graph::{signature_to_wire, task_key, task_spec};
use super::dispatch::{Dispatcher, OFFLOADED_GRAPH_TASKS};
use super::error::ServerError;
use crate::control::{ClientId, ControlCommand, ControlOutcome, ControlState, SubmitRefused};
use crate::graph::{dependency_order, validate_graph, GraphError, KnownKeys, TaskKey, TaskSpec};
use crate::scheduling::Event;

/// The most tasks one Raft entry carries.
const MAX_TASKS_PER_BATCH: usize = 10_000;
/// How many times a graph is submitted when one of its own tasks was forgotten
/// between two of its batches (`submit_graph`).
const SUBMIT_ATTEMPTS: u32 = 3;
/// How long a graph naming an operation no connected worker offers waits for the
/// registered workers to reconnect (after a leader change) before it is refused.
const RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// The most bytes (approximately) one Raft entry carries.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// The longest a single `WaitTasks` call waits.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Serves clients' task requests.
pub struct TaskService {
    consensus: Consensus,
    dispatcher: Dispatcher,
}

impl TaskService {
    /// The service.
    pub fn new(consensus: Consensus, dispatcher: Dispatcher) -> TaskService {
        TaskService { consensus, dispatcher }
    }
}

/// What the cluster already holds, as the validator asks it.
struct Known<'a>(&'a ControlState);

impl KnownKeys for Known<'_> {
    fn has_task(&self, key: &TaskKey) -> bool {
        self.0.tasks().contains(key)
    }

    fn has_chunk(&self, key: &str) -> bool {
        self.0.is_pinned(key)
    }
}

fn client_id(bytes: &[u8]) -> Result<ClientId, ServerError> {
    let id: [u8; 16] = bytes.try_into().map_err(|_| ServerError::InvalidRequest {
        reason: format!("a client id is 16 bytes, not {}", bytes.len()),
    })?;
    Ok(ClientId(id))
}

/// Splits `tasks` (in dependency order) into Raft-entry-sized batches.
fn batches(tasks: Vec<TaskSpec>) -> Vec<Vec<TaskSpec>> {
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for task in tasks {
        let size = task.approximate_bytes();
        if !current.is_empty() && (current.len() >= MAX_TASKS_PER_BATCH || bytes + size > MAX_BATCH_BYTES) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(task);
    }
    if !current.is_empty() || batches.is_empty() {
        batches.push(current);
    }
    batches
}

/// `work`'s result, computed on a blocking thread when `blocking`, else here.
async fn off_runtime_if<T: Send + 'static>(
    blocking: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    if !blocking {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Status::internal(format!("preparing the graph failed: {error}")))
}

impl TaskService {
    /// Proposes a graph's `SubmitTasks` commands in order; the last log index and how
    /// many tasks were new, or the first refusal.
    async fn propose_batches(&self, commands: &[ControlCommand]) -> Result<Result<(u64, u64), SubmitRefused>, Status> {
        let mut log_index = 0;
        let mut new_tasks = 0;
        // Pipelined: a graph's batches are appended in order (each depends only on
        // tasks of earlier ones), and none waits for the one before to commit.
        for outcome in self.consensus.propose_in_order(commands).await? {
            match outcome {
                ControlOutcome::TasksSubmitted {
                    log_index: index,
                    new_tasks: added,
                } => {
                    log_index = index;
                    new_tasks += added;
                }
                ControlOutcome::SubmitRefused(refused) => return Ok(Err(refused)),
                other => {
                    return Err(ServerError::Unavailable {
                        reason: format!("submitting a graph returned {other:?}"),
                    }
                    .into())
                }
            }
        }
        Ok(Ok((log_index, new_tasks)))
    }
}

#[tonic::async_trait]
impl Scheduler for TaskService {
    async fn submit_graph(
        &self,
        request: Request<pb::SubmitGraphRequest>,
    ) -> Result<Response<pb::SubmitGraphReply>, Status> {
        let request = request.into_inner();
        self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
        let client = client_id(&request.client_id)?;
        // As the core adds it (`dispatch.rs`), a big graph is converted and ordered
        // off the runtime thread: 50–120 ms of CPU for 100,000 tasks.
        let big = request.tasks.len() >= OFFLOADED_GRAPH_TASKS;
        let wire_tasks = request.tasks;
        let tasks = off_runtime_if(big, move || {
            wire_tasks.into_iter().map(task_spec).collect::<Result<Vec<_>, _>>()
        })
        .await??;
        let wanted = request
            .wanted
            .iter()
            .map(|key| task_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        self.consensus.read_barrier().await?;
        // Right after a leader change the workers are still reconnecting: an
        // operation no connected worker offers is refused only once every worker the
        // registry counts alive has opened its stream, or after a short wait.
        let deadline = tokio::time::Instant::now() + RECONNECT_WAIT;
        loop {
            let operations = self.dispatcher.operations();
            let validated = self
                .consensus
                .state
                .read(|state| validate_graph(&tasks, &Known(state), &operations));
            match validated {
                Ok(()) => break,
                Err(GraphError::UnknownOperation { .. })
                    if tokio::time::Instant::now() < deadline
                        && (self.dispatcher.term().is_none()
                            || self.dispatcher.connected_workers()
                                < self.consensus.state.read(|state| state.live_worker_count())) =>
                {
                    // Leadership may have moved meanwhile: then the client follows.
                    self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(ServerError::from(error).into()),
            }
        }
        let ordering = tasks.clone();
        let parts = off_runtime_if(big, move || batches(dependency_order(ordering))).await?;
        let count = parts.len();
        // The wanted keys go with the last batch.
        let commands: Vec<ControlCommand> = parts
            .into_iter()
            .enumerate()
            .map(|(at, part)| ControlCommand::SubmitTasks {
                client,
                tasks: part,
                wanted: if at + 1 == count { wanted.clone() } else { Vec::new() },
            })
            .collect();
        let mut attempt = 1;
        let (log_index, new_tasks) = loop {
            match self.propose_batches(&commands).await? {
                Ok(submitted) => break submitted,
                // A task of this graph that the table held when an earlier batch was
                // applied (so that batch reused it) was forgotten since: the runtime,
                // which hears of the graph only once all of it is committed, was
                // forgetting an earlier graph's copy. Submitting again inserts it anew;
                // the tasks already added are reused. (Seen: a tree sum submitted
                // while the previous tree sum, sharing its keys, was being forgotten.)
                Err(SubmitRefused::MissingDependency { missing, .. })
                    if attempt < SUBMIT_ATTEMPTS && tasks.iter().any(|task| task.key.as_str() == missing) =>
                {
                    tracing::debug!(%missing, attempt, "a task of the graph was forgotten while it was submitted; submitting again");
                    attempt += 1;
                }
                Err(refused) => return Err(ServerError::from(refused).into()),
            }
        };
        tracing::debug!(tasks = tasks.len(), new_tasks, batches = count, "graph submitted");
        self.dispatcher.submitted(client, tasks, wanted);
        Ok(Response::new(pb::SubmitGraphReply {
            log_index,
            batches: count as u32,
            new_tasks,
        }))
    }

    async fn wait_tasks(&self, request: Request<pb::WaitTasksRequest>) -> Result<Response<pb::WaitTasksReply>, Status> {
        let request = request.into_inner();
        self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
        let keys = request
            .keys
            .iter()
            .map(|key| task_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        if self.dispatcher.term().is_none() {
            return Err(ServerError::Unavailable {
                reason: "this scheduler is taking over as leader; try again".to_string(),
            }
            .into());
        }
        let timeout = Duration::from_millis(request.timeout_ms).min(MAX_WAIT);
        let not_leading = || {
            Status::from(ServerError::Unavailable {
                reason: "this scheduler stopped leading while the client waited; try the new leader".to_string(),
            })
        };
        let results = match tokio::time::timeout(timeout, self.dispatcher.wait(keys.clone())).await {
            Ok(Some(results)) => results,
            Ok(None) => return Err(not_leading()),
            Err(_elapsed) => {
                // Report the current states instead.
                self.dispatcher.states(keys).await.ok_or_else(not_leading)?
            }
        };
        Ok(Response::new(pb::WaitTasksReply { results }))
    }

    async fn release_keys(
        &self,
        request: Request<pb::ReleaseKeysRequest>,
    ) -> Result<Response<pb::ReleaseKeysReply>, Status> {
        let request = request.into_inner();
        self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
        let client = client_id(&request.client_id)?;
        let keys = request
            .keys
            .iter()
            .map(|key| task_key(key))
            .collect::<Result<Vec<_>, _>>()?;
        self.dispatcher.event(Event::KeysReleased { client, keys });
        Ok(Response::new(pb::ReleaseKeysReply {}))
    }

    async fn list_operations(
        &self,
        _request: Request<pb::ListOperationsRequest>,
    ) -> Result<Response<pb::ListOperationsReply>, Status> {
        self.consensus.replica.ensure_leader().map_err(ServerError::from)?;
        let operations = self.dispatcher.operations().values().map(signature_to_wire).collect();
        Ok(Response::new(pb::ListOperationsReply {
            operations,
            connected_workers: self.dispatcher.connected_workers() as u32,
        }))
    }
}
