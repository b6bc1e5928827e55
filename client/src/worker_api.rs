//! Calls that workers make to the schedulers (registration, the heartbeat stream)
//! and the registry that clients read. Workers use the same leader following as
//! every client call.

use cairn_proto::v1 as pb;
use cairn_proto::v1::worker_registry_client::WorkerRegistryClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::client::MAX_MESSAGE_BYTES;
use crate::error::Error;
use crate::Client;

/// One worker as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// 16 hex digits.
    pub worker_id: String,
    /// Where it serves Arrow Flight.
    pub addr: String,
    /// `alive` or `gone`.
    pub state: String,
    /// Tasks it runs at once.
    pub nthreads: u32,
    /// Its memory limit in bytes.
    pub memory_limit: u64,
    /// Chunk bytes in memory (from its last heartbeat; 0 if none was heard).
    pub managed_bytes: u64,
    /// Chunk bytes only on disk.
    pub spilled_bytes: u64,
    /// Its process RSS.
    pub rss_bytes: u64,
    /// Chunks it holds.
    pub chunks: u64,
    /// Why it refuses new chunks, if it does.
    pub paused: Option<String>,
    /// Milliseconds since the leader heard from it (None: not since it became leader).
    pub last_seen_ms_ago: Option<u64>,
    /// Operations its process has run since it started (from its last heartbeat).
    pub tasks_run: u64,
}

impl WorkerInfo {
    /// Whether the registry believes it alive.
    pub fn is_alive(&self) -> bool {
        self.state == "alive"
    }
}

impl From<pb::WorkerStatus> for WorkerInfo {
    fn from(status: pb::WorkerStatus) -> WorkerInfo {
        WorkerInfo {
            worker_id: status.worker_id,
            addr: status.addr,
            state: status.state,
            nthreads: status.nthreads,
            memory_limit: status.memory_limit,
            managed_bytes: status.managed_bytes,
            spilled_bytes: status.spilled_bytes,
            rss_bytes: status.rss_bytes,
            chunks: status.chunks,
            paused: (!status.paused.is_empty()).then_some(status.paused),
            last_seen_ms_ago: status.heartbeating.then_some(status.last_seen_ms_ago),
            tasks_run: status.tasks_run,
        }
    }
}

/// The worker's side of an open heartbeat stream.
pub struct HeartbeatStream {
    /// Heartbeats to send.
    pub outbound: mpsc::Sender<pb::WorkerHeartbeat>,
    /// The leader's replies.
    pub replies: tonic::Streaming<pb::HeartbeatReply>,
}

/// The worker's side of an open task stream.
pub struct TaskStream {
    /// Reports to send (the hello went first).
    pub outbound: mpsc::UnboundedSender<pb::WorkerTaskMessage>,
    /// The leader's assignments, cancellations and releases.
    pub messages: tonic::Streaming<pb::SchedulerTaskMessage>,
}

fn registry(channel: Channel) -> WorkerRegistryClient<Channel> {
    WorkerRegistryClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

impl Client {
    /// The worker registry (linearizable), in registration order.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// for worker in client.workers().await? {
    ///     println!("{} at {} is {}", worker.worker_id, worker.addr, worker.state);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let reply = self
            .call("list workers", |channel| async move {
                registry(channel).list_workers(pb::ListWorkersRequest {}).await
            })
            .await?;
        Ok(reply.workers.into_iter().map(WorkerInfo::from).collect())
    }

    /// For workers: registers (through Raft, on the leader).
    #[doc(hidden)]
    pub async fn register_worker(&self, request: pb::RegisterWorkerRequest) -> Result<pb::RegisterWorkerReply, Error> {
        self.call("register worker", |channel| {
            let request = request.clone();
            async move { registry(channel).register(request).await }
        })
        .await
    }

    /// For workers: opens the heartbeat stream to the leader, sending `first` on it.
    #[doc(hidden)]
    pub async fn open_heartbeats(&self, first: pb::WorkerHeartbeat) -> Result<HeartbeatStream, Error> {
        let mut sender_slot = None;
        let replies = self
            .call("open heartbeats", |channel| {
                let (outbound, receiver) = mpsc::channel(4);
                let first = first.clone();
                sender_slot = Some(outbound.clone());
                async move {
                    // The channel has room: the first heartbeat opens the stream.
                    let _ = outbound.send(first).await;
                    registry(channel).heartbeats(ReceiverStream::new(receiver)).await
                }
            })
            .await?;
        let outbound = sender_slot.ok_or_else(|| Error::Protocol {
            message: "the heartbeat stream opened without a sender".to_string(),
        })?;
        Ok(HeartbeatStream { outbound, replies })
    }

    /// For workers: opens the task stream to the leader, saying `hello` first.
    #[doc(hidden)]
    pub async fn open_task_stream(&self, hello: pb::WorkerHello) -> Result<TaskStream, Error> {
        let mut sender_slot = None;
        let messages = self
            .call("open task stream", |channel| {
                let (outbound, receiver) = mpsc::unbounded_channel();
                let _ = outbound.send(pb::WorkerTaskMessage {
                    kind: Some(pb::worker_task_message::Kind::Hello(hello.clone())),
                });
                sender_slot = Some(outbound);
                async move {
                    registry(channel)
                        .tasks(tokio_stream::wrappers::UnboundedReceiverStream::new(receiver))
                        .await
                }
            })
            .await?;
        let outbound = sender_slot.ok_or_else(|| Error::Protocol {
            message: "the task stream opened without a sender".to_string(),
        })?;
        Ok(TaskStream { outbound, messages })
    }

    /// Reads chunk `key` whole from the worker at `addr` (one attempt; the caller
    /// fails over between holders). [`Error::NotFound`] when the worker answered that
    /// it does not hold the chunk.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let batch = client.read_chunk_from("127.0.0.1:7201", "inc-000001").await?;
    /// println!("{} rows", batch.num_rows());
    /// # Ok(()) }
    /// ```
    pub async fn read_chunk_from(&self, addr: &str, key: &str) -> Result<arrow::array::RecordBatch, Error> {
        let channel = self.channel(addr)?;
        crate::collection::fetch_whole_chunk(channel, key, self.attempt_timeout())
            .await
            .map_err(|error| {
                let message = format!("reading chunk {key} from {addr}: {}", error.message);
                match error.not_found {
                    true => Error::NotFound { message },
                    false => Error::Protocol { message },
                }
            })
    }
}
