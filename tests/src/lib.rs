//! The process-level test fixture: a cluster of real `cairn scheduler` processes on
//! loopback, with fault verbs (kill, pause, resume, restart) and helpers to run the
//! `cairn` CLI.
//!
//! # Layout
//!
//! - this file: [`TestCluster`] and [`cairn_binary`].
//! - `data.rs`: deterministic tables written as CSV, Parquet, Arrow IPC.
//! - `s3.rs`: [`s3::MotoServer`], a real S3-compatible server (moto) on loopback.
//! - `tests/*.rs`: one promise per file, each a sentence in its doc comment.
//!
//! The `cairn` binary is the one cargo builds for the `cairn-cli` package in the same
//! target dir (cargo builds it before running tests, because `cairn-cli` has
//! integration tests of its own); `CAIRN_BIN` overrides it.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_cli::local_cluster::{plan_cluster, plan_workers, wait_for_leader, wait_for_workers, LocalCluster};
use cairn_client::{Client, ClientOptions};

pub mod data;
pub mod s3;

/// Timing flags that make elections quick and snapshots frequent in tests.
pub const FAST_TIMING: [&str; 4] = ["--heartbeat-ms", "50", "--election-timeout-ms", "120-200"];

/// The `cairn` binary under test.
pub fn cairn_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("CAIRN_BIN") {
        return Ok(PathBuf::from(path));
    }
    // target/<profile>/deps/<test binary> → target/<profile>/cairn
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("cannot locate the target dir")?;
    let binary = profile_dir.join("cairn");
    if !binary.exists() {
        bail!(
            "{} does not exist: build it with `cargo build -p cairn-cli` (or run the tests with `make test`)",
            binary.display()
        );
    }
    Ok(binary)
}

/// An example binary of a workspace package (`package`'s `examples/name.rs`), built
/// next to the `cairn` binary: cargo builds the examples for `cargo test`; built here
/// when it is missing.
pub fn example_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    let cairn = cairn_binary()?;
    let profile_dir = cairn.parent().context("no target dir")?;
    let binary = profile_dir.join("examples").join(name);
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let target_dir = profile_dir.parent().context("no target dir")?;
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", package, "--example", name])
            .env("CARGO_TARGET_DIR", target_dir)
            .status()?;
        anyhow::ensure!(status.success(), "cannot build the {name} example of {package}");
    }
    Ok(binary)
}

/// A cluster of real scheduler processes in a temporary directory.
pub struct TestCluster {
    /// The processes.
    pub cluster: LocalCluster,
    /// The data, logs and cluster file (deleted on drop).
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `count` schedulers with fast timing plus `extra` flags, and waits for a leader.
    pub async fn start(count: u64, extra: &[&str]) -> anyhow::Result<TestCluster> {
        TestCluster::start_with_env(count, extra, &[]).await
    }

    /// [`TestCluster::start`] with extra environment variables for every process the
    /// cluster starts (schedulers and workers, restarts included): the processes run
    /// through a `/bin/sh` wrapper in the cluster dir that `exec`s `env NAME=value …
    /// cairn` (same pid, so the fault verbs still apply). No `env` runs the binary
    /// directly, as `start` does.
    pub async fn start_with_env(count: u64, extra: &[&str], env: &[(String, String)]) -> anyhow::Result<TestCluster> {
        let dir = tempfile::tempdir()?;
        let token = format!("test-{}", std::process::id());
        let file = plan_cluster(dir.path(), count, 0, token)?;
        let mut args: Vec<String> = FAST_TIMING.iter().map(|arg| arg.to_string()).collect();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let binary = if env.is_empty() {
            cairn_binary()?
        } else {
            env_wrapper(dir.path(), &cairn_binary()?, env)?
        };
        let mut cluster = LocalCluster::new(binary, file, dir.path().join("logs"), args);
        cluster.start_all()?;
        let test_cluster = TestCluster { cluster, dir };
        test_cluster.leader().await?;
        Ok(test_cluster)
    }

    /// Starts `schedulers` schedulers and `workers` workers, each worker with
    /// `memory_limit` and `worker_extra` flags, and waits until every worker is alive
    /// in the registry.
    pub async fn start_with_workers(
        schedulers: u64,
        workers: u64,
        memory_limit: &str,
        worker_extra: &[&str],
    ) -> anyhow::Result<TestCluster> {
        TestCluster::start_with_workers_and_env(schedulers, workers, memory_limit, worker_extra, &[]).await
    }

    /// [`TestCluster::start_with_workers`] with extra environment variables for every
    /// process (e.g. the `AWS_*` configuration of remote data for the workers); see
    /// [`TestCluster::start_with_env`].
    pub async fn start_with_workers_and_env(
        schedulers: u64,
        workers: u64,
        memory_limit: &str,
        worker_extra: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<TestCluster> {
        let mut test_cluster = TestCluster::start_with_env(schedulers, &["--worker-timeout-ms", "3000"], env).await?;
        let dir = test_cluster.dir.path().to_path_buf();
        plan_workers(&mut test_cluster.cluster.file, &dir, workers, 0, memory_limit)?;
        let mut args = vec!["--heartbeat-ms".to_string(), "200".to_string()];
        args.extend(worker_extra.iter().map(|arg| arg.to_string()));
        test_cluster.cluster.set_worker_args(args);
        test_cluster.cluster.start_workers()?;
        test_cluster.wait_for_workers(workers as usize).await?;
        test_cluster.wait_for_task_streams(workers as u32).await?;
        Ok(test_cluster)
    }

    /// Waits until at least `count` workers have their task stream open to the
    /// leader (30 s at most), so graphs can be placed on all of them.
    pub async fn wait_for_task_streams(&self, count: u32) -> anyhow::Result<()> {
        let client = self.client().await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match client.operations().await {
                Ok(catalogue) if catalogue.connected_workers >= count => return Ok(()),
                Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(catalogue) => bail!(
                    "only {} of {count} workers opened their task stream within 30 s",
                    catalogue.connected_workers
                ),
                Err(error) => bail!("cannot list operations: {error}"),
            }
        }
    }

    /// Waits until at least `count` workers are alive in the registry (30 s at most).
    pub async fn wait_for_workers(&self, count: usize) -> anyhow::Result<Vec<cairn_client::WorkerInfo>> {
        wait_for_workers(&self.cluster.addrs(), count, Duration::from_secs(30)).await
    }

    /// The chunk files (`*.arrow`) in worker `index`'s data dir.
    pub fn chunk_files(&self, index: u64) -> Vec<PathBuf> {
        let Some(entry) = self.cluster.file.workers.iter().find(|entry| entry.index == index) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(entry.data_dir.join("chunks"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|extension| extension == "arrow"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Waits until worker `index`'s log says `needle` at least `times` times.
    pub async fn wait_for_worker_log(&self, index: u64, needle: &str, times: usize) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.worker_log(index);
            if log.matches(needle).count() >= times {
                return Ok(log);
            }
            if std::time::Instant::now() >= deadline {
                bail!("worker {index} did not log {needle:?} {times} times within 30 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log of worker `index`.
    pub fn worker_log(&self, index: u64) -> String {
        std::fs::read_to_string(self.cluster.worker_log_path(index)).unwrap_or_default()
    }

    /// The current leader's id (waits up to 20 s for one a majority agrees on).
    pub async fn leader(&self) -> anyhow::Result<u64> {
        wait_for_leader(&self.cluster.addrs(), Duration::from_secs(20)).await
    }

    /// A new client connected to every scheduler.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let options = ClientOptions {
            timeout: Duration::from_secs(20),
            attempt_timeout: Duration::from_millis(700),
            ..Default::default()
        };
        Ok(Client::connect_with(self.cluster.addrs(), options).await?)
    }

    /// A client connected only to scheduler `id` (it must follow redirects itself).
    pub async fn client_of(&self, id: u64) -> anyhow::Result<Client> {
        Ok(Client::connect([self.cluster.addr(id)?]).await?)
    }

    /// Runs the `cairn` CLI against this cluster.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        let output = std::process::Command::new(cairn_binary()?)
            .args(args)
            .env("CAIRN_CLUSTER", self.cluster.addrs().join(","))
            .output()?;
        Ok(output)
    }

    /// The log of scheduler `id`.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.cluster.log_path(id)).unwrap_or_default()
    }
}

impl Drop for TestCluster {
    /// With `CAIRN_TEST_KEEP=1`, or when the test panicked, the data dir and logs stay
    /// for whoever reads the failure.
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CAIRN_TEST_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("cluster data and logs kept in {}", self.dir.path().display());
        }
    }
}

/// Writes `dir/cairn-with-env`, a `/bin/sh` script that runs `binary` with `env`
/// added to its environment (`exec env NAME=value … binary "$@"`: the same pid).
fn env_wrapper(dir: &std::path::Path, binary: &std::path::Path, env: &[(String, String)]) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let quote = |text: &str| format!("'{}'", text.replace('\'', "'\\''"));
    let mut script = String::from("#!/bin/sh\nexec env");
    for (name, value) in env {
        if name.is_empty() || name.contains(['=', '\0']) {
            bail!("invalid environment variable name {name:?}");
        }
        script.push(' ');
        script.push_str(&quote(&format!("{name}={value}")));
    }
    script.push(' ');
    script.push_str(&quote(&binary.to_string_lossy()));
    script.push_str(" \"$@\"\n");
    let path = dir.join("cairn-with-env");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// A process's standard output and error, as text.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Announces a test phase in the test output, so a failure says where it happened.
pub fn phase(text: &str) {
    eprintln!("--- {text}");
}
