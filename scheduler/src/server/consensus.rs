//! Proposing control commands and linearizable reads, in the server's error terms.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_raft::codec;
use cairn_raft::{Command, Outcome, Replica, ReplicaError, StateHandle};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::bugs::InjectedBugs;
use super::error::ServerError;
use crate::control::{ControlCommand, ControlOutcome, ControlState};

/// A replica's entry point to the replicated state.
#[derive(Clone)]
pub struct Consensus {
    /// The Raft replica.
    pub replica: Replica,
    /// Read access to the applied state.
    pub state: StateHandle<ControlState>,
    /// How long a proposal or a read barrier may take before the client is told
    /// "timeout" (and, for a write, that its outcome is unknown).
    pub request_timeout: Duration,
    /// Deliberate bugs (fault-injection testing only).
    pub injected_bugs: InjectedBugs,
    /// The queue of writes that may share a log entry ([`Consensus::propose_together`]).
    batcher: mpsc::UnboundedSender<Proposal>,
    /// Chunks that writes this replica committed as leader stopped referring to.
    dropped: Arc<Mutex<DroppedChunks>>,
}

/// The chunk keys that committed writes of this leader left unreferenced (the last
/// [`DroppedChunks::CAPACITY`]), so heartbeat replies can tell workers to delete
/// them at once: a worker deletes an unreferenced chunk at once only if it saw it
/// referenced, which a dataset published and unpublished between two heartbeats
/// never is.
#[derive(Debug, Default)]
pub struct DroppedChunks {
    /// The keys with the number of their insertion, oldest first; an entry whose number
    /// is no longer the key's in `keys` (removed, or inserted again since) is stale.
    order: VecDeque<(String, u64)>,
    /// The keys remembered, each with the number of its latest insertion.
    keys: HashMap<String, u64>,
    /// The number of the next insertion.
    next: u64,
}

impl DroppedChunks {
    /// How many keys are remembered.
    pub const CAPACITY: usize = 1 << 20;

    /// `key` was left unreferenced by a committed write.
    pub fn insert(&mut self, key: String) {
        self.insert_within(key, Self::CAPACITY);
    }

    /// [`DroppedChunks::insert`], remembering at most `capacity` keys.
    fn insert_within(&mut self, key: String, capacity: usize) {
        if self.keys.contains_key(&key) {
            return;
        }
        let number = self.next;
        self.next += 1;
        self.keys.insert(key.clone(), number);
        self.order.push_back((key, number));
        while self.keys.len() > capacity {
            match self.order.pop_front() {
                Some((oldest, number)) if self.keys.get(&oldest) == Some(&number) => {
                    self.keys.remove(&oldest);
                }
                Some(_stale) => {}
                None => break,
            }
        }
        self.compact();
    }

    /// `key` is referred to again (published anew). Constant time: its entry in the
    /// order goes stale, and stale entries are dropped in bulk once they are half.
    pub fn remove(&mut self, key: &str) {
        if self.keys.remove(key).is_some() {
            self.compact();
        }
    }

    /// Drops the stale entries once they outnumber the live ones (amortised constant
    /// time per call, and the order never holds more than twice the keys).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.keys.len() + 16 {
            let keys = &self.keys;
            self.order.retain(|(key, number)| keys.get(key) == Some(number));
        }
    }

    /// Whether `key` was left unreferenced by a committed write.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }
}

/// How many batches of client writes may be in Raft at once. openraft 0.9 appends
/// each proposal as its own log entry and waits for its fsync before it takes the
/// next, so writes that arrive while a batch is in flight wait and go together in the
/// next one: one entry, one fsync per replica, however many writes.
const BATCHES_IN_FLIGHT: usize = 2;
/// At most this many writes share one entry...
const MAX_BATCH_WRITES: usize = 512;
/// ...and at most this many encoded bytes (a single larger write goes alone).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A write waiting to be proposed, encoded, with where its outcome goes.
struct Proposal {
    command: Vec<u8>,
    outcome: oneshot::Sender<Result<ControlOutcome, ServerError>>,
}

/// The leader's wall clock, stamped into commands (the state machine never reads one).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

impl From<ReplicaError> for ServerError {
    fn from(error: ReplicaError) -> ServerError {
        match error {
            ReplicaError::NotLeader { leader_id, leader_addr } => ServerError::NotLeader { leader_id, leader_addr },
            ReplicaError::Timeout { operation, after } => ServerError::Timeout { operation, after },
            ReplicaError::Membership { reason } => ServerError::Membership { reason },
            ReplicaError::Stopped { reason } => ServerError::Unavailable { reason },
            backlog @ ReplicaError::Backlog { .. } => ServerError::Unavailable {
                reason: backlog.to_string(),
            },
        }
    }
}

/// The Raft command carrying `command`.
fn encode(command: &ControlCommand) -> Result<Command, ServerError> {
    let bytes = codec::encode("control command", command).map_err(|error| ServerError::InvalidRequest {
        reason: error.to_string(),
    })?;
    Ok(Command(bytes))
}

impl Consensus {
    /// The entry point to `replica`; starts the task that batches client writes (it
    /// ends when every clone is dropped).
    pub fn new(
        replica: Replica,
        state: StateHandle<ControlState>,
        request_timeout: Duration,
        injected_bugs: InjectedBugs,
    ) -> Consensus {
        let (batcher, queue) = mpsc::unbounded_channel();
        tokio::spawn(batch_writes(replica.clone(), request_timeout, queue));
        Consensus {
            replica,
            state,
            request_timeout,
            injected_bugs,
            batcher,
            dropped: Arc::default(),
        }
    }

    /// Proposes `command` like [`Consensus::propose`], but it may share its log entry
    /// with other commands proposed meanwhile (a [`ControlCommand::Batch`]); each gets
    /// its own outcome, in the order they were proposed. For client writes, whose
    /// order among concurrent callers is free.
    pub async fn propose_together(&self, command: &ControlCommand) -> Result<ControlOutcome, ServerError> {
        let (outcome, receiver) = oneshot::channel();
        let proposal = Proposal {
            command: encode(command)?.0,
            outcome,
        };
        let stopped = || ServerError::Unavailable {
            reason: "the replica is stopping".to_string(),
        };
        self.batcher.send(proposal).map_err(|_| stopped())?;
        receiver.await.map_err(|_| stopped())?
    }

    /// Proposes `command` and returns its outcome once it is committed and applied.
    pub async fn propose(&self, command: &ControlCommand) -> Result<ControlOutcome, ServerError> {
        propose_entry(&self.replica, encode(command)?, self.request_timeout)
            .await
            .map_err(|failure| failure.error())
    }

    /// Proposes `commands` in this order as separate entries, pipelined (see
    /// [`Replica::propose_in_order`]); their outcomes in order.
    pub async fn propose_in_order(&self, commands: &[ControlCommand]) -> Result<Vec<ControlOutcome>, ServerError> {
        let entries = commands.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        let outcomes = self.replica.propose_in_order(entries, self.request_timeout).await?;
        outcomes
            .iter()
            .map(|outcome| decode_outcome(outcome).map_err(|reason| ServerError::Unavailable { reason }))
            .collect()
    }

    /// The chunks that writes this replica committed as leader stopped referring to.
    pub fn dropped(&self) -> MutexGuard<'_, DroppedChunks> {
        self.dropped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Deliberate bug `ack-before-commit` only: appends `command` to the leader's log
    /// and returns before it is committed.
    pub async fn propose_without_commit(&self, command: &ControlCommand) -> Result<(), ServerError> {
        Ok(self.replica.propose_without_commit(encode(command)?).await?)
    }

    /// Waits until reads of the local state are linearizable (ReadIndex).
    pub async fn read_barrier(&self) -> Result<(), ServerError> {
        if self.injected_bugs.local_reads {
            // Deliberate bug: believing to lead is not knowing to lead.
            return Ok(self.replica.ensure_leader()?);
        }
        Ok(self.replica.read_barrier(self.request_timeout).await?)
    }
}

/// Takes queued writes in batches, at most [`BATCHES_IN_FLIGHT`] at a time in Raft.
async fn batch_writes(replica: Replica, timeout: Duration, mut queue: mpsc::UnboundedReceiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Wait for room first: what arrives meanwhile joins this batch.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut bytes = first.command.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.command.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let replica = replica.clone();
        tokio::spawn(async move {
            propose_batch(&replica, timeout, batch).await;
            drop(permit);
        });
    }
}

/// Why a proposal failed, in a form each write of a batch can get its own copy of
/// (a [`ServerError`] is not `Clone`; a `not-leader` must reach every client whole).
enum ProposalFailure {
    /// Raft refused or timed out.
    Replica(ReplicaError),
    /// The entry could not be encoded.
    Invalid(String),
    /// The outcome was not what the entry should return.
    Unavailable(String),
}

impl ProposalFailure {
    fn error(&self) -> ServerError {
        match self {
            ProposalFailure::Replica(error) => ServerError::from(error.clone()),
            ProposalFailure::Invalid(reason) => ServerError::InvalidRequest { reason: reason.clone() },
            ProposalFailure::Unavailable(reason) => ServerError::Unavailable { reason: reason.clone() },
        }
    }
}

/// Proposes `entry` and decodes its outcome once it is committed and applied.
async fn propose_entry(
    replica: &Replica,
    entry: Command,
    timeout: Duration,
) -> Result<ControlOutcome, ProposalFailure> {
    let outcome = replica
        .propose(entry, timeout)
        .await
        .map_err(ProposalFailure::Replica)?;
    decode_outcome(&outcome).map_err(ProposalFailure::Unavailable)
}

/// The control outcome an applied entry returned.
fn decode_outcome(outcome: &Outcome) -> Result<ControlOutcome, String> {
    codec::decode("control outcome", &outcome.0).map_err(|error| format!("undecodable outcome: {error}"))
}

/// Proposes the batch as one entry (a lone write as itself) and hands each write its
/// outcome.
async fn propose_batch(replica: &Replica, timeout: Duration, batch: Vec<Proposal>) {
    let (commands, outcomes): (Vec<Vec<u8>>, Vec<_>) = batch
        .into_iter()
        .map(|proposal| (proposal.command, proposal.outcome))
        .unzip();
    let results: Vec<Result<ControlOutcome, ServerError>> = match <[Vec<u8>; 1]>::try_from(commands) {
        Ok([alone]) => vec![propose_entry(replica, Command(alone), timeout)
            .await
            .map_err(|failure| failure.error())],
        Err(commands) => match propose_joined(replica, timeout, commands).await {
            Ok(each) => each.into_iter().map(Ok).collect(),
            Err(failure) => outcomes.iter().map(|_| Err(failure.error())).collect(),
        },
    };
    for (outcome, result) in outcomes.into_iter().zip(results) {
        let _ = outcome.send(result);
    }
}

/// Proposes several encoded commands as one [`ControlCommand::Batch`] entry and
/// returns their outcomes, one per command.
async fn propose_joined(
    replica: &Replica,
    timeout: Duration,
    commands: Vec<Vec<u8>>,
) -> Result<Vec<ControlOutcome>, ProposalFailure> {
    let count = commands.len();
    let batch = ControlCommand::Batch {
        commands: commands.into_iter().map(serde_bytes::ByteBuf::from).collect(),
    };
    let entry =
        codec::encode("control command", &batch).map_err(|error| ProposalFailure::Invalid(error.to_string()))?;
    match propose_entry(replica, Command(entry), timeout).await? {
        ControlOutcome::Batch(each) if each.len() == count => Ok(each),
        other => Err(ProposalFailure::Unavailable(format!(
            "a batch of writes returned {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::DroppedChunks;

    /// A key removed and dropped again is remembered as newly dropped: the stale entry of
    /// its first drop does not evict it, and remove/insert cycles do not grow the order.
    #[test]
    fn dropped_chunks_evict_the_oldest_live_key_and_stay_bounded() {
        let mut dropped = DroppedChunks::default();
        for key in ["a", "b", "c"] {
            dropped.insert_within(key.to_string(), 3);
        }
        dropped.remove("a");
        assert!(!dropped.contains("a"));
        dropped.insert_within("a".to_string(), 3);
        // Over capacity: "b" is the oldest live key ("a"'s first entry is stale).
        dropped.insert_within("d".to_string(), 3);
        assert!(!dropped.contains("b"));
        for key in ["a", "c", "d"] {
            assert!(dropped.contains(key), "{key}");
        }
        for _ in 0..10_000 {
            dropped.remove("c");
            dropped.insert_within("c".to_string(), 3);
        }
        assert!(
            dropped.order.len() <= 2 * dropped.keys.len() + 16,
            "{}",
            dropped.order.len()
        );
        for key in ["a", "c", "d"] {
            assert!(dropped.contains(key), "{key}");
        }
        dropped.insert_within("e".to_string(), 3);
        assert!(!dropped.contains("a"), "the oldest live key goes first");
    }
}
