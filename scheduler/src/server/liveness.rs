//! The leader's memory of worker heartbeats, and the monitor that marks a silent
//! worker gone through Raft.
//!
//! Heartbeats are not Raft entries: they arrive at the leader only, and only its
//! memory holds them. A replica that becomes leader starts every registered worker's
//! clock afresh (it has heard none of them yet), so a leader change never marks a
//! healthy worker gone; and a leader that loses its quorum starts them afresh again
//! once it has it back (meanwhile no worker could register or be answered), so a
//! scheduler fault never marks a healthy worker gone either.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::v1 as pb;

use super::consensus::{now_ms, Consensus};
use super::dispatch::Dispatcher;
use crate::control::ControlCommand;
use crate::registry::{WorkerId, WorkerState};

/// How often the monitor looks for silent workers.
const MONITOR_INTERVAL: Duration = Duration::from_millis(250);

/// The last heartbeat heard from one worker.
#[derive(Debug, Clone)]
pub struct Heard {
    /// When it arrived.
    pub at: Instant,
    /// What it said.
    pub beat: pb::WorkerHeartbeat,
}

#[derive(Debug, Default)]
struct LivenessState {
    /// The term in which this replica leads, if it does (as the monitor last saw).
    leading_term: Option<u64>,
    /// When this replica became leader: the clock of workers not yet heard from.
    leading_since: Option<Instant>,
    /// Heartbeats heard since this replica became leader.
    heard: HashMap<WorkerId, Heard>,
    /// Workers whose `WorkerGone` is proposed, so it is not proposed every tick.
    gone_proposed: BTreeSet<WorkerId>,
    /// Since when this leader has confirmed its quorum at every tick: a worker's
    /// silence counts only from then (while the leader could not commit, workers could
    /// not re-register or be served either).
    healthy_since: Option<Instant>,
}

/// Shared between the heartbeat handler, the monitor and status. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    inner: Arc<Mutex<LivenessState>>,
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, LivenessState> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a heartbeat.
    pub fn heard(&self, worker: WorkerId, beat: pb::WorkerHeartbeat) {
        let mut state = self.lock();
        state.gone_proposed.remove(&worker);
        state.heard.insert(
            worker,
            Heard {
                at: Instant::now(),
                beat,
            },
        );
    }

    /// The last heartbeat of `worker`, if this replica leads and heard one.
    pub fn last(&self, worker: &WorkerId) -> Option<Heard> {
        self.lock().heard.get(worker).cloned()
    }

    /// Notes whether this replica leads, in which term; a new term forgets every
    /// heartbeat (they were heard by a previous reign, or not at all).
    fn observe_leadership(&self, leading_term: Option<u64>) {
        let mut state = self.lock();
        if state.leading_term == leading_term {
            return;
        }
        state.leading_term = leading_term;
        state.leading_since = leading_term.map(|_| Instant::now());
        state.healthy_since = state.leading_since;
        state.heard.clear();
        state.gone_proposed.clear();
    }

    /// The leader could not confirm its quorum: every worker's silence starts again
    /// once it can.
    fn unhealthy(&self) {
        self.lock().healthy_since = Some(Instant::now());
    }

    /// Workers silent for longer than `timeout` that are not yet proposed gone.
    fn silent(&self, alive: &[WorkerId], timeout: Duration) -> Vec<WorkerId> {
        let mut state = self.lock();
        let Some(since) = state.leading_since else {
            return Vec::new();
        };
        let healthy_since = state.healthy_since.unwrap_or(since).max(since);
        let now = Instant::now();
        let silent: Vec<WorkerId> = alive
            .iter()
            .filter(|worker| !state.gone_proposed.contains(worker))
            .filter(|worker| {
                let last = state
                    .heard
                    .get(worker)
                    .map_or(healthy_since, |heard| heard.at.max(healthy_since));
                now.duration_since(last) > timeout
            })
            .copied()
            .collect();
        state.gone_proposed.extend(silent.iter().copied());
        silent
    }

    /// Forgets a proposal that failed, so the next tick tries again.
    fn retry_later(&self, worker: &WorkerId) {
        self.lock().gone_proposed.remove(worker);
    }
}

/// Runs forever (until the task is dropped): while this replica leads, marks workers
/// silent for longer than `timeout` gone through Raft.
pub async fn monitor(consensus: Consensus, liveness: Liveness, dispatcher: Dispatcher, timeout: Duration) {
    let mut tick = tokio::time::interval(MONITOR_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let status = consensus.replica.status().await;
        let leading_term = (status.state == "leader").then_some(status.term);
        liveness.observe_leadership(leading_term);
        if leading_term.is_none() {
            continue;
        }
        // Judge silence only while this leader can reach a quorum (ReadIndex).
        if tokio::time::timeout(MONITOR_INTERVAL * 4, consensus.read_barrier())
            .await
            .map_or(true, |barrier| barrier.is_err())
        {
            liveness.unhealthy();
            continue;
        }
        let alive: Vec<WorkerId> = consensus.state.read(|state| {
            state
                .workers()
                .into_iter()
                .filter(|record| record.state == WorkerState::Alive)
                .map(|record| record.worker)
                .collect()
        });
        for worker in liveness.silent(&alive, timeout) {
            tracing::warn!(%worker, ?timeout, "worker silent for longer than the timeout; marking it gone");
            let command = ControlCommand::WorkerGone {
                worker,
                now_ms: now_ms(),
            };
            match consensus.propose(&command).await {
                Ok(_) => dispatcher.worker_gone(worker),
                Err(error) => {
                    tracing::warn!(%worker, %error, "cannot mark the worker gone; will retry");
                    liveness.retry_later(&worker);
                }
            }
        }
    }
}
