//! The worker's link to the schedulers: registration through Raft, then one
//! long-lived heartbeat stream to the leader, re-established (with a fresh
//! registration) whenever it breaks or the leader changes.
//!
//! The leader's replies say which of this worker's chunks no published dataset
//! refers to. A chunk that a dataset referred to earlier in this process's life is
//! deleted at once (it was unpublished or overridden); one never seen referenced (an
//! upload whose publish has not come, or never will) only once no chunk of its
//! upload has arrived for the orphan grace (a long upload keeps all its chunks).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use cairn_client::wire as pb;
use cairn_client::{Client, ClientOptions, Error as ClientError};

use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::flight::WorkerData;
use crate::identity::WorkerIdentity;
use crate::rss::process_rss;
use crate::tasks::{run_task_stream, Executor};
use crate::ChunkKey;

/// Heartbeats sent and not yet answered, at most (a slow leader makes the worker
/// skip beats rather than pile them up).
const MAX_UNANSWERED_HEARTBEATS: usize = 4;

/// The shortest silence after which a worker leaves a leader that does not answer
/// its heartbeats (at least three heartbeat intervals).
const LEADER_SILENCE_FLOOR: Duration = Duration::from_secs(1);

/// The pause between attempts to reach the cluster.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What the link remembers across heartbeats.
struct ChunkAges {
    /// When each chunk was first reported in this process's life.
    first_seen: HashMap<String, Instant>,
    /// Chunks some published dataset referred to at some heartbeat.
    seen_referenced: HashSet<String>,
}

/// Registers, heartbeats, and deletes released chunks, until the task is dropped or
/// the cluster refuses this worker's data dir (returned as an error).
pub async fn run_link(
    config: WorkerConfig,
    mut identity: WorkerIdentity,
    addr: String,
    data: WorkerData,
    executor: Executor,
) -> Result<(), WorkerError> {
    // Short attempts: after a leader change the first address tried may be the old
    // leader, paused or cut off; the next one is tried after this.
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let mut ages = ChunkAges {
        first_seen: HashMap::new(),
        seen_referenced: HashSet::new(),
    };
    loop {
        let client = match Client::connect_with(&config.cluster, options.clone()).await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "cannot reach the schedulers; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        match register(&client, &config, &mut identity, &addr, &data).await {
            Ok(()) => {}
            Err(ClientError::OtherCluster { message }) => {
                return Err(WorkerError::OtherCluster {
                    data_dir: config.data_dir.clone(),
                    message,
                })
            }
            Err(error) => {
                tracing::warn!(%error, "registration failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        }
        // Heartbeats and task work go to the same leader; when either stream ends,
        // the worker registers again and reopens both.
        tokio::select! {
            ended = heartbeat(&client, &config, &identity, &data, &executor, &mut ages) => {
                if let Err(error) = ended {
                    tracing::info!(%error, "heartbeat stream ended; registering again");
                }
            }
            ended = run_task_stream(&client, &executor, &identity.worker_id, config.nthreads) => {
                if let Err(error) = ended {
                    tracing::info!(%error, "task stream ended; registering again");
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Registers this worker with every chunk it holds, and records the cluster id in
/// its data dir on the first registration. The first acknowledged registration of
/// this process opens it to uploads ([`WorkerData::registered`]).
async fn register(
    client: &Client,
    config: &WorkerConfig,
    identity: &mut WorkerIdentity,
    addr: &str,
    data: &WorkerData,
) -> Result<(), ClientError> {
    let chunks = data
        .store
        .chunks()
        .into_iter()
        .map(|chunk| chunk.key.to_string())
        .collect();
    let reply = client
        .register_worker(pb::RegisterWorkerRequest {
            worker_id: identity.worker_id.clone(),
            cluster_id: identity.cluster_id.clone(),
            addr: addr.to_string(),
            nthreads: config.nthreads,
            memory_limit: config.memory_limit,
            chunks,
            boot: data.boot,
        })
        .await?;
    // From now on the catalog knows what this process kept: chunks may arrive.
    data.registered.store(true, std::sync::atomic::Ordering::Release);
    if identity.cluster_id.is_empty() {
        identity.cluster_id = reply.cluster_id;
        let (saved, dir) = (identity.clone(), config.data_dir.clone());
        match tokio::task::spawn_blocking(move || saved.save(&dir)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot record the cluster id in the data dir"),
            Err(error) => tracing::error!(%error, "cannot record the cluster id in the data dir"),
        }
    }
    tracing::info!(worker = %identity.worker_id, %addr, log_index = reply.log_index, "registered with the cluster");
    Ok(())
}

/// One heartbeat's content.
fn beat(
    config: &WorkerConfig,
    identity: &WorkerIdentity,
    data: &WorkerData,
    executor: &Executor,
) -> pb::WorkerHeartbeat {
    let stats = data.store.stats();
    let lost = std::mem::take(&mut *data.lost.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    pb::WorkerHeartbeat {
        worker_id: identity.worker_id.clone(),
        managed_bytes: stats.managed_bytes,
        spilled_bytes: stats.spilled_bytes,
        rss_bytes: process_rss().unwrap_or(0),
        memory_limit: config.memory_limit,
        paused: stats.paused.unwrap_or_default(),
        chunks: data
            .store
            .chunks()
            .into_iter()
            .map(|chunk| chunk.key.to_string())
            .collect(),
        lost,
        tasks_run: executor.tasks_run(),
    }
}

/// Heartbeats until the stream breaks or the leader asks for a new registration.
async fn heartbeat(
    client: &Client,
    config: &WorkerConfig,
    identity: &WorkerIdentity,
    data: &WorkerData,
    executor: &Executor,
    ages: &mut ChunkAges,
) -> Result<(), String> {
    let first = beat(config, identity, data, executor);
    // The chunk lists of the heartbeats sent and not yet answered, oldest first: the
    // leader answers each heartbeat in order, about the chunks *that* heartbeat
    // listed (a chunk that arrived since was not judged, so it is not "seen
    // referenced" by an answer about an older list).
    let mut unanswered: VecDeque<Vec<String>> = VecDeque::from([first.chunks.clone()]);
    let mut stream = client.open_heartbeats(first).await.map_err(|error| error.to_string())?;
    let mut tick = tokio::time::interval(config.heartbeat_interval);
    tick.tick().await;
    // A leader that stops answering (paused, cut off, or no longer leading without
    // knowing it) is left for whoever leads now: registering again finds it.
    let silence_limit = (config.heartbeat_interval * 3).max(LEADER_SILENCE_FLOOR);
    let mut last_answer = std::time::Instant::now();
    loop {
        tokio::select! {
            reply = stream.replies.message() => {
                let reply = reply.map_err(|status| status.message().to_string())?.ok_or("the leader closed the stream")?;
                last_answer = std::time::Instant::now();
                if reply.reregister {
                    return Err("the leader does not know this worker as alive".to_string());
                }
                let reported = unanswered.pop_front().unwrap_or_default();
                release(config, data, ages, &reported, reply.unreferenced, reply.dropped).await;
            }
            _ = tick.tick() => {
                if !unanswered.is_empty() && last_answer.elapsed() > silence_limit {
                    return Err(format!(
                        "the leader has not answered a heartbeat for {:.1} s",
                        last_answer.elapsed().as_secs_f64()
                    ));
                }
                if unanswered.len() >= MAX_UNANSWERED_HEARTBEATS {
                    // The leader is slow: skip a beat rather than queue lists.
                    continue;
                }
                let next = beat(config, identity, data, executor);
                unanswered.push_back(next.chunks.clone());
                stream.outbound.send(next).await.map_err(|_| "the heartbeat stream closed".to_string())?;
            }
        }
    }
}

/// The upload a chunk key belongs to: the key up to its last `.`.
fn upload_of(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(upload, _)| upload)
}

/// Deletes the unreferenced chunks whose time has come: at once those a dataset
/// referred to (seen referenced in an earlier reply, or `dropped` by a write the
/// leader committed), the others once their upload is older than the orphan grace.
async fn release(
    config: &WorkerConfig,
    data: &WorkerData,
    ages: &mut ChunkAges,
    reported: &[String],
    unreferenced: Vec<String>,
    dropped: Vec<String>,
) {
    let dropped: HashSet<String> = dropped.into_iter().collect();
    let now = Instant::now();
    let unreferenced: HashSet<String> = unreferenced.into_iter().collect();
    let held: HashSet<&String> = reported.iter().collect();
    ages.first_seen.retain(|key, _| held.contains(key));
    ages.seen_referenced.retain(|key| held.contains(key));
    for key in reported {
        ages.first_seen.entry(key.clone()).or_insert(now);
        if !unreferenced.contains(key) {
            ages.seen_referenced.insert(key.clone());
        }
    }
    // The chunks of one upload share a key prefix (`<upload>.<index>`): while any of
    // them is young, the upload may still be under way and its publish to come.
    let mut youngest_of_upload: HashMap<&str, Instant> = HashMap::new();
    for (key, first) in &ages.first_seen {
        let youngest = youngest_of_upload.entry(upload_of(key)).or_insert(*first);
        *youngest = (*youngest).max(*first);
    }
    let youngest_of_upload: HashMap<String, Instant> = youngest_of_upload
        .into_iter()
        .map(|(upload, first)| (upload.to_string(), first))
        .collect();
    for key in unreferenced {
        let was_published = ages.seen_referenced.contains(&key) || dropped.contains(&key);
        let orphan_expired = youngest_of_upload
            .get(upload_of(&key))
            .is_some_and(|first| now.duration_since(*first) >= config.orphan_grace);
        if !was_published && !orphan_expired {
            continue;
        }
        let Ok(chunk) = ChunkKey::parse(&key) else {
            continue;
        };
        let store = data.store.clone();
        match tokio::task::spawn_blocking(move || store.delete(&chunk)).await {
            Ok(Ok(_)) => {
                tracing::info!(chunk = %key, was_published, "released an unreferenced chunk");
                ages.first_seen.remove(&key);
                ages.seen_referenced.remove(&key);
            }
            Ok(Err(error)) => tracing::warn!(chunk = %key, %error, "cannot delete a released chunk"),
            Err(error) => tracing::warn!(chunk = %key, %error, "a delete task failed"),
        }
    }
}
