//! The worker's Arrow Flight service: `DoGet` (ticket = chunk key → the chunk as an
//! Arrow IPC stream) and `DoPut` (a chunk uploaded by a client or copied from a peer,
//! acknowledged once it is fsync'd here and on every replica asked for).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use cairn_proto::v1 as pb;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::store::{ChunkForSending, ChunkStore, StoreError, StoredChunk};
use crate::ChunkKey;

/// The largest gRPC message a worker accepts or sends.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// The largest chunk a worker accepts in one upload.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024 * 1024;
/// Metadata key holding a stable error kind (as the schedulers' `cairn-error`).
pub const ERROR_KIND_KEY: &str = "cairn-error";
/// The Flight action that makes a task result durable for publishing.
pub const PERSIST_ACTION: &str = "persist";
/// How long a copy to a replica may take before the upload fails.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(120);

/// What the Flight service shares with the rest of the worker.
#[derive(Clone)]
pub struct WorkerData {
    /// This worker's id (16 hex digits).
    pub worker_id: String,
    /// The chunks.
    pub store: ChunkStore,
    /// Chunks found corrupt since the last heartbeat, reported to the leader.
    pub lost: Arc<Mutex<Vec<String>>>,
    /// Chunks received at once that this worker stores without copying them on: an
    /// upload waiting for a permit is not read, so HTTP/2 flow control holds its
    /// bytes at the sender instead of in memory here.
    pub upload_permits: Arc<tokio::sync::Semaphore>,
    /// The same for uploads this worker copies on to other workers. A separate pool:
    /// a forwarding upload waits on a copy at another worker, and if both kinds shared
    /// one pool, two workers forwarding to each other could each hold every permit
    /// the other's copy needs.
    pub forwarding_permits: Arc<tokio::sync::Semaphore>,
    /// A random id of this process, sent with each registration.
    pub boot: u64,
    /// Set once this process's first registration is acknowledged; uploads are
    /// refused before (retryably): the first registration's chunk list is what the
    /// catalog believes this worker kept across its restart, so no chunk may arrive
    /// that the list could miss.
    pub registered: Arc<std::sync::atomic::AtomicBool>,
}

impl WorkerData {
    /// Notes a chunk found corrupt, for the next heartbeat.
    fn report_lost(&self, key: &ChunkKey) {
        self.lost
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(key.to_string());
    }
}

fn status_with_kind(code: tonic::Code, kind: &'static str, message: String) -> Status {
    let mut status = Status::new(code, message);
    status
        .metadata_mut()
        .insert(ERROR_KIND_KEY, MetadataValue::from_static(kind));
    status
}

/// The one mapping of store errors to gRPC statuses.
fn store_status(error: StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::Paused { .. } | StoreError::DiskFull { .. } | StoreError::WriteFailed { .. } => {
            status_with_kind(tonic::Code::Unavailable, "worker-paused", message)
        }
        StoreError::Busy { .. } => status_with_kind(tonic::Code::Unavailable, "worker-busy", message),
        StoreError::NotFound { .. } => status_with_kind(tonic::Code::NotFound, "chunk-not-found", message),
        StoreError::Corrupt { .. } => status_with_kind(tonic::Code::DataLoss, "chunk-corrupt", message),
        _ => status_with_kind(tonic::Code::Internal, "worker-storage", message),
    }
}

fn invalid(message: String) -> Status {
    status_with_kind(tonic::Code::InvalidArgument, "invalid-argument", message)
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|error| Status::internal(format!("a store task failed: {error}")))?
        .map_err(store_status)
}

/// The acknowledgement of a stored chunk.
fn stored_reply(stored: &StoredChunk, holders: Vec<String>) -> pb::ChunkStored {
    pb::ChunkStored {
        key: stored.key.to_string(),
        rows: stored.rows,
        bytes: stored.file_bytes,
        checksum: stored.checksum.unwrap_or(0),
        holders,
        schema_ipc: Vec::new(),
    }
}

/// The Flight messages of a chunk: a batch in memory is encoded, one message per
/// chunk where it fits (the reader then needs no concatenation); a chunk on disk is
/// sent as its file's IPC messages, without decoding and encoding it again.
fn chunk_messages(chunk: ChunkForSending) -> BoxStream<'static, Result<FlightData, Status>> {
    match chunk {
        ChunkForSending::Batch(batch) => FlightDataEncoderBuilder::new()
            .with_max_flight_data_size(MAX_MESSAGE_BYTES / 2)
            .build(futures::stream::once(async move { Ok(batch) }))
            .map_err(Status::from)
            .boxed(),
        ChunkForSending::File(messages) => futures::stream::iter(messages.into_iter().map(|message| {
            Ok(FlightData {
                data_header: message.header,
                data_body: message.body,
                ..Default::default()
            })
        }))
        .boxed(),
    }
}

/// The answer to a `DoGet` of `ticket` (a chunk key): the chunk's Flight messages. It
/// starts at once and the chunk (perhaps read from disk) follows in the stream, so a
/// reader can tell a slow read from a hung worker. Shared by the Flight service and
/// the hand-framed `DoGet` route ([`crate::flight_get`]).
pub(crate) fn chunk_answer(
    data: &WorkerData,
    ticket: &[u8],
) -> Result<BoxStream<'static, Result<FlightData, Status>>, Status> {
    let key = std::str::from_utf8(ticket)
        .ok()
        .and_then(|text| ChunkKey::parse(text).ok())
        .ok_or_else(|| invalid("a ticket is a chunk key".to_string()))?;
    if !data.store.contains(&key) {
        return Err(store_status(StoreError::NotFound { key }));
    }
    let data = data.clone();
    let messages = futures::stream::once(async move {
        let store = data.store.clone();
        let lookup = key.clone();
        // A file too big for one message comes back decoded, for the encoder to split.
        let chunk = blocking(move || store.get_for_sending(&lookup, (MAX_MESSAGE_BYTES / 2) as u64))
            .await
            .inspect_err(|status| {
                if status.code() == tonic::Code::DataLoss {
                    tracing::error!(chunk = %key, error = %status.message(), "corrupt chunk dropped, not served");
                    data.report_lost(&key);
                }
            })?;
        Ok::<_, Status>(chunk_messages(chunk))
    })
    .try_flatten();
    Ok(messages.boxed())
}

/// Serves this worker's chunks.
pub struct WorkerFlightService {
    /// The chunks and what is reported about them.
    data: WorkerData,
}

impl WorkerFlightService {
    /// The service over `data`.
    pub fn new(data: WorkerData) -> WorkerFlightService {
        WorkerFlightService { data }
    }

    /// Reads an upload's first message, which carries its descriptor.
    async fn descriptor(stream: &mut Streaming<FlightData>) -> Result<(pb::ChunkUpload, FlightData), Status> {
        let first = stream
            .message()
            .await?
            .ok_or_else(|| invalid("an upload sent nothing".to_string()))?;
        let descriptor = first
            .flight_descriptor
            .clone()
            .ok_or_else(|| invalid("an upload's first message must carry a descriptor".to_string()))?;
        let upload = pb::ChunkUpload::decode(descriptor.cmd.clone())
            .map_err(|error| invalid(format!("the upload descriptor is not a ChunkUpload: {error}")))?;
        ChunkKey::parse(&upload.key).map_err(|error| invalid(error.to_string()))?;
        Ok((upload, first))
    }

    /// Receives the rest of one uploaded chunk: its batches, as one.
    async fn receive(
        upload: &pb::ChunkUpload,
        first: FlightData,
        stream: Streaming<FlightData>,
    ) -> Result<RecordBatch, Status> {
        let rest = stream.map_err(|status| FlightError::Tonic(Box::new(status)));
        let all = futures::stream::once(async move { Ok(first) }).chain(rest);
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(all);
        let mut batches = Vec::new();
        let mut bytes = 0usize;
        while let Some(batch) = decoded.try_next().await.map_err(Status::from)? {
            bytes += batch.get_array_memory_size();
            if bytes > MAX_CHUNK_BYTES {
                return Err(invalid(format!(
                    "chunk {} is over {MAX_CHUNK_BYTES} bytes; upload smaller chunks",
                    upload.key
                )));
            }
            batches.push(batch);
        }
        let schema = decoded
            .schema()
            .cloned()
            .ok_or_else(|| invalid(format!("the upload of chunk {} carried no schema", upload.key)))?;
        let batch = match batches.len() {
            1 => batches.pop().unwrap_or_else(|| RecordBatch::new_empty(schema.clone())),
            _ => concat_batches(&schema, &batches).map_err(|error| invalid(error.to_string()))?,
        };
        Ok(batch)
    }
}

impl WorkerFlightService {
    /// Copies a chunk this worker stored durably to `targets` (each stores it durably
    /// too); returns every holder, this worker first.
    async fn replicate(
        &self,
        key: &ChunkKey,
        batch: &RecordBatch,
        stored: &StoredChunk,
        targets: &[pb::ChunkLocation],
    ) -> Result<Vec<String>, Status> {
        let mut holders = vec![self.data.worker_id.clone()];
        let copies = targets.iter().map(|target| {
            let (key, batch) = (key.clone(), batch.clone());
            async move {
                let copy = cairn_client::put_chunk(&target.addr, key.as_str(), batch, Vec::new());
                match tokio::time::timeout(REPLICATION_TIMEOUT, copy).await {
                    Ok(result) => result.map_err(|error| (target, error)),
                    Err(_) => Err((
                        target,
                        cairn_client::TransferError {
                            message: "no answer".to_string(),
                            worker_paused: false,
                        },
                    )),
                }
            }
        });
        for copied in futures::future::join_all(copies).await {
            match copied {
                Ok(ack) if Some(ack.checksum) == stored.checksum => holders.extend(ack.holders),
                Ok(ack) => {
                    return Err(Status::data_loss(format!(
                        "replica of chunk {key} has checksum {:08x}, this worker wrote {:08x?}",
                        ack.checksum, stored.checksum
                    )))
                }
                Err((target, error)) => {
                    let message = format!(
                        "cannot copy chunk {key} to worker {} at {}: {error}",
                        target.worker_id, target.addr
                    );
                    // A paused replica makes the whole upload worth retrying later.
                    let kind = if error.worker_paused {
                        "worker-paused"
                    } else {
                        "replica-failed"
                    };
                    return Err(status_with_kind(tonic::Code::Unavailable, kind, message));
                }
            }
        }
        Ok(holders)
    }

    /// The `persist` action: makes a task result held here durable (fsync'd) and
    /// copies it to the workers named, so a client can publish it as a `Persisted`
    /// collection's chunk. Answers with the stored chunk and its schema.
    async fn persist(&self, body: bytes::Bytes) -> Result<pb::ChunkStored, Status> {
        let request = pb::ChunkUpload::decode(body)
            .map_err(|error| invalid(format!("a persist action carries a ChunkUpload: {error}")))?;
        let key = ChunkKey::parse(&request.key).map_err(|error| invalid(error.to_string()))?;
        let store = self.data.store.clone();
        let lookup = key.clone();
        let batch = blocking(move || store.get(&lookup)).await?;
        let store = self.data.store.clone();
        let (stored_key, stored_batch) = (key.clone(), batch.clone());
        let stored = blocking(move || store.put_durable(stored_key, stored_batch)).await?;
        let holders = self.replicate(&key, &batch, &stored, &request.replicate_to).await?;
        let mut reply = stored_reply(&stored, holders);
        let schema: arrow_flight::IpcMessage =
            arrow_flight::SchemaAsIpc::new(&batch.schema(), &arrow::ipc::writer::IpcWriteOptions::default())
                .try_into()
                .map_err(|error: arrow::error::ArrowError| {
                    Status::internal(format!("cannot encode a schema: {error}"))
                })?;
        reply.schema_ipc = schema.0.to_vec();
        Ok(reply)
    }
}

#[tonic::async_trait]
impl FlightService for WorkerFlightService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("no authentication: no handshake is needed"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented(
            "ask a scheduler: it lists published datasets (ListFlights, GetFlightInfo)",
        ))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("ask a scheduler for flight infos"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("ask a scheduler for flight infos"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("ask a scheduler for schemas"))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        chunk_answer(&self.data, &request.into_inner().ticket).map(Response::new)
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        if !self.data.registered.load(std::sync::atomic::Ordering::Acquire) {
            return Err(status_with_kind(
                tonic::Code::Unavailable,
                "worker-starting",
                "the worker has not registered with the cluster since it started; it accepts chunks once it has"
                    .to_string(),
            ));
        }
        if let Some(reason) = self.data.store.paused() {
            return Err(store_status(StoreError::Paused { reason }));
        }
        let mut stream = request.into_inner();
        let (upload, first) = Self::descriptor(&mut stream).await?;
        let permits = if upload.replicate_to.is_empty() {
            &self.data.upload_permits
        } else {
            &self.data.forwarding_permits
        };
        let _permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the worker is stopping"))?;
        let batch = Self::receive(&upload, first, stream).await?;
        let key = ChunkKey::parse(&upload.key).map_err(|error| invalid(error.to_string()))?;
        let store = self.data.store.clone();
        let (stored_key, stored_batch) = (key.clone(), batch.clone());
        let stored = blocking(move || store.put_durable(stored_key, stored_batch)).await?;
        let holders = self.replicate(&key, &batch, &stored, &upload.replicate_to).await?;
        tracing::debug!(chunk = %key, rows = stored.rows, holders = holders.len(), "chunk stored");
        let reply = PutResult {
            app_metadata: stored_reply(&stored, holders).encode_to_vec().into(),
        };
        Ok(Response::new(futures::stream::once(async move { Ok(reply) }).boxed()))
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        match action.r#type.as_str() {
            PERSIST_ACTION => {
                let stored = self.persist(action.body).await?;
                let result = arrow_flight::Result {
                    body: stored.encode_to_vec().into(),
                };
                Ok(Response::new(futures::stream::once(async move { Ok(result) }).boxed()))
            }
            other => Err(invalid(format!(
                "unknown action {other:?}; this worker knows {PERSIST_ACTION:?}"
            ))),
        }
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        let persist = ActionType {
            r#type: PERSIST_ACTION.to_string(),
            description: "make a held chunk durable and copy it to other workers (body: ChunkUpload)".to_string(),
        };
        Ok(Response::new(futures::stream::once(async move { Ok(persist) }).boxed()))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("no exchange"))
    }
}
