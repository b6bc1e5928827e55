//! The `Catalog` gRPC service: publish, unpublish, get, info, list.

use std::collections::HashSet;

use cairn_proto::v1 as pb;
use cairn_proto::v1::catalog_server::Catalog;
use tonic::{Request, Response, Status};

use super::consensus::{now_ms, Consensus};
use super::convert::{entry_reply, info_reply, publish_item};
use super::dispatch::Dispatcher;
use super::error::ServerError;
use crate::catalog::{CatalogError, DatasetEntry, DatasetName, EntryKind};
use crate::control::{ClientId, ControlCommand, ControlOutcome, ControlState, Operation, RequestId};
use crate::graph::TaskKey;
use crate::scheduling::Event;

/// Serves the dataset catalog of one replica.
pub struct CatalogService {
    /// Raft and the applied state.
    consensus: Consensus,
    /// The leader's task runtime: told which task results published datasets pin.
    dispatcher: Dispatcher,
}

/// The chunk keys of the persisted entries a write touches (new and replaced).
fn touched_chunks(state: &ControlState, operation: &Operation) -> Vec<String> {
    let chunks_of = |entry: &DatasetEntry| -> Vec<String> {
        match &entry.kind {
            EntryKind::Persisted(collection) => collection.chunks.iter().map(|chunk| chunk.key.clone()).collect(),
            EntryKind::Value(_) | EntryKind::View(_) => Vec::new(),
        }
    };
    match operation {
        Operation::PublishEntries { items, .. } => items
            .iter()
            .flat_map(|item| {
                let mut keys = match &item.kind {
                    EntryKind::Persisted(collection) => {
                        collection.chunks.iter().map(|chunk| chunk.key.clone()).collect()
                    }
                    EntryKind::Value(_) | EntryKind::View(_) => Vec::new(),
                };
                keys.extend(state.get(&item.name).map(chunks_of).unwrap_or_default());
                keys
            })
            .collect(),
        Operation::Unpublish { name } => state.get(name).map(chunks_of).unwrap_or_default(),
        Operation::Publish { .. } => Vec::new(),
    }
}

impl CatalogService {
    /// The service over `consensus`.
    pub fn new(consensus: Consensus, dispatcher: Dispatcher) -> CatalogService {
        CatalogService { consensus, dispatcher }
    }

    /// Tells the task runtime which task results the datasets now pin, among the
    /// chunks a committed write touched: a pinned result is kept (and recomputed from
    /// lineage if its holders are lost), an unpinned one may be released.
    fn update_pins(&self, touched: Vec<String>) {
        if touched.is_empty() {
            return;
        }
        let (pinned, unpinned): (Vec<TaskKey>, Vec<TaskKey>) = self.read(|state| {
            let mut pinned = Vec::new();
            let mut unpinned = Vec::new();
            for key in touched {
                let Ok(task) = TaskKey::parse(&key) else {
                    continue;
                };
                if !state.tasks().contains(&task) {
                    continue;
                }
                if state.is_pinned(&key) {
                    pinned.push(task);
                } else {
                    unpinned.push(task);
                }
            }
            (pinned, unpinned)
        });
        if !pinned.is_empty() {
            self.dispatcher.event(Event::Pinned { keys: pinned });
        }
        if !unpinned.is_empty() {
            self.dispatcher.event(Event::Unpinned { keys: unpinned });
        }
    }

    /// Remembers which chunks a committed write touched are referred to no more (an
    /// unpublished or overridden dataset's), and which are again, for the heartbeat
    /// replies ([`super::consensus::DroppedChunks`]).
    fn note_dropped(&self, touched: &[String]) {
        if touched.is_empty() {
            return;
        }
        let unreferenced: HashSet<String> = self.read(|state| state.unreferenced(touched)).into_iter().collect();
        let mut dropped = self.consensus.dropped();
        for key in touched {
            if unreferenced.contains(key) {
                dropped.insert(key.clone());
            } else {
                dropped.remove(key);
            }
        }
    }

    /// Proposes a write; a write on an unknown or expired session is refused.
    async fn write(&self, request: RequestId, operation: Operation) -> Result<pb::WriteReply, ServerError> {
        if self.consensus.injected_bugs.ack_before_commit {
            return self.write_acknowledged_before_commit(request, operation).await;
        }
        let touched = self.read(|state| touched_chunks(state, &operation));
        let command = ControlCommand::Write {
            request,
            now_ms: now_ms(),
            operation,
        };
        let outcome = self.consensus.propose_together(&command).await?;
        match outcome {
            ControlOutcome::Write(Ok(ack)) => {
                self.note_dropped(&touched);
                self.update_pins(touched);
                Ok(pb::WriteReply {
                    log_index: ack.log_index,
                })
            }
            ControlOutcome::Write(Err(error)) => Err(ServerError::Catalog(error)),
            other => Err(ServerError::Unavailable {
                reason: format!("a write returned {other:?}"),
            }),
        }
    }

    /// Deliberate bug (`--unsafe-inject-bug ack-before-commit`): the leader checks
    /// the write against its local state, appends it to its log (in order), and
    /// acknowledges it without waiting for a quorum to commit it.
    async fn write_acknowledged_before_commit(
        &self,
        request: RequestId,
        operation: Operation,
    ) -> Result<pb::WriteReply, ServerError> {
        self.consensus.replica.ensure_leader()?;
        let refused = self.read(|state| match &operation {
            Operation::PublishEntries {
                items,
                override_existing: false,
                ..
            } => {
                let names: Vec<String> = items
                    .iter()
                    .filter(|item| state.get(&item.name).is_some())
                    .map(|item| item.name.to_string())
                    .collect();
                (!names.is_empty()).then_some(CatalogError::AlreadyExists { names })
            }
            Operation::Unpublish { name } => state
                .get(name)
                .is_none()
                .then(|| CatalogError::NotFound { name: name.to_string() }),
            _ => None,
        });
        if let Some(error) = refused {
            return Err(ServerError::Catalog(error));
        }
        let command = ControlCommand::Write {
            request,
            now_ms: now_ms(),
            operation,
        };
        self.consensus.propose_without_commit(&command).await?;
        Ok(pb::WriteReply { log_index: 0 })
    }

    fn read<R>(&self, read: impl FnOnce(&ControlState) -> R) -> R {
        self.consensus.state.read(read)
    }
}

fn client_id(bytes: &[u8]) -> Result<ClientId, ServerError> {
    let client: [u8; 16] = bytes.try_into().map_err(|_| ServerError::InvalidRequest {
        reason: format!("a client id is 16 bytes, got {}", bytes.len()),
    })?;
    Ok(ClientId(client))
}

fn request_id(request: Option<pb::RequestId>) -> Result<RequestId, ServerError> {
    let request = request.ok_or_else(|| ServerError::InvalidRequest {
        reason: "missing request id".to_string(),
    })?;
    let client = client_id(&request.client_id)?;
    if request.seq == 0 {
        return Err(ServerError::InvalidRequest {
            reason: "request sequence numbers start at 1".to_string(),
        });
    }
    Ok(RequestId {
        client,
        seq: request.seq,
        lowest_unacked_seq: request.lowest_unacked_seq,
    })
}

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionReply>, Status> {
        let client = client_id(&request.into_inner().client_id)?;
        let command = ControlCommand::OpenSession {
            client,
            now_ms: now_ms(),
        };
        match self.consensus.propose_together(&command).await? {
            ControlOutcome::SessionOpened => Ok(Response::new(pb::OpenSessionReply {})),
            other => Err(ServerError::Unavailable {
                reason: format!("opening a session returned {other:?}"),
            }
            .into()),
        }
    }

    async fn publish(&self, request: Request<pb::PublishRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let request = request.into_inner();
        let id = request_id(request.request)?;
        let items = request
            .items
            .into_iter()
            .map(publish_item)
            .collect::<Result<Vec<_>, _>>()?;
        ControlState::check_publish(&items).map_err(ServerError::from)?;
        let operation = Operation::PublishEntries {
            items,
            override_existing: request.r#override,
            publisher: request.publisher,
        };
        Ok(Response::new(self.write(id, operation).await?))
    }

    async fn unpublish(&self, request: Request<pb::UnpublishRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let request = request.into_inner();
        let id = request_id(request.request)?;
        let name = DatasetName::parse(&request.name).map_err(ServerError::from)?;
        Ok(Response::new(self.write(id, Operation::Unpublish { name }).await?))
    }

    async fn get(&self, request: Request<pb::NameRequest>) -> Result<Response<pb::DatasetEntry>, Status> {
        let name = DatasetName::parse(&request.into_inner().name).map_err(ServerError::from)?;
        self.consensus.read_barrier().await?;
        let reply = self.read(|state| state.get(&name).map(|entry| entry_reply(state, entry)));
        let reply = reply.ok_or_else(|| ServerError::Catalog(CatalogError::NotFound { name: name.to_string() }))?;
        Ok(Response::new(reply))
    }

    async fn info(&self, request: Request<pb::NameRequest>) -> Result<Response<pb::DatasetInfo>, Status> {
        let name = DatasetName::parse(&request.into_inner().name).map_err(ServerError::from)?;
        self.consensus.read_barrier().await?;
        let reply = self.read(|state| state.get(&name).map(|entry| info_reply(state, entry)));
        let reply = reply.ok_or_else(|| ServerError::Catalog(CatalogError::NotFound { name: name.to_string() }))?;
        Ok(Response::new(reply))
    }

    async fn list(&self, _request: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        self.consensus.read_barrier().await?;
        let names = self.read(ControlState::list);
        Ok(Response::new(pb::ListReply { names }))
    }
}
