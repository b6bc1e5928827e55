//! A cluster of `cairn scheduler` and `cairn worker` child processes on loopback:
//! used by `cairn up`, the benchmarks, and the process-level tests (with fault
//! verbs: kill, pause, resume, restart — for schedulers and workers alike).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// The name of the cluster file inside a `cairn up` directory.
pub const CLUSTER_FILE: &str = "cluster.json";

/// One scheduler of a local cluster, as the cluster file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerEntry {
    /// The replica id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// Its data dir.
    pub data_dir: PathBuf,
}

/// One worker of a local cluster, as the cluster file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerEntry {
    /// Its number in this cluster (1, 2, …): names its data dir and log.
    pub index: u64,
    /// Its Flight address.
    pub addr: String,
    /// Its data dir (identity and chunk files).
    pub data_dir: PathBuf,
    /// Its `--memory-limit`.
    pub memory_limit: String,
}

/// What `cairn up` writes so that clients and later runs find the same cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The token the cluster was bootstrapped with.
    pub cluster_token: String,
    /// Every scheduler.
    pub schedulers: Vec<SchedulerEntry>,
    /// Every worker (absent in files written before workers existed).
    #[serde(default)]
    pub workers: Vec<WorkerEntry>,
}

impl ClusterFile {
    /// Reads a cluster file.
    pub fn read(path: &Path) -> anyhow::Result<ClusterFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid cluster file", path.display()))
    }

    /// Writes a cluster file (atomically).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// The scheduler addresses.
    pub fn addrs(&self) -> Vec<String> {
        self.schedulers.iter().map(|entry| entry.addr.clone()).collect()
    }

    /// `--peers` for these schedulers.
    pub fn peers_arg(&self) -> String {
        let peers: Vec<String> = self
            .schedulers
            .iter()
            .map(|entry| format!("{}={}", entry.id, entry.addr))
            .collect();
        peers.join(",")
    }
}

/// Whether `127.0.0.1:port` can be bound now.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port the OS says is free now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The port of a `host:port` address.
pub fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, port)| port.parse().ok())
}

/// The port for process number `number` (from 1): `base_port + number - 1` if it is
/// free and not `taken`, else any free port not `taken` (always, for `base_port` 0).
/// Records the port as taken.
fn pick_port(base_port: u16, number: u64, taken: &mut Vec<u16>) -> anyhow::Result<u16> {
    let preferred = if base_port == 0 {
        None
    } else {
        base_port.checked_add((number - 1) as u16)
    };
    let port = match preferred {
        Some(port) if port_is_free(port) && !taken.contains(&port) => port,
        _ => loop {
            let port = free_port()?;
            if !taken.contains(&port) {
                break port;
            }
        },
    };
    taken.push(port);
    Ok(port)
}

/// Lays out a new cluster of `count` schedulers under `dir`, preferring ports from
/// `base_port` on (0: any free ports).
pub fn plan_cluster(dir: &Path, count: u64, base_port: u16, token: String) -> anyhow::Result<ClusterFile> {
    let mut schedulers = Vec::new();
    let mut taken = Vec::new();
    for id in 1..=count {
        let port = pick_port(base_port, id, &mut taken)?;
        schedulers.push(SchedulerEntry {
            id,
            addr: format!("127.0.0.1:{port}"),
            data_dir: dir.join(format!("scheduler-{id}")),
        });
    }
    Ok(ClusterFile {
        cluster_token: token,
        schedulers,
        workers: Vec::new(),
    })
}

/// Adds workers to `file` until it has `count`, preferring ports from `base_port`
/// on (0: any free ports). Existing workers keep their address and data dir.
pub fn plan_workers(
    file: &mut ClusterFile,
    dir: &Path,
    count: u64,
    base_port: u16,
    memory_limit: &str,
) -> anyhow::Result<()> {
    let mut taken: Vec<u16> = file
        .schedulers
        .iter()
        .map(|entry| entry.addr.as_str())
        .chain(file.workers.iter().map(|entry| entry.addr.as_str()))
        .filter_map(port_of)
        .collect();
    for index in (file.workers.len() as u64 + 1)..=count {
        let port = pick_port(base_port, index, &mut taken)?;
        file.workers.push(WorkerEntry {
            index,
            addr: format!("127.0.0.1:{port}"),
            data_dir: dir.join(format!("worker-{index}")),
            memory_limit: memory_limit.to_string(),
        });
    }
    Ok(())
}

/// Running scheduler processes of one local cluster.
pub struct LocalCluster {
    /// The `cairn` binary to run.
    binary: PathBuf,
    /// The layout.
    pub file: ClusterFile,
    /// Where each scheduler's output goes.
    log_dir: PathBuf,
    /// Extra flags for every `cairn scheduler` (timing, for tests).
    extra_args: Vec<String>,
    /// Extra flags for every `cairn worker`.
    worker_args: Vec<String>,
    /// Running children by replica id.
    children: BTreeMap<u64, Child>,
    /// Running worker children by worker index.
    worker_children: BTreeMap<u64, Child>,
}

impl LocalCluster {
    /// A cluster of `file`'s schedulers run from `binary`, logging into `log_dir`.
    pub fn new(binary: PathBuf, file: ClusterFile, log_dir: PathBuf, extra_args: Vec<String>) -> LocalCluster {
        LocalCluster {
            binary,
            file,
            log_dir,
            extra_args,
            worker_args: Vec::new(),
            children: BTreeMap::new(),
            worker_children: BTreeMap::new(),
        }
    }

    /// Extra flags for every worker started from now on.
    pub fn set_worker_args(&mut self, args: Vec<String>) {
        self.worker_args = args;
    }

    fn worker_entry(&self, index: u64) -> anyhow::Result<&WorkerEntry> {
        self.file
            .workers
            .iter()
            .find(|entry| entry.index == index)
            .with_context(|| format!("no worker {index} in this cluster"))
    }

    /// Starts worker `index` (it registers with the schedulers by itself).
    pub fn start_worker(&mut self, index: u64) -> anyhow::Result<()> {
        if self.worker_is_running(index) {
            return Ok(());
        }
        let entry = self.worker_entry(index)?.clone();
        let mut command = Command::new(&self.binary);
        command
            .arg("worker")
            .arg("--cluster")
            .arg(self.file.addrs().join(","))
            .arg("--listen")
            .arg(&entry.addr)
            .arg("--data-dir")
            .arg(&entry.data_dir)
            .arg("--memory-limit")
            .arg(&entry.memory_limit)
            .args(&self.worker_args)
            .env_remove("CAIRN_CLUSTER");
        let child = spawn_logged(command, &self.worker_log_path(index), &self.binary)?;
        self.worker_children.insert(index, child);
        Ok(())
    }

    /// Starts every worker.
    pub fn start_workers(&mut self) -> anyhow::Result<()> {
        let indexes: Vec<u64> = self.file.workers.iter().map(|entry| entry.index).collect();
        for index in indexes {
            self.start_worker(index)?;
        }
        Ok(())
    }

    /// Whether worker `index` is running (reaps it if it exited).
    pub fn worker_is_running(&mut self, index: u64) -> bool {
        child_is_running(&mut self.worker_children, index)
    }

    /// Workers that exited by themselves since the last look, with their status.
    pub fn reap_exited_workers(&mut self) -> Vec<(u64, String)> {
        reap_exited(&mut self.worker_children)
    }

    /// The process id of worker `index`, if it runs.
    pub fn worker_pid(&self, index: u64) -> Option<u32> {
        self.worker_children.get(&index).map(Child::id)
    }

    /// The process id of scheduler `id`, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// SIGKILL worker `index` and reap it.
    pub fn kill_worker(&mut self, index: u64) -> anyhow::Result<()> {
        if let Some(mut child) = self.worker_children.remove(&index) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM worker `index` and wait for it (SIGKILL after `grace`).
    pub fn terminate_worker(&mut self, index: u64, grace: Duration) -> anyhow::Result<()> {
        let Some(child) = self.worker_children.remove(&index) else {
            return Ok(());
        };
        terminate_child(child, &format!("worker {index}"), grace)
    }

    /// The Flight address of worker `index`.
    pub fn worker_addr(&self, index: u64) -> anyhow::Result<String> {
        Ok(self.worker_entry(index)?.addr.clone())
    }

    /// The log file of worker `index`.
    pub fn worker_log_path(&self, index: u64) -> PathBuf {
        self.log_dir.join(format!("worker-{index}.log"))
    }

    fn entry(&self, id: u64) -> anyhow::Result<&SchedulerEntry> {
        self.file
            .schedulers
            .iter()
            .find(|entry| entry.id == id)
            .with_context(|| format!("no scheduler {id} in this cluster"))
    }

    /// Starts scheduler `id` (bootstrapping with `--peers` on its first start).
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        if self.is_running(id) {
            return Ok(());
        }
        let entry = self.entry(id)?.clone();
        let mut command = Command::new(&self.binary);
        command
            .arg("scheduler")
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(&entry.addr)
            .arg("--data-dir")
            .arg(&entry.data_dir)
            .arg("--peers")
            .arg(self.file.peers_arg())
            .arg("--cluster-token")
            .arg(&self.file.cluster_token)
            .args(&self.extra_args);
        let child = spawn_logged(command, &self.log_path(id), &self.binary)?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Starts every scheduler.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.file.schedulers.iter().map(|entry| entry.id).collect();
        for id in ids {
            self.start(id)?;
        }
        Ok(())
    }

    /// Whether scheduler `id` is running (reaps it if it exited).
    pub fn is_running(&mut self, id: u64) -> bool {
        child_is_running(&mut self.children, id)
    }

    /// Schedulers that exited by themselves since the last look, with their status.
    pub fn reap_exited(&mut self) -> Vec<(u64, String)> {
        reap_exited(&mut self.children)
    }

    fn signal(&self, id: u64, signal: Signal) -> anyhow::Result<()> {
        let child = self
            .children
            .get(&id)
            .with_context(|| format!("scheduler {id} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), signal).with_context(|| format!("cannot signal scheduler {id}"))?;
        Ok(())
    }

    /// SIGKILL scheduler `id` and reap it.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGKILL)?;
        if let Some(mut child) = self.children.remove(&id) {
            child.wait()?;
        }
        Ok(())
    }

    /// SIGSTOP scheduler `id`.
    pub fn pause(&self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGSTOP)
    }

    /// SIGCONT scheduler `id`.
    pub fn resume(&self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGCONT)
    }

    /// SIGTERM scheduler `id` and wait for it to exit (SIGKILL after `grace`).
    pub fn terminate(&mut self, id: u64, grace: Duration) -> anyhow::Result<()> {
        let Some(child) = self.children.remove(&id) else {
            return Ok(());
        };
        terminate_child(child, &format!("scheduler {id}"), grace)
    }

    /// SIGTERM every worker, then every scheduler, and wait for them.
    pub fn stop_all(&mut self, grace: Duration) -> anyhow::Result<()> {
        let mut first_error = None;
        for (child, what) in self.take_all_in_stop_order() {
            if let Err(error) = terminate_child(child, &what, grace) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`LocalCluster::stop_all`] for async callers: waits without blocking the thread,
    /// so the caller's own connections to the cluster are still served while the
    /// processes stop. On a current-thread runtime a blocked thread leaves them
    /// unanswered, and each graceful stop then waits out its grace for them.
    pub async fn stop_all_async(&mut self, grace: Duration) -> anyhow::Result<()> {
        let mut first_error = None;
        for (child, what) in self.take_all_in_stop_order() {
            if let Err(error) = Stopping::begin(child, what, grace).wait_async().await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Every process, workers first, with what to call it.
    fn take_all_in_stop_order(&mut self) -> Vec<(Child, String)> {
        let workers = std::mem::take(&mut self.worker_children)
            .into_iter()
            .map(|(index, child)| (child, format!("worker {index}")));
        let schedulers = std::mem::take(&mut self.children)
            .into_iter()
            .map(|(id, child)| (child, format!("scheduler {id}")));
        workers.chain(schedulers).collect()
    }

    /// The address of scheduler `id`.
    pub fn addr(&self, id: u64) -> anyhow::Result<String> {
        Ok(self.entry(id)?.addr.clone())
    }

    /// Every scheduler address.
    pub fn addrs(&self) -> Vec<String> {
        self.file.addrs()
    }

    /// The log file of scheduler `id`.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.log_dir.join(format!("scheduler-{id}.log"))
    }
}

/// Whether child `id` runs; forgets it if it exited.
fn child_is_running(children: &mut BTreeMap<u64, Child>, id: u64) -> bool {
    match children.get_mut(&id) {
        None => false,
        Some(child) => match child.try_wait() {
            Ok(None) => true,
            Ok(Some(_)) | Err(_) => {
                children.remove(&id);
                false
            }
        },
    }
}

/// Children that exited since the last look, with their status; forgets them.
fn reap_exited(children: &mut BTreeMap<u64, Child>) -> Vec<(u64, String)> {
    let mut exited = Vec::new();
    for (id, child) in children.iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            exited.push((*id, status.to_string()));
        }
    }
    for (id, _) in &exited {
        children.remove(id);
    }
    exited
}

/// Spawns `command` with its output appended to `log_path` and no standard input.
fn spawn_logged(mut command: Command, log_path: &Path, binary: &Path) -> anyhow::Result<Child> {
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))
}

/// SIGTERM a child and wait for it to exit (SIGKILL after `grace`).
fn terminate_child(child: Child, what: &str, grace: Duration) -> anyhow::Result<()> {
    Stopping::begin(child, what.to_string(), grace).wait()
}

/// How often a stopping process is looked at.
const STOP_POLL: Duration = Duration::from_millis(20);

/// A process sent SIGTERM, killed if it outlives its grace.
struct Stopping {
    child: Child,
    what: String,
    grace: Duration,
    deadline: Instant,
}

impl Stopping {
    fn begin(child: Child, what: String, grace: Duration) -> Stopping {
        let pid = Pid::from_raw(child.id() as i32);
        // A paused process cannot handle SIGTERM.
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGTERM);
        Stopping {
            child,
            what,
            grace,
            deadline: Instant::now() + grace,
        }
    }

    /// Waits, blocking the thread, until the process is gone: an error if it had to
    /// be killed.
    fn wait(mut self) -> anyhow::Result<()> {
        loop {
            if let Some(stopped) = self.poll() {
                return stopped;
            }
            std::thread::sleep(STOP_POLL);
        }
    }

    /// [`Stopping::wait`] without blocking the thread.
    async fn wait_async(mut self) -> anyhow::Result<()> {
        loop {
            if let Some(stopped) = self.poll() {
                return stopped;
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    /// `Some` once the process is gone: an error if it had to be killed.
    fn poll(&mut self) -> Option<anyhow::Result<()>> {
        match self.child.try_wait() {
            Err(error) => Some(Err(error.into())),
            Ok(Some(_status)) => Some(Ok(())),
            Ok(None) if Instant::now() < self.deadline => None,
            Ok(None) => {
                let _ = self.child.kill();
                Some(match self.child.wait() {
                    Err(error) => Err(error.into()),
                    Ok(_status) => Err(anyhow!("{} did not stop within {:?}; killed it", self.what, self.grace)),
                })
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.worker_children.values_mut().chain(self.children.values_mut()) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until some replica reports a leader that a majority agrees on, and
/// returns the leader's id.
pub async fn wait_for_leader(addrs: &[String], timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    let options = cairn_client::ClientOptions {
        timeout: Duration::from_millis(500),
        attempt_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    loop {
        if let Ok(client) = cairn_client::Client::connect_with(addrs, options.clone()).await {
            let statuses = client.status().await;
            let leaders: Vec<u64> = statuses
                .iter()
                .filter_map(|(_, status)| status.as_ref().ok())
                .filter(|status| status.state == "leader")
                .map(|status| status.node_id)
                .collect();
            if let [leader] = leaders.as_slice() {
                let agreeing = statuses
                    .iter()
                    .filter_map(|(_, status)| status.as_ref().ok())
                    .filter(|status| status.leader_id == Some(*leader))
                    .count();
                if agreeing * 2 > addrs.len() {
                    return Ok(*leader);
                }
            }
        }
        if Instant::now() >= deadline {
            bail!("no leader was elected within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the registry lists at least `count` alive workers (and, when
/// given, exactly these worker addresses among them), and returns them.
pub async fn wait_for_workers(
    addrs: &[String],
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<cairn_client::WorkerInfo>> {
    let deadline = Instant::now() + timeout;
    let options = cairn_client::ClientOptions {
        timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_millis(700),
        ..Default::default()
    };
    let mut last = String::from("no scheduler answered");
    loop {
        if let Ok(client) = cairn_client::Client::connect_with(addrs, options.clone()).await {
            match client.workers().await {
                Ok(workers) => {
                    let alive: Vec<cairn_client::WorkerInfo> =
                        workers.into_iter().filter(|worker| worker.is_alive()).collect();
                    if alive.len() >= count {
                        return Ok(alive);
                    }
                    last = format!("{} of {count} workers alive", alive.len());
                }
                Err(error) => last = error.to_string(),
            }
        }
        if Instant::now() >= deadline {
            bail!("workers did not register within {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
