//! The nemeses: faults applied to the cluster on a schedule, each healed before the
//! next quiet period, and all healed at the end. Every start and stop is recorded
//! on the nemesis timeline with the same clock as the history, and in the history
//! itself (`nemesis` entries), which the checkers read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use tokio::sync::watch;

use crate::cluster::{voter_ids, Cluster};
use crate::history::{Extra, NemesisEvent, NemesisNote, NemesisPhase, OpFn, OpType};
use crate::net::Host;
use crate::workload::{Event, Recorder};

/// The history's process id of nemesis events.
pub const NEMESIS_PROCESS: u64 = 9_000_000_000;
/// The history's process id of the full-disk nemesis' probe writes.
pub const PROBE_PROCESS: u64 = 9_000_000_001;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// SIGKILL one node, the leader, or a minority; restart at heal.
    Kill,
    /// SIGSTOP one node or the leader; SIGCONT at heal.
    Pause,
    /// Cut links: halves, isolated leader, bridge, majorities ring (needs root).
    Partition,
    /// Delay, loss and reordering on the links (needs root).
    Netem,
    /// Remove a node from the membership, wipe it, re-add it with `--join` at heal.
    Membership,
    /// SIGKILL one worker, or all workers but one; restart at heal.
    KillWorker,
    /// SIGSTOP one worker; SIGCONT at heal.
    PauseWorker,
    /// Cut workers from the schedulers and from each other (needs root).
    PartitionWorker,
    /// Fill one worker's data dir (its own tmpfs) until the disk is full; empty it
    /// at heal (needs root).
    FullDisk,
    /// Stop every process, schedulers and workers (SIGKILL or SIGTERM); start them
    /// all at heal.
    RestartAll,
}

/// Every fault, in the order `all` lists them.
pub const ALL_FAULTS: [Fault; 10] = [
    Fault::Kill,
    Fault::Pause,
    Fault::Partition,
    Fault::Netem,
    Fault::Membership,
    Fault::KillWorker,
    Fault::PauseWorker,
    Fault::PartitionWorker,
    Fault::FullDisk,
    Fault::RestartAll,
];

/// The names of the faults that touch workers (processes, links or disks): in a
/// run with none of them every task result stays on a live worker.
pub const WORKER_FAULTS: [&str; 5] = [
    "kill-worker",
    "pause-worker",
    "partition-worker",
    "full-disk",
    "restart-all",
];

impl Fault {
    /// The name used in flags and the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Netem => "netem",
            Fault::Membership => "membership",
            Fault::KillWorker => "kill-worker",
            Fault::PauseWorker => "pause-worker",
            Fault::PartitionWorker => "partition-worker",
            Fault::FullDisk => "full-disk",
            Fault::RestartAll => "restart-all",
        }
    }

    /// Whether the fault needs the processes in network namespaces.
    pub fn needs_netns(self) -> bool {
        matches!(self, Fault::Partition | Fault::Netem | Fault::PartitionWorker)
    }

    /// Whether the fault needs worker processes.
    pub fn needs_workers(self) -> bool {
        matches!(
            self,
            Fault::KillWorker | Fault::PauseWorker | Fault::PartitionWorker | Fault::FullDisk
        )
    }

    /// Whether the fault needs each worker's data dir on its own filesystem (root).
    pub fn needs_worker_disks(self) -> bool {
        matches!(self, Fault::FullDisk)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(text: &str) -> Result<Fault, String> {
        ALL_FAULTS
            .iter()
            .copied()
            .find(|fault| fault.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown nemesis `{text}` (kill, pause, partition, netem, membership, kill-worker, pause-worker, \
                     partition-worker, full-disk, restart-all, all, none)"
                )
            })
    }
}

/// Parses `--nemesis`: a comma-separated list of faults, `all` or `none`.
pub fn parse_faults(text: &str) -> Result<Vec<Fault>, String> {
    let mut faults = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        match part {
            "all" => faults.extend(ALL_FAULTS),
            "none" => {}
            other => {
                faults.insert(other.parse::<Fault>()?);
            }
        }
    }
    Ok(faults.into_iter().collect())
}

/// The nemesis timeline, shared by the nemesis and the runner.
pub struct Timeline {
    start: Instant,
    events: Mutex<Vec<NemesisEvent>>,
    /// The history, which gets every event too.
    recorder: Option<Arc<Recorder>>,
}

impl Timeline {
    /// A timeline whose clock starts at `start` (the history's).
    pub fn new(start: Instant) -> Timeline {
        Timeline {
            start,
            events: Mutex::new(Vec::new()),
            recorder: None,
        }
    }

    /// A timeline that also records every event in `recorder`'s history.
    pub fn with_recorder(recorder: Arc<Recorder>) -> Timeline {
        Timeline {
            start: recorder.start(),
            events: Mutex::new(Vec::new()),
            recorder: Some(recorder),
        }
    }

    /// The history, if events go to one.
    pub fn recorder(&self) -> Option<&Arc<Recorder>> {
        self.recorder.as_ref()
    }

    /// Records an event and prints it.
    pub fn record(&self, phase: NemesisPhase, fault: &str, detail: impl Into<String>) {
        self.record_hosts(phase, fault, detail, &[]);
    }

    /// Records an event that touched `hosts`, and prints it.
    pub fn record_hosts(&self, phase: NemesisPhase, fault: &str, detail: impl Into<String>, hosts: &[Host]) {
        let detail = detail.into();
        if let Some(recorder) = &self.recorder {
            recorder.record(Event {
                process: NEMESIS_PROCESS,
                kind: OpType::Info,
                f: OpFn::Nemesis,
                key: Some(fault.to_string()),
                value: None,
                names: None,
                error: None,
                is_final: false,
                extra: Extra {
                    nemesis: Some(NemesisNote {
                        phase,
                        detail: detail.clone(),
                        hosts: hosts.iter().map(Host::to_string).collect(),
                    }),
                    ..Extra::default()
                },
            });
        }
        let time_ns = self.start.elapsed().as_nanos() as u64;
        eprintln!(
            "[{:>7.2}s] nemesis {:<5} {:<10} {detail}",
            time_ns as f64 / 1e9,
            format!("{phase:?}").to_lowercase(),
            fault
        );
        if let Ok(mut events) = self.events.lock() {
            events.push(NemesisEvent {
                time_ns,
                phase,
                fault: fault.to_string(),
                detail,
            });
        }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<NemesisEvent> {
        self.events.lock().map(|events| events.clone()).unwrap_or_default()
    }
}

/// A fault in force, and what heals it.
#[derive(Debug)]
enum Active {
    Killed(Fault, Vec<Host>),
    Paused(Fault, Vec<Host>),
    Partitioned(Fault),
    Degraded,
    Removed(u64),
    DiskFull(u64),
    Restarted,
}

impl Active {
    fn fault(&self) -> Fault {
        match self {
            Active::Killed(fault, _) | Active::Paused(fault, _) | Active::Partitioned(fault) => *fault,
            Active::Degraded => Fault::Netem,
            Active::Removed(_) => Fault::Membership,
            Active::DiskFull(_) => Fault::FullDisk,
            Active::Restarted => Fault::RestartAll,
        }
    }
}

/// A partition shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    /// A random minority and majority.
    Halves,
    /// The leader alone.
    Leader,
    /// Two sides joined by one node that hears both.
    Bridge,
    /// Each node hears only its ring neighbours (5+ nodes; else halves).
    Ring,
}

/// Every shape.
pub const ALL_SHAPES: [Shape; 4] = [Shape::Halves, Shape::Leader, Shape::Bridge, Shape::Ring];

/// Parses `--partition-shapes`: halves, leader, bridge, ring, all.
pub fn parse_shapes(text: &str) -> Result<Vec<Shape>, String> {
    let mut shapes = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        match part {
            "all" => shapes.extend(ALL_SHAPES),
            "halves" => {
                shapes.insert(Shape::Halves);
            }
            "leader" => {
                shapes.insert(Shape::Leader);
            }
            "bridge" => {
                shapes.insert(Shape::Bridge);
            }
            "ring" => {
                shapes.insert(Shape::Ring);
            }
            other => {
                return Err(format!(
                    "unknown partition shape `{other}` (halves, leader, bridge, ring, all)"
                ))
            }
        }
    }
    if shapes.is_empty() {
        return Err("--partition-shapes is empty".to_string());
    }
    Ok(shapes.into_iter().collect())
}

/// The schedule.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// The faults to choose from (empty: no faults).
    pub faults: Vec<Fault>,
    /// The partition shapes to choose from.
    pub shapes: Vec<Shape>,
    /// The mean length of a quiet period and of a fault.
    pub interval: Duration,
    /// The random seed.
    pub seed: u64,
    /// Never two faults at once.
    pub one_at_a_time: bool,
}

fn names(ids: &[u64]) -> String {
    let names: Vec<String> = ids.iter().map(|id| format!("n{id}")).collect();
    names.join(",")
}

fn host_names(hosts: &[Host]) -> String {
    let names: Vec<String> = hosts.iter().map(Host::to_string).collect();
    names.join(",")
}

/// Runs the schedule until `stop` turns true, then heals what is in force.
pub async fn run(
    config: NemesisConfig,
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    timeline: Arc<Timeline>,
    mut stop: watch::Receiver<bool>,
) {
    use rand::SeedableRng;
    let mut rng = StdRng::seed_from_u64(config.seed);
    if config.faults.is_empty() {
        return;
    }
    let half = config.interval / 2;
    loop {
        let quiet = half + config.interval.mul_f64(rng.random::<f64>() * 0.5);
        if sleep_or_stop(quiet, &mut stop).await {
            return;
        }
        let combine = !config.one_at_a_time && config.faults.len() > 1 && rng.random_bool(0.3);
        let mut chosen: Vec<Fault> = config.faults.clone();
        chosen.shuffle(&mut rng);
        // One partition at a time: a second would replace the first's rules.
        if let Some(first) = chosen
            .iter()
            .position(|f| matches!(f, Fault::Partition | Fault::PartitionWorker))
        {
            let mut position = 0;
            chosen.retain(|f| {
                position += 1;
                !matches!(f, Fault::Partition | Fault::PartitionWorker) || position == first + 1
            });
        }
        chosen.truncate(if combine { 2 } else { 1 });
        let mut active = Vec::new();
        for fault in chosen {
            let mut cluster = cluster.lock().await;
            if *stop.borrow() {
                // The run ended while the lock was taken: no new fault.
                break;
            }
            match start_fault(fault, &config.shapes, &mut cluster, &timeline, &mut rng).await {
                Ok(Some(fault)) => active.push(fault),
                Ok(None) => {}
                Err(error) => timeline.record(NemesisPhase::Info, fault.as_str(), format!("not applied: {error:#}")),
            }
        }
        let length = half + config.interval.mul_f64(rng.random::<f64>());
        let stopped = sleep_or_stop(length, &mut stop).await;
        for fault in active.into_iter().rev() {
            let mut cluster = cluster.lock().await;
            heal(fault, &mut cluster, &timeline).await;
        }
        if stopped {
            return;
        }
    }
}

/// Sleeps; true when `stop` turned true first.
async fn sleep_or_stop(length: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(length) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn start_fault(
    fault: Fault,
    shapes: &[Shape],
    cluster: &mut Cluster,
    timeline: &Timeline,
    rng: &mut StdRng,
) -> anyhow::Result<Option<Active>> {
    let ids = cluster.ids();
    let worker_ids = cluster.worker_ids();
    let leader = cluster.leader().await;
    let one = *ids.choose(rng).ok_or_else(|| anyhow::anyhow!("no nodes"))?;
    let one_worker = worker_ids.choose(rng).copied();
    let no_workers = || anyhow::anyhow!("{fault} needs workers (--workers)");
    match fault {
        Fault::Kill => {
            let (what, targets) = match (rng.random_range(0..3), leader) {
                (0, Some(leader)) => ("the leader", vec![leader]),
                (1, _) => {
                    let mut shuffled = ids.clone();
                    shuffled.shuffle(rng);
                    shuffled.truncate((ids.len() - 1) / 2);
                    ("a minority", shuffled)
                }
                _ => ("one node", vec![one]),
            };
            let hosts: Vec<Host> = targets.iter().map(|id| Host::Scheduler(*id)).collect();
            for host in &hosts {
                cluster.kill_host(*host)?;
            }
            timeline.record_hosts(
                NemesisPhase::Start,
                "kill",
                format!("SIGKILL {what}: {}", names(&targets)),
                &hosts,
            );
            Ok(Some(Active::Killed(fault, hosts)))
        }
        Fault::KillWorker => {
            let mut targets = worker_ids.clone();
            targets.shuffle(rng);
            let what = if worker_ids.len() >= 3 && rng.random_bool(0.3) {
                targets.truncate(worker_ids.len() - 1);
                "every worker but one"
            } else {
                targets.truncate(1);
                "one worker"
            };
            if targets.is_empty() {
                return Err(no_workers());
            }
            let hosts: Vec<Host> = targets.iter().map(|id| Host::Worker(*id)).collect();
            for host in &hosts {
                cluster.kill_host(*host)?;
            }
            timeline.record_hosts(
                NemesisPhase::Start,
                "kill-worker",
                format!("SIGKILL {what}: {}", host_names(&hosts)),
                &hosts,
            );
            Ok(Some(Active::Killed(fault, hosts)))
        }
        Fault::Pause => {
            let (what, target) = match leader {
                Some(leader) if rng.random_bool(0.5) => ("the leader", leader),
                _ => ("one node", one),
            };
            let host = Host::Scheduler(target);
            cluster.pause_host(host)?;
            timeline.record_hosts(
                NemesisPhase::Start,
                "pause",
                format!("SIGSTOP {what}: n{target}"),
                &[host],
            );
            Ok(Some(Active::Paused(fault, vec![host])))
        }
        Fault::PauseWorker => {
            let host = Host::Worker(one_worker.ok_or_else(no_workers)?);
            cluster.pause_host(host)?;
            timeline.record_hosts(
                NemesisPhase::Start,
                "pause-worker",
                format!("SIGSTOP one worker: {host}"),
                &[host],
            );
            Ok(Some(Active::Paused(fault, vec![host])))
        }
        Fault::Partition => {
            let network = cluster
                .network
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("partitions need network namespaces (run as root)"))?;
            let shape = *shapes.choose(rng).unwrap_or(&Shape::Halves);
            let (what, grudge) = partition_plan(shape, &ids, leader, rng);
            let grudge = schedulers_only(&grudge);
            tokio::task::block_in_place(|| network.partition(&grudge))?;
            let hosts: Vec<Host> = grudge.keys().copied().collect();
            timeline.record_hosts(
                NemesisPhase::Start,
                "partition",
                format!("{what}; {}", describe_grudge(&grudge)),
                &hosts,
            );
            Ok(Some(Active::Partitioned(fault)))
        }
        Fault::PartitionWorker => {
            let network = cluster
                .network
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("partitions need network namespaces (run as root)"))?;
            if worker_ids.is_empty() {
                return Err(no_workers());
            }
            let (what, grudge) = worker_partition_plan(&ids, &worker_ids, leader, rng);
            tokio::task::block_in_place(|| network.partition(&grudge))?;
            let hosts: Vec<Host> = grudge.keys().copied().collect();
            timeline.record_hosts(
                NemesisPhase::Start,
                "partition-worker",
                format!("{what}; {}", describe_grudge(&grudge)),
                &hosts,
            );
            Ok(Some(Active::Partitioned(fault)))
        }
        Fault::Netem => {
            let network = cluster
                .network
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("netem needs network namespaces (run as root)"))?;
            let delay_ms = rng.random_range(20..=120);
            let loss = rng.random_range(1..=10);
            let hosts: Vec<Host> = ids.iter().map(|id| Host::Scheduler(*id)).collect();
            let detail = tokio::task::block_in_place(|| network.degrade(&hosts, delay_ms, loss))?;
            timeline.record_hosts(
                NemesisPhase::Start,
                "netem",
                format!("every scheduler's link: {detail}"),
                &hosts,
            );
            Ok(Some(Active::Degraded))
        }
        Fault::Membership => {
            let client = cluster.remove_node_client().await?;
            client
                .remove_node(one)
                .await
                .map_err(|error| anyhow::anyhow!("remove n{one}: {error}"))?;
            cluster.kill(one)?;
            cluster.wipe(one)?;
            timeline.record_hosts(
                NemesisPhase::Start,
                "membership",
                format!("removed n{one} from the membership, stopped it and wiped its data"),
                &[Host::Scheduler(one)],
            );
            Ok(Some(Active::Removed(one)))
        }
        Fault::FullDisk => {
            if !cluster.has_worker_disks() {
                anyhow::bail!("full-disk needs each worker's data dir on its own tmpfs (run as root)");
            }
            // A worker that runs and answers, so that the probe hears the disk's error.
            let mut candidates = Vec::new();
            for id in &worker_ids {
                if cluster.is_host_running(Host::Worker(*id)) && !cluster.is_paused(Host::Worker(*id)) {
                    candidates.push(*id);
                }
            }
            let id = *candidates
                .choose(rng)
                .ok_or_else(|| anyhow::anyhow!("no running worker to fill the disk of"))?;
            let host = Host::Worker(id);
            let (written, available) = tokio::task::block_in_place(|| cluster.fill_disk(id))?;
            timeline.record_hosts(
                NemesisPhase::Start,
                "full-disk",
                format!(
                    "filled {host}'s data dir: {:.1} MiB written, {available} bytes left",
                    written as f64 / (1 << 20) as f64
                ),
                &[host],
            );
            let addr = cluster.worker_addr(id);
            probe(timeline, host, &addr, ProbeKind::Full).await;
            Ok(Some(Active::DiskFull(id)))
        }
        Fault::RestartAll => {
            let hosts = cluster.hosts();
            let graceful = rng.random_bool(0.5);
            if graceful {
                // Recorded first: stopping takes up to 5 s per process.
                timeline.record_hosts(
                    NemesisPhase::Start,
                    "restart-all",
                    format!("SIGTERM every process: {}", host_names(&hosts)),
                    &hosts,
                );
                let stubborn = cluster.terminate_hosts(&hosts, Duration::from_secs(5)).await?;
                if !stubborn.is_empty() {
                    timeline.record_hosts(
                        NemesisPhase::Info,
                        "restart-all",
                        format!(
                            "{} did not exit within 5 s of SIGTERM and got SIGKILL",
                            host_names(&stubborn)
                        ),
                        &stubborn,
                    );
                }
            } else {
                for host in &hosts {
                    cluster.kill_host(*host)?;
                }
                timeline.record_hosts(
                    NemesisPhase::Start,
                    "restart-all",
                    format!("SIGKILL every process: {}", host_names(&hosts)),
                    &hosts,
                );
            }
            Ok(Some(Active::Restarted))
        }
    }
}

/// A scheduler partition's grudge over hosts.
fn schedulers_only(grudge: &BTreeMap<u64, BTreeSet<u64>>) -> BTreeMap<Host, BTreeSet<Host>> {
    grudge
        .iter()
        .map(|(node, enemies)| {
            (
                Host::Scheduler(*node),
                enemies.iter().map(|enemy| Host::Scheduler(*enemy)).collect(),
            )
        })
        .collect()
}

/// Symmetric cuts between every host of `left` and every host of `right`.
fn cut_hosts(left: &[Host], right: &[Host]) -> BTreeMap<Host, BTreeSet<Host>> {
    let mut grudge: BTreeMap<Host, BTreeSet<Host>> = BTreeMap::new();
    for a in left {
        for b in right {
            if a != b {
                grudge.entry(*a).or_default().insert(*b);
                grudge.entry(*b).or_default().insert(*a);
            }
        }
    }
    grudge
}

/// A partition that cuts workers: one worker from everyone; the workers from each
/// other; one worker from the leader only; or random halves of every process (a
/// minority of schedulers with some workers, the rest with the others).
fn worker_partition_plan(
    ids: &[u64],
    worker_ids: &[u64],
    leader: Option<u64>,
    rng: &mut StdRng,
) -> (String, BTreeMap<Host, BTreeSet<Host>>) {
    let schedulers: Vec<Host> = ids.iter().map(|id| Host::Scheduler(*id)).collect();
    let workers: Vec<Host> = worker_ids.iter().map(|id| Host::Worker(*id)).collect();
    let everyone: Vec<Host> = schedulers.iter().chain(&workers).copied().collect();
    let one = *workers.choose(rng).unwrap_or(&Host::Worker(1));
    match (rng.random_range(0..4), leader) {
        (1, _) if workers.len() >= 2 => {
            let mut grudge: BTreeMap<Host, BTreeSet<Host>> = BTreeMap::new();
            for a in &workers {
                for b in &workers {
                    if a != b {
                        grudge.entry(*a).or_default().insert(*b);
                    }
                }
            }
            (format!("workers cut from each other: {}", host_names(&workers)), grudge)
        }
        (2, Some(leader)) => (
            format!("{one} cut from the leader n{leader} only"),
            cut_hosts(&[one], &[Host::Scheduler(leader)]),
        ),
        (3, _) => {
            let mut shuffled_schedulers = schedulers.clone();
            shuffled_schedulers.shuffle(rng);
            let mut shuffled_workers = workers.clone();
            shuffled_workers.shuffle(rng);
            let minority = schedulers.len() / 2;
            let some_workers = rng.random_range(0..=workers.len());
            let left: Vec<Host> = shuffled_schedulers[..minority]
                .iter()
                .chain(&shuffled_workers[..some_workers])
                .copied()
                .collect();
            let right: Vec<Host> = everyone.iter().copied().filter(|host| !left.contains(host)).collect();
            if left.is_empty() || right.is_empty() {
                let rest: Vec<Host> = everyone.iter().copied().filter(|host| *host != one).collect();
                return (format!("{one} isolated from every process"), cut_hosts(&[one], &rest));
            }
            (
                format!(
                    "halves of every process: {} | {}",
                    host_names(&left),
                    host_names(&right)
                ),
                cut_hosts(&left, &right),
            )
        }
        _ => {
            let rest: Vec<Host> = everyone.iter().copied().filter(|host| *host != one).collect();
            (format!("{one} isolated from every process"), cut_hosts(&[one], &rest))
        }
    }
}

/// What a probe write to a worker expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// The disk is full: the write must be refused with an error naming the disk.
    Full,
    /// The disk was emptied: the write must be accepted again (retried up to 30 s
    /// while the worker lifts its pause).
    Healed,
}

/// How long a probe write may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a worker may take to accept writes again after its disk is emptied.
const UNPAUSE_LIMIT: Duration = Duration::from_secs(30);

/// Writes one small chunk straight to the worker at `addr` (Flight `DoPut`, no
/// copies) and records it in the history as a `probe` of `host`.
async fn probe(timeline: &Timeline, host: Host, addr: &str, kind: ProbeKind) {
    let Some(recorder) = timeline.recorder() else {
        return;
    };
    let expectation = match kind {
        ProbeKind::Full => "disk-full",
        ProbeKind::Healed => "disk-healed",
    };
    let event = |kind: OpType, error: Option<String>| Event {
        process: PROBE_PROCESS,
        kind,
        f: OpFn::Probe,
        key: Some(host.to_string()),
        value: Some(expectation.to_string()),
        names: None,
        error,
        is_final: false,
        extra: Extra::default(),
    };
    recorder.record(event(OpType::Invoke, None));
    let spec = crate::history::DataSpec {
        seed: rand::random(),
        chunks: 1,
        rows_per_chunk: 2000,
        plus: 0,
        replicas: 1,
        source: None,
    };
    let Some(batch) = crate::content::batches(&spec)
        .ok()
        .and_then(|mut batches| batches.pop())
    else {
        recorder.record(event(OpType::Fail, Some("cannot build the probe chunk".to_string())));
        return;
    };
    let deadline = Instant::now() + UNPAUSE_LIMIT;
    loop {
        let key = format!("jepsen-probe-{:016x}", rand::random::<u64>());
        let written = tokio::time::timeout(
            PROBE_TIMEOUT,
            cairn_client::put_chunk(addr, &key, batch.clone(), Vec::new()),
        )
        .await;
        let error = match written {
            Ok(Ok(_)) => {
                recorder.record(event(OpType::Ok, None));
                return;
            }
            Ok(Err(error)) => error.message,
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        };
        if kind == ProbeKind::Full || Instant::now() > deadline {
            recorder.record(event(OpType::Fail, Some(error)));
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A partition shape: node → the nodes it drops.
fn partition_plan(
    shape: Shape,
    ids: &[u64],
    leader: Option<u64>,
    rng: &mut StdRng,
) -> (String, BTreeMap<u64, BTreeSet<u64>>) {
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(rng);
    let cut = |left: &[u64], right: &[u64]| {
        let mut grudge: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for a in left {
            for b in right {
                grudge.entry(*a).or_default().insert(*b);
                grudge.entry(*b).or_default().insert(*a);
            }
        }
        grudge
    };
    match shape {
        Shape::Leader if leader.is_some() => {
            let leader = leader.unwrap_or_default();
            let rest: Vec<u64> = ids.iter().copied().filter(|id| *id != leader).collect();
            (format!("isolate the leader n{leader}"), cut(&[leader], &rest))
        }
        Shape::Bridge if ids.len() >= 3 => {
            let left_len = (ids.len() - 1) / 2;
            let (left, rest) = shuffled.split_at(left_len);
            let (bridge, right) = rest.split_at(1);
            (
                format!("bridge through n{}: {} | {}", bridge[0], names(left), names(right)),
                cut(left, right),
            )
        }
        Shape::Ring if ids.len() >= 5 => {
            // Majorities ring: each node hears its ring neighbours only, so every
            // node sees a majority and no two see the same one.
            let n = shuffled.len();
            let reach = (n / 2).div_ceil(2);
            let mut grudge: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
            for (i, a) in shuffled.iter().enumerate() {
                for (j, b) in shuffled.iter().enumerate() {
                    let distance = (i as isize - j as isize).unsigned_abs();
                    let distance = distance.min(n - distance);
                    if distance > reach {
                        grudge.entry(*a).or_default().insert(*b);
                    }
                }
            }
            (format!("majorities ring {}", names(&shuffled)), grudge)
        }
        _ => {
            let (minority, majority) = shuffled.split_at(ids.len() / 2);
            (
                format!("halves: minority {} | majority {}", names(minority), names(majority)),
                cut(minority, majority),
            )
        }
    }
}

fn describe_grudge(grudge: &BTreeMap<Host, BTreeSet<Host>>) -> String {
    let parts: Vec<String> = grudge
        .iter()
        .map(|(node, enemies)| {
            format!(
                "{node} drops {}",
                host_names(&enemies.iter().copied().collect::<Vec<_>>())
            )
        })
        .collect();
    parts.join("; ")
}

async fn heal(active: Active, cluster: &mut Cluster, timeline: &Timeline) {
    let fault = active.fault();
    let mut hosts: Vec<Host> = Vec::new();
    let result: anyhow::Result<String> = async {
        match &active {
            Active::Killed(_, killed) => {
                for host in killed {
                    cluster.start_host(*host)?;
                }
                hosts.clone_from(killed);
                Ok(format!("restarted {}", host_names(killed)))
            }
            Active::Paused(_, paused) => {
                for host in paused {
                    cluster.resume_host(*host)?;
                }
                hosts.clone_from(paused);
                Ok(format!("SIGCONT {}", host_names(paused)))
            }
            Active::Partitioned(_) => {
                if let Some(network) = &cluster.network {
                    tokio::task::block_in_place(|| network.heal_partition())?;
                }
                Ok("links restored".to_string())
            }
            Active::Degraded => {
                if let Some(network) = &cluster.network {
                    tokio::task::block_in_place(|| network.heal_links())?;
                }
                Ok("links restored".to_string())
            }
            Active::Removed(id) => {
                readd(cluster, *id).await?;
                hosts.push(Host::Scheduler(*id));
                Ok(format!("n{id} restarted with --join and added back"))
            }
            Active::DiskFull(id) => {
                let host = Host::Worker(*id);
                tokio::task::block_in_place(|| cluster.unfill_disk(*id))?;
                hosts.push(host);
                let addr = cluster.worker_addr(*id);
                // Recorded after the stop, so the checker sees the disk healed first.
                Ok(format!(
                    "removed the fill file from {host}'s data dir; probing until it accepts writes ({addr})"
                ))
            }
            Active::Restarted => {
                let all = cluster.hosts();
                for host in &all {
                    if matches!(host, Host::Scheduler(_)) {
                        cluster.start_host(*host)?;
                    }
                }
                for host in &all {
                    if host.is_worker() {
                        cluster.start_host(*host)?;
                    }
                }
                hosts.clone_from(&all);
                Ok(format!("started every process: {}", host_names(&all)))
            }
        }
    }
    .await;
    match result {
        Ok(detail) => timeline.record_hosts(NemesisPhase::Stop, fault.as_str(), detail, &hosts),
        Err(error) => timeline.record_hosts(
            NemesisPhase::Stop,
            fault.as_str(),
            format!("heal failed: {error:#}"),
            &hosts,
        ),
    }
    if let Active::DiskFull(id) = active {
        let addr = cluster.worker_addr(id);
        probe(timeline, Host::Worker(id), &addr, ProbeKind::Healed).await;
    }
}

/// Starts node `id` empty with `--join` and adds it back, retrying for 30 s.
pub async fn readd(cluster: &mut Cluster, id: u64) -> anyhow::Result<()> {
    cluster.start(id, true)?;
    let client = cluster.add_node_client().await?;
    let addr = cluster.addr(id);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.add_node(id, &addr).await {
            Ok(_) => return Ok(()),
            Err(error) if error.to_string().contains("already a voting member") => return Ok(()),
            Err(error) if Instant::now() > deadline => anyhow::bail!("cannot add n{id} back: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Heals everything at the end of a run: resumes and restarts every process,
/// empties full disks, restores every link, and adds back any node that is not a
/// voter.
pub async fn heal_all(cluster: &mut Cluster, timeline: &Timeline) {
    if let Some(network) = &cluster.network {
        let result = tokio::task::block_in_place(|| network.heal_partition().and_then(|()| network.heal_links()));
        if let Err(error) = result {
            timeline.record(NemesisPhase::Info, "heal", format!("cannot restore links: {error:#}"));
        }
    }
    if let Err(error) = cluster.heal_processes() {
        timeline.record(NemesisPhase::Info, "heal", format!("cannot restart nodes: {error:#}"));
    }
    // A node whose removal went through but whose re-add did not is empty: add it.
    let voters: BTreeSet<u64> = cluster
        .leader_status()
        .await
        .map(|status| voter_ids(&status))
        .unwrap_or_default();
    if !voters.is_empty() {
        for id in cluster.ids() {
            if !voters.contains(&id) {
                if let Err(error) = readd(cluster, id).await {
                    timeline.record(NemesisPhase::Info, "heal", format!("{error:#}"));
                }
            }
        }
    }
    timeline.record(
        NemesisPhase::Info,
        "heal",
        "final heal: every process running, every disk emptied, every link restored",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_nemesis_lists() {
        assert_eq!(parse_faults("kill,pause"), Ok(vec![Fault::Kill, Fault::Pause]));
        assert_eq!(parse_faults("all").map(|faults| faults.len()), Ok(10));
        assert_eq!(
            parse_faults("kill-worker,full-disk,restart-all"),
            Ok(vec![Fault::KillWorker, Fault::FullDisk, Fault::RestartAll])
        );
        for fault in ALL_FAULTS {
            assert_eq!(fault.as_str().parse::<Fault>(), Ok(fault));
            let touches_workers = WORKER_FAULTS.contains(&fault.as_str());
            assert_eq!(
                touches_workers,
                fault.needs_workers() || fault == Fault::RestartAll,
                "{fault}"
            );
        }
        assert_eq!(parse_faults("none"), Ok(vec![]));
        assert!(parse_faults("kil").is_err());
    }

    #[test]
    fn partitions_are_symmetric_and_leave_no_node_alone_with_everyone_cut() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in [3u64, 5] {
            let ids: Vec<u64> = (1..=n).collect();
            for round in 0..50 {
                let (what, grudge) = partition_plan(ALL_SHAPES[round % 4], &ids, Some(1), &mut rng);
                assert!(!grudge.is_empty(), "{what}");
                for (a, enemies) in &grudge {
                    assert!(!enemies.contains(a), "{what}: n{a} drops itself");
                    for b in enemies {
                        assert!(
                            grudge.get(b).is_some_and(|theirs| theirs.contains(a)),
                            "{what}: asymmetric"
                        );
                    }
                }
                if what.starts_with("majorities ring") {
                    for enemies in grudge.values() {
                        assert!(
                            n - enemies.len() as u64 > n / 2,
                            "{what}: a node does not see a majority"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn worker_partitions_cut_workers_and_are_symmetric() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut shapes = BTreeSet::new();
        for round in 0..200 {
            let (what, grudge) = worker_partition_plan(&[1, 2, 3], &[1, 2, 3], Some(2), &mut rng);
            let shape = ["isolated", "each other", "leader", "halves"]
                .into_iter()
                .find(|word| what.contains(word))
                .unwrap_or("unknown");
            shapes.insert(shape);
            assert!(!grudge.is_empty(), "{what}");
            assert!(
                grudge
                    .iter()
                    .any(|(a, enemies)| a.is_worker() || enemies.iter().any(|b| b.is_worker())),
                "round {round}: {what} cuts no worker"
            );
            for (a, enemies) in &grudge {
                assert!(!enemies.contains(a), "{what}: {a} drops itself");
                for b in enemies {
                    assert!(
                        grudge.get(b).is_some_and(|theirs| theirs.contains(a)),
                        "{what}: asymmetric"
                    );
                }
            }
        }
        assert!(shapes.len() >= 4, "{shapes:?}");
    }
}
