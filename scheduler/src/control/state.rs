//! The replicated control state and its `apply`.

use std::collections::{BTreeMap, BTreeSet};

use cairn_raft::codec;
use cairn_raft::{ApplyContext, LoadError, ReplicatedState, StateWrites};
use cairn_storage::Row;

use super::command::{ClientId, ControlCommand, ControlOutcome, Operation, RecoveryCounters, WriteAck, WriteOutcome};
use super::sessions::{Admission, Session, Sessions};
use super::tasks::{TableChanges, TaskRecord, TaskTable};
use crate::catalog::{CatalogError, DatasetEntry, DatasetName, EntryKind, PublishItem, MAX_PUBLISH_BYTES};
use crate::registry::{LegacyWorkerRecord, WorkerId, WorkerRecord, WorkerRegistration, WorkerState};

/// Row key prefixes in the `state` column.
const DATASET_PREFIX: &[u8] = b"d/";
const SESSION_PREFIX: &[u8] = b"s/";
const WORKER_PREFIX: &[u8] = b"w/";
const NEXT_ORDER_KEY: &[u8] = b"m/next_order";
const CLOCK_KEY: &[u8] = b"m/clock";
const TASK_PREFIX: &[u8] = b"t/";
const NEXT_TASK_ORDER_KEY: &[u8] = b"m/next_task_order";
const RECOVERY_KEY: &[u8] = b"m/recovery";

/// How available a persisted dataset's chunks are ([`ControlState::availability`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Availability {
    /// Chunks in the dataset.
    pub chunks: u64,
    /// Chunks no live worker holds.
    pub without_live_copy: u64,
    /// Of those, chunks that cannot be recomputed either (no lineage in the task
    /// table): the dataset is lost while one remains.
    pub unrecoverable: u64,
    /// Chunks with fewer live copies than the dataset's replicas.
    pub below_replicas: u64,
}

impl Availability {
    /// "available", "degraded" (fewer copies than asked, none missing), "recovering"
    /// (some chunk has no live copy but can be recomputed) or "lost".
    pub fn label(&self) -> &'static str {
        if self.unrecoverable > 0 {
            "lost"
        } else if self.without_live_copy > 0 {
            "recovering"
        } else if self.below_replicas > 0 {
            "degraded"
        } else {
            "available"
        }
    }
}

/// Everything the schedulers agree on through Raft (today: the dataset catalog and
/// client sessions).
#[derive(Debug, Default)]
pub struct ControlState {
    /// Published datasets by name.
    datasets: BTreeMap<DatasetName, DatasetEntry>,
    /// Names by publish order, for `list`.
    by_order: BTreeMap<u64, DatasetName>,
    /// The order number the next new name gets.
    next_order: u64,
    /// The latest leader clock seen in the log; never moves backwards.
    clock_ms: u64,
    /// Client sessions for exactly-once writes.
    sessions: Sessions,
    /// The worker registry.
    workers: BTreeMap<WorkerId, WorkerRecord>,
    /// Which published datasets refer to each chunk key (derived from `datasets`,
    /// never stored): a chunk no dataset refers to may be deleted by its workers.
    chunk_index: BTreeMap<String, BTreeSet<DatasetName>>,
    /// Submitted tasks, their recorded outcomes and wanters.
    tasks: TaskTable,
    /// What the cluster did to survive failures.
    recovery: RecoveryCounters,
}

fn dataset_key(name: &DatasetName) -> Vec<u8> {
    [DATASET_PREFIX, name.as_str().as_bytes()].concat()
}

fn session_key(client: &ClientId) -> Vec<u8> {
    [SESSION_PREFIX, client.0.as_slice()].concat()
}

fn task_key(key: &crate::graph::TaskKey) -> Vec<u8> {
    [TASK_PREFIX, key.as_str().as_bytes()].concat()
}

fn worker_key(worker: &WorkerId) -> Vec<u8> {
    [WORKER_PREFIX, worker.0.to_be_bytes().as_slice()].concat()
}

/// Writes a changed dataset entry's row.
fn write_entry(entry: &DatasetEntry, writes: &mut StateWrites) {
    match codec::encode("dataset entry", entry) {
        Ok(bytes) => writes.put(dataset_key(&entry.name), bytes),
        Err(error) => tracing::error!(%error, "cannot encode a dataset entry"),
    }
}

/// The chunk keys of an entry, if it holds chunks.
fn chunk_keys(entry: &DatasetEntry) -> impl Iterator<Item = &String> {
    let chunks = match &entry.kind {
        EntryKind::Persisted(collection) => collection.chunks.as_slice(),
        EntryKind::Value(_) | EntryKind::View(_) => &[],
    };
    chunks.iter().map(|chunk| &chunk.key)
}

fn load_error(what: &str, error: impl std::fmt::Display) -> LoadError {
    LoadError {
        reason: format!("{what}: {error}"),
    }
}

impl ControlState {
    /// Dataset names in publish order.
    pub fn list(&self) -> Vec<String> {
        self.by_order.values().map(|name| name.as_str().to_string()).collect()
    }

    /// One dataset.
    pub fn get(&self, name: &DatasetName) -> Option<&DatasetEntry> {
        self.datasets.get(name)
    }

    /// How many datasets are published.
    pub fn dataset_count(&self) -> usize {
        self.datasets.len()
    }

    /// How many client sessions are live.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Published datasets in publish order.
    pub fn entries_in_order(&self) -> Vec<&DatasetEntry> {
        self.by_order
            .values()
            .filter_map(|name| self.datasets.get(name))
            .collect()
    }

    /// Every registered worker, in registration order.
    pub fn workers(&self) -> Vec<&WorkerRecord> {
        let mut workers: Vec<&WorkerRecord> = self.workers.values().collect();
        workers.sort_by_key(|record| (record.first_registered_index, record.worker));
        workers
    }

    /// One worker.
    pub fn worker(&self, worker: &WorkerId) -> Option<&WorkerRecord> {
        self.workers.get(worker)
    }

    /// How many workers the registry believes alive.
    pub fn live_worker_count(&self) -> usize {
        self.workers
            .values()
            .filter(|record| record.state == WorkerState::Alive)
            .count()
    }

    /// The keys among `keys` that no published dataset refers to and that are not
    /// the recorded result of a task in the table.
    pub fn unreferenced<'a>(&self, keys: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        keys.into_iter()
            .filter(|key| !self.chunk_index.contains_key(*key) && !self.tasks.holds_result(key))
            .cloned()
            .collect()
    }

    /// Whether a published dataset refers to chunk `key`.
    pub fn is_pinned(&self, key: &str) -> bool {
        self.chunk_index.contains_key(key)
    }

    /// Every chunk key a published dataset refers to.
    pub fn pinned_keys(&self) -> impl Iterator<Item = &String> {
        self.chunk_index.keys()
    }

    /// The task table.
    pub fn tasks(&self) -> &TaskTable {
        &self.tasks
    }

    /// The recovery counters.
    pub fn recovery(&self) -> RecoveryCounters {
        self.recovery
    }

    /// How available a persisted dataset is: per chunk, how many of its locations are
    /// live workers, against the replicas it was published with. `None` for other
    /// kinds.
    pub fn availability(&self, entry: &DatasetEntry) -> Option<Availability> {
        let EntryKind::Persisted(collection) = &entry.kind else {
            return None;
        };
        let mut availability = Availability {
            chunks: collection.chunks.len() as u64,
            ..Availability::default()
        };
        for chunk in &collection.chunks {
            let live = chunk
                .locations
                .iter()
                .filter(|worker| {
                    self.workers
                        .get(worker)
                        .is_some_and(|record| record.state == WorkerState::Alive)
                })
                .count();
            if live == 0 {
                availability.without_live_copy += 1;
                let lineage = crate::graph::TaskKey::parse(&chunk.key)
                    .ok()
                    .is_some_and(|key| self.tasks.contains(&key));
                if !lineage {
                    availability.unrecoverable += 1;
                }
            }
            if live < collection.replicas.max(1) as usize {
                availability.below_replicas += 1;
            }
        }
        Some(availability)
    }

    /// The names of the published datasets referring to chunk `key`.
    pub fn datasets_of_chunk(&self, key: &str) -> Vec<&DatasetName> {
        self.chunk_index
            .get(key)
            .map(|names| names.iter().collect())
            .unwrap_or_default()
    }

    fn write_recovery(&self, writes: &mut StateWrites) {
        match codec::encode("recovery counters", &self.recovery) {
            Ok(bytes) => writes.put(RECOVERY_KEY.to_vec(), bytes),
            Err(error) => tracing::error!(%error, "cannot encode the recovery counters"),
        }
    }

    /// Adds `workers` to the locations of chunk `key` in every dataset referring to
    /// it; returns how many locations were gained.
    fn add_locations(&mut self, key: &str, workers: &[WorkerId], writes: &mut StateWrites) -> u64 {
        let names: Vec<DatasetName> = self.chunk_index.get(key).into_iter().flatten().cloned().collect();
        let mut gained = 0u64;
        for name in names {
            let Some(entry) = self.datasets.get_mut(&name) else {
                continue;
            };
            let EntryKind::Persisted(collection) = &mut entry.kind else {
                continue;
            };
            let mut changed = false;
            for chunk in collection.chunks.iter_mut().filter(|chunk| chunk.key == key) {
                for worker in workers {
                    // Only registered workers: a location must be dialable.
                    if !chunk.locations.contains(worker) && self.workers.contains_key(worker) {
                        chunk.locations.push(*worker);
                        gained += 1;
                        changed = true;
                    }
                }
            }
            if changed {
                write_entry(entry, writes);
            }
        }
        gained
    }

    /// Where chunk `key` of a published dataset lives and how big it is.
    pub fn chunk_location(&self, key: &str) -> Option<(u64, Vec<WorkerId>)> {
        let name = self.chunk_index.get(key)?.iter().next()?;
        let EntryKind::Persisted(collection) = &self.datasets.get(name)?.kind else {
            return None;
        };
        let chunk = collection.chunks.iter().find(|chunk| chunk.key == key)?;
        Some((chunk.bytes, chunk.locations.clone()))
    }

    fn write_tasks(&self, changes: TableChanges, writes: &mut StateWrites) {
        for key in changes.written {
            match self.tasks.get(&key).map(|record| codec::encode("task", record)) {
                Some(Ok(bytes)) => writes.put(task_key(&key), bytes),
                Some(Err(error)) => tracing::error!(%key, %error, "cannot encode a task record"),
                None => writes.delete(task_key(&key)),
            }
        }
        for key in changes.deleted {
            writes.delete(task_key(&key));
        }
        writes.put(
            NEXT_TASK_ORDER_KEY.to_vec(),
            self.tasks.next_order().to_be_bytes().to_vec(),
        );
    }

    /// Records that `entry`'s chunks are referred to by it (`add`) or no longer (`!add`).
    fn index_chunks(&mut self, entry: &DatasetEntry, add: bool) {
        for key in chunk_keys(entry) {
            if add {
                self.chunk_index
                    .entry(key.clone())
                    .or_default()
                    .insert(entry.name.clone());
                continue;
            }
            if let Some(names) = self.chunk_index.get_mut(key) {
                names.remove(&entry.name);
                if names.is_empty() {
                    self.chunk_index.remove(key);
                }
            }
        }
    }

    /// Checks a publish against the registry: every location is a registered worker,
    /// and no more replicas are asked for than workers are alive.
    fn check_placement(&self, items: &[PublishItem]) -> Result<(), CatalogError> {
        let live = self.live_worker_count();
        for item in items {
            let EntryKind::Persisted(collection) = &item.kind else {
                continue;
            };
            if collection.replicas as usize > live {
                return Err(CatalogError::NotEnoughWorkers {
                    name: item.name.to_string(),
                    replicas: collection.replicas,
                    live,
                });
            }
            for chunk in &collection.chunks {
                if let Some(unknown) = chunk.locations.iter().find(|worker| !self.workers.contains_key(worker)) {
                    return Err(CatalogError::UnknownWorker {
                        name: item.name.to_string(),
                        chunk: chunk.key.clone(),
                        worker: unknown.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks a publish without changing anything; shared by the server (before
    /// proposing) and `apply` (deterministically, again).
    pub fn check_publish(items: &[PublishItem]) -> Result<(), CatalogError> {
        if items.is_empty() {
            return Err(CatalogError::NothingToPublish);
        }
        let mut seen = BTreeSet::new();
        let mut chunk_keys_seen = BTreeSet::new();
        let mut total = 0usize;
        for item in items {
            if !seen.insert(&item.name) {
                return Err(CatalogError::DuplicateName {
                    name: item.name.to_string(),
                });
            }
            item.validate()?;
            if let EntryKind::Persisted(collection) = &item.kind {
                for chunk in &collection.chunks {
                    if !chunk_keys_seen.insert(&chunk.key) {
                        return Err(CatalogError::InvalidCollection {
                            name: item.name.to_string(),
                            reason: format!("chunk {} appears twice in one publish", chunk.key),
                        });
                    }
                }
            }
            total += item.size();
        }
        if total > MAX_PUBLISH_BYTES {
            return Err(CatalogError::PublishTooLarge {
                bytes: total,
                limit: MAX_PUBLISH_BYTES,
            });
        }
        Ok(())
    }

    fn publish(
        &mut self,
        items: Vec<PublishItem>,
        override_existing: bool,
        publisher: String,
        log_index: u64,
        writes: &mut StateWrites,
    ) -> WriteOutcome {
        Self::check_publish(&items)?;
        self.check_placement(&items)?;
        if !override_existing {
            let existing: Vec<String> = items
                .iter()
                .filter(|item| self.datasets.contains_key(&item.name))
                .map(|item| item.name.to_string())
                .collect();
            if !existing.is_empty() {
                return Err(CatalogError::AlreadyExists { names: existing });
            }
        }
        for item in items {
            let order = match self.datasets.get(&item.name) {
                Some(previous) => previous.order,
                None => {
                    let order = self.next_order;
                    self.next_order += 1;
                    self.by_order.insert(order, item.name.clone());
                    order
                }
            };
            let entry = DatasetEntry {
                name: item.name.clone(),
                kind: item.kind,
                attributes: item.attributes,
                publisher: publisher.clone(),
                published_at_index: log_index,
                order,
            };
            match codec::encode("dataset entry", &entry) {
                Ok(bytes) => writes.put(dataset_key(&item.name), bytes),
                Err(error) => {
                    // Cannot happen for these plain types; refuse rather than diverge.
                    return Err(CatalogError::MalformedCommand {
                        reason: error.to_string(),
                    });
                }
            }
            self.index_chunks(&entry, true);
            if let Some(previous) = self.datasets.insert(item.name, entry) {
                self.index_chunks(&previous, false);
            }
        }
        writes.put(NEXT_ORDER_KEY.to_vec(), self.next_order.to_be_bytes().to_vec());
        Ok(WriteAck { log_index })
    }

    fn unpublish(&mut self, name: DatasetName, log_index: u64, writes: &mut StateWrites) -> WriteOutcome {
        let Some(entry) = self.datasets.remove(&name) else {
            return Err(CatalogError::NotFound { name: name.to_string() });
        };
        self.by_order.remove(&entry.order);
        self.index_chunks(&entry, false);
        writes.delete(dataset_key(&name));
        Ok(WriteAck { log_index })
    }

    /// Drops `worker` from the locations of the chunks `lost(key)` says it lost, in
    /// the datasets `candidates` names (those that may hold such chunks).
    fn drop_locations(
        &mut self,
        worker: WorkerId,
        candidates: BTreeSet<DatasetName>,
        lost: impl Fn(&str) -> bool,
        writes: &mut StateWrites,
    ) {
        for name in candidates {
            let Some(entry) = self.datasets.get_mut(&name) else {
                continue;
            };
            let EntryKind::Persisted(collection) = &mut entry.kind else {
                continue;
            };
            let mut changed = false;
            for chunk in &mut collection.chunks {
                if chunk.locations.contains(&worker) && lost(&chunk.key) {
                    chunk.locations.retain(|location| *location != worker);
                    changed = true;
                }
            }
            if changed {
                write_entry(entry, writes);
            }
        }
    }

    fn write_worker(&self, worker: &WorkerId, writes: &mut StateWrites) {
        match self.workers.get(worker).map(|record| codec::encode("worker", record)) {
            Some(Ok(bytes)) => writes.put(worker_key(worker), bytes),
            Some(Err(error)) => tracing::error!(%worker, %error, "cannot encode a worker record"),
            None => writes.delete(worker_key(worker)),
        }
    }

    fn register_worker(&mut self, registration: WorkerRegistration, log_index: u64, writes: &mut StateWrites) {
        let worker = registration.worker;
        let previous = self.workers.get(&worker);
        let first_registered_index = previous.map_or(log_index, |record| record.first_registered_index);
        let new_process = registration.boot == 0 || previous.is_none_or(|record| record.boot != registration.boot);
        self.workers.insert(
            worker,
            WorkerRecord {
                worker,
                addr: registration.addr,
                nthreads: registration.nthreads,
                memory_limit: registration.memory_limit,
                state: WorkerState::Alive,
                first_registered_index,
                registered_index: log_index,
                boot: registration.boot,
            },
        );
        self.write_worker(&worker, writes);
        if !new_process {
            // The same process again: its list may predate chunks uploaded since
            // (and published before this commit); it reports its losses itself.
            return;
        }
        // Any dataset may place a chunk on this worker that it lost while down.
        let every_dataset = self.datasets.keys().cloned().collect();
        let held: BTreeSet<String> = registration.chunks.into_iter().collect();
        self.drop_locations(worker, every_dataset, |key| !held.contains(key), writes);
    }

    fn write_session(&self, client: ClientId, writes: &mut StateWrites) {
        match self
            .sessions
            .get(&client)
            .map(|session| codec::encode("session", session))
        {
            Some(Ok(bytes)) => writes.put(session_key(&client), bytes),
            Some(Err(error)) => tracing::error!(%client, %error, "cannot encode a session"),
            None => writes.delete(session_key(&client)),
        }
    }

    fn advance_clock(&mut self, now_ms: u64, writes: &mut StateWrites) {
        self.clock_ms = self.clock_ms.max(now_ms);
        writes.put(CLOCK_KEY.to_vec(), self.clock_ms.to_be_bytes().to_vec());
        for client in self.sessions.expire(self.clock_ms) {
            writes.delete(session_key(&client));
        }
    }

    /// Applies one command of a batch (a batch inside a batch is malformed).
    fn apply_batched(&mut self, log_index: u64, command: &[u8], writes: &mut StateWrites) -> ControlOutcome {
        match codec::decode::<ControlCommand>("control command", command) {
            Ok(ControlCommand::Batch { .. }) => malformed(&"a batch inside a batch"),
            Ok(command) => self.apply_command(log_index, command, writes),
            Err(error) => malformed(&error),
        }
    }

    fn apply_command(&mut self, log_index: u64, command: ControlCommand, writes: &mut StateWrites) -> ControlOutcome {
        match command {
            ControlCommand::OpenSession { client, now_ms } => {
                self.advance_clock(now_ms, writes);
                for evicted in self.sessions.open(client, self.clock_ms) {
                    writes.delete(session_key(&evicted));
                }
                self.write_session(client, writes);
                ControlOutcome::SessionOpened
            }
            ControlCommand::Write {
                request,
                now_ms,
                operation,
            } => {
                self.advance_clock(now_ms, writes);
                let client = request.client;
                let admission = self
                    .sessions
                    .admit(client, request.seq, request.lowest_unacked_seq, self.clock_ms);
                let outcome = match admission {
                    // Not recorded, but `admit` may have moved the session's floor and
                    // activity: the row is written below so disk matches memory.
                    Admission::Expired => Err(CatalogError::SessionExpired),
                    Admission::Duplicate(outcome) => outcome,
                    Admission::New => {
                        let outcome = match operation {
                            Operation::Publish {
                                items,
                                override_existing,
                                publisher,
                            } => {
                                let items = items.into_iter().map(PublishItem::from).collect();
                                self.publish(items, override_existing, publisher, log_index, writes)
                            }
                            Operation::PublishEntries {
                                items,
                                override_existing,
                                publisher,
                            } => self.publish(items, override_existing, publisher, log_index, writes),
                            Operation::Unpublish { name } => self.unpublish(name, log_index, writes),
                        };
                        self.sessions.record(client, request.seq, outcome.clone());
                        outcome
                    }
                };
                self.write_session(client, writes);
                ControlOutcome::Write(outcome)
            }
            ControlCommand::RegisterWorker { registration, now_ms } => {
                self.advance_clock(now_ms, writes);
                self.register_worker(registration.into(), log_index, writes);
                ControlOutcome::Registry { log_index }
            }
            ControlCommand::RegisterWorkerProcess { registration, now_ms } => {
                self.advance_clock(now_ms, writes);
                self.register_worker(registration, log_index, writes);
                ControlOutcome::Registry { log_index }
            }
            ControlCommand::WorkerGone { worker, now_ms } => {
                self.advance_clock(now_ms, writes);
                if let Some(record) = self.workers.get_mut(&worker) {
                    record.state = WorkerState::Gone;
                    self.write_worker(&worker, writes);
                }
                let written = self.tasks.drop_worker(worker);
                self.write_tasks(
                    TableChanges {
                        written,
                        deleted: Vec::new(),
                    },
                    writes,
                );
                ControlOutcome::Registry { log_index }
            }
            ControlCommand::ChunksLost { worker, keys } => {
                // Only the datasets referring to a lost chunk can change.
                let holders = keys
                    .iter()
                    .filter_map(|key| self.chunk_index.get(key))
                    .flatten()
                    .cloned()
                    .collect();
                let lost: BTreeSet<String> = keys.into_iter().collect();
                self.drop_locations(worker, holders, |key| lost.contains(key), writes);
                ControlOutcome::Registry { log_index }
            }
            ControlCommand::SubmitTasks { client, tasks, wanted } => match self.tasks.submit(client, tasks, wanted) {
                Ok((changes, new_tasks)) => {
                    self.write_tasks(changes, writes);
                    ControlOutcome::TasksSubmitted { log_index, new_tasks }
                }
                Err(refused) => ControlOutcome::SubmitRefused(refused),
            },
            ControlCommand::RecordTasks { batches } => {
                for batch in batches {
                    let changes = self.tasks.record(batch);
                    self.write_tasks(changes, writes);
                }
                ControlOutcome::TasksRecorded { log_index }
            }
            ControlCommand::CountRecovery { counters } => {
                self.recovery.add(&counters);
                self.write_recovery(writes);
                ControlOutcome::Registry { log_index }
            }
            ControlCommand::ChunksCopied { copies } => {
                let mut repaired = 0;
                for (key, workers) in copies {
                    repaired += self.add_locations(&key, &workers, writes);
                }
                self.recovery.replicas_repaired = self.recovery.replicas_repaired.saturating_add(repaired);
                self.write_recovery(writes);
                ControlOutcome::Registry { log_index }
            }
            ControlCommand::Batch { commands } => ControlOutcome::Batch(
                commands
                    .iter()
                    .map(|command| self.apply_batched(log_index, command, writes))
                    .collect(),
            ),
        }
    }
}

fn malformed(error: &dyn std::fmt::Display) -> ControlOutcome {
    ControlOutcome::Write(Err(CatalogError::MalformedCommand {
        reason: error.to_string(),
    }))
}

impl ReplicatedState for ControlState {
    fn load(rows: Vec<Row>) -> Result<Self, LoadError> {
        let mut state = ControlState::default();
        for (key, value) in rows {
            if let Some(name) = key.strip_prefix(DATASET_PREFIX) {
                let entry: DatasetEntry =
                    codec::decode("dataset entry", &value).map_err(|e| load_error("dataset", e))?;
                let expected = String::from_utf8_lossy(name);
                if entry.name.as_str() != expected {
                    return Err(load_error(
                        "dataset",
                        format!("row {expected:?} holds entry {:?}", entry.name),
                    ));
                }
                state.by_order.insert(entry.order, entry.name.clone());
                state.index_chunks(&entry, true);
                state.datasets.insert(entry.name.clone(), entry);
            } else if let Some(client) = key.strip_prefix(SESSION_PREFIX) {
                let client: [u8; 16] = client
                    .try_into()
                    .map_err(|_| load_error("session", "a session key is not 16 bytes"))?;
                let session: Session = codec::decode("session", &value).map_err(|e| load_error("session", e))?;
                state.sessions.insert_loaded(ClientId(client), session);
            } else if key.starts_with(WORKER_PREFIX) {
                // Rows of the first format lack the boot id (bincode is positional:
                // such a row is too short for today's record).
                let record: WorkerRecord = match codec::decode::<WorkerRecord>("worker", &value) {
                    Ok(record) => record,
                    Err(error) => codec::decode::<LegacyWorkerRecord>("worker", &value)
                        .map(WorkerRecord::from)
                        .map_err(|_| load_error("worker", error))?,
                };
                if key != worker_key(&record.worker) {
                    return Err(load_error(
                        "worker",
                        format!("row {key:?} holds worker {}", record.worker),
                    ));
                }
                state.workers.insert(record.worker, record);
            } else if key.starts_with(TASK_PREFIX) {
                let record: TaskRecord = codec::decode("task", &value).map_err(|e| load_error("task", e))?;
                if key != task_key(&record.spec.key) {
                    return Err(load_error(
                        "task",
                        format!("row {key:?} holds task {}", record.spec.key),
                    ));
                }
                state.tasks.insert_loaded(record);
            } else if key == RECOVERY_KEY {
                state.recovery = codec::decode("recovery counters", &value).map_err(|e| load_error("recovery", e))?;
            } else if key == NEXT_TASK_ORDER_KEY {
                state.tasks.set_next_order(u64::from_be_bytes(
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| load_error("next task order", "not 8 bytes"))?,
                ));
            } else if key == NEXT_ORDER_KEY {
                state.next_order = u64::from_be_bytes(
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| load_error("next order", "not 8 bytes"))?,
                );
            } else if key == CLOCK_KEY {
                state.clock_ms = u64::from_be_bytes(
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| load_error("clock", "not 8 bytes"))?,
                );
            } else {
                return Err(load_error(
                    "state",
                    format!("unknown row {:?}", String::from_utf8_lossy(&key)),
                ));
            }
        }
        Ok(state)
    }

    fn apply(&mut self, context: ApplyContext, command: &[u8], writes: &mut StateWrites) -> Vec<u8> {
        let outcome = match codec::decode::<ControlCommand>("control command", command) {
            Ok(command) => self.apply_command(context.log_index, command, writes),
            Err(error) => malformed(&error),
        };
        match codec::encode("control outcome", &outcome) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot encode an outcome");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::catalog::InlineValue;
    use crate::control::command::RequestId;
    use crate::control::sessions::SESSION_TTL_MS;
    use crate::registry::{WorkerId, WorkerRegistration};

    /// Applies commands and mirrors their row writes into a map, as RocksDB would.
    struct Harness {
        state: ControlState,
        rows: BTreeMap<Vec<u8>, Vec<u8>>,
        index: u64,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                state: ControlState::default(),
                rows: BTreeMap::new(),
                index: 0,
            }
        }

        fn apply(&mut self, command: &ControlCommand) -> ControlOutcome {
            self.index += 1;
            let mut writes = StateWrites::default();
            let bytes = codec::encode("command", command).expect("encodes");
            let outcome = self
                .state
                .apply(ApplyContext { log_index: self.index }, &bytes, &mut writes);
            for (key, value) in writes.into_rows() {
                match value {
                    Some(value) => self.rows.insert(key, value),
                    None => self.rows.remove(&key),
                };
            }
            codec::decode("outcome", &outcome).expect("decodes")
        }

        fn reloaded(&self) -> ControlState {
            ControlState::load(self.rows.clone().into_iter().collect()).expect("loads")
        }
    }

    const CLIENT: ClientId = ClientId([7; 16]);

    fn open(now_ms: u64) -> ControlCommand {
        ControlCommand::OpenSession { client: CLIENT, now_ms }
    }

    fn item(name: &str, value: &str) -> PublishItem {
        PublishItem::value(
            DatasetName::parse(name).expect("valid"),
            InlineValue {
                data: value.as_bytes().to_vec(),
                content_type: "text/plain".to_string(),
            },
            BTreeMap::new(),
        )
    }

    /// A write whose client has had no reply yet since seq 1 (so nothing is forgotten).
    fn write(seq: u64, now_ms: u64, operation: Operation) -> ControlCommand {
        acknowledged_write(seq, 1, now_ms, operation)
    }

    fn acknowledged_write(seq: u64, lowest_unacked_seq: u64, now_ms: u64, operation: Operation) -> ControlCommand {
        ControlCommand::Write {
            request: RequestId {
                client: CLIENT,
                seq,
                lowest_unacked_seq,
            },
            now_ms,
            operation,
        }
    }

    fn publish(seq: u64, items: Vec<PublishItem>, override_existing: bool) -> ControlCommand {
        write(
            seq,
            1_000,
            Operation::PublishEntries {
                items,
                override_existing,
                publisher: "test".to_string(),
            },
        )
    }

    fn unpublish(seq: u64, name: &str) -> ControlCommand {
        write(
            seq,
            1_000,
            Operation::Unpublish {
                name: DatasetName::parse(name).expect("valid"),
            },
        )
    }

    fn error_of(outcome: ControlOutcome) -> CatalogError {
        match outcome {
            ControlOutcome::Write(Err(error)) => error,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Publish order is first-publish order; override keeps the position; a failed
    /// multi-name publish changes nothing; unpublish of a missing name is not-found.
    #[test]
    fn catalog_semantics_follow_dask() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&publish(1, vec![item("b", "1")], false));
        harness.apply(&publish(2, vec![item("a", "2"), item("c", "3")], false));
        assert_eq!(harness.state.list(), ["b", "a", "c"]);
        let error = error_of(harness.apply(&publish(3, vec![item("d", "4"), item("a", "x")], false)));
        assert_eq!(error.to_string(), "dataset 'a' already exists");
        assert_eq!(
            harness.state.list(),
            ["b", "a", "c"],
            "nothing of a failed publish is applied"
        );
        harness.apply(&publish(4, vec![item("b", "new")], true));
        assert_eq!(harness.state.list(), ["b", "a", "c"], "override keeps the position");
        let name = DatasetName::parse("b").expect("valid");
        assert_eq!(
            harness.state.get(&name).map(|entry| entry.kind.clone()),
            Some(EntryKind::Value(InlineValue {
                data: b"new".to_vec(),
                content_type: "text/plain".to_string()
            }))
        );
        harness.apply(&unpublish(5, "a"));
        assert_eq!(harness.state.list(), ["b", "c"]);
        let error = error_of(harness.apply(&unpublish(6, "a")));
        assert_eq!(error.to_string(), "dataset 'a' not found");
        harness.apply(&publish(7, vec![item("a", "again")], false));
        assert_eq!(harness.state.list(), ["b", "c", "a"], "a republished name goes last");
    }

    /// The rows written by `apply` rebuild exactly the same state.
    #[test]
    fn rows_rebuild_the_same_state() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&publish(1, vec![item("x", "1"), item("y", "2")], false));
        harness.apply(&unpublish(2, "x"));
        harness.apply(&publish(3, vec![item("z", "3")], false));
        let reloaded = harness.reloaded();
        assert_eq!(reloaded.list(), harness.state.list());
        assert_eq!(reloaded.next_order, harness.state.next_order);
        assert_eq!(reloaded.clock_ms, harness.state.clock_ms);
        assert_eq!(reloaded.session_count(), 1);
        for name in harness.state.list() {
            let name = DatasetName::parse(&name).expect("valid");
            assert_eq!(reloaded.get(&name), harness.state.get(&name));
        }
    }

    /// A retried write returns its first outcome and is not applied again, even when
    /// the state changed in between.
    #[test]
    fn retried_writes_apply_once() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        let first = harness.apply(&publish(1, vec![item("x", "1")], false));
        harness.apply(&unpublish(2, "x"));
        let retry = harness.apply(&publish(1, vec![item("x", "1")], false));
        assert_eq!(retry, first);
        assert!(harness.state.list().is_empty(), "the retry must not publish again");
        let failure = harness.apply(&unpublish(3, "missing"));
        assert_eq!(harness.apply(&unpublish(3, "missing")), failure);
    }

    /// Writes on an unknown or expired session, or below the acknowledged floor, are
    /// refused instead of applied.
    #[test]
    fn expired_sessions_refuse_writes() {
        let mut harness = Harness::new();
        assert_eq!(
            error_of(harness.apply(&publish(1, vec![item("x", "1")], false))),
            CatalogError::SessionExpired
        );
        harness.apply(&open(1_000));
        harness.apply(&publish(5, vec![item("x", "1")], false));
        let name = DatasetName::parse("x").expect("valid");
        // Seq 6 says every write below 6 had its reply: the outcome of 5 is forgotten.
        harness.apply(&acknowledged_write(
            6,
            6,
            1_000,
            Operation::Unpublish { name: name.clone() },
        ));
        assert_eq!(
            error_of(harness.apply(&publish(5, vec![item("x", "1")], false))),
            CatalogError::SessionExpired
        );
        assert!(
            harness.state.list().is_empty(),
            "a forgotten write is refused, not re-applied"
        );
        // A refused write still moves the session (floor, activity): disk must match.
        harness.apply(&acknowledged_write(
            5,
            7,
            1_000,
            Operation::Unpublish { name: name.clone() },
        ));
        assert_eq!(
            harness.reloaded().sessions.get(&CLIENT),
            harness.state.sessions.get(&CLIENT)
        );
        harness.apply(&publish(7, vec![item("x", "1")], false));
        let later = 1_000 + SESSION_TTL_MS + 1;
        harness.apply(&ControlCommand::OpenSession {
            client: ClientId([9; 16]),
            now_ms: later,
        });
        assert_eq!(harness.state.session_count(), 1, "the idle session expired");
        let outcome = harness.apply(&write(
            8,
            later,
            Operation::Unpublish {
                name: DatasetName::parse("x").expect("valid"),
            },
        ));
        assert_eq!(error_of(outcome), CatalogError::SessionExpired);
        assert_eq!(harness.reloaded().session_count(), 1, "expiry is durable");
    }

    fn register(worker: u64, chunks: &[&str]) -> ControlCommand {
        register_process(worker, 1, chunks)
    }

    /// A registration of process `boot` of `worker`.
    fn register_process(worker: u64, boot: u64, chunks: &[&str]) -> ControlCommand {
        ControlCommand::RegisterWorkerProcess {
            registration: WorkerRegistration {
                worker: WorkerId(worker),
                addr: format!("127.0.0.1:{}", 7200 + worker),
                nthreads: 2,
                memory_limit: 1 << 30,
                chunks: chunks.iter().map(|key| key.to_string()).collect(),
                boot,
            },
            now_ms: 1_000,
        }
    }

    fn collection(keys: &[&str], workers: &[u64], replicas: u32) -> PublishItem {
        PublishItem {
            name: DatasetName::parse("placeholder").expect("valid"),
            kind: EntryKind::Persisted(crate::catalog::PersistedCollection {
                chunks: keys
                    .iter()
                    .map(|key| crate::catalog::ChunkRef {
                        key: key.to_string(),
                        rows: 10,
                        bytes: 100,
                        checksum: 7,
                        locations: workers.iter().map(|worker| WorkerId(*worker)).collect(),
                    })
                    .collect(),
                schema_ipc: vec![1, 2, 3],
                replicas,
            }),
            attributes: BTreeMap::new(),
        }
    }

    fn named(mut item: PublishItem, name: &str) -> PublishItem {
        item.name = DatasetName::parse(name).expect("valid");
        item
    }

    fn locations(state: &ControlState, name: &str, chunk: usize) -> Vec<WorkerId> {
        match &state
            .get(&DatasetName::parse(name).expect("valid"))
            .expect("published")
            .kind
        {
            EntryKind::Persisted(collection) => collection.chunks[chunk].locations.clone(),
            other => panic!("not a collection: {other:?}"),
        }
    }

    /// Persisted collections are placed only on registered workers, with no more
    /// replicas than live workers; chunk references follow publish, override and
    /// unpublish, so a chunk is unreferenced exactly when no dataset holds it.
    #[test]
    fn collections_pin_their_chunks_until_unpublished() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        let refused = error_of(harness.apply(&publish(1, vec![named(collection(&["c1"], &[1], 1), "d")], false)));
        assert!(
            matches!(refused, CatalogError::NotEnoughWorkers { live: 0, .. }),
            "{refused:?}"
        );
        harness.apply(&register(1, &[]));
        harness.apply(&register(2, &[]));
        let refused = error_of(harness.apply(&publish(2, vec![named(collection(&["c1"], &[9], 1), "d")], false)));
        assert!(matches!(refused, CatalogError::UnknownWorker { .. }), "{refused:?}");
        let refused = error_of(harness.apply(&publish(3, vec![named(collection(&["c1"], &[1], 2), "d")], false)));
        assert!(matches!(refused, CatalogError::InvalidCollection { .. }), "{refused:?}");
        let refused = error_of(harness.apply(&publish(4, vec![named(collection(&["c1"], &[1, 2], 3), "d")], false)));
        assert!(matches!(refused, CatalogError::InvalidCollection { .. }), "{refused:?}");
        assert!(harness.state.list().is_empty(), "nothing refused was published");

        harness.apply(&publish(
            5,
            vec![named(collection(&["c1", "c2"], &[1, 2], 2), "d")],
            false,
        ));
        let all: Vec<String> = ["c1", "c2", "c9"].iter().map(|key| key.to_string()).collect();
        assert_eq!(harness.state.unreferenced(&all), ["c9"]);
        harness.apply(&publish(6, vec![named(collection(&["c3"], &[1], 1), "d")], true));
        assert_eq!(
            harness.state.unreferenced(&all),
            ["c1", "c2", "c9"],
            "override releases the old chunks"
        );
        harness.apply(&unpublish(7, "d"));
        let with_c3: Vec<String> = vec!["c3".to_string()];
        assert_eq!(
            harness.state.unreferenced(&with_c3),
            ["c3"],
            "unpublish releases the chunks"
        );
        let reloaded = harness.reloaded();
        assert_eq!(reloaded.workers().len(), 2);
        assert_eq!(reloaded.unreferenced(&all), harness.state.unreferenced(&all));
    }

    /// Availability follows the live copies: a gone worker's chunks make a dataset
    /// degraded, recovering (no copy, but lineage) or lost (no copy, no lineage);
    /// copies made by repair bring it back and count; the counters reload from rows.
    #[test]
    fn availability_repairs_and_counters() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&register(1, &[]));
        harness.apply(&register(2, &[]));
        harness.apply(&register(3, &[]));
        harness.apply(&publish(
            1,
            vec![named(collection(&["c1", "c2"], &[1, 2], 2), "two")],
            false,
        ));
        harness.apply(&publish(2, vec![named(collection(&["c3"], &[2], 1), "one")], false));
        let label = |state: &ControlState, name: &str| {
            let entry = state.get(&DatasetName::parse(name).expect("valid")).expect("published");
            state.availability(entry).expect("persisted").label()
        };
        assert_eq!(label(&harness.state, "two"), "available");
        harness.apply(&ControlCommand::WorkerGone {
            worker: WorkerId(2),
            now_ms: 2_000,
        });
        assert_eq!(label(&harness.state, "two"), "degraded");
        assert_eq!(label(&harness.state, "one"), "lost", "c3 is no task: no lineage");
        harness.apply(&ControlCommand::ChunksCopied {
            copies: vec![
                ("c1".to_string(), vec![WorkerId(1), WorkerId(3)]),
                ("c2".to_string(), vec![WorkerId(3), WorkerId(9)]),
            ],
        });
        assert_eq!(label(&harness.state, "two"), "available");
        assert_eq!(
            locations(&harness.state, "two", 0),
            [WorkerId(1), WorkerId(2), WorkerId(3)]
        );
        assert_eq!(
            locations(&harness.state, "two", 1),
            [WorkerId(1), WorkerId(2), WorkerId(3)],
            "an unregistered worker is never a location"
        );
        harness.apply(&ControlCommand::CountRecovery {
            counters: RecoveryCounters {
                failovers: 2,
                tasks_recomputed: 5,
                chunks_reregistered: 7,
                replicas_repaired: 0,
            },
        });
        let expected = RecoveryCounters {
            failovers: 2,
            tasks_recomputed: 5,
            chunks_reregistered: 7,
            replicas_repaired: 2,
        };
        assert_eq!(harness.state.recovery(), expected);
        let reloaded = harness.reloaded();
        assert_eq!(reloaded.recovery(), expected);
        assert_eq!(label(&reloaded, "two"), "available");
    }

    /// A worker that re-registers without a chunk, or reports it lost, is dropped from
    /// that chunk's locations (durably); a gone worker stays listed, since its disk may
    /// come back; registering again makes it alive.
    #[test]
    fn lost_chunks_leave_the_locations() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&register(1, &[]));
        harness.apply(&register(2, &[]));
        harness.apply(&publish(
            1,
            vec![named(collection(&["c1", "c2"], &[1, 2], 2), "d")],
            false,
        ));
        harness.apply(&ControlCommand::WorkerGone {
            worker: WorkerId(2),
            now_ms: 2_000,
        });
        assert_eq!(harness.state.live_worker_count(), 1);
        assert_eq!(locations(&harness.state, "d", 0), [WorkerId(1), WorkerId(2)]);
        harness.apply(&register_process(2, 2, &["c2"]));
        assert_eq!(harness.state.live_worker_count(), 2);
        assert_eq!(
            locations(&harness.state, "d", 0),
            [WorkerId(1)],
            "worker 2 came back (a new process) without c1"
        );
        assert_eq!(locations(&harness.state, "d", 1), [WorkerId(1), WorkerId(2)]);
        harness.apply(&ControlCommand::ChunksLost {
            worker: WorkerId(1),
            keys: vec!["c2".to_string()],
        });
        assert_eq!(locations(&harness.state, "d", 1), [WorkerId(2)]);
        let reloaded = harness.reloaded();
        assert_eq!(locations(&reloaded, "d", 0), [WorkerId(1)]);
        assert_eq!(locations(&reloaded, "d", 1), [WorkerId(2)]);
    }

    /// A registration of the same worker process drops no location, whatever its
    /// list says: the list was taken when the registration was first sent, and
    /// chunks uploaded to the worker while it was retried (across a partition) may
    /// have been published before it committed. The jepsen `data` workload lost an
    /// acknowledged `replicas=2` dataset that way: both holders' stale registrations
    /// dropped them from its only locations.
    #[test]
    fn a_stale_registration_of_the_same_process_loses_nothing() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&register_process(1, 7, &[]));
        harness.apply(&register_process(2, 8, &[]));
        harness.apply(&publish(1, vec![named(collection(&["c1"], &[1, 2], 2), "d")], false));
        // Both workers lost the leader and registered again, with lists taken
        // before c1 arrived.
        harness.apply(&register_process(1, 7, &[]));
        harness.apply(&register_process(2, 8, &[]));
        assert_eq!(locations(&harness.state, "d", 0), [WorkerId(1), WorkerId(2)]);
        let entry = harness
            .state
            .get(&DatasetName::parse("d").expect("valid"))
            .expect("published");
        assert_eq!(
            harness.state.availability(entry).expect("persisted").label(),
            "available"
        );
        // A restarted process (a new boot) is believed: it lost c1 while down.
        harness.apply(&register_process(2, 9, &[]));
        assert_eq!(locations(&harness.state, "d", 0), [WorkerId(1)]);
        // So is a worker that predates boots (0): every registration is a new process.
        harness.apply(&register_process(1, 0, &["c1"]));
        harness.apply(&register_process(1, 0, &[]));
        assert_eq!(locations(&harness.state, "d", 0), Vec::<WorkerId>::new());
        assert_eq!(harness.reloaded().workers(), harness.state.workers());
    }

    /// Registrations and registry rows written before boot ids still apply and load:
    /// as a new process, boot 0.
    #[test]
    fn legacy_registrations_and_rows_still_work() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        harness.apply(&register(1, &[]));
        harness.apply(&publish(1, vec![named(collection(&["c1"], &[1], 1), "d")], false));
        harness.apply(&ControlCommand::RegisterWorker {
            registration: crate::registry::LegacyWorkerRegistration {
                worker: WorkerId(1),
                addr: "127.0.0.1:7201".to_string(),
                nthreads: 2,
                memory_limit: 1 << 30,
                chunks: Vec::new(),
            },
            now_ms: 1_000,
        });
        assert_eq!(
            locations(&harness.state, "d", 0),
            Vec::<WorkerId>::new(),
            "a new process"
        );
        assert_eq!(harness.state.worker(&WorkerId(1)).expect("registered").boot, 0);
        let legacy = LegacyWorkerRecord {
            worker: WorkerId(5),
            addr: "127.0.0.1:7205".to_string(),
            nthreads: 4,
            memory_limit: 1 << 20,
            state: WorkerState::Gone,
            first_registered_index: 3,
            registered_index: 9,
        };
        let bytes = codec::encode("worker", &legacy).expect("encodes");
        let loaded = ControlState::load(vec![(worker_key(&WorkerId(5)), bytes)]).expect("loads");
        let record = loaded.worker(&WorkerId(5)).expect("loaded");
        assert_eq!((record.nthreads, record.state, record.boot), (4, WorkerState::Gone, 0));
    }

    /// Log entries of the first format (inline values only) still apply.
    #[test]
    fn legacy_publishes_still_apply() {
        let mut harness = Harness::new();
        harness.apply(&open(1_000));
        let legacy = write(
            1,
            1_000,
            Operation::Publish {
                items: vec![crate::catalog::LegacyPublishItem {
                    name: DatasetName::parse("old").expect("valid"),
                    value: InlineValue {
                        data: b"v".to_vec(),
                        content_type: "text/plain".to_string(),
                    },
                    attributes: BTreeMap::new(),
                }],
                override_existing: false,
                publisher: "old client".to_string(),
            },
        );
        harness.apply(&legacy);
        assert_eq!(harness.state.list(), ["old"]);
    }

    use crate::graph::task::inc_task as task;

    fn task_key(key: &str) -> crate::graph::TaskKey {
        crate::graph::TaskKey::parse(key).expect("valid")
    }

    /// A graph enters the task table in dependency order, all or nothing; batches
    /// of news record results, failures, releases and forgotten tasks, later news
    /// of a key winning; the rows rebuild the same table.
    #[test]
    fn the_task_table_follows_submissions_and_batches() {
        use crate::control::TaskOutcome;
        use crate::scheduling::{FinishedTask, TaskBatch, TaskFailure};
        let mut harness = Harness::new();
        harness.apply(&register(1, &[]));
        let refused = harness.apply(&ControlCommand::SubmitTasks {
            client: CLIENT,
            tasks: vec![task("b", &["a"]), task("a", &[])],
            wanted: vec![task_key("b")],
        });
        assert!(
            matches!(refused, ControlOutcome::SubmitRefused(_)),
            "a dependency after its dependent is refused: {refused:?}"
        );
        assert!(
            harness.state.tasks().is_empty(),
            "nothing of a refused batch is applied"
        );
        let outcome = harness.apply(&ControlCommand::SubmitTasks {
            client: CLIENT,
            tasks: vec![task("a", &[]), task("b", &["a"]), task("c", &["a"])],
            wanted: vec![task_key("b"), task_key("c")],
        });
        assert!(
            matches!(outcome, ControlOutcome::TasksSubmitted { new_tasks: 3, .. }),
            "{outcome:?}"
        );
        let again = harness.apply(&ControlCommand::SubmitTasks {
            client: ClientId([9; 16]),
            tasks: vec![task("a", &[])],
            wanted: vec![task_key("a")],
        });
        assert!(
            matches!(again, ControlOutcome::TasksSubmitted { new_tasks: 0, .. }),
            "known keys are reused"
        );
        let finished = |key: &str| FinishedTask {
            key: task_key(key),
            workers: vec![WorkerId(1)],
            bytes: 8,
            rows: 1,
        };
        harness.apply(&ControlCommand::RecordTasks {
            batches: vec![
                TaskBatch {
                    finished: vec![finished("a"), finished("b")],
                    ..Default::default()
                },
                TaskBatch {
                    erred: vec![(
                        task_key("c"),
                        TaskFailure {
                            task: task_key("c"),
                            message: "boom".to_string(),
                        },
                    )],
                    released: vec![task_key("a")],
                    unwanted: vec![(CLIENT, task_key("b"))],
                    ..Default::default()
                },
            ],
        });
        let table = harness.state.tasks();
        assert_eq!(
            table.get(&task_key("a")).map(|record| &record.outcome),
            Some(&TaskOutcome::Pending)
        );
        assert!(matches!(
            table.get(&task_key("b")).map(|record| &record.outcome),
            Some(TaskOutcome::Finished { .. })
        ));
        assert!(table
            .get(&task_key("b"))
            .is_some_and(|record| record.wanted_by.is_empty()));
        assert!(matches!(
            table.get(&task_key("c")).map(|record| &record.outcome),
            Some(TaskOutcome::Erred(_))
        ));
        assert!(harness.state.tasks().holds_result("b"));
        assert!(
            !harness.state.tasks().holds_result("a"),
            "a released result is not held"
        );
        assert_eq!(harness.state.unreferenced(&["a".to_string(), "b".to_string()]), ["a"]);
        harness.apply(&ControlCommand::WorkerGone {
            worker: WorkerId(1),
            now_ms: 2_000,
        });
        assert_eq!(
            harness.state.tasks().get(&task_key("b")).map(|record| &record.outcome),
            Some(&TaskOutcome::Pending),
            "a result on a gone worker is no longer recorded as held"
        );
        harness.apply(&ControlCommand::RecordTasks {
            batches: vec![TaskBatch {
                forgotten: vec![task_key("b")],
                ..Default::default()
            }],
        });
        let reloaded = harness.reloaded();
        assert_eq!(reloaded.tasks().len(), 2);
        for (key, record) in harness.state.tasks().iter() {
            assert_eq!(reloaded.tasks().get(key), Some(record));
        }
        assert_eq!(reloaded.tasks().next_order(), harness.state.tasks().next_order());
    }

    fn batch(commands: &[ControlCommand]) -> ControlCommand {
        ControlCommand::Batch {
            commands: commands
                .iter()
                .map(|command| serde_bytes::ByteBuf::from(codec::encode("command", command).expect("encodes")))
                .collect(),
        }
    }

    /// Writes batched in one entry apply in order, each with the outcome it would have
    /// had alone (a retry in the batch gets its first answer), and leave the same rows;
    /// a batch inside a batch or undecodable bytes fail only their own slot.
    #[test]
    fn batched_writes_apply_as_if_one_by_one() {
        let commands = [
            open(1_000),
            publish(1, vec![item("a", "1")], false),
            publish(2, vec![item("a", "2")], false),
            publish(1, vec![item("a", "1")], false),
            unpublish(3, "missing"),
            publish(4, vec![item("b", "3")], false),
        ];
        let mut alone = Harness::new();
        let one_by_one: Vec<ControlOutcome> = commands.iter().map(|command| alone.apply(command)).collect();
        let mut together = Harness::new();
        let ControlOutcome::Batch(batched) = together.apply(&batch(&commands)) else {
            panic!("a batch returns a batch of outcomes");
        };
        // The same outcomes, except that every write of the batch is at its one index.
        let at_index = |outcome: &ControlOutcome, index: u64| match outcome {
            ControlOutcome::Write(Ok(_)) => ControlOutcome::Write(Ok(WriteAck { log_index: index })),
            other => other.clone(),
        };
        let expected: Vec<ControlOutcome> = one_by_one.iter().map(|outcome| at_index(outcome, 1)).collect();
        assert_eq!(batched, expected);
        assert!(matches!(one_by_one[1], ControlOutcome::Write(Ok(_))));
        assert!(matches!(
            one_by_one[2],
            ControlOutcome::Write(Err(CatalogError::AlreadyExists { .. }))
        ));
        assert_eq!(one_by_one[3], one_by_one[1], "a retried seq gets its first outcome");
        assert_eq!(batched[3], batched[1]);
        assert_eq!(together.state.list(), alone.state.list());
        assert_eq!(together.state.list(), ["a", "b"]);
        let reloaded = together.reloaded();
        assert_eq!(reloaded.list(), ["a", "b"]);

        let mut malformed = ControlCommand::Batch {
            commands: vec![serde_bytes::ByteBuf::from(vec![0xff, 0xfe, 0xfd])],
        };
        if let ControlCommand::Batch { commands } = &mut malformed {
            commands.push(serde_bytes::ByteBuf::from(
                codec::encode("command", &batch(&[open(2_000)])).expect("encodes"),
            ));
            commands.push(serde_bytes::ByteBuf::from(
                codec::encode("command", &publish(5, vec![item("c", "4")], false)).expect("encodes"),
            ));
        }
        let ControlOutcome::Batch(outcomes) = together.apply(&malformed) else {
            panic!("a batch returns a batch of outcomes");
        };
        assert_eq!(outcomes.len(), 3);
        assert!(matches!(
            error_of(outcomes[0].clone()),
            CatalogError::MalformedCommand { .. }
        ));
        assert!(matches!(
            error_of(outcomes[1].clone()),
            CatalogError::MalformedCommand { .. }
        ));
        assert!(matches!(outcomes[2], ControlOutcome::Write(Ok(_))));
        assert_eq!(together.state.list(), ["a", "b", "c"]);
    }

    /// Garbage command bytes are an error outcome, not a panic.
    #[test]
    fn malformed_commands_are_refused() {
        let mut state = ControlState::default();
        let mut writes = StateWrites::default();
        let outcome = state.apply(ApplyContext { log_index: 1 }, &[0xff, 0x00, 0x13], &mut writes);
        let outcome: ControlOutcome = codec::decode("outcome", &outcome).expect("decodes");
        assert!(matches!(error_of(outcome), CatalogError::MalformedCommand { .. }));
    }
}
