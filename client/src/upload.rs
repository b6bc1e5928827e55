//! Publishing record batches as a persisted collection: chunking, upload of each
//! chunk to `replicas` distinct workers (Flight `DoPut`; the first worker copies it to
//! the others, and acknowledges once every copy is fsync'd), then one atomic publish.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::{FlightDescriptor, IpcMessage, SchemaAsIpc};
use cairn_proto::v1 as pb;
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;

use crate::client::{lazy_channel, MAX_MESSAGE_BYTES};
use crate::collection::flight_client;
use crate::error::Error;
use crate::worker_api::WorkerInfo;
use crate::Client;

/// How many chunk uploads run at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// What one finished chunk upload adds to the progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    /// Chunks acknowledged so far.
    pub chunks: u64,
    /// Rows acknowledged so far.
    pub rows: u64,
    /// Arrow bytes (in memory) acknowledged so far.
    pub bytes: u64,
}

/// What a publish of a collection stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishSummary {
    /// The log index of the publish.
    pub log_index: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// Rows stored.
    pub rows: u64,
    /// Bytes of the chunk files (one replica).
    pub bytes: u64,
}

/// How to publish a collection.
#[derive(Clone)]
pub struct PublishOptions {
    /// Distinct workers that must hold each chunk durably before the publish.
    pub replicas: u32,
    /// The most rows in one chunk.
    pub chunk_rows: usize,
    /// The most Arrow bytes in one chunk (a chunk is cut at whichever comes first).
    pub chunk_bytes: usize,
    /// Replace the dataset if the name exists.
    pub override_existing: bool,
    /// User attributes.
    pub attributes: BTreeMap<String, String>,
    /// Called after each acknowledged chunk (for progress bars).
    pub on_progress: Option<Arc<dyn Fn(UploadProgress) + Send + Sync>>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            replicas: 1,
            chunk_rows: 1 << 20,
            chunk_bytes: 16 * 1024 * 1024,
            override_existing: false,
            attributes: BTreeMap::new(),
            on_progress: None,
        }
    }
}

impl std::fmt::Debug for PublishOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishOptions")
            .field("replicas", &self.replicas)
            .field("chunk_rows", &self.chunk_rows)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("override_existing", &self.override_existing)
            .field("attributes", &self.attributes)
            .finish()
    }
}

/// Encodes a schema as an encapsulated Arrow IPC schema message (as Flight does).
fn encode_schema(schema: &SchemaRef) -> Result<Vec<u8>, Error> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|error: arrow::error::ArrowError| Error::InvalidArgument {
            message: format!("cannot encode the schema: {error}"),
        })?;
    Ok(message.0.to_vec())
}

/// Cuts incoming batches into chunks of at most `chunk_rows` rows and about
/// `chunk_bytes` bytes, in order.
struct Chunker {
    schema: SchemaRef,
    chunk_rows: usize,
    chunk_bytes: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
}

impl Chunker {
    fn push(&mut self, batch: &RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        let row_bytes = batch.get_array_memory_size() / batch.num_rows().max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let room = self.chunk_rows - self.pending_rows;
            let by_bytes = (self.chunk_bytes.saturating_sub(self.pending_bytes) / row_bytes.max(1)).max(1);
            let take = room.min(by_bytes).min(batch.num_rows() - offset);
            self.pending.push(batch.slice(offset, take));
            self.pending_rows += take;
            self.pending_bytes += take * row_bytes;
            offset += take;
            if self.pending_rows >= self.chunk_rows || self.pending_bytes >= self.chunk_bytes {
                out.push(self.flush()?);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<RecordBatch, Error> {
        let batch = concat_batches(&self.schema, &self.pending).map_err(|error| Error::InvalidArgument {
            message: format!("cannot assemble a chunk: {error}"),
        })?;
        self.pending.clear();
        self.pending_rows = 0;
        self.pending_bytes = 0;
        Ok(batch)
    }
}

/// Sends one chunk to the worker at `addr` with Flight `DoPut` (the worker stores it
/// durably, copies it to `replicate_to`, and acknowledges): used by clients uploading
/// and by workers copying to replicas.
#[doc(hidden)]
pub async fn put_chunk(
    addr: &str,
    key: &str,
    batch: RecordBatch,
    replicate_to: Vec<pb::ChunkLocation>,
) -> Result<pb::ChunkStored, TransferError> {
    let channel = lazy_channel(addr).map_err(|error| TransferError::other(error.to_string()))?;
    let upload = pb::ChunkUpload {
        key: key.to_string(),
        replicate_to,
    };
    let mut client = flight_client(channel);
    let data = FlightDataEncoderBuilder::new()
        .with_max_flight_data_size(MAX_MESSAGE_BYTES / 2)
        .with_flight_descriptor(Some(FlightDescriptor::new_cmd(upload.encode_to_vec())))
        .build(futures::stream::once(async move { Ok(batch) }));
    let mut results = client.do_put(data).await.map_err(TransferError::from)?;
    let result = results
        .try_next()
        .await
        .map_err(TransferError::from)?
        .ok_or_else(|| TransferError::other("the worker acknowledged nothing".to_string()))?;
    pb::ChunkStored::decode(result.app_metadata)
        .map_err(|error| TransferError::other(format!("an undecodable acknowledgement: {error}")))
}

/// Asks the worker at `addr` to make its held result `key` durable and copy it to
/// `replicate_to` (Flight action `persist`).
pub(crate) async fn persist_on_worker(
    client: &Client,
    addr: &str,
    key: &str,
    replicate_to: Vec<pb::ChunkLocation>,
) -> Result<pb::ChunkStored, TransferError> {
    let channel = client
        .channel(addr)
        .map_err(|error| TransferError::other(error.to_string()))?;
    let request = pb::ChunkUpload {
        key: key.to_string(),
        replicate_to,
    };
    let mut flight = flight_client(channel);
    let action = arrow_flight::Action {
        r#type: "persist".to_string(),
        body: request.encode_to_vec().into(),
    };
    let mut results = flight.do_action(action).await.map_err(TransferError::from)?;
    let body = results
        .try_next()
        .await
        .map_err(TransferError::from)?
        .ok_or_else(|| TransferError::other("the worker answered nothing".to_string()))?;
    pb::ChunkStored::decode(body).map_err(|error| TransferError::other(format!("an undecodable answer: {error}")))
}

/// Why a chunk transfer failed, and whether trying the same worker later may work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransferError {
    /// What the worker or the transport said.
    pub message: String,
    /// The worker is paused (memory or disk), busy, or not yet registered since it
    /// started: it may accept the chunk later.
    pub worker_paused: bool,
}

impl TransferError {
    fn other(message: String) -> TransferError {
        TransferError {
            message,
            worker_paused: false,
        }
    }
}

/// Metadata key of the workers' stable error kinds.
const ERROR_KIND_KEY: &str = "cairn-error";

impl From<arrow_flight::error::FlightError> for TransferError {
    fn from(error: arrow_flight::error::FlightError) -> TransferError {
        let worker_paused = match &error {
            arrow_flight::error::FlightError::Tonic(status) => status
                .metadata()
                .get(ERROR_KIND_KEY)
                .and_then(|kind| kind.to_str().ok())
                .is_some_and(|kind| matches!(kind, "worker-paused" | "worker-busy" | "worker-starting")),
            _ => false,
        };
        TransferError {
            message: error.to_string(),
            worker_paused,
        }
    }
}

/// Uploads one chunk: to `targets[0]`, which copies it to the others. Returns the
/// chunk as the catalog records it.
async fn upload_chunk(
    key: String,
    batch: RecordBatch,
    targets: &[&WorkerInfo],
) -> Result<pb::ChunkInfo, TransferError> {
    let first = targets
        .first()
        .ok_or_else(|| TransferError::other("no worker to upload to".to_string()))?;
    let replicate_to = targets[1..]
        .iter()
        .map(|worker| pb::ChunkLocation {
            worker_id: worker.worker_id.clone(),
            addr: worker.addr.clone(),
            live: true,
        })
        .collect();
    let rows = batch.num_rows() as u64;
    // A connection of its own, not the client's shared channel: a worker leaves an
    // upload unread until it has room (HTTP/2 flow control then holds the bytes at
    // the sender), and unread uploads sharing one connection would fill its window
    // and stall the upload the worker is reading.
    let stored = put_chunk(&first.addr, &key, batch, replicate_to).await?;
    if stored.key != key || stored.rows != rows || stored.holders.len() < targets.len() {
        return Err(TransferError::other(format!(
            "the worker acknowledged chunk {} with {} rows on {} worker(s), expected {key} with {rows} rows on {}",
            stored.key,
            stored.rows,
            stored.holders.len(),
            targets.len()
        )));
    }
    Ok(chunk_info(stored))
}

/// The publish item of a persisted collection whose chunks are stored.
pub(crate) fn persisted_item(
    name: &str,
    attributes: std::collections::BTreeMap<String, String>,
    schema_ipc: Vec<u8>,
    chunks: Vec<pb::ChunkInfo>,
    replicas: u32,
) -> pb::PublishItem {
    pb::PublishItem {
        name: name.to_string(),
        value: None,
        attributes: attributes.into_iter().collect(),
        persisted: Some(pb::Collection {
            schema_ipc,
            chunks,
            replicas,
            rows: 0,
            bytes: 0,
        }),
        view: Vec::new(),
    }
}

/// A chunk acknowledged as stored, as a publish names it (holders by id).
pub(crate) fn chunk_info(stored: pb::ChunkStored) -> pb::ChunkInfo {
    pb::ChunkInfo {
        key: stored.key,
        rows: stored.rows,
        bytes: stored.bytes,
        checksum: stored.checksum,
        locations: stored
            .holders
            .into_iter()
            .map(|worker_id| pb::ChunkLocation {
                worker_id,
                addr: String::new(),
                live: true,
            })
            .collect(),
    }
}

/// Uploads chunk `index`, trying successive placements over the live workers.
async fn place_chunk(
    upload_id: &str,
    index: usize,
    batch: RecordBatch,
    workers: &[WorkerInfo],
    replicas: usize,
    patience: Duration,
) -> Result<pb::ChunkInfo, Error> {
    let key = format!("{upload_id}.{index:06}");
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(50);
    let mut attempt = 0usize;
    loop {
        // One round: every placement once. Paused workers may take the chunk later
        // (they spill, or their disk frees up): wait and go round again, until the
        // deadline; any other failure ends the upload.
        let mut errors = Vec::new();
        let mut all_paused = true;
        for _ in 0..workers.len() {
            let targets: Vec<&WorkerInfo> = (0..replicas)
                .map(|replica| &workers[(index + attempt + replica) % workers.len()])
                .collect();
            attempt += 1;
            match upload_chunk(key.clone(), batch.clone(), &targets).await {
                Ok(chunk) => return Ok(chunk),
                Err(error) => {
                    tracing::debug!(chunk = %key, worker = %targets[0].worker_id, %error, "chunk upload failed; trying another placement");
                    all_paused &= error.worker_paused;
                    errors.push(format!(
                        "via worker {} at {}: {error}",
                        targets[0].worker_id, targets[0].addr
                    ));
                }
            }
        }
        if !all_paused || Instant::now() + pause >= deadline {
            return Err(Error::Unavailable {
                message: format!(
                    "cannot store chunk {key} on {replicas} worker(s): {}",
                    errors.join("; ")
                ),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

impl Client {
    /// The live workers, once it is known that `replicas` of them can hold each chunk
    /// of dataset `name`.
    pub(crate) async fn workers_for_replicas(&self, name: &str, replicas: u32) -> Result<Vec<WorkerInfo>, Error> {
        if replicas == 0 {
            return Err(Error::InvalidArgument {
                message: "replicas must be at least 1".to_string(),
            });
        }
        let workers: Vec<WorkerInfo> = self
            .workers()
            .await?
            .into_iter()
            .filter(|worker| worker.is_alive())
            .collect();
        if replicas as usize > workers.len() {
            return Err(Error::NotEnoughWorkers {
                message: format!(
                    "dataset '{name}' asks for {replicas} replicas, but only {} worker(s) are alive",
                    workers.len()
                ),
            });
        }
        Ok(workers)
    }

    /// Publishes `batches` as the persisted collection `name`: cuts them into chunks,
    /// stores each chunk durably (fsync'd) on `options.replicas` distinct workers,
    /// then publishes the collection atomically. Returns the log index of the publish
    /// and what was stored.
    ///
    /// Nothing is published if any chunk fails; chunks already uploaded are deleted
    /// by their workers once unreferenced for their orphan grace period.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use arrow::array::{Int64Array, RecordBatch};
    /// use arrow::datatypes::{DataType, Field, Schema};
    /// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    /// let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])?;
    /// let batches = futures::stream::iter(vec![Ok::<_, arrow::error::ArrowError>(batch)]);
    /// client.publish_batches("numbers", schema, batches, Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_batches<S, E>(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: S,
        options: PublishOptions,
    ) -> Result<PublishSummary, Error>
    where
        S: Stream<Item = Result<RecordBatch, E>>,
        E: std::fmt::Display,
    {
        if options.chunk_rows == 0 || options.chunk_bytes == 0 {
            return Err(Error::InvalidArgument {
                message: "chunk rows and chunk bytes must be positive".to_string(),
            });
        }
        let workers = self.workers_for_replicas(name, options.replicas).await?;
        let schema_ipc = encode_schema(&schema)?;
        let upload_id = format!("u{:016x}", rand::random::<u64>());
        let replicas = options.replicas as usize;
        let mut chunker = Chunker {
            schema: schema.clone(),
            chunk_rows: options.chunk_rows,
            chunk_bytes: options.chunk_bytes,
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
        };
        let mut input = std::pin::pin!(batches);
        let mut input_done = false;
        let mut ready: VecDeque<RecordBatch> = VecDeque::new();
        let mut in_flight = FuturesOrdered::new();
        let mut next_index = 0usize;
        let mut uploaded: Vec<pb::ChunkInfo> = Vec::new();
        let mut progress = UploadProgress {
            chunks: 0,
            rows: 0,
            bytes: 0,
        };
        loop {
            // Keep up to UPLOADS_IN_FLIGHT chunk uploads running, in chunk order.
            while in_flight.len() < UPLOADS_IN_FLIGHT {
                if ready.is_empty() && !input_done {
                    match input.next().await {
                        Some(batch) => {
                            let batch = batch.map_err(|error| Error::InvalidArgument {
                                message: format!("reading the data: {error}"),
                            })?;
                            if batch.schema().fields() != schema.fields() {
                                return Err(Error::InvalidArgument {
                                    message: format!(
                                        "a batch's schema differs from the collection's:\n  {}\n  {}",
                                        batch.schema(),
                                        schema
                                    ),
                                });
                            }
                            let mut out = Vec::new();
                            chunker.push(&batch, &mut out)?;
                            ready.extend(out);
                        }
                        None => {
                            input_done = true;
                            if chunker.pending_rows > 0 {
                                ready.push_back(chunker.flush()?);
                            }
                        }
                    }
                    continue;
                }
                let Some(chunk) = ready.pop_front() else {
                    break;
                };
                let index = next_index;
                next_index += 1;
                let bytes = chunk.get_array_memory_size() as u64;
                let placed = place_chunk(&upload_id, index, chunk, &workers, replicas, self.timeout());
                in_flight.push_back(async move { placed.await.map(|info| (info, bytes)) });
            }
            let Some(result) = in_flight.next().await else {
                break;
            };
            let (chunk, bytes) = result?;
            progress.chunks += 1;
            progress.rows += chunk.rows;
            progress.bytes += bytes;
            if let Some(on_progress) = &options.on_progress {
                on_progress(progress);
            }
            uploaded.push(chunk);
        }
        let summary = PublishSummary {
            log_index: 0,
            chunks: uploaded.len() as u64,
            rows: uploaded.iter().map(|chunk| chunk.rows).sum(),
            bytes: uploaded.iter().map(|chunk| chunk.bytes).sum(),
        };
        let item = persisted_item(name, options.attributes.clone(), schema_ipc, uploaded, options.replicas);
        let log_index = self.publish_items(vec![item], options.override_existing).await?;
        Ok(PublishSummary { log_index, ..summary })
    }
}
