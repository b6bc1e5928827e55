//! The `data` workload: persisted datasets of known content.
//!
//! Each client, until the run stops, either
//! - **puts** a fresh dataset (`jd-<process>-<n>`): 2–5 chunks of 50–300 generated
//!   rows ([`crate::content`]), uploaded with `Client::publish_batches` and
//!   `replicas` copies of every chunk (2 when there are two workers or more); or,
//!   one put in five, **derives** one from an acknowledged dataset: an `inc` task
//!   per chunk of the source (`LazyCollection::map_partitions`), persisted and
//!   published with `Client::publish_persisted` — its content is the source's with
//!   1 added to every number; or
//! - **reads** a dataset put earlier (acknowledged or not), every chunk
//!   (`Client::get_collection` + `Collection::collect`), recording the content read.
//!
//! The final phase reads every dataset ever put, retrying each until the cluster
//! answers (the content, or "not found").

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use cairn_client::{Client, Error, PersistOptions, PublishOptions, TaskArg};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::{classify, perform_with, retry_in_lanes, Completion, Invocation, Recorder, WorkerContext, FAIL_BACKOFF};
use crate::content;
use crate::history::{DataSpec, Extra, OpFn, OpType};

/// The datasets put so far, shared by the clients (what to read, what to derive
/// from) and the final phase.
#[derive(Default)]
pub struct DataPool {
    entries: Mutex<Vec<Entry>>,
}

#[derive(Clone)]
struct Entry {
    name: String,
    spec: DataSpec,
    acknowledged: bool,
}

impl DataPool {
    fn add(&self, name: &str, spec: &DataSpec) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(Entry {
                name: name.to_string(),
                spec: spec.clone(),
                acknowledged: false,
            });
        }
    }

    fn acknowledge(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.iter_mut().rev().find(|entry| entry.name == name) {
                entry.acknowledged = true;
            }
        }
    }

    /// A dataset to read: one of the last 200 put, or any, half of the time each.
    fn pick_read(&self, rng: &mut StdRng) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let recent = entries.len().saturating_sub(200);
        let pool = if rng.random_bool(0.5) {
            &entries[recent..]
        } else {
            &entries[..]
        };
        pool.choose(rng).map(|entry| entry.name.clone())
    }

    /// An acknowledged dataset to derive from (at most two `inc`s deep).
    fn pick_source(&self, rng: &mut StdRng) -> Option<(String, DataSpec)> {
        let entries = self.entries.lock().ok()?;
        let sources: Vec<&Entry> = entries
            .iter()
            .filter(|entry| entry.acknowledged && entry.spec.plus < 2)
            .collect();
        sources
            .choose(rng)
            .map(|entry| (entry.name.clone(), entry.spec.clone()))
    }

    /// Every dataset put (any outcome), in order.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .lock()
            .map(|entries| entries.iter().map(|entry| entry.name.clone()).collect())
            .unwrap_or_default()
    }
}

/// Uploads the dataset `spec` describes as the persisted dataset `name`.
async fn put(client: &Client, name: &str, spec: &DataSpec) -> Result<(), Error> {
    let batches = content::batches(spec).map_err(|error| Error::InvalidArgument {
        message: format!("cannot generate the dataset: {error:#}"),
    })?;
    let stream = futures::stream::iter(batches.into_iter().map(Ok::<RecordBatch, Infallible>));
    let options = PublishOptions {
        replicas: spec.replicas,
        chunk_rows: spec.rows_per_chunk as usize,
        chunk_bytes: usize::MAX / 4,
        ..PublishOptions::default()
    };
    client
        .publish_batches(name, content::schema(), stream, options)
        .await
        .map(|_| ())
}

/// Publishes `name` as `inc` of every chunk of `source`, computed on the workers
/// and persisted there.
async fn derive(client: &Client, name: &str, source: &str, replicas: u32) -> Result<(), Error> {
    let source = client.get_collection(source).await?;
    let partitions: Vec<TaskArg> = source
        .chunks()
        .iter()
        .map(|chunk| TaskArg::Chunk(chunk.key.clone()))
        .collect();
    let held = client
        .collection(partitions)
        .map_partitions("inc", Vec::<TaskArg>::new())
        .persist()
        .await?;
    let options = PersistOptions {
        replicas,
        ..PersistOptions::default()
    };
    let published = client.publish_persisted(name, &held, options).await;
    // The published dataset pins its chunks; the futures are not needed any more.
    let _ = held.release().await;
    published.map(|_| ())
}

/// Reads every chunk of `name`: its content, or `None` if the catalog does not
/// have it.
async fn read(client: &Client, name: &str) -> Result<Option<crate::history::Content>, Error> {
    match client.get_collection(name).await {
        Ok(collection) => {
            let batches = collection.collect().await?;
            Ok(Some(content::of_batches(&batches)))
        }
        Err(Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Performs one read of `name` and records it.
async fn perform_read(
    recorder: &Recorder,
    client: &Client,
    process: u64,
    name: &str,
    is_final: bool,
    op_timeout: Duration,
) -> OpType {
    let invocation = Invocation {
        process,
        f: OpFn::Read,
        key: Some(name.to_string()),
        value: None,
        is_final,
        extra: Extra::default(),
    };
    let completion = perform_with(recorder, invocation, op_timeout, async {
        match read(client, name).await {
            Ok(read) => Completion {
                kind: OpType::Ok,
                value: read.as_ref().map(crate::history::Content::label),
                names: None,
                error: None,
                extra: Extra {
                    content: read,
                    ..Extra::default()
                },
            },
            Err(error) => Completion::not_ok(OpFn::Read, OpType::Fail, None, error.to_string()),
        }
    })
    .await;
    completion.kind
}

/// One data client: puts and reads until the run stops.
pub async fn worker(context: &WorkerContext) {
    let mut rng = StdRng::seed_from_u64(context.seed);
    let mut process = context.worker;
    let mut counter = 0u64;
    while !*context.stop.borrow() {
        counter += 1;
        let roll = rng.random_range(0..100);
        let read_name = if roll >= 35 {
            context.pool.pick_read(&mut rng)
        } else {
            None
        };
        if let Some(name) = read_name {
            let kind = perform_read(
                &context.recorder,
                &context.client,
                process,
                &name,
                false,
                context.op_timeout,
            )
            .await;
            if kind != OpType::Ok {
                tokio::time::sleep(FAIL_BACKOFF).await;
            }
            continue;
        }
        let name = format!("jd-{process}-{counter}");
        let source = if roll < 7 {
            context.pool.pick_source(&mut rng)
        } else {
            None
        };
        let spec = match &source {
            Some((source_name, source_spec)) => DataSpec {
                plus: source_spec.plus + 1,
                replicas: context.replicas,
                source: Some(source_name.clone()),
                ..source_spec.clone()
            },
            None => DataSpec {
                seed: rng.random(),
                chunks: rng.random_range(2..=5),
                rows_per_chunk: rng.random_range(50..=300),
                plus: 0,
                replicas: context.replicas,
                source: None,
            },
        };
        let expected = content::expected(&spec);
        context.pool.add(&name, &spec);
        let invocation = Invocation {
            process,
            f: OpFn::Put,
            key: Some(name.clone()),
            value: Some(expected.label()),
            is_final: false,
            extra: Extra {
                data: Some(spec.clone()),
                content: Some(expected.clone()),
                ..Extra::default()
            },
        };
        let client = &context.client;
        let label = expected.label();
        let completion = perform_with(&context.recorder, invocation, context.op_timeout, async {
            let result = match &spec.source {
                Some(source) => derive(client, &name, source, spec.replicas).await,
                None => put(client, &name, &spec).await,
            };
            match result {
                Ok(()) => Completion::ok(Some(label.clone())),
                Err(error) => {
                    Completion::not_ok(OpFn::Put, classify(OpFn::Put, &error), Some(&label), error.to_string())
                }
            }
        })
        .await;
        match completion.kind {
            OpType::Ok => context.pool.acknowledge(&name),
            // The put may still happen: this process is done.
            OpType::Info => process += context.concurrency,
            _ => tokio::time::sleep(FAIL_BACKOFF).await,
        }
    }
}

/// The final phase: reads every dataset ever put, each retried until the cluster
/// answers (its content or not-found) or `limit` passes. Returns whether every read
/// completed.
pub async fn final_reads(
    recorder: Arc<Recorder>,
    client: Client,
    pool: &DataPool,
    first_process: u64,
    limit: Duration,
    op_timeout: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    retry_in_lanes(
        pool.names(),
        8,
        first_process,
        deadline,
        Duration::from_millis(200),
        move |process, name| {
            let (recorder, client) = (recorder.clone(), client.clone());
            async move { perform_read(&recorder, &client, process, &name, true, op_timeout).await == OpType::Ok }
        },
    )
    .await
}
