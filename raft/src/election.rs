//! When a replica stands for election: Cairn's own election timer, in place of
//! openraft 0.9's.
//!
//! openraft 0.9 ties three things to two settings: the randomized election timeout is
//! drawn once per process (from `election_timeout_min..max`) and never again, it is
//! checked only on its tick (every 1.5 heartbeats), and a candidate's vote requests are
//! cancelled after `election_timeout_min`. On a starved machine a vote round trip
//! (two processes scheduled, one fsync) outlives that bound: every round is cancelled,
//! and two candidates whose fixed timeouts lie close keep splitting the vote, round
//! after round. The fault suite saw 6 s without a leader that way.
//!
//! So openraft's timer elections are off (`enable_elect: false`) and
//! [`ElectionTimer::run`] decides when to stand, calling `Raft::trigger().elect()`:
//!
//! - a follower of a known leader stands once the leader's lease (openraft's
//!   `election_timeout_max`, which voters enforce) has expired since it last heard from
//!   it — or 1.5 times the longest recent silence of that leader, when heartbeats arrive
//!   late on a loaded machine — plus a random delay drawn afresh each time;
//! - a candidate stands again once every vote request of its campaign has come back
//!   (granted, refused, failed or cancelled), after a random delay that grows with the
//!   slowest answer, so two candidates that split a vote do not meet again; if a voter
//!   has a longer log, it waits longer so that one can win;
//! - a replica that granted its vote to a candidate waits for it a vote timeout plus a
//!   random delay.
//!
//! Before standing, a replica asks the other voters for a pre-vote ([`PreVoteJudge`],
//! answered as openraft would answer the vote, changing nothing) and stands only with
//! a majority: a follower that merely stopped hearing a live leader (a slow or
//! restarted replica) cannot depose it by raising the term.
//!
//! openraft's `election_timeout_min` then only bounds how long a vote request may take,
//! and is set just below the lease (see `node.rs`), not to the lower bound of the
//! election timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use openraft::storage::RaftLogStorage;
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::log_store::LogStore;
use crate::network::Network;
use crate::types::{LogId, NodeId, Raft};

/// How often the timer looks at the replica's state.
const TICK: Duration = Duration::from_millis(10);

/// The timing of elections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTiming {
    /// How long voters refuse another candidate after hearing from a leader
    /// (openraft's `election_timeout_max`).
    pub lease: Duration,
    /// How long one vote request may take (openraft's `election_timeout_min`).
    pub vote_timeout: Duration,
    /// The range of the random delay added to every wait.
    pub spread: Duration,
    /// How often a leader sends heartbeats (`--heartbeat-ms`).
    pub heartbeat: Duration,
    /// How long one AppendEntries may take (openraft's `heartbeat_interval`, which
    /// openraft also uses as the period of its own heartbeats, a fallback here).
    pub append_timeout: Duration,
}

/// What the network saw of this replica's latest campaign (its vote requests).
#[derive(Debug, Default)]
struct Campaign {
    /// The term of the campaign.
    term: u64,
    /// Vote requests that came back, failed or were cancelled.
    finished: usize,
    /// When the last one finished.
    last_finished: Option<Instant>,
    /// The slowest of them.
    slowest: Duration,
    /// A voter holds a longer log than this replica: it should win, not us.
    greater_log: bool,
}

/// Shared between the network (which sends the vote requests) and the timer.
#[derive(Debug, Clone, Default)]
pub struct Campaigns {
    campaign: Arc<Mutex<Campaign>>,
}

impl Campaigns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Campaign> {
        self.campaign.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A vote request of the campaign for `term` starts; the guard records its end,
    /// also when openraft cancels it.
    pub fn request_started(&self, term: u64) -> VoteRequestGuard {
        let mut campaign = self.lock();
        if term > campaign.term {
            *campaign = Campaign {
                term,
                ..Campaign::default()
            };
        }
        VoteRequestGuard {
            campaigns: self.clone(),
            term,
            started: Instant::now(),
            greater_log: false,
        }
    }

    /// The campaign for `term`: (requests finished, when the last finished, slowest,
    /// a greater log seen), if the network saw one.
    fn state(&self, term: u64) -> Option<(usize, Option<Instant>, Duration, bool)> {
        let campaign = self.lock();
        (campaign.term == term).then_some((
            campaign.finished,
            campaign.last_finished,
            campaign.slowest,
            campaign.greater_log,
        ))
    }
}

/// One vote request in flight; records its end when dropped.
#[derive(Debug)]
pub struct VoteRequestGuard {
    campaigns: Campaigns,
    term: u64,
    started: Instant,
    greater_log: bool,
}

impl VoteRequestGuard {
    /// The voter answered with a longer log than the candidate's.
    pub fn saw_greater_log(&mut self) {
        self.greater_log = true;
    }
}

impl Drop for VoteRequestGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut campaign = self.campaigns.lock();
        if campaign.term != self.term {
            return;
        }
        campaign.finished += 1;
        campaign.last_finished = Some(now);
        campaign.slowest = campaign.slowest.max(now - self.started);
        campaign.greater_log |= self.greater_log;
    }
}

/// A small PRNG (splitmix64) for the random delays: no need for a crypto source, and
/// each replica seeds it differently.
struct Jitter {
    state: u64,
}

impl Jitter {
    fn new(node_id: NodeId) -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        Jitter {
            state: nanos ^ node_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id()),
        }
    }

    /// A uniformly random duration in `[0, range]`.
    fn below(&mut self, range: Duration) -> Duration {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let micros = range.as_micros() as u64;
        Duration::from_micros(z % (micros + 1))
    }
}

/// What the timer reads of the replica on each tick.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    state: ServerState,
    term: u64,
    voted_for: Option<NodeId>,
    committed: bool,
    since: Option<Instant>,
    voters: usize,
    is_voter: bool,
}

/// How long a follower waits after the last message of its leader before it asks for
/// pre-votes: the lease, or 1.5 times the longest silence between two messages of the
/// same leader in the last [`GAP_WINDOW`] if that is longer (a starved machine
/// delivers heartbeats late; a follower that gave up at the lease would stand against
/// a live leader), at most [`MAX_PATIENCE_LEASES`] leases.
fn patience(timing: &ElectionTiming, longest_gap: Duration) -> Duration {
    timing
        .lease
        .max(longest_gap * 3 / 2)
        .min(timing.lease * MAX_PATIENCE_LEASES)
}

/// The longest silence of the leader this long ago still counts.
const GAP_WINDOW: Duration = Duration::from_secs(10);
/// The patience of a follower is at most this many leases.
const MAX_PATIENCE_LEASES: u32 = 3;

/// When this replica should stand next, given `view`; `None`: not now, look again.
fn deadline(
    node_id: NodeId,
    view: &View,
    timing: &ElectionTiming,
    campaigns: &Campaigns,
    jitter: Duration,
    longest_gap: Duration,
    retry_jitter: &mut dyn FnMut(Duration) -> Duration,
) -> Option<Instant> {
    if !view.is_voter || view.state == ServerState::Leader || view.state == ServerState::Shutdown {
        return None;
    }
    if view.voters == 1 {
        // The only voter: nobody else can lead, stand at once (as openraft does).
        return Some(Instant::now());
    }
    let Some(since) = view.since else {
        // Never voted and never heard from a leader: the lease cannot hold anyone back.
        return Some(Instant::now());
    };
    if view.committed {
        // A leader was known: voters refuse others until its lease expires.
        return Some(since + patience(timing, longest_gap) + jitter);
    }
    if view.voted_for == Some(node_id) {
        // Our own campaign: stand again once every request is back.
        if let Some((finished, last_finished, slowest, greater_log)) = campaigns.state(view.term) {
            if greater_log {
                return Some(since + timing.vote_timeout + timing.lease * 2 + jitter);
            }
            if finished + 1 >= view.voters {
                let last = last_finished.unwrap_or(since);
                let range = timing.spread.max(slowest * 3).min(timing.lease * 4);
                return Some(last + retry_jitter(range));
            }
        }
    }
    // A candidate we voted for, or our own requests still in flight.
    Some(since + timing.vote_timeout + jitter)
}

/// The silences between messages of the same leader, over the last [`GAP_WINDOW`].
#[derive(Debug, Default)]
struct Gaps {
    /// The leader (term, id) and when its last message was seen.
    last: Option<(u64, Option<NodeId>, Instant)>,
    /// (when observed, silence).
    window: std::collections::VecDeque<(Instant, Duration)>,
}

impl Gaps {
    /// Takes in the view of one tick.
    fn observe(&mut self, node_id: NodeId, view: &View) {
        let following = view.committed && view.voted_for != Some(node_id) && view.state != ServerState::Leader;
        let (true, Some(since)) = (following, view.since) else {
            self.last = None;
            return;
        };
        if let Some((term, leader, at)) = self.last {
            if term == view.term && leader == view.voted_for && since > at {
                let gap = since - at;
                if gap > Duration::from_millis(1) {
                    self.window.push_back((since, gap));
                }
            }
        }
        self.last = Some((view.term, view.voted_for, since));
        while self.window.front().is_some_and(|(when, _)| when.elapsed() > GAP_WINDOW) {
            self.window.pop_front();
        }
    }

    /// The longest recent silence.
    fn longest(&self) -> Duration {
        self.window.iter().map(|(_, gap)| *gap).max().unwrap_or_default()
    }
}

/// A pre-vote request: would the voter vote for `candidate` now?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The replica that wants to stand.
    pub candidate: NodeId,
    /// Its last log id (durable).
    pub last_log_id: Option<LogId>,
}

/// A pre-vote answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteReply {
    /// Whether the voter would grant its vote now.
    pub granted: bool,
    /// Why not.
    pub reason: String,
}

/// The last durable log id of `log_store`.
async fn last_log_id(log_store: &LogStore) -> Result<Option<LogId>, String> {
    let mut log_store = log_store.clone();
    log_store
        .get_log_state()
        .await
        .map(|state| state.last_log_id)
        .map_err(|error| error.to_string())
}

/// Answers pre-votes as openraft would answer the vote, without changing any state.
#[derive(Clone)]
pub struct PreVoteJudge {
    raft: Raft,
    log_store: LogStore,
    lease: Duration,
}

impl PreVoteJudge {
    /// A judge over `raft`, whose log is `log_store`, with the leader's `lease`.
    pub fn new(raft: Raft, log_store: LogStore, lease: Duration) -> PreVoteJudge {
        PreVoteJudge { raft, log_store, lease }
    }

    /// Grants unless this replica leads, has heard from a leader within the lease, or
    /// holds a longer log than the candidate.
    pub async fn judge(&self, request: &PreVoteRequest) -> PreVoteReply {
        let refuse = |reason: String| PreVoteReply { granted: false, reason };
        let lease = self.lease;
        let read = self
            .raft
            .with_raft_state(move |state| {
                let vote = state.vote_ref();
                let heard_within_lease = vote.is_committed()
                    && state
                        .vote_last_modified()
                        .is_some_and(|since| Instant::now() <= since + lease);
                (state.server_state, heard_within_lease)
            })
            .await;
        let (state, heard_within_lease) = match read {
            Ok(read) => read,
            Err(error) => return refuse(format!("raft has stopped: {error}")),
        };
        if state == ServerState::Leader || heard_within_lease {
            // No need to read the log.
            return pre_vote_answer(state, heard_within_lease, request.last_log_id, Ok(None));
        }
        let mine = last_log_id(&self.log_store).await;
        pre_vote_answer(state, heard_within_lease, request.last_log_id, mine)
    }
}

/// The pre-vote answer of a replica in `state` that has (not) `heard_within_lease`
/// from a leader, whose log ends at `mine`, to a candidate whose log ends at `theirs`.
fn pre_vote_answer(
    state: ServerState,
    heard_within_lease: bool,
    theirs: Option<LogId>,
    mine: Result<Option<LogId>, String>,
) -> PreVoteReply {
    let refuse = |reason: String| PreVoteReply { granted: false, reason };
    if state == ServerState::Leader {
        return refuse("this replica is the leader".to_string());
    }
    if heard_within_lease {
        return refuse("this replica heard from its leader within the lease".to_string());
    }
    match mine {
        Err(error) => refuse(format!("cannot read the log: {error}")),
        Ok(mine) if theirs < mine => refuse(format!(
            "the candidate's log ends at {theirs:?}, this replica's at {mine:?}"
        )),
        Ok(_) => PreVoteReply {
            granted: true,
            reason: String::new(),
        },
    }
}

/// Whether a pre-vote round is decided: `Some(true)` once every voter set has a
/// majority in `granted`, `Some(false)` once one cannot reach it without `refused`.
fn pre_vote_outcome(configs: &[Vec<NodeId>], granted: &BTreeSet<NodeId>, refused: &BTreeSet<NodeId>) -> Option<bool> {
    let majority = |config: &Vec<NodeId>, counts: &dyn Fn(&NodeId) -> bool| {
        config.iter().filter(|id| counts(id)).count() * 2 > config.len()
    };
    if configs
        .iter()
        .all(|config| majority(config, &|id| granted.contains(id)))
    {
        return Some(true);
    }
    if configs
        .iter()
        .any(|config| !majority(config, &|id| !refused.contains(id)))
    {
        return Some(false);
    }
    None
}

/// The election timer of one replica.
pub struct ElectionTimer {
    /// The replica.
    pub raft: Raft,
    /// Its id.
    pub node_id: NodeId,
    /// Its timing.
    pub timing: ElectionTiming,
    /// What the network saw of its campaigns.
    pub campaigns: Campaigns,
    /// For pre-votes.
    pub network: Network,
    /// Its log, for the pre-vote request.
    pub log_store: LogStore,
}

impl ElectionTimer {
    /// Asks every other voter for a pre-vote; true when a majority of every voter
    /// set of the membership (one, or two during a change) would vote for us.
    async fn pre_vote(&self) -> bool {
        let node_id = self.node_id;
        let read = self
            .raft
            .with_raft_state(move |state| {
                let membership = state.membership_state.effective().membership();
                let configs: Vec<Vec<NodeId>> = membership
                    .get_joint_config()
                    .iter()
                    .map(|config| config.iter().copied().collect())
                    .collect();
                let addrs: BTreeMap<NodeId, String> = membership
                    .nodes()
                    .filter(|(id, _)| **id != node_id)
                    .map(|(id, node)| (*id, node.addr.clone()))
                    .collect();
                (configs, addrs)
            })
            .await;
        let Ok((configs, addrs)) = read else {
            return false;
        };
        let last_log_id = match last_log_id(&self.log_store).await {
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(%error, "cannot read the log for a pre-vote");
                return false;
            }
        };
        let request = PreVoteRequest {
            candidate: node_id,
            last_log_id,
        };
        let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().filter(|id| *id != node_id).collect();
        let mut asks: FuturesUnordered<_> = voters
            .iter()
            .filter_map(|id| addrs.get(id).map(|addr| (*id, addr.clone())))
            .map(|(id, addr)| {
                let request = request.clone();
                async move {
                    let answer = self
                        .network
                        .pre_vote(id, &addr, &request, self.timing.vote_timeout)
                        .await;
                    (id, answer)
                }
            })
            .collect();
        // Decided as soon as every voter set has a majority of yes (a dead peer's
        // answer is not waited for), or one cannot reach it any more.
        let mut granted: BTreeSet<NodeId> = BTreeSet::from([node_id]);
        let mut refused: BTreeSet<NodeId> = BTreeSet::new();
        loop {
            if let Some(outcome) = pre_vote_outcome(&configs, &granted, &refused) {
                return outcome;
            }
            let Some((id, answer)) = asks.next().await else {
                return false;
            };
            match answer {
                Ok(reply) if reply.granted => {
                    granted.insert(id);
                }
                Ok(reply) => {
                    tracing::debug!(voter = id, reason = reply.reason, "pre-vote refused");
                    refused.insert(id);
                }
                Err(error) => {
                    tracing::debug!(voter = id, %error, "pre-vote failed");
                    refused.insert(id);
                }
            }
        }
    }

    /// Runs until the replica shuts down.
    pub async fn run(self) {
        let node_id = self.node_id;
        let timing = self.timing;
        let mut random = Jitter::new(node_id);
        // The random delay is drawn again whenever the vote or its time changes (each
        // new heartbeat, vote or campaign), so no two replicas keep the same timeout.
        let mut epoch: Option<(u64, Option<NodeId>, bool, Option<Instant>)> = None;
        let mut jitter = Duration::ZERO;
        let mut retry: Option<Duration> = None;
        let mut not_before: Option<Instant> = None;
        let mut gaps = Gaps::default();
        let mut last_heartbeat = Instant::now();
        loop {
            tokio::time::sleep(TICK).await;
            let read = self
                .raft
                .with_raft_state(move |state| {
                    let vote = state.vote_ref();
                    let membership = state.membership_state.effective();
                    View {
                        state: state.server_state,
                        term: vote.leader_id().get_term(),
                        voted_for: vote.leader_id().voted_for(),
                        committed: vote.is_committed(),
                        since: state.vote_last_modified(),
                        voters: membership.voter_ids().count(),
                        is_voter: membership.voter_ids().any(|id| id == node_id),
                    }
                })
                .await;
            let Ok(view) = read else {
                // Raft stopped.
                return;
            };
            gaps.observe(node_id, &view);
            if view.state == ServerState::Leader {
                // Heartbeats every `--heartbeat-ms`: openraft's own come only every 1.5
                // AppendEntries timeouts, which is kept long so that a slow follower's
                // answer still counts on a loaded machine.
                if last_heartbeat.elapsed() >= timing.heartbeat {
                    last_heartbeat = Instant::now();
                    if self.raft.trigger().heartbeat().await.is_err() {
                        return;
                    }
                }
                continue;
            }
            let key = (view.term, view.voted_for, view.committed, view.since);
            if epoch != Some(key) {
                epoch = Some(key);
                jitter = random.below(timing.spread);
                retry = None;
                not_before = None;
            }
            let longest_gap = gaps.longest();
            let mut retry_jitter = |range: Duration| *retry.get_or_insert_with(|| random.below(range));
            let Some(mut at) = deadline(
                node_id,
                &view,
                &timing,
                &self.campaigns,
                jitter,
                longest_gap,
                &mut retry_jitter,
            ) else {
                continue;
            };
            if let Some(not_before) = not_before {
                at = at.max(not_before);
            }
            if Instant::now() < at {
                continue;
            }
            let quiet_ms = view.since.map(|since| since.elapsed().as_millis() as u64);
            let asked = Instant::now();
            if !self.pre_vote().await {
                tracing::debug!(
                    node = node_id,
                    term = view.term,
                    quiet_ms,
                    took_ms = asked.elapsed().as_millis() as u64,
                    "no majority of pre-votes; not standing"
                );
                not_before = Some(Instant::now() + timing.lease / 2 + random.below(timing.spread));
                continue;
            }
            // The pre-vote took a round trip: if this replica voted for another
            // candidate or heard from a leader meanwhile, standing now would depose it.
            let current = self
                .raft
                .with_raft_state(|state| {
                    let vote = state.vote_ref();
                    (
                        vote.leader_id().get_term(),
                        vote.leader_id().voted_for(),
                        vote.is_committed(),
                        state.vote_last_modified(),
                    )
                })
                .await;
            match current {
                Err(_) => return,
                Ok(current) if current != key => {
                    tracing::debug!(node = node_id, "the vote changed during the pre-vote; not standing");
                    continue;
                }
                Ok(_) => {}
            }
            tracing::info!(
                node = node_id,
                term = view.term,
                leader_known = view.committed,
                quiet_ms,
                longest_gap_ms = longest_gap.as_millis() as u64,
                pre_vote_ms = asked.elapsed().as_millis() as u64,
                "standing for election"
            );
            if self.raft.trigger().elect().await.is_err() {
                return;
            }
            // Wait for the new vote to show before judging again.
            epoch = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> ElectionTiming {
        ElectionTiming {
            lease: Duration::from_millis(200),
            vote_timeout: Duration::from_millis(199),
            spread: Duration::from_millis(80),
            heartbeat: Duration::from_millis(50),
            append_timeout: Duration::from_millis(150),
        }
    }

    fn view(since: Instant) -> View {
        View {
            state: ServerState::Follower,
            term: 3,
            voted_for: Some(2),
            committed: true,
            since: Some(since),
            voters: 3,
            is_voter: true,
        }
    }

    fn no_retry(_: Duration) -> Duration {
        panic!("no retry expected")
    }

    /// A follower stands once the lease has expired, plus its random delay; a leader
    /// and a learner never do.
    #[test]
    fn a_follower_waits_for_the_lease() {
        let since = Instant::now();
        let campaigns = Campaigns::default();
        let jitter = Duration::from_millis(7);
        let at = deadline(
            1,
            &view(since),
            &timing(),
            &campaigns,
            jitter,
            Duration::ZERO,
            &mut no_retry,
        );
        assert_eq!(at, Some(since + Duration::from_millis(207)));
        let leader = View {
            state: ServerState::Leader,
            ..view(since)
        };
        assert_eq!(
            deadline(1, &leader, &timing(), &campaigns, jitter, Duration::ZERO, &mut no_retry),
            None
        );
        let learner = View {
            is_voter: false,
            ..view(since)
        };
        assert_eq!(
            deadline(
                1,
                &learner,
                &timing(),
                &campaigns,
                jitter,
                Duration::ZERO,
                &mut no_retry
            ),
            None
        );
        let alone = View {
            voters: 1,
            ..view(since)
        };
        let at = deadline(1, &alone, &timing(), &campaigns, jitter, Duration::ZERO, &mut no_retry);
        assert!(at.is_some_and(|at| at <= Instant::now()));
    }

    /// A candidate stands again as soon as every vote request is back (plus a random
    /// delay scaled by the slowest answer), not after a fixed timeout; with a greater
    /// log seen it leaves the field to that voter.
    #[test]
    fn a_candidate_retries_once_every_request_is_back() {
        let since = Instant::now();
        let campaigns = Campaigns::default();
        let candidate = View {
            state: ServerState::Candidate,
            term: 4,
            voted_for: Some(1),
            committed: false,
            ..view(since)
        };
        let jitter = Duration::from_millis(5);
        let first = campaigns.request_started(4);
        let second = campaigns.request_started(4);
        // In flight: the vote timeout bounds the wait.
        assert_eq!(
            deadline(
                1,
                &candidate,
                &timing(),
                &campaigns,
                jitter,
                Duration::ZERO,
                &mut no_retry
            ),
            Some(since + Duration::from_millis(204))
        );
        drop(first);
        drop(second);
        let (_, last, slowest, greater) = campaigns.state(4).expect("campaign");
        assert!(!greater);
        let mut asked = None;
        let at = deadline(
            1,
            &candidate,
            &timing(),
            &campaigns,
            jitter,
            Duration::ZERO,
            &mut |range| {
                asked = Some(range);
                Duration::from_millis(3)
            },
        );
        assert_eq!(at, Some(last.expect("finished") + Duration::from_millis(3)));
        assert_eq!(asked, Some(timing().spread.max(slowest * 3)));

        let mut refused = campaigns.request_started(5);
        refused.saw_greater_log();
        drop(refused);
        let next = View { term: 5, ..candidate };
        assert_eq!(
            deadline(1, &next, &timing(), &campaigns, jitter, Duration::ZERO, &mut no_retry),
            Some(since + Duration::from_millis(199 + 400 + 5))
        );
    }

    /// A replica that voted for another candidate gives it a vote timeout.
    #[test]
    fn a_voter_waits_for_its_candidate() {
        let since = Instant::now();
        let voter = View {
            committed: false,
            voted_for: Some(2),
            ..view(since)
        };
        let at = deadline(
            1,
            &voter,
            &timing(),
            &Campaigns::default(),
            Duration::ZERO,
            Duration::ZERO,
            &mut no_retry,
        );
        assert_eq!(at, Some(since + Duration::from_millis(199)));
    }

    /// A follower that saw its leader's messages arrive far apart waits 1.5 times the
    /// longest silence (a starved machine), up to three leases; idle, the lease.
    #[test]
    fn a_follower_is_patient_after_late_heartbeats() {
        let since = Instant::now();
        let campaigns = Campaigns::default();
        let at = |gap: Duration| {
            deadline(
                1,
                &view(since),
                &timing(),
                &campaigns,
                Duration::ZERO,
                gap,
                &mut no_retry,
            )
        };
        let ms = Duration::from_millis;
        assert_eq!(at(ms(75)), Some(since + Duration::from_millis(200)));
        assert_eq!(at(ms(300)), Some(since + Duration::from_millis(450)));
        assert_eq!(at(ms(5000)), Some(since + Duration::from_millis(600)));

        let mut gaps = Gaps::default();
        let start = Instant::now();
        for (index, offset) in [0u64, 50, 100, 450, 500].iter().enumerate() {
            let heard = View {
                since: Some(start + Duration::from_millis(*offset)),
                ..view(start)
            };
            gaps.observe(1, &heard);
            if index == 2 {
                assert_eq!(gaps.longest(), ms(50));
            }
        }
        assert_eq!(gaps.longest(), ms(350));
        // Another leader: its first message is no silence of the old one.
        gaps.observe(
            1,
            &View {
                term: 4,
                voted_for: Some(3),
                since: Some(start + Duration::from_millis(2000)),
                ..view(start)
            },
        );
        assert_eq!(gaps.longest(), ms(350));
    }

    /// A pre-vote is refused by a leader, by a replica that heard from its leader
    /// within the lease, and to a candidate with a shorter log; granted otherwise.
    #[test]
    fn pre_votes_are_answered_as_votes_would_be() {
        let log = |term: u64, index: u64| Some(LogId::new(openraft::CommittedLeaderId::new(term, 1), index));
        let granted = |reply: PreVoteReply| reply.granted;
        assert!(!granted(pre_vote_answer(
            ServerState::Leader,
            false,
            log(2, 9),
            Ok(log(2, 5))
        )));
        assert!(!granted(pre_vote_answer(
            ServerState::Follower,
            true,
            log(2, 9),
            Ok(log(2, 5))
        )));
        assert!(!granted(pre_vote_answer(
            ServerState::Follower,
            false,
            log(2, 4),
            Ok(log(2, 5))
        )));
        assert!(!granted(pre_vote_answer(
            ServerState::Follower,
            false,
            log(1, 9),
            Ok(log(2, 5))
        )));
        assert!(!granted(pre_vote_answer(
            ServerState::Follower,
            false,
            log(2, 9),
            Err("disk".into())
        )));
        assert!(granted(pre_vote_answer(
            ServerState::Follower,
            false,
            log(2, 5),
            Ok(log(2, 5))
        )));
        assert!(granted(pre_vote_answer(
            ServerState::Candidate,
            false,
            log(3, 1),
            Ok(log(2, 5))
        )));
    }

    /// A pre-vote round is won with a majority of every voter set (both during a
    /// membership change), lost as soon as refusals make that impossible.
    #[test]
    fn pre_votes_need_a_majority_of_every_voter_set() {
        let set = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<NodeId>>();
        let three = vec![vec![1, 2, 3]];
        assert_eq!(pre_vote_outcome(&three, &set(&[1]), &set(&[])), None);
        assert_eq!(pre_vote_outcome(&three, &set(&[1, 3]), &set(&[])), Some(true));
        assert_eq!(pre_vote_outcome(&three, &set(&[1]), &set(&[2])), None);
        assert_eq!(pre_vote_outcome(&three, &set(&[1]), &set(&[2, 3])), Some(false));
        let joint = vec![vec![1, 2, 3], vec![1, 4, 5]];
        assert_eq!(pre_vote_outcome(&joint, &set(&[1, 2]), &set(&[])), None);
        assert_eq!(pre_vote_outcome(&joint, &set(&[1, 2, 4]), &set(&[])), Some(true));
        assert_eq!(pre_vote_outcome(&joint, &set(&[1, 2]), &set(&[4, 5])), Some(false));
    }

    /// The random delays stay in range and differ.
    #[test]
    fn jitter_is_in_range() {
        let mut random = Jitter::new(1);
        let range = Duration::from_millis(80);
        let draws: Vec<Duration> = (0..200).map(|_| random.below(range)).collect();
        assert!(draws.iter().all(|draw| *draw <= range));
        assert!(draws.iter().any(|draw| *draw != draws[0]));
    }
}
