//! A published collection as the client sees it: metadata from the catalog, and
//! reads of its chunks from the workers (Arrow Flight `DoGet`) that fail over
//! between the workers holding each chunk.

use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightClient, IpcMessage, Ticket};
use cairn_proto::v1 as pb;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::transport::Channel;

use crate::client::MAX_MESSAGE_BYTES;
use crate::error::Error;
use crate::Client;

/// How many chunks [`Collection::stream`] fetches at once.
pub const READ_AHEAD_CHUNKS: usize = 3;

/// Where one chunk lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    /// The worker's id.
    pub worker_id: String,
    /// Its Flight address.
    pub addr: String,
    /// Whether the registry believes it alive.
    pub live: bool,
}

/// One chunk of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The key (the Flight ticket).
    pub key: String,
    /// Rows in the chunk.
    pub rows: u64,
    /// Size of its Arrow IPC file.
    pub bytes: u64,
    /// crc32c of its Arrow IPC file.
    pub checksum: u32,
    /// The workers holding it, live ones first.
    pub locations: Vec<ChunkLocation>,
}

impl From<pb::ChunkInfo> for ChunkInfo {
    fn from(chunk: pb::ChunkInfo) -> ChunkInfo {
        ChunkInfo {
            key: chunk.key,
            rows: chunk.rows,
            bytes: chunk.bytes,
            checksum: chunk.checksum,
            locations: chunk
                .locations
                .into_iter()
                .map(|location| ChunkLocation {
                    worker_id: location.worker_id,
                    addr: location.addr,
                    live: location.live,
                })
                .collect(),
        }
    }
}

/// A persisted collection: an ordered list of chunks with one schema, held on
/// workers. Getting one moves no data; [`Collection::stream`], [`Collection::collect`]
/// and [`Collection::head`] read chunks from the workers.
#[derive(Clone)]
pub struct Collection {
    /// The client, to refresh locations when every known one fails.
    client: Client,
    /// The dataset's name.
    name: String,
    /// The Arrow schema.
    schema: SchemaRef,
    /// The chunks, in order.
    chunks: Vec<ChunkInfo>,
    /// How many workers held each chunk when it was published.
    replicas: u32,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("chunks", &self.chunks.len())
            .field("rows", &self.num_rows())
            .finish()
    }
}

/// Decodes a schema sent as an encapsulated Arrow IPC schema message.
pub(crate) fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef, Error> {
    arrow::datatypes::Schema::try_from(IpcMessage(bytes.into()))
        .map(std::sync::Arc::new)
        .map_err(|error| Error::Protocol {
            message: format!("undecodable schema: {error}"),
        })
}

/// A Flight client over `channel` (to a worker).
pub(crate) fn flight_client(channel: Channel) -> FlightClient {
    let inner = FlightServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    FlightClient::new_from_inner(inner)
}

/// Reads one chunk from a worker, whole.
/// Asks a worker for a chunk; the worker must start answering within `first_answer`
/// (a stopped or hung worker must not hold a reader that could try another copy;
/// the transfer itself may take as long as the chunk needs).
async fn open_chunk(
    channel: Channel,
    key: &str,
    first_answer: Duration,
) -> Result<arrow_flight::decode::FlightRecordBatchStream, ChunkReadError> {
    let mut client = flight_client(channel);
    let ticket = Ticket {
        ticket: key.as_bytes().to_vec().into(),
    };
    tokio::time::timeout(first_answer, client.do_get(ticket))
        .await
        .map_err(|_| ChunkReadError::other(format!("no answer within {first_answer:?}")))?
        .map_err(ChunkReadError::from)
}

/// Why a chunk could not be read from one worker.
#[derive(Debug)]
pub(crate) struct ChunkReadError {
    /// What went wrong.
    pub(crate) message: String,
    /// The worker answered that it does not hold the chunk (not a transport failure).
    pub(crate) not_found: bool,
}

impl From<arrow_flight::error::FlightError> for ChunkReadError {
    fn from(error: arrow_flight::error::FlightError) -> ChunkReadError {
        let not_found = matches!(&error, arrow_flight::error::FlightError::Tonic(status)
            if status.code() == tonic::Code::NotFound);
        ChunkReadError {
            message: error.to_string(),
            not_found,
        }
    }
}

impl ChunkReadError {
    fn other(message: impl Into<String>) -> ChunkReadError {
        ChunkReadError {
            message: message.into(),
            not_found: false,
        }
    }
}

async fn fetch_chunk(
    channel: Channel,
    key: &str,
    schema: &SchemaRef,
    first_answer: Duration,
) -> Result<RecordBatch, String> {
    let stream = open_chunk(channel, key, first_answer)
        .await
        .map_err(|error| error.message)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|error| error.to_string())?;
    match batches.as_slice() {
        [one] => Ok(one.clone()),
        _ => concat_batches(schema, &batches).map_err(|error| error.to_string()),
    }
}

/// Reads one chunk from a worker, whole, whatever its schema.
pub(crate) async fn fetch_whole_chunk(
    channel: Channel,
    key: &str,
    first_answer: Duration,
) -> Result<RecordBatch, ChunkReadError> {
    let mut stream = open_chunk(channel, key, first_answer).await?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    match batches.as_slice() {
        [one] => Ok(one.clone()),
        [] => match stream.schema() {
            Some(schema) => Ok(RecordBatch::new_empty(schema.clone())),
            None => Err(ChunkReadError::other("the worker sent no schema")),
        },
        [first, ..] => {
            concat_batches(&first.schema(), &batches).map_err(|error| ChunkReadError::other(error.to_string()))
        }
    }
}

impl Collection {
    pub(crate) fn from_reply(client: Client, name: String, collection: pb::Collection) -> Result<Collection, Error> {
        Ok(Collection {
            client,
            name,
            schema: decode_schema(collection.schema_ipc)?,
            chunks: collection.chunks.into_iter().map(ChunkInfo::from).collect(),
            replicas: collection.replicas,
        })
    }

    /// The dataset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The chunks, in order, with their locations.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.chunks
    }

    /// Rows in all chunks.
    pub fn num_rows(&self) -> u64 {
        self.chunks.iter().map(|chunk| chunk.rows).sum()
    }

    /// Bytes of all chunk files.
    pub fn num_bytes(&self) -> u64 {
        self.chunks.iter().map(|chunk| chunk.bytes).sum()
    }

    /// How many workers held each chunk when it was published.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Reads chunk `index`: tries each worker holding it (live ones first); when
    /// all fail, asks the catalog again for its locations (a restarted worker may
    /// serve at a new address) until the client's timeout.
    pub async fn read_chunk(&self, index: usize) -> Result<RecordBatch, Error> {
        let chunk = self.chunks.get(index).ok_or_else(|| Error::InvalidArgument {
            message: format!(
                "dataset '{}' has {} chunks, not {}",
                self.name,
                self.chunks.len(),
                index + 1
            ),
        })?;
        let deadline = Instant::now() + self.client.timeout();
        let mut locations = chunk.locations.clone();
        let mut errors = Vec::new();
        loop {
            for location in locations.iter().filter(|location| !location.addr.is_empty()) {
                let fetched = match self.client.channel(&location.addr) {
                    Ok(channel) => fetch_chunk(channel, &chunk.key, &self.schema, self.client.attempt_timeout()).await,
                    Err(error) => Err(error.to_string()),
                };
                match fetched {
                    Ok(batch) => return Ok(batch),
                    Err(error) => {
                        tracing::debug!(chunk = %chunk.key, worker = %location.worker_id, %error, "chunk read failed; trying another worker");
                        errors.push(format!("worker {} at {}: {error}", location.worker_id, location.addr));
                    }
                }
            }
            if !locations.iter().any(|location| location.live) {
                // No live copy: a dataset that cannot be recomputed either is lost, and
                // says so at once instead of being retried until the deadline.
                let info = self.client.dataset_info(&self.name).await?;
                if info.availability.as_deref() == Some("lost") {
                    return Err(Error::Unavailable {
                        message: format!(
                            "dataset '{}' is lost: chunk {} has no live copy and no lineage to recompute it                              from (its workers are gone); `cairn status` lists unavailable datasets",
                            self.name, chunk.key
                        ),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    message: format!(
                        "no worker could serve chunk {} of dataset '{}' within {:?}: {}",
                        chunk.key,
                        self.name,
                        self.client.timeout(),
                        if errors.is_empty() {
                            "no worker holds it".to_string()
                        } else {
                            errors.join("; ")
                        }
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let fresh = self.client.get_collection(&self.name).await?;
            locations = fresh
                .chunks
                .iter()
                .find(|fresh_chunk| fresh_chunk.key == chunk.key)
                .map(|fresh_chunk| fresh_chunk.locations.clone())
                .ok_or_else(|| Error::NotFound {
                    message: format!("dataset '{}' no longer holds chunk {}", self.name, chunk.key),
                })?;
        }
    }

    /// The chunks as a stream of record batches, in order. Up to
    /// [`READ_AHEAD_CHUNKS`] chunks are fetched at once (from their workers, in
    /// parallel), so the network stays busy while the reader works on one.
    pub fn stream(&self) -> impl Stream<Item = Result<RecordBatch, Error>> + '_ {
        futures::stream::iter(0..self.chunks.len())
            .map(move |index| self.read_chunk(index))
            .buffered(READ_AHEAD_CHUNKS)
    }

    /// Every chunk, in order.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>, Error> {
        self.stream().try_collect().await
    }

    /// The first `rows` rows (reads only the chunks needed).
    pub async fn head(&self, rows: usize) -> Result<Vec<RecordBatch>, Error> {
        let mut batches = Vec::new();
        let mut remaining = rows;
        for index in 0..self.chunks.len() {
            if remaining == 0 {
                break;
            }
            let batch = self.read_chunk(index).await?;
            let take = remaining.min(batch.num_rows());
            batches.push(batch.slice(0, take));
            remaining -= take;
        }
        Ok(batches)
    }
}
