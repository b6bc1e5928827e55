//! The cluster under test: real `cairn scheduler` and `cairn worker` processes,
//! each in its own network namespace (root) or on loopback, with the fault verbs the
//! nemeses use. As root each worker's data dir is its own small tmpfs, which the
//! full-disk nemesis fills.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_client::wire::admin_client::AdminClient;
use cairn_client::{wire, Client, ClientOptions, NodeStatus};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::{Channel, Endpoint};

use crate::history::Counters;
use crate::net::{self, Host, NetnsNetwork};

/// How the cluster is laid out and started.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The `cairn` binary.
    pub binary: PathBuf,
    /// How many schedulers (3 or 5).
    pub nodes: u64,
    /// Where data dirs and logs go (the run directory).
    pub dir: PathBuf,
    /// Namespaces (needs root) or loopback.
    pub use_netns: bool,
    /// Deliberate bugs passed to every node (`--unsafe-inject-bug`).
    pub inject_bug: Option<String>,
    /// `--snapshot-every` for every node: small, so that snapshots are built, purged
    /// behind, and installed on lagging nodes while faults happen.
    pub snapshot_every: u64,
    /// How many `cairn worker` processes (0: schedulers only).
    pub workers: u64,
    /// Each worker's `--memory-limit`.
    pub worker_memory: String,
    /// The size of each worker's tmpfs data dir in MiB (root only; 0: a plain dir).
    pub worker_disk_mib: u64,
    /// Keep the workers' data (copied out of their tmpfs before it is unmounted).
    pub keep_data: bool,
}

/// One running (or stopped) process.
struct Node {
    addr: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The file the full-disk nemesis fills a worker's data dir with.
const FILL_FILE: &str = "jepsen-fill";

/// How long the leader waits for a silent worker before it marks it gone: long
/// enough that a scheduler fault (an election, a slow link) never costs a worker,
/// short enough that a killed worker is noticed within a fault.
const WORKER_TIMEOUT_MS: &str = "5000";
/// The schedulers' bound on a leader's uncommitted log (`--max-uncommitted-mib`),
/// small enough that a leader cut off from its quorum reaches it within a fault.
pub const MAX_UNCOMMITTED_MIB: u64 = 16;

/// The cluster of scheduler and worker processes.
pub struct Cluster {
    config: ClusterConfig,
    /// Present when the processes run in namespaces.
    pub network: Option<NetnsNetwork>,
    nodes: BTreeMap<u64, Node>,
    workers: BTreeMap<u64, Node>,
    /// The tmpfs source name when the workers' data dirs are mounted (`cjdisk<pid>`).
    disks: Option<String>,
    token: String,
    torn_down: bool,
}

/// The voters a replica's status lists.
pub fn voter_ids(status: &NodeStatus) -> std::collections::BTreeSet<u64> {
    status
        .members
        .iter()
        .filter(|(_, _, role)| role == "voter")
        .map(|(id, _, _)| *id)
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A process of the run (`name`: `n1`, `w2`), not started: its address (in its
/// namespace, or a free loopback port), data dir and log under `dir`.
fn planned_node(dir: &Path, network: Option<&NetnsNetwork>, host: Host, name: &str) -> anyhow::Result<Node> {
    let addr = match network {
        Some(network) => network.addr(host),
        None => format!("127.0.0.1:{}", free_port()?),
    };
    Ok(Node {
        addr,
        data_dir: dir.join("data").join(name),
        log: dir.join("nodes").join(format!("{name}.log")),
        child: None,
        paused: false,
    })
}

/// The Raft timing every node runs with: fast elections so faults are felt and
/// healed within a nemesis interval.
const TIMING: [&str; 6] = [
    "--heartbeat-ms",
    "50",
    "--election-timeout-ms",
    "150-300",
    "--request-timeout-ms",
    "2000",
];

impl Cluster {
    /// Lays the cluster out (namespaces and worker disks when asked) without
    /// starting anything.
    pub fn create(config: ClusterConfig) -> anyhow::Result<Cluster> {
        let ids: Vec<u64> = (1..=config.nodes).collect();
        let worker_ids: Vec<u64> = (1..=config.workers).collect();
        let hosts: Vec<Host> = ids
            .iter()
            .map(|id| Host::Scheduler(*id))
            .chain(worker_ids.iter().map(|id| Host::Worker(*id)))
            .collect();
        let network = if config.use_netns {
            Some(
                NetnsNetwork::create(NetnsNetwork::free_tag(), &hosts)
                    .context("cannot create the network namespaces")?,
            )
        } else {
            None
        };
        std::fs::create_dir_all(config.dir.join("nodes"))?;
        let mut nodes = BTreeMap::new();
        for id in &ids {
            let node = planned_node(&config.dir, network.as_ref(), Host::Scheduler(*id), &format!("n{id}"))?;
            nodes.insert(*id, node);
        }
        let mut workers = BTreeMap::new();
        for id in &worker_ids {
            let node = planned_node(&config.dir, network.as_ref(), Host::Worker(*id), &format!("w{id}"))?;
            workers.insert(*id, node);
        }
        let token = format!("jepsen-{}-{}", std::process::id(), rand::random::<u32>());
        let mut cluster = Cluster {
            config,
            network,
            nodes,
            workers,
            disks: None,
            token,
            torn_down: false,
        };
        // On error the drop tears down what was made.
        cluster.mount_disks()?;
        Ok(cluster)
    }

    /// As root, mounts a tmpfs of `worker_disk_mib` on every worker's data dir.
    fn mount_disks(&mut self) -> anyhow::Result<()> {
        if self.workers.is_empty() || self.config.worker_disk_mib == 0 || !net::is_root() {
            return Ok(());
        }
        let source = format!("cjdisk{}", std::process::id());
        self.disks = Some(source.clone());
        let size = format!("size={}m,mode=0755", self.config.worker_disk_mib);
        for node in self.workers.values() {
            std::fs::create_dir_all(&node.data_dir)?;
            let point = node.data_dir.display().to_string();
            net::run("mount", &["-t", "tmpfs", "-o", &size, &source, &point])
                .with_context(|| format!("cannot mount a tmpfs on {point}"))?;
        }
        Ok(())
    }

    /// Whether the workers' data dirs are their own tmpfs (the full-disk nemesis
    /// needs it).
    pub fn has_worker_disks(&self) -> bool {
        self.disks.is_some()
    }

    /// Scheduler ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Worker ids.
    pub fn worker_ids(&self) -> Vec<u64> {
        self.workers.keys().copied().collect()
    }

    /// Every process.
    pub fn hosts(&self) -> Vec<Host> {
        self.nodes
            .keys()
            .map(|id| Host::Scheduler(*id))
            .chain(self.workers.keys().map(|id| Host::Worker(*id)))
            .collect()
    }

    /// Worker `id`'s Flight address.
    pub fn worker_addr(&self, id: u64) -> String {
        self.workers.get(&id).map(|node| node.addr.clone()).unwrap_or_default()
    }

    /// Every node's address.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.values().map(|node| node.addr.clone()).collect()
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> String {
        self.nodes.get(&id).map(|node| node.addr.clone()).unwrap_or_default()
    }

    fn peers_arg(&self) -> String {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, node)| format!("{id}={}", node.addr))
            .collect();
        peers.join(",")
    }

    fn node(&mut self, id: u64) -> anyhow::Result<&mut Node> {
        self.nodes.get_mut(&id).with_context(|| format!("no node {id}"))
    }

    fn process(&mut self, host: Host) -> anyhow::Result<&mut Node> {
        match host {
            Host::Scheduler(id) => self.nodes.get_mut(&id),
            Host::Worker(id) => self.workers.get_mut(&id),
        }
        .with_context(|| format!("no process {host}"))
    }

    /// Starts every scheduler (bootstrapping the cluster on the first start), then
    /// every worker.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id, false)?;
        }
        for id in self.worker_ids() {
            self.start_worker(id)?;
        }
        Ok(())
    }

    /// Starts worker `id` unless it runs.
    pub fn start_worker(&mut self, id: u64) -> anyhow::Result<()> {
        let cluster = self.addrs().join(",");
        let binary = self.config.binary.clone();
        let namespace = self
            .network
            .as_ref()
            .and_then(|network| network.namespace(Host::Worker(id)).map(str::to_string));
        let memory = self.config.worker_memory.clone();
        let node = self.workers.get_mut(&id).with_context(|| format!("no worker {id}"))?;
        if let Some(child) = &mut node.child {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
        }
        std::fs::create_dir_all(&node.data_dir)?;
        let mut log = OpenOptions::new().create(true).append(true).open(&node.log)?;
        writeln!(log, "===== cairn-jepsen: starting w{id} =====")?;
        let mut command = match &namespace {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .arg("worker")
            .args(["--cluster", &cluster, "--listen", &node.addr])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--memory-limit", &memory, "--nthreads", "2", "--heartbeat-ms", "500"])
            .env("RUST_LOG", "info");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Starts `host` unless it runs: a scheduler whose data dir was wiped (a
    /// membership change in force) with `--join`, so it never bootstraps anew.
    pub fn start_host(&mut self, host: Host) -> anyhow::Result<()> {
        match host {
            Host::Scheduler(id) => {
                let join = !self.node(id)?.data_dir.exists();
                self.start(id, join)
            }
            Host::Worker(id) => self.start_worker(id),
        }
    }

    /// SIGKILLs `host` (resuming it first if paused, so nothing stays stopped).
    pub fn kill_host(&mut self, host: Host) -> anyhow::Result<()> {
        let node = self.process(host)?;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
        Ok(())
    }

    /// SIGTERMs every host of `hosts` at once and waits up to `grace` for them to
    /// exit, then SIGKILLs the rest. Returns the hosts that had to be SIGKILLed.
    pub async fn terminate_hosts(&mut self, hosts: &[Host], grace: Duration) -> anyhow::Result<Vec<Host>> {
        let mut running = Vec::new();
        for host in hosts {
            let node = self.process(*host)?;
            let Some(child) = node.child.take() else { continue };
            let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
            if node.paused {
                let _ = kill(pid, Signal::SIGCONT);
                node.paused = false;
            }
            let _ = kill(pid, Signal::SIGTERM);
            running.push((*host, child));
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !running.is_empty() {
            let mut still = Vec::new();
            for (host, mut child) in running {
                if child.try_wait()?.is_none() {
                    still.push((host, child));
                }
            }
            running = still;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut stubborn = Vec::new();
        for (host, mut child) in running {
            let _ = child.kill();
            let _ = child.wait();
            stubborn.push(host);
        }
        Ok(stubborn)
    }

    /// Whether `host` was paused by the nemesis (and not resumed since).
    pub fn is_paused(&self, host: Host) -> bool {
        match host {
            Host::Scheduler(id) => self.nodes.get(&id),
            Host::Worker(id) => self.workers.get(&id),
        }
        .is_some_and(|node| node.paused)
    }

    /// SIGSTOPs `host`.
    pub fn pause_host(&mut self, host: Host) -> anyhow::Result<()> {
        self.signal_host(host, Signal::SIGSTOP)?;
        self.process(host)?.paused = true;
        Ok(())
    }

    /// SIGCONTs `host`.
    pub fn resume_host(&mut self, host: Host) -> anyhow::Result<()> {
        self.signal_host(host, Signal::SIGCONT)?;
        self.process(host)?.paused = false;
        Ok(())
    }

    fn signal_host(&mut self, host: Host, signal: Signal) -> anyhow::Result<()> {
        let node = self.process(host)?;
        if let Some(child) = &node.child {
            let pid = i32::try_from(child.id()).context("pid out of range")?;
            kill(Pid::from_raw(pid), signal).with_context(|| format!("cannot send {signal} to {host}"))?;
        }
        Ok(())
    }

    /// Fills worker `id`'s tmpfs with a file until the disk is full (nothing left
    /// for a chunk file or the worker's probe write). Returns the bytes written and
    /// the bytes still available.
    pub fn fill_disk(&mut self, id: u64) -> anyhow::Result<(u64, u64)> {
        if self.disks.is_none() {
            bail!("the workers' data dirs are not their own filesystems (needs root)");
        }
        let dir = self
            .workers
            .get(&id)
            .with_context(|| format!("no worker {id}"))?
            .data_dir
            .clone();
        let path = dir.join(FILL_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut written = 0u64;
        for block in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let zeros = vec![0u8; block];
            loop {
                match file.write(&zeros) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(error) if error.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                    Err(error) => return Err(error).with_context(|| format!("cannot fill {}", path.display())),
                }
            }
        }
        let _ = file.sync_all();
        let stats = nix::sys::statvfs::statvfs(&dir)?;
        let available = stats.blocks_available() as u64 * stats.fragment_size() as u64;
        Ok((written, available))
    }

    /// Removes the fill file from worker `id`'s data dir (if any); true if there was one.
    pub fn unfill_disk(&mut self, id: u64) -> anyhow::Result<bool> {
        let Some(node) = self.workers.get(&id) else {
            return Ok(false);
        };
        let path = node.data_dir.join(FILL_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    /// Starts node `id` unless it runs; `join` starts it empty with `--join` (after
    /// its data dir was wiped for a membership change).
    pub fn start(&mut self, id: u64, join: bool) -> anyhow::Result<()> {
        let peers = self.peers_arg();
        let token = self.token.clone();
        let binary = self.config.binary.clone();
        let namespace = self
            .network
            .as_ref()
            .and_then(|network| network.namespace(Host::Scheduler(id)).map(str::to_string));
        let inject_bug = self.config.inject_bug.clone();
        let snapshot_every = self.config.snapshot_every.max(1);
        let node = self.node(id)?;
        if let Some(child) = &mut node.child {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
        }
        let mut log = OpenOptions::new().create(true).append(true).open(&node.log)?;
        writeln!(
            log,
            "===== cairn-jepsen: starting n{id}{} =====",
            if join { " with --join" } else { "" }
        )?;
        let mut command = match &namespace {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .arg("scheduler")
            .args(["--id", &id.to_string(), "--listen", &node.addr])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(TIMING)
            .args(["--worker-timeout-ms", WORKER_TIMEOUT_MS])
            .args(["--snapshot-every", &snapshot_every.to_string()])
            .args(["--snapshot-keep-logs", &(snapshot_every / 5).to_string()])
            .args(["--max-uncommitted-mib", &MAX_UNCOMMITTED_MIB.to_string()])
            .env("RUST_LOG", "info");
        if join {
            command.arg("--join");
        } else {
            command.args(["--peers", &peers, "--cluster-token", &token]);
        }
        if let Some(bug) = inject_bug {
            command.args(["--unsafe-inject-bug", &bug]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// SIGKILLs node `id` (resuming it first if paused, so nothing stays stopped).
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.kill_host(Host::Scheduler(id))
    }

    /// Whether node `id` runs (started and not exited).
    pub fn is_running(&mut self, id: u64) -> bool {
        self.is_host_running(Host::Scheduler(id))
    }

    /// Whether `host` runs (started and not exited).
    pub fn is_host_running(&mut self, host: Host) -> bool {
        match self.process(host).ok().and_then(|node| node.child.as_mut()) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGSTOPs node `id`.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.pause_host(Host::Scheduler(id))
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.resume_host(Host::Scheduler(id))
    }

    /// Deletes node `id`'s data dir (it must be stopped).
    pub fn wipe(&mut self, id: u64) -> anyhow::Result<()> {
        let dir = self.node(id)?.data_dir.clone();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot wipe {}", dir.display()))?;
        }
        Ok(())
    }

    /// Resumes paused processes, starts stopped ones and empties full disks.
    pub fn heal_processes(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            if self.nodes.get(&id).is_some_and(|node| node.paused) {
                self.resume(id)?;
            }
            if !self.is_running(id) {
                let join = !self.node(id)?.data_dir.exists();
                self.start(id, join)?;
            }
        }
        for id in self.worker_ids() {
            self.unfill_disk(id)?;
            if self.workers.get(&id).is_some_and(|node| node.paused) {
                self.resume_host(Host::Worker(id))?;
            }
            if !self.is_host_running(Host::Worker(id)) {
                self.start_worker(id)?;
            }
        }
        Ok(())
    }

    /// A client of the whole cluster with the given timeouts.
    pub async fn client(&self, timeout: Duration) -> anyhow::Result<Client> {
        self.client_with(timeout, timeout.min(Duration::from_millis(1000)))
            .await
    }

    /// A client of the whole cluster: `timeout` per call, `attempt` per replica tried.
    async fn client_with(&self, timeout: Duration, attempt: Duration) -> anyhow::Result<Client> {
        self.client_for_tasks(timeout, attempt, Duration::from_secs(3600)).await
    }

    /// A client whose `compute`/`gather`/`wait` give up after `task_timeout`.
    pub async fn client_for_tasks(
        &self,
        timeout: Duration,
        attempt: Duration,
        task_timeout: Duration,
    ) -> anyhow::Result<Client> {
        let options = ClientOptions {
            timeout,
            attempt_timeout: attempt,
            publisher: "cairn-jepsen".to_string(),
            task_timeout,
        };
        Ok(Client::connect_with(self.addrs(), options).await?)
    }

    /// Waits until every worker is alive in the registry and has its task stream
    /// open to the leader, up to `limit`.
    pub async fn wait_workers(&self, limit: Duration) -> anyhow::Result<()> {
        let expected = self.workers.len();
        if expected == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + limit;
        let client = self.client(Duration::from_secs(2)).await?;
        let addrs: std::collections::BTreeSet<String> = self.workers.values().map(|node| node.addr.clone()).collect();
        loop {
            let alive = match client.workers().await {
                Ok(workers) => workers
                    .iter()
                    .filter(|worker| worker.is_alive() && addrs.contains(&worker.addr))
                    .count(),
                Err(_) => 0,
            };
            let connected = match client.operations().await {
                Ok(catalogue) => catalogue.connected_workers as usize,
                Err(_) => 0,
            };
            if alive >= expected && connected >= expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{alive} of {expected} workers alive in the registry, {connected} with a task stream, after {limit:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A client for adding a node: one attempt may take as long as the new node needs
    /// to catch up, so a slow addition is not retried (and refused) midway.
    pub async fn add_node_client(&self) -> anyhow::Result<Client> {
        self.client_with(Duration::from_secs(30), Duration::from_secs(25)).await
    }

    /// A client for removing a node: longer attempts than the workload's (the leader
    /// probes the other voters first) but short enough that a paused leader does not
    /// hold the nemesis for long.
    pub async fn remove_node_client(&self) -> anyhow::Result<Client> {
        self.client_with(Duration::from_secs(10), Duration::from_secs(3)).await
    }

    /// Every reachable node's status (one status call per node, 500 ms each at most).
    pub async fn statuses(&self) -> Vec<NodeStatus> {
        let limit = Duration::from_millis(500);
        let Ok(client) = self.client_with(limit, limit).await else {
            return Vec::new();
        };
        client
            .status()
            .await
            .into_iter()
            .filter_map(|(_, status)| status.ok())
            .collect()
    }

    /// The status of the replica that leads in the highest term, if any.
    pub async fn leader_status(&self) -> Option<NodeStatus> {
        self.statuses()
            .await
            .into_iter()
            .filter(|status| status.state == "leader")
            .max_by_key(|status| status.term)
    }

    /// The node that the highest-term replica says leads, if any.
    pub async fn leader(&self) -> Option<u64> {
        self.leader_status().await.map(|status| status.node_id)
    }

    /// Waits until one leader is agreed by every running node and all of `ids` are
    /// voters, up to `limit`.
    pub async fn wait_healthy(&self, limit: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + limit;
        let expected = self.ids();
        loop {
            let statuses = self.statuses().await;
            let leaders: std::collections::BTreeSet<Option<u64>> =
                statuses.iter().map(|status| status.leader_id).collect();
            if statuses.len() == expected.len() && leaders.len() == 1 {
                if let Some(Some(leader)) = leaders.into_iter().next() {
                    let voters = statuses
                        .iter()
                        .find(|status| status.node_id == leader)
                        .map(voter_ids)
                        .unwrap_or_default();
                    if voters.into_iter().eq(expected.iter().copied()) {
                        return Ok(leader);
                    }
                }
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = statuses
                    .iter()
                    .map(|status| format!("n{} {} leader={:?}", status.node_id, status.state, status.leader_id))
                    .collect();
                bail!("the cluster did not become healthy within {limit:?}: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Kills every process, unmounts the workers' disks (copying their data out
    /// first when it is kept) and removes the namespaces. Idempotent.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for host in self.hosts() {
            let _ = self.kill_host(host);
        }
        if self.disks.take().is_some() {
            for node in self.workers.values() {
                let point = node.data_dir.display().to_string();
                if self.config.keep_data {
                    let kept = format!("{point}.kept");
                    let _ = std::fs::remove_file(node.data_dir.join(FILL_FILE));
                    let _ = net::run("cp", &["-a", &point, &kept]);
                }
                if let Err(error) = net::run("umount", &[&point]) {
                    eprintln!("warning: {error:#}; unmounting lazily");
                    let _ = net::run("umount", &["-l", &point]);
                }
            }
        }
        if let Some(network) = &mut self.network {
            network.teardown();
        }
    }
}

/// Reads the leader's recovery counters with the generated Admin client (the
/// client library's `NodeStatus` does not carry them): every replica is asked at
/// once; the one leading in the highest term answers. Every answering replica's
/// uncommitted log bytes are read too (the most of them is kept).
pub struct CounterSampler {
    channels: Vec<(String, Channel)>,
    limit: Duration,
}

impl CounterSampler {
    /// A sampler of the replicas at `addrs`, `limit` per status call.
    pub fn new(addrs: &[String], limit: Duration) -> anyhow::Result<CounterSampler> {
        let channels = addrs
            .iter()
            .map(|addr| {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
                    .connect_timeout(limit)
                    .timeout(limit);
                Ok((addr.clone(), endpoint.connect_lazy()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(CounterSampler { channels, limit })
    }

    /// The leader's counters; `Ok(None)` when the leader reports none (a scheduler
    /// without them); `Err` when no replica says it leads.
    pub async fn sample(&self) -> anyhow::Result<Option<Counters>> {
        let calls = self.channels.iter().map(|(addr, channel)| {
            let mut admin = AdminClient::new(channel.clone());
            let limit = self.limit;
            async move {
                let reply = tokio::time::timeout(limit, admin.status(wire::StatusRequest {})).await;
                (addr.clone(), reply)
            }
        });
        let mut best: Option<wire::StatusReply> = None;
        let mut errors = Vec::new();
        let mut uncommitted = (0, 0);
        for (addr, reply) in futures::future::join_all(calls).await {
            match reply {
                Ok(Ok(reply)) => {
                    let reply = reply.into_inner();
                    if reply.uncommitted_bytes >= uncommitted.0 {
                        uncommitted = (reply.uncommitted_bytes, reply.node_id);
                    }
                    if reply.state == "leader" && best.as_ref().is_none_or(|b| reply.term > b.term) {
                        best = Some(reply);
                    }
                }
                Ok(Err(status)) => errors.push(format!("{addr}: {}", status.message())),
                Err(_) => errors.push(format!("{addr}: no answer within {:?}", self.limit)),
            }
        }
        let Some(leader) = best else {
            bail!("no replica says it leads ({})", errors.join("; "));
        };
        Ok(leader.recovery.map(|recovery| Counters {
            leader: leader.node_id,
            term: leader.term,
            failovers: recovery.failovers,
            tasks_recomputed: recovery.tasks_recomputed,
            chunks_reregistered: recovery.chunks_reregistered,
            replicas_repaired: recovery.replicas_repaired,
            uncommitted_bytes: uncommitted.0,
            uncommitted_node: uncommitted.1,
            uncommitted_limit: MAX_UNCOMMITTED_MIB * 1024 * 1024,
        }))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}
