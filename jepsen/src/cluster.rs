//! The cluster under test: real `cairn scheduler` processes, each in its own network
//! namespace (root) or on loopback, with the fault verbs the nemeses use.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_client::{Client, ClientOptions, NodeStatus};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::net::NetnsNetwork;

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
}

/// One running (or stopped) scheduler.
struct Node {
    addr: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The cluster of scheduler processes.
pub struct Cluster {
    config: ClusterConfig,
    /// Present when the nodes run in namespaces.
    pub network: Option<NetnsNetwork>,
    nodes: BTreeMap<u64, Node>,
    token: String,
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
    /// Lays the cluster out (namespaces when asked) without starting anything.
    pub fn create(config: ClusterConfig) -> anyhow::Result<Cluster> {
        let ids: Vec<u64> = (1..=config.nodes).collect();
        let network = if config.use_netns {
            Some(NetnsNetwork::create(NetnsNetwork::free_tag(), &ids).context("cannot create the network namespaces")?)
        } else {
            None
        };
        std::fs::create_dir_all(config.dir.join("nodes"))?;
        let mut nodes = BTreeMap::new();
        for id in &ids {
            let addr = match &network {
                Some(network) => network.addr(*id),
                None => format!("127.0.0.1:{}", free_port()?),
            };
            nodes.insert(
                *id,
                Node {
                    addr,
                    data_dir: config.dir.join("data").join(format!("n{id}")),
                    log: config.dir.join("nodes").join(format!("n{id}.log")),
                    child: None,
                    paused: false,
                },
            );
        }
        let token = format!("jepsen-{}-{}", std::process::id(), rand::random::<u32>());
        Ok(Cluster {
            config,
            network,
            nodes,
            token,
        })
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
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

    /// Starts every node (bootstrapping the cluster on the first start).
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id, false)?;
        }
        Ok(())
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
            .and_then(|network| network.namespace(id).map(str::to_string));
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
            .args(["--snapshot-every", &snapshot_every.to_string()])
            .args(["--snapshot-keep-logs", &(snapshot_every / 5).to_string()])
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
        let node = self.node(id)?;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
        Ok(())
    }

    /// Whether node `id` runs (started and not exited).
    pub fn is_running(&mut self, id: u64) -> bool {
        match self.nodes.get_mut(&id).and_then(|node| node.child.as_mut()) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGSTOPs node `id`.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGSTOP)?;
        self.node(id)?.paused = true;
        Ok(())
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGCONT)?;
        self.node(id)?.paused = false;
        Ok(())
    }

    fn signal(&mut self, id: u64, signal: Signal) -> anyhow::Result<()> {
        let node = self.node(id)?;
        if let Some(child) = &node.child {
            let pid = i32::try_from(child.id()).context("pid out of range")?;
            kill(Pid::from_raw(pid), signal).with_context(|| format!("cannot send {signal} to n{id}"))?;
        }
        Ok(())
    }

    /// Deletes node `id`'s data dir (it must be stopped).
    pub fn wipe(&mut self, id: u64) -> anyhow::Result<()> {
        let dir = self.node(id)?.data_dir.clone();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot wipe {}", dir.display()))?;
        }
        Ok(())
    }

    /// Resumes paused nodes and starts stopped ones.
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
        Ok(())
    }

    /// A client of the whole cluster with the given timeouts.
    pub async fn client(&self, timeout: Duration) -> anyhow::Result<Client> {
        self.client_with(timeout, timeout.min(Duration::from_millis(1000)))
            .await
    }

    /// A client of the whole cluster: `timeout` per call, `attempt` per replica tried.
    async fn client_with(&self, timeout: Duration, attempt: Duration) -> anyhow::Result<Client> {
        let options = ClientOptions {
            timeout,
            attempt_timeout: attempt,
            publisher: "cairn-jepsen".to_string(),
            ..Default::default()
        };
        Ok(Client::connect_with(self.addrs(), options).await?)
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

    /// Kills every node and removes the namespaces. Idempotent.
    pub fn teardown(&mut self) {
        for id in self.ids() {
            let _ = self.kill(id);
        }
        if let Some(network) = &mut self.network {
            network.teardown();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}
