//! The client: connection handling, leader following, retries, and the calls.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::v1 as pb;
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::catalog_client::CatalogClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::collection::{ChunkInfo, Collection};
use crate::error::{classify, Attempt, Error};
use crate::value::{CollectionInfo, Content, Dataset, DatasetInfo, PublishedDataset, Value};
use crate::worker_api::WorkerInfo;
use crate::Datasets;

/// The longest pause between attempts. Short, because the usual reason to wait is an
/// election, which ends within a few hundred milliseconds; the attempt and call
/// timeouts bound the total.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(40);

/// The largest message the client sends or accepts.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Options for [`Client::connect_with`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long one call may take in all, across retries and leader changes.
    pub timeout: Duration,
    /// How long one attempt against one replica may take before trying another
    /// (so a paused or partitioned replica cannot hold a call for its whole timeout).
    pub attempt_timeout: Duration,
    /// Recorded as the publisher of datasets this client publishes.
    pub publisher: String,
    /// How long `compute`, `gather` and `result` wait for tasks to finish.
    pub task_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            publisher: default_publisher(),
            task_timeout: Duration::from_secs(3600),
        }
    }
}

fn default_publisher() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{user}@{host}")
}

/// One replica's view of the cluster, from [`Client::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The address asked.
    pub addr: String,
    /// The replica's id.
    pub node_id: u64,
    /// The cluster id.
    pub cluster_id: String,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    /// The leader's id, if known.
    pub leader_id: Option<u64>,
    /// The leader's address, if known.
    pub leader_addr: Option<String>,
    /// The current term.
    pub term: u64,
    /// The last log index.
    pub last_log_index: u64,
    /// The commit index.
    pub commit_index: u64,
    /// The last applied index.
    pub applied_index: u64,
    /// The last snapshot's index.
    pub snapshot_index: u64,
    /// Encoded bytes of the log entries this replica holds beyond its commit index
    /// (a leader refuses writes once they pass `--max-uncommitted-mib`).
    pub uncommitted_bytes: u64,
    /// Published datasets, as of this replica's applied state.
    pub datasets: u64,
    /// Tasks in the replicated task table, as of this replica's applied state.
    pub tasks: u64,
    /// The leader's scheduling core (leader only): tasks waiting (for inputs or a
    /// free slot), assigned, with results held, failed.
    pub task_counts: Option<(u64, u64, u64, u64)>,
    /// `(id, addr, role)` of every member.
    pub members: Vec<(u64, String, String)>,
    /// The worker registry as this replica applied it (memory figures from the
    /// leader only).
    pub workers: Vec<WorkerInfo>,
    /// What the cluster did to survive failures (replicated: the same on every
    /// replica up to its applied index).
    pub recovery: RecoveryCounters,
    /// Persisted datasets that are not fully available.
    pub unavailable: Vec<DatasetAvailability>,
}

/// What the cluster did to survive failures since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryCounters {
    /// Leaders that took over (one per term in which a leader started scheduling).
    pub failovers: u64,
    /// Task results computed again after being lost with their workers.
    pub tasks_recomputed: u64,
    /// Task results a new leader learned from reconnecting workers instead of
    /// recomputing them.
    pub chunks_reregistered: u64,
    /// Copies of persisted chunks made to restore datasets' replica counts.
    pub replicas_repaired: u64,
}

/// A persisted dataset that is not fully available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetAvailability {
    /// The dataset.
    pub name: String,
    /// `degraded` (every chunk has a live copy, some fewer than its replicas),
    /// `recovering` (some chunk has no live copy but can be recomputed from lineage)
    /// or `lost` (some chunk has neither).
    pub state: String,
    /// Chunks in the dataset.
    pub chunks: u64,
    /// Chunks no live worker holds.
    pub chunks_without_live_copy: u64,
    /// Chunks with fewer live copies than the dataset's replicas.
    pub chunks_below_replicas: u64,
}

struct Inner {
    /// The addresses given at connect.
    seeds: Vec<String>,
    /// The leader's address, as last learned.
    leader: Mutex<Option<String>>,
    /// One lazily connecting channel per address.
    channels: Mutex<HashMap<String, Channel>>,
    /// This client's id, for exactly-once writes.
    client_id: [u8; 16],
    /// The last write sequence number handed out.
    last_seq: AtomicU64,
    /// Writes not yet answered; the lowest is sent as `lowest_unacked_seq`.
    in_flight: Mutex<BTreeSet<u64>>,
    /// Whether the cluster has opened this client's exactly-once session.
    session_open: AtomicBool,
    /// Timeouts and publisher.
    options: ClientOptions,
}

/// A connection to a Cairn cluster. Cheap to clone; clones share connections and
/// the exactly-once session.
///
/// ```no_run
/// # async fn demo() -> Result<(), cairn_client::Error> {
/// let client = cairn_client::Client::connect(["127.0.0.1:7101", "127.0.0.1:7102"]).await?;
/// client.publish_dataset("answer", "42").await?;
/// assert_eq!(client.list_datasets().await?, vec!["answer".to_string()]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("seeds", &self.inner.seeds)
            .field("leader", &*lock(&self.inner.leader))
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parse_addr(addr: &str) -> Result<String, Error> {
    let trimmed = addr.trim().trim_start_matches("http://");
    if trimmed.is_empty() {
        return Err(Error::InvalidAddress {
            addr: addr.to_string(),
            reason: "empty".to_string(),
        });
    }
    let (host, port) = trimmed.rsplit_once(':').ok_or_else(|| Error::InvalidAddress {
        addr: addr.to_string(),
        reason: "expected host:port".to_string(),
    })?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(Error::InvalidAddress {
            addr: addr.to_string(),
            reason: "expected host:port".to_string(),
        });
    }
    Ok(trimmed.to_string())
}

/// How often a connection with calls in flight pings its peer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a ping may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 flow-control windows of every channel: how many bytes a peer may send on
/// one call, and on the whole connection, before it must wait for this side to
/// acknowledge them. HTTP/2's default of 64 KiB lets a chunk stream move one small
/// window per round trip; 8 MiB per call (a whole default chunk) keeps the socket busy.
pub const STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
/// See [`STREAM_WINDOW_BYTES`]; several chunk streams share one connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 * 1024 * 1024;
/// The largest HTTP/2 frame a peer may send on a channel (the default is 16 KiB): a chunk
/// crosses in fewer, larger frames.
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// A channel to `addr` that connects on first use.
pub(crate) fn lazy_channel(addr: &str) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|error| Error::InvalidAddress {
        addr: addr.to_string(),
        reason: error.to_string(),
    })?;
    // HTTP/2 pings on every call in flight: a peer that stops answering (a paused
    // process, a cut link) fails the call within about three seconds, so the client
    // tries another replica or copy instead of waiting out a long attempt (a graph
    // submit or a wait may legitimately take minutes).
    Ok(endpoint
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .connect_lazy())
}

/// Splits a comma-separated address list (`--cluster`, `CAIRN_CLUSTER`).
///
/// ```
/// let addrs = cairn_client::parse_cluster("127.0.0.1:7101, 127.0.0.1:7102").unwrap();
/// assert_eq!(addrs, vec!["127.0.0.1:7101", "127.0.0.1:7102"]);
/// ```
pub fn parse_cluster(list: &str) -> Result<Vec<String>, Error> {
    let addrs: Vec<String> = list
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(parse_addr)
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        return Err(Error::InvalidAddress {
            addr: list.to_string(),
            reason: "no address given".to_string(),
        });
    }
    Ok(addrs)
}

impl Client {
    /// Connects to the cluster through any of its replicas, with default options,
    /// and waits until one of them answers.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cairn_client::Error> {
    /// let client = cairn_client::Client::connect(["127.0.0.1:7101"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<I, S>(addrs: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::connect_with(addrs, ClientOptions::default()).await
    }

    /// Connects with explicit options.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cairn_client::Error> {
    /// let options = cairn_client::ClientOptions { timeout: std::time::Duration::from_secs(3), ..Default::default() };
    /// let client = cairn_client::Client::connect_with(["127.0.0.1:7101"], options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with<I, S>(addrs: I, options: ClientOptions) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let seeds: Vec<String> = addrs
            .into_iter()
            .map(|addr| parse_addr(addr.as_ref()))
            .collect::<Result<_, _>>()?;
        if seeds.is_empty() {
            return Err(Error::InvalidAddress {
                addr: String::new(),
                reason: "no address given".to_string(),
            });
        }
        let client = Client {
            inner: Arc::new(Inner {
                seeds,
                leader: Mutex::new(None),
                channels: Mutex::new(HashMap::new()),
                client_id: rand::random(),
                last_seq: AtomicU64::new(0),
                in_flight: Mutex::new(BTreeSet::new()),
                session_open: AtomicBool::new(false),
                options,
            }),
        };
        client.find_leader().await?;
        Ok(client)
    }

    /// Asks the replicas who leads, until one answers (within the call timeout).
    async fn find_leader(&self) -> Result<(), Error> {
        let status = self
            .call("connect", |channel| async move {
                AdminClient::new(channel).status(pb::StatusRequest {}).await
            })
            .await?;
        if !status.leader_addr.is_empty() {
            *lock(&self.inner.leader) = Some(status.leader_addr);
        }
        Ok(())
    }

    /// This client's channel to `addr` (a scheduler or a worker), made on first use
    /// and reused after, so a call does not pay a TCP and HTTP/2 handshake.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut channels = lock(&self.inner.channels);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = lazy_channel(addr)?;
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// The replicas to try, the known leader first.
    fn candidates(&self) -> Vec<String> {
        let mut order = Vec::new();
        if let Some(leader) = lock(&self.inner.leader).clone() {
            order.push(leader);
        }
        for seed in &self.inner.seeds {
            if !order.contains(seed) {
                order.push(seed.clone());
            }
        }
        order
    }

    /// Forgets `addr` as the leader after it failed us.
    fn forget_leader(&self, addr: &str) {
        let mut leader = lock(&self.inner.leader);
        if leader.as_deref() == Some(addr) {
            *leader = None;
        }
    }

    /// Remembers `addr` as the leader.
    fn remember_leader(&self, addr: &str) {
        let mut leader = lock(&self.inner.leader);
        if leader.as_deref() != Some(addr) {
            *leader = Some(addr.to_string());
        }
    }

    /// Runs one call with leader following and bounded retries: a not-leader answer
    /// redirects at once; an unreachable, paused or leaderless replica makes the
    /// client try the next one after a growing pause; the whole call ends with
    /// [`Error::Timeout`] at the deadline, never hangs.
    pub(crate) async fn call<T, F, Fut>(&self, operation: &'static str, attempt: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let options = &self.inner.options;
        self.call_within(operation, options.timeout, options.attempt_timeout, attempt)
            .await
    }

    /// [`Client::call`] with its own limits: `timeout` in all, `attempt_timeout` per
    /// attempt (calls that legitimately take long, such as submitting a large graph
    /// or waiting on tasks).
    pub(crate) async fn call_within<T, F, Fut>(
        &self,
        operation: &'static str,
        timeout: Duration,
        attempt_timeout: Duration,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + timeout;
        let mut candidates = self.candidates();
        let mut next = 0usize;
        let mut target = candidates[0].clone();
        let mut pause = Duration::from_millis(10);
        let mut last_error = String::from("no replica tried");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    operation,
                    after: timeout,
                    last_error,
                });
            }
            let channel = self.channel(&target)?;
            let limit = remaining.min(attempt_timeout);
            let outcome = tokio::time::timeout(limit, attempt(channel)).await;
            let redirect_to = match outcome {
                Ok(Ok(response)) => {
                    // Only the leader serves catalog calls; `connect` asks any replica.
                    if operation != "connect" {
                        self.remember_leader(&target);
                    }
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) => match classify(&status) {
                    Attempt::Fail(error) => return Err(error),
                    Attempt::Redirect(leader) if leader != target => {
                        tracing::debug!(from = %target, to = %leader, "following the leader");
                        self.remember_leader(&leader);
                        Some(leader)
                    }
                    Attempt::Redirect(_) => {
                        last_error = format!("{target} says it is not the leader");
                        None
                    }
                    Attempt::Retry(message) => {
                        last_error = format!("{target}: {message}");
                        None
                    }
                },
                Err(_elapsed) => {
                    last_error = format!("{target} did not answer within {limit:?}");
                    None
                }
            };
            match redirect_to {
                Some(leader) => target = leader,
                None => {
                    self.forget_leader(&target);
                    next += 1;
                    if next >= candidates.len() {
                        candidates = self.candidates();
                        next = 0;
                    }
                    target = candidates[next].clone();
                    let sleep = pause.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(sleep).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }

    /// Opens this client's exactly-once session before its first write (idempotent).
    async fn ensure_session(&self) -> Result<(), Error> {
        if self.inner.session_open.load(Ordering::Acquire) {
            return Ok(());
        }
        let client_id = self.inner.client_id.to_vec();
        self.call("open session", |channel| {
            let request = pb::OpenSessionRequest {
                client_id: client_id.clone(),
            };
            async move { Self::catalog(channel).open_session(request).await }
        })
        .await?;
        self.inner.session_open.store(true, Ordering::Release);
        Ok(())
    }

    /// Runs a write with a fresh sequence number, retried under the same number so
    /// the cluster applies it exactly once.
    async fn write<F, Fut>(&self, operation: &'static str, mut build: F) -> Result<u64, Error>
    where
        F: FnMut(Channel, pb::RequestId) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::WriteReply>, Status>>,
    {
        self.ensure_session().await?;
        let seq = self.inner.last_seq.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.inner.in_flight).insert(seq);
        let client_id = self.inner.client_id.to_vec();
        let result = self
            .call(operation, |channel| {
                let lowest_unacked_seq = lock(&self.inner.in_flight).first().copied().unwrap_or(seq);
                let request = pb::RequestId {
                    client_id: client_id.clone(),
                    seq,
                    lowest_unacked_seq,
                };
                build(channel, request)
            })
            .await;
        lock(&self.inner.in_flight).remove(&seq);
        if let Err(Error::SessionExpired { .. }) = &result {
            // The next write opens a new session.
            self.inner.session_open.store(false, Ordering::Release);
        }
        result.map(|reply| reply.log_index)
    }

    fn catalog(channel: Channel) -> CatalogClient<Channel> {
        CatalogClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Publishes one dataset; fails with [`Error::AlreadyExists`] if the name exists.
    /// Returns the log index of the publish.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// client.publish_dataset("negative_accounts", "Alice,-100\nBob,-200").await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_dataset(&self, name: &str, value: impl Into<Value>) -> Result<u64, Error> {
        self.publish_datasets(vec![Dataset::new(name, value)], false).await
    }

    /// Publishes several datasets atomically: all of them or none. Without
    /// `override_existing`, any existing name fails the whole publish.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// use cairn_client::Dataset;
    /// client.publish_datasets(vec![Dataset::new("a", "1"), Dataset::new("b", "2")], false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_datasets(&self, datasets: Vec<Dataset>, override_existing: bool) -> Result<u64, Error> {
        let items: Vec<pb::PublishItem> = datasets
            .into_iter()
            .map(|dataset| pb::PublishItem {
                name: dataset.name,
                value: Some(pb::InlineValue {
                    data: dataset.value.data,
                    content_type: dataset.value.content_type,
                }),
                attributes: dataset.attributes.into_iter().collect(),
                persisted: None,
                view: Vec::new(),
            })
            .collect();
        self.publish_items(items, override_existing).await
    }

    /// Publishes wire items atomically (values and collections alike).
    pub(crate) async fn publish_items(
        &self,
        items: Vec<pb::PublishItem>,
        override_existing: bool,
    ) -> Result<u64, Error> {
        let publisher = self.inner.options.publisher.clone();
        self.write("publish", |channel, request| {
            let message = pb::PublishRequest {
                request: Some(request),
                items: items.clone(),
                r#override: override_existing,
                publisher: publisher.clone(),
            };
            async move { Self::catalog(channel).publish(message).await }
        })
        .await
    }

    /// Removes a dataset; fails with [`Error::NotFound`] if it does not exist.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// client.unpublish_dataset("negative_accounts").await?;
    /// # Ok(()) }
    /// ```
    pub async fn unpublish_dataset(&self, name: &str) -> Result<u64, Error> {
        self.write("unpublish", |channel, request| {
            let message = pb::UnpublishRequest {
                request: Some(request),
                name: name.to_string(),
            };
            async move { Self::catalog(channel).unpublish(message).await }
        })
        .await
    }

    /// Dataset names in publish order (linearizable).
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// for name in client.list_datasets().await? {
    ///     println!("{name}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_datasets(&self) -> Result<Vec<String>, Error> {
        let reply = self
            .call("list", |channel| async move {
                Self::catalog(channel).list(pb::ListRequest {}).await
            })
            .await?;
        Ok(reply.names)
    }

    /// One dataset with its value (linearizable); [`Error::NotFound`] if missing.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let dataset = client.get_dataset("negative_accounts").await?;
    /// println!("{:?}", dataset.as_text());
    /// # Ok(()) }
    /// ```
    pub async fn get_dataset(&self, name: &str) -> Result<PublishedDataset, Error> {
        let entry = self
            .call("get", |channel| {
                let request = pb::NameRequest { name: name.to_string() };
                async move { Self::catalog(channel).get(request).await }
            })
            .await?;
        let content = match entry.kind {
            Some(pb::dataset_entry::Kind::Value(value)) => Content::Value(Value::new(value.data, value.content_type)),
            Some(pb::dataset_entry::Kind::Persisted(collection)) => {
                Content::Collection(Collection::from_reply(self.clone(), entry.name.clone(), collection)?)
            }
            Some(pb::dataset_entry::Kind::View(view)) => Content::View(crate::lazy::view_collection(&view, self)?),
            None => {
                return Err(Error::Protocol {
                    message: format!("dataset '{name}' is of a kind this client cannot read"),
                })
            }
        };
        Ok(PublishedDataset {
            name: entry.name,
            content,
            attributes: entry.attributes.into_iter().collect(),
            publisher: entry.publisher,
            published_at_index: entry.published_at_index,
        })
    }

    /// A persisted collection (metadata only; no data moves until asked);
    /// [`Error::NotFound`] if missing, [`Error::InvalidArgument`] if the dataset is
    /// an inline value.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let collection = client.get_collection("measurements").await?;
    /// println!("{} rows in {} chunks", collection.num_rows(), collection.chunks().len());
    /// let first_rows = collection.head(10).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_collection(&self, name: &str) -> Result<Collection, Error> {
        match self.get_dataset(name).await?.content {
            Content::Collection(collection) => Ok(collection),
            Content::View(_) => Err(Error::InvalidArgument {
                message: format!("dataset '{name}' is a view (a lazy collection), not a persisted collection"),
            }),
            Content::Value(_) => Err(Error::InvalidArgument {
                message: format!("dataset '{name}' is an inline value, not a collection"),
            }),
        }
    }

    /// How long one call may take in all.
    pub fn timeout(&self) -> Duration {
        self.inner.options.timeout
    }

    /// How long one attempt may take (and how long a worker may take to start
    /// answering a chunk read before another copy is tried).
    pub(crate) fn attempt_timeout(&self) -> Duration {
        self.inner.options.attempt_timeout
    }

    /// How long `compute`, `gather` and `result` wait for tasks.
    pub(crate) fn task_timeout(&self) -> Duration {
        self.inner.options.task_timeout
    }

    /// This client's 16-byte id (the cluster keeps its wanted keys under it).
    pub(crate) fn client_id(&self) -> [u8; 16] {
        self.inner.client_id
    }

    /// What a dataset is, without reading its data (linearizable).
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let info = client.dataset_info("negative_accounts").await?;
    /// println!("{} bytes of {}", info.bytes, info.content_type);
    /// # Ok(()) }
    /// ```
    pub async fn dataset_info(&self, name: &str) -> Result<DatasetInfo, Error> {
        let info = self
            .call("info", |channel| {
                let request = pb::NameRequest { name: name.to_string() };
                async move { Self::catalog(channel).info(request).await }
            })
            .await?;
        let collection = match info.persisted {
            Some(collection) => Some(CollectionInfo {
                schema: crate::collection::decode_schema(collection.schema_ipc)?,
                rows: collection.rows,
                bytes: collection.bytes,
                replicas: collection.replicas,
                chunks: collection.chunks.into_iter().map(ChunkInfo::from).collect(),
            }),
            None => None,
        };
        Ok(DatasetInfo {
            name: info.name,
            kind: info.kind,
            content_type: info.content_type,
            bytes: info.bytes,
            attributes: info.attributes.into_iter().collect(),
            publisher: info.publisher,
            published_at_index: info.published_at_index,
            collection,
            availability: (!info.availability.is_empty()).then_some(info.availability),
        })
    }

    /// The mapping interface, as Dask's `client.datasets`.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let datasets = client.datasets();
    /// datasets.insert("k", "v").await?;
    /// assert!(datasets.contains("k").await?);
    /// # Ok(()) }
    /// ```
    pub fn datasets(&self) -> Datasets<'_> {
        Datasets::new(self)
    }

    /// Asks every replica given at connect (and the known leader) for its status.
    /// Replicas that do not answer within the attempt timeout are reported as errors.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// for (addr, status) in client.status().await {
    ///     println!("{addr}: {:?}", status.map(|s| s.state));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Vec<(String, Result<NodeStatus, Error>)> {
        let mut addrs: Vec<String> = self.inner.seeds.clone();
        let mut seen: BTreeSet<String> = addrs.iter().cloned().collect();
        let mut results = Vec::new();
        let mut index = 0;
        while index < addrs.len() {
            let addr = addrs[index].clone();
            index += 1;
            let result = self.node_status(&addr).await;
            if let Ok(status) = &result {
                for (_, member_addr, _) in &status.members {
                    if seen.insert(member_addr.clone()) {
                        addrs.push(member_addr.clone());
                    }
                }
            }
            results.push((addr, result));
        }
        results
    }

    /// The status of the replica that says it leads, in the highest term among those
    /// that answer ([`Client::status`]); `None` when none does (an election, no quorum).
    pub async fn leader_status(&self) -> Option<NodeStatus> {
        self.status()
            .await
            .into_iter()
            .filter_map(|(_, status)| status.ok())
            .filter(|status| status.state == "leader")
            .max_by_key(|status| status.term)
    }

    async fn node_status(&self, addr: &str) -> Result<NodeStatus, Error> {
        let channel = self.channel(addr)?;
        let limit = self.inner.options.attempt_timeout;
        let reply = tokio::time::timeout(limit, AdminClient::new(channel).status(pb::StatusRequest {}))
            .await
            .map_err(|_| Error::Timeout {
                operation: "status",
                after: limit,
                last_error: format!("{addr} did not answer"),
            })?
            .map_err(|status| Error::Timeout {
                operation: "status",
                after: limit,
                last_error: format!("{addr}: {}", status.message()),
            })?
            .into_inner();
        Ok(NodeStatus {
            addr: addr.to_string(),
            node_id: reply.node_id,
            cluster_id: reply.cluster_id,
            state: reply.state,
            leader_id: (reply.leader_id != 0).then_some(reply.leader_id),
            leader_addr: (!reply.leader_addr.is_empty()).then_some(reply.leader_addr),
            term: reply.term,
            last_log_index: reply.last_log_index,
            commit_index: reply.commit_index,
            applied_index: reply.applied_index,
            snapshot_index: reply.snapshot_index,
            uncommitted_bytes: reply.uncommitted_bytes,
            datasets: reply.datasets,
            tasks: reply.tasks,
            task_counts: reply
                .task_counts
                .map(|counts| (counts.waiting, counts.assigned, counts.memory, counts.erred)),
            members: reply
                .members
                .into_iter()
                .map(|member| (member.id, member.addr, member.role))
                .collect(),
            workers: reply.workers.into_iter().map(WorkerInfo::from).collect(),
            recovery: reply
                .recovery
                .map(|counters| RecoveryCounters {
                    failovers: counters.failovers,
                    tasks_recomputed: counters.tasks_recomputed,
                    chunks_reregistered: counters.chunks_reregistered,
                    replicas_repaired: counters.replicas_repaired,
                })
                .unwrap_or_default(),
            unavailable: reply
                .unavailable
                .into_iter()
                .map(|dataset| DatasetAvailability {
                    name: dataset.name,
                    state: dataset.state,
                    chunks: dataset.chunks,
                    chunks_without_live_copy: dataset.chunks_without_live_copy,
                    chunks_below_replicas: dataset.chunks_below_replicas,
                })
                .collect(),
        })
    }

    /// Adds a scheduler replica (started with `--join`) to the cluster: it becomes a
    /// learner, catches up, then votes. Returns the members after the change.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// client.add_node(4, "127.0.0.1:7104").await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_node(&self, id: u64, addr: &str) -> Result<Vec<(u64, String, String)>, Error> {
        let addr = parse_addr(addr)?;
        let reply = self
            .call("add-node", |channel| {
                let request = pb::AddNodeRequest { id, addr: addr.clone() };
                async move { AdminClient::new(channel).add_node(request).await }
            })
            .await?;
        Ok(reply.members.into_iter().map(|m| (m.id, m.addr, m.role)).collect())
    }

    /// Removes a scheduler replica from the cluster. Returns the members after.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// client.remove_node(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_node(&self, id: u64) -> Result<Vec<(u64, String, String)>, Error> {
        let reply = self
            .call("remove-node", |channel| async move {
                AdminClient::new(channel)
                    .remove_node(pb::RemoveNodeRequest { id })
                    .await
            })
            .await?;
        Ok(reply.members.into_iter().map(|m| (m.id, m.addr, m.role)).collect())
    }
}
