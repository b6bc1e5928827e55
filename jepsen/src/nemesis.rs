//! The nemeses: faults applied to the cluster on a schedule, each healed before the
//! next quiet period, and all healed at the end. Every start and stop is recorded
//! on the nemesis timeline with the same clock as the history.

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
use crate::history::{NemesisEvent, NemesisPhase};

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
}

/// Every fault, in the order `all` lists them.
pub const ALL_FAULTS: [Fault; 5] = [
    Fault::Kill,
    Fault::Pause,
    Fault::Partition,
    Fault::Netem,
    Fault::Membership,
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
        }
    }

    /// Whether the fault needs the nodes in network namespaces.
    pub fn needs_netns(self) -> bool {
        matches!(self, Fault::Partition | Fault::Netem)
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
            .ok_or_else(|| format!("unknown nemesis `{text}` (kill, pause, partition, netem, membership, all, none)"))
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
}

impl Timeline {
    /// A timeline whose clock starts at `start` (the history's).
    pub fn new(start: Instant) -> Timeline {
        Timeline {
            start,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Records an event and prints it.
    pub fn record(&self, phase: NemesisPhase, fault: &str, detail: impl Into<String>) {
        let detail = detail.into();
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
    Killed(Vec<u64>),
    Paused(Vec<u64>),
    Partitioned,
    Degraded,
    Removed(u64),
}

impl Active {
    fn fault(&self) -> Fault {
        match self {
            Active::Killed(_) => Fault::Kill,
            Active::Paused(_) => Fault::Pause,
            Active::Partitioned => Fault::Partition,
            Active::Degraded => Fault::Netem,
            Active::Removed(_) => Fault::Membership,
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
}

fn names(ids: &[u64]) -> String {
    let names: Vec<String> = ids.iter().map(|id| format!("n{id}")).collect();
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
        let combine = config.faults.len() > 1 && rng.random_bool(0.3);
        let mut chosen: Vec<Fault> = config.faults.clone();
        chosen.shuffle(&mut rng);
        chosen.truncate(if combine { 2 } else { 1 });
        let mut active = Vec::new();
        for fault in chosen {
            let mut cluster = cluster.lock().await;
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
    let leader = cluster.leader().await;
    let one = *ids.choose(rng).ok_or_else(|| anyhow::anyhow!("no nodes"))?;
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
            for id in &targets {
                cluster.kill(*id)?;
            }
            timeline.record(
                NemesisPhase::Start,
                "kill",
                format!("SIGKILL {what}: {}", names(&targets)),
            );
            Ok(Some(Active::Killed(targets)))
        }
        Fault::Pause => {
            let (what, target) = match leader {
                Some(leader) if rng.random_bool(0.5) => ("the leader", leader),
                _ => ("one node", one),
            };
            cluster.pause(target)?;
            timeline.record(NemesisPhase::Start, "pause", format!("SIGSTOP {what}: n{target}"));
            Ok(Some(Active::Paused(vec![target])))
        }
        Fault::Partition => {
            let network = cluster
                .network
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("partitions need network namespaces (run as root)"))?;
            let shape = *shapes.choose(rng).unwrap_or(&Shape::Halves);
            let (what, grudge) = partition_plan(shape, &ids, leader, rng);
            tokio::task::block_in_place(|| network.partition(&grudge))?;
            timeline.record(
                NemesisPhase::Start,
                "partition",
                format!("{what}; {}", describe_grudge(&grudge)),
            );
            Ok(Some(Active::Partitioned))
        }
        Fault::Netem => {
            let network = cluster
                .network
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("netem needs network namespaces (run as root)"))?;
            let delay_ms = rng.random_range(20..=120);
            let loss = rng.random_range(1..=10);
            let detail = tokio::task::block_in_place(|| network.degrade(&ids, delay_ms, loss))?;
            timeline.record(NemesisPhase::Start, "netem", format!("all links: {detail}"));
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
            timeline.record(
                NemesisPhase::Start,
                "membership",
                format!("removed n{one} from the membership, stopped it and wiped its data"),
            );
            Ok(Some(Active::Removed(one)))
        }
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

fn describe_grudge(grudge: &BTreeMap<u64, BTreeSet<u64>>) -> String {
    let parts: Vec<String> = grudge
        .iter()
        .map(|(node, enemies)| format!("n{node} drops {}", names(&enemies.iter().copied().collect::<Vec<_>>())))
        .collect();
    parts.join("; ")
}

async fn heal(active: Active, cluster: &mut Cluster, timeline: &Timeline) {
    let fault = active.fault();
    let result: anyhow::Result<String> = async {
        match &active {
            Active::Killed(ids) => {
                for id in ids {
                    cluster.start(*id, false)?;
                }
                Ok(format!("restarted {}", names(ids)))
            }
            Active::Paused(ids) => {
                for id in ids {
                    cluster.resume(*id)?;
                }
                Ok(format!("SIGCONT {}", names(ids)))
            }
            Active::Partitioned => {
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
                Ok(format!("n{id} restarted with --join and added back"))
            }
        }
    }
    .await;
    match result {
        Ok(detail) => timeline.record(NemesisPhase::Stop, fault.as_str(), detail),
        Err(error) => timeline.record(NemesisPhase::Stop, fault.as_str(), format!("heal failed: {error:#}")),
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

/// Heals everything at the end of a run: resumes and restarts every node, restores
/// every link, and adds back any node that is not a voter.
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
        "final heal: every node running, every link restored",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_nemesis_lists() {
        assert_eq!(parse_faults("kill,pause"), Ok(vec![Fault::Kill, Fault::Pause]));
        assert_eq!(parse_faults("all").map(|faults| faults.len()), Ok(5));
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
}
