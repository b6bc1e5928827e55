//! `cairn bench tasks`: task throughput and chained-task latency (SPEC §7) on a fresh
//! local cluster of 3 schedulers and 2 workers, optionally side by side with Dask
//! distributed running the same graphs (`bench/dask_graph.py`) on the same machine.
//!
//! - Throughput: `--tasks` N `inc` tasks (inc(i) = i + 1 for i in 0..N) and a tree sum
//!   of fan-in 8 over them, submitted as one graph; tasks/s is every task of the graph
//!   over the wall time from submit to result, and the answer must be N(N+1)/2.
//! - Latency: a chain of `--chain` M dependent `inc`s (x = inc(x)), submitted as one
//!   graph; µs per chained task is the wall time from submit to result over M.
//!
//! The chain runs before the throughput graph, on both sides: right after a graph of
//! 114k tasks the cluster is still forgetting it (every replica removes its rows) for
//! about a second, and a chain started then measures that, not a chain (it ran at
//! 500–1,400 µs per task for its first second, 210–260 after).
//!
//! Cairn runs first and its cluster is stopped before Dask starts, so the two never
//! share the machine's cores.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_client::{Client, ClientOptions, Delayed, TaskArg};

use crate::local_cluster::{plan_cluster, plan_workers, wait_for_leader, wait_for_workers, LocalCluster};

/// How many results each `sum` of the tree adds up (Dask's usual tree reduction).
pub const FAN_IN: usize = 8;
/// The SPEC §7 throughput target, in tasks per second.
pub const TARGET_TASKS_PER_S: f64 = 100_000.0;
/// The SPEC §7 throughput target against Dask in the same run.
pub const TARGET_TIMES_DASK: f64 = 100.0;
/// The SPEC §7 chained-task target, in microseconds per task.
pub const TARGET_CHAIN_US: f64 = 200.0;
/// Schedulers and workers of the benchmark's cluster.
const SCHEDULERS: u64 = 3;
const WORKERS: u64 = 2;
/// Each worker's memory limit: results are one-row batches, far below it.
const WORKER_MEMORY: &str = "1GiB";
/// The Dask side of the benchmark, relative to the source tree.
const DASK_SCRIPT: &str = "bench/dask_graph.py";

/// What `cairn bench tasks` was asked to do.
#[derive(Debug, Clone)]
pub struct TasksBenchOptions {
    /// `inc` tasks in the throughput graph (the tree sum comes on top).
    pub tasks: usize,
    /// Dependent `inc` tasks in the chain.
    pub chain: usize,
    /// Each worker's `--nthreads` (Dask's `threads_per_worker`).
    pub threads: u32,
    /// Throughput graphs run on the same cluster (the first one's figure is recorded).
    pub rounds: usize,
    /// A Python with `distributed` to run `bench/dask_graph.py` with, if any.
    pub compare_dask: Option<PathBuf>,
}

/// One system's figures.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct Figures {
    /// Tasks of the throughput graph (incs and sums) per second, submit to result.
    pub throughput_tasks_per_s: f64,
    /// Microseconds per task of the chain, submit to result.
    pub chain_us_per_task: f64,
    /// `inc` tasks in the throughput graph.
    pub tasks: usize,
    /// Tasks in the chain.
    pub chain: usize,
}

/// N `inc` tasks and their tree sum of fan-in [`FAN_IN`]: the root, and how many
/// tasks the graph has. There is always at least one `sum`, as in the Dask script.
pub fn throughput_graph(tasks: usize) -> (Delayed, usize) {
    let mut level: Vec<Delayed> = (0..tasks as i64)
        .map(|i| Delayed::new("inc", [TaskArg::from(i)]))
        .collect();
    let mut count = level.len();
    loop {
        level = level
            .chunks(FAN_IN)
            .map(|group| Delayed::new("sum", group.iter().map(TaskArg::from)))
            .collect();
        count += level.len();
        if level.len() <= 1 {
            break;
        }
    }
    let root = level.pop().unwrap_or_else(|| Delayed::new("sum", [TaskArg::from(0)]));
    (root, count)
}

/// The answer of [`throughput_graph`]: the sum of i + 1 for i in 0..N.
pub fn expected_sum(tasks: usize) -> i64 {
    let n = tasks as i64;
    n * (n + 1) / 2
}

/// A chain of `length` dependent `inc`s from 0 (its answer is `length`).
pub fn chain_graph(length: usize) -> Delayed {
    let mut last = Delayed::new("inc", [TaskArg::from(0)]);
    for _ in 1..length {
        last = Delayed::new("inc", [TaskArg::from(&last)]);
    }
    last
}

/// Computes `root` and checks its single integer value.
async fn compute_checked(client: &Client, root: &Delayed, expected: i64, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let future = client
        .submit(root)
        .await
        .with_context(|| format!("submitting the {what}"))?;
    let submitted = started.elapsed();
    let batch = future.result().await.with_context(|| format!("computing the {what}"))?;
    let elapsed = started.elapsed();
    let _ = future.cancel().await;
    println!(
        "  ({what}: submitted — validated and committed through Raft — in {:.3} s, ran in {:.3} s)",
        submitted.as_secs_f64(),
        (elapsed - submitted).as_secs_f64()
    );
    let answer = cairn_client::scalar_i64(&batch)
        .with_context(|| format!("the {what}'s result is not one integer: {batch:?}"))?;
    if answer != expected {
        bail!("the {what} answered {answer}, expected {expected}");
    }
    Ok(elapsed)
}

/// Runs the throughput graph of `tasks` incs; returns (tasks in the graph, seconds).
async fn run_throughput(client: &Client, tasks: usize) -> anyhow::Result<(usize, Duration)> {
    let (root, count) = throughput_graph(tasks);
    let elapsed = compute_checked(client, &root, expected_sum(tasks), "tree sum").await?;
    Ok((count, elapsed))
}

/// Runs a chain of `length` incs; returns its wall time.
async fn run_chain(client: &Client, length: usize) -> anyhow::Result<Duration> {
    let last = chain_graph(length);
    compute_checked(client, &last, length as i64, "chain").await
}

/// Waits until `count` workers have their task stream open to the leader.
async fn wait_for_task_streams(client: &Client, count: u32, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match client.operations().await {
            Ok(catalogue) if catalogue.connected_workers >= count => return Ok(()),
            Ok(catalogue) => format!("{} of {count} task streams open", catalogue.connected_workers),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            bail!("workers did not open their task streams within {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the cluster and measures Cairn, printing each figure as it comes.
async fn measure_cairn(cluster: &mut LocalCluster, options: &TasksBenchOptions) -> anyhow::Result<Figures> {
    cluster.start_all()?;
    wait_for_leader(&cluster.addrs(), Duration::from_secs(30)).await?;
    cluster.start_workers()?;
    wait_for_workers(&cluster.addrs(), WORKERS as usize, Duration::from_secs(30)).await?;
    let client = Client::connect_with(cluster.addrs(), ClientOptions::default()).await?;
    wait_for_task_streams(&client, WORKERS as u32, Duration::from_secs(30)).await?;

    // Warm-up: connections, the workers' task streams, the leader's dispatch path.
    run_throughput(&client, 1000).await.context("warm-up")?;
    run_chain(&client, 20).await.context("warm-up")?;

    // The chain first: the module docs say why.
    let elapsed = run_chain(&client, options.chain).await?;
    let chain_us = elapsed.as_secs_f64() * 1e6 / options.chain as f64;
    println!(
        "cairn: chain of {} dependent inc: {:.2} s, {chain_us:.0} µs per task",
        options.chain,
        elapsed.as_secs_f64()
    );

    let (count, elapsed) = run_throughput(&client, options.tasks).await?;
    let throughput = count as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "cairn: throughput, {} inc + tree sum (fan-in {FAN_IN}, {count} tasks): {:.2} s, {throughput:.0} tasks/s",
        options.tasks,
        elapsed.as_secs_f64()
    );
    if options.rounds > 1 {
        println!(
            "cairn: round 1 of {}: {throughput:.0} tasks/s; {}",
            options.rounds,
            resident_memory(cluster)
        );
        for round in 2..=options.rounds {
            let (count, elapsed) = run_throughput(&client, options.tasks).await?;
            println!(
                "cairn: round {round} of {}: {:.0} tasks/s; {}",
                options.rounds,
                count as f64 / elapsed.as_secs_f64().max(1e-9),
                resident_memory(cluster)
            );
        }
    }
    crate::bench_figures::record("cairn", "tasks_per_s", throughput, "tasks/s");
    crate::bench_figures::record("cairn", "chain_us_per_task", chain_us, "us");
    Ok(Figures {
        throughput_tasks_per_s: throughput,
        chain_us_per_task: chain_us,
        tasks: options.tasks,
        chain: options.chain,
    })
}

/// Every scheduler's and worker's resident memory now, e.g. `s1 212 MB, ..., w1 80 MB`.
fn resident_memory(cluster: &LocalCluster) -> String {
    let schedulers = (1..=SCHEDULERS).map(|id| (format!("s{id}"), cluster.pid(id)));
    let workers = (1..=WORKERS).map(|index| (format!("w{index}"), cluster.worker_pid(index)));
    let resident = |pid: u32| cairn_worker::rss::pid_status_bytes(pid, "VmRSS");
    schedulers
        .chain(workers)
        .map(|(name, pid)| match pid.and_then(resident) {
            Some(bytes) => format!("{name} {} MB", bytes / 1_000_000),
            None => format!("{name} ?"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `bench/dask_graph.py` is: under the current dir or one of its parents, or
/// beside the binary's target dir, or in the source tree this binary was built from.
pub fn find_dask_script() -> anyhow::Result<PathBuf> {
    find_script(DASK_SCRIPT)
}

/// Where the script at `relative` (to Cairn's source tree) is: under the current dir
/// or one of its parents, or beside the binary's target dir, or in the source tree
/// this binary was built from.
pub fn find_script(relative: &str) -> anyhow::Result<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(current) = std::env::current_dir() {
        roots.extend(current.ancestors().map(Path::to_path_buf));
    }
    if let Ok(binary) = std::env::current_exe() {
        roots.extend(binary.ancestors().skip(1).map(Path::to_path_buf));
    }
    if let Some(source) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        roots.push(source.to_path_buf());
    }
    roots
        .iter()
        .map(|root| root.join(relative))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("cannot find {relative} in the current dir, its parents, or beside the cairn binary; run from Cairn's source tree")
        })
}

/// Reads the figures from the Dask script's `--json` output (its last JSON line).
pub fn parse_dask_output(stdout: &str) -> anyhow::Result<Figures> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('{'))
        .with_context(|| format!("{DASK_SCRIPT} printed no JSON line; its output was: {stdout:?}"))?;
    serde_json::from_str(line).with_context(|| format!("cannot read {DASK_SCRIPT}'s figures from {line:?}"))
}

/// Runs the Dask script with `python`; its progress lines pass through on stderr.
async fn measure_dask(python: &Path, script: &Path, options: &TasksBenchOptions) -> anyhow::Result<Figures> {
    println!(
        "dask: {} {} (2 worker processes x {} thread(s)); this takes a while",
        python.display(),
        script.display(),
        options.threads
    );
    // Not `output()`, which would capture stderr too: the progress lines must show.
    let child = tokio::process::Command::new(python)
        .arg(script)
        .arg("--json")
        .args(["--tasks", &options.tasks.to_string()])
        .args(["--chain", &options.chain.to_string()])
        .args(["--threads", &options.threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let output = child
        .wait_with_output()
        .await
        .with_context(|| format!("waiting for {}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{} {} failed ({}); does that Python have `distributed`? (scripts/bench-venv prints one that does)",
            python.display(),
            script.display(),
            output.status
        );
    }
    let figures = parse_dask_output(&stdout)?;
    if figures.tasks != options.tasks || figures.chain != options.chain {
        bail!(
            "{DASK_SCRIPT} ran {} tasks and a chain of {}, not {} and {}",
            figures.tasks,
            figures.chain,
            options.tasks,
            options.chain
        );
    }
    Ok(figures)
}

/// "met" or "not met".
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "not met"
    }
}

/// How Cairn's latency compares with Dask's: "7.2x faster" (dask/cairn), or "1.1x
/// slower" (cairn/dask) when Cairn is the slower one.
fn latency_ratio(cairn_us: f64, dask_us: f64) -> String {
    if cairn_us <= dask_us {
        format!("{:.1}x faster", dask_us / cairn_us.max(f64::MIN_POSITIVE))
    } else {
        format!("{:.1}x slower", cairn_us / dask_us.max(f64::MIN_POSITIVE))
    }
}

/// The side-by-side table of Cairn's and Dask's figures.
pub fn comparison_table(cairn: &Figures, dask: &Figures) -> String {
    let rows = [
        [
            "figure".to_string(),
            "cairn".to_string(),
            "dask".to_string(),
            "cairn/dask".to_string(),
        ],
        [
            format!("throughput ({} inc + tree sum)", cairn.tasks),
            format!("{:.0} /s", cairn.throughput_tasks_per_s),
            format!("{:.0} /s", dask.throughput_tasks_per_s),
            format!(
                "{:.1}x",
                cairn.throughput_tasks_per_s / dask.throughput_tasks_per_s.max(f64::MIN_POSITIVE)
            ),
        ],
        [
            format!("chain ({} dependent inc)", cairn.chain),
            format!("{:.0} µs", cairn.chain_us_per_task),
            format!("{:.0} µs", dask.chain_us_per_task),
            latency_ratio(cairn.chain_us_per_task, dask.chain_us_per_task),
        ],
    ];
    let mut widths = [0usize; 3];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for row in &rows {
        table.push_str(&format!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    table
}

/// The SPEC §7 target lines, each with met / not met. Without Dask's figures the
/// "100× Dask" half of the throughput target cannot be judged and is not met.
pub fn target_lines(cairn: &Figures, dask: Option<&Figures>) -> Vec<String> {
    let fast_enough = cairn.throughput_tasks_per_s >= TARGET_TASKS_PER_S;
    let throughput = match dask {
        Some(dask) => {
            let times = cairn.throughput_tasks_per_s / dask.throughput_tasks_per_s.max(f64::MIN_POSITIVE);
            format!(
                "target (SPEC §7): throughput ≥ {TARGET_TIMES_DASK:.0}× Dask and ≥ {TARGET_TASKS_PER_S:.0} tasks/s: {} ({:.0} tasks/s, {times:.1}× Dask)",
                verdict(fast_enough && times >= TARGET_TIMES_DASK),
                cairn.throughput_tasks_per_s
            )
        }
        None => format!(
            "target (SPEC §7): throughput ≥ {TARGET_TASKS_PER_S:.0} tasks/s: {} ({:.0} tasks/s); ≥ {TARGET_TIMES_DASK:.0}× Dask: not measured (--compare-dask PYTHON)",
            verdict(fast_enough),
            cairn.throughput_tasks_per_s
        ),
    };
    let chain = format!(
        "target (SPEC §7): chain ≤ {TARGET_CHAIN_US:.0} µs per task: {} ({:.0} µs)",
        verdict(cairn.chain_us_per_task <= TARGET_CHAIN_US),
        cairn.chain_us_per_task
    );
    vec![throughput, chain]
}

/// Runs the task benchmark.
pub async fn run(options: TasksBenchOptions) -> anyhow::Result<()> {
    if options.tasks == 0 || options.chain == 0 || options.threads == 0 {
        bail!("--tasks, --chain and --threads must be at least 1");
    }
    // Find the Dask script before spending minutes on Cairn's figures.
    let dask = match &options.compare_dask {
        Some(python) => Some((python.clone(), find_dask_script()?)),
        None => None,
    };
    let dir = tempfile::tempdir().context("cannot create a temporary dir")?;
    println!(
        "task benchmark: {SCHEDULERS} schedulers + {WORKERS} workers (--nthreads {}), {} inc + tree sum, chain of {}; data in {}",
        options.threads,
        options.tasks,
        options.chain,
        dir.path().display()
    );
    let token = format!("bench-{:x}", rand::random::<u64>());
    let mut file = plan_cluster(dir.path(), SCHEDULERS, 0, token)?;
    plan_workers(&mut file, dir.path(), WORKERS, 0, WORKER_MEMORY)?;
    let log_dir = dir.path().join("logs");
    let mut cluster = LocalCluster::new(std::env::current_exe()?, file, log_dir.clone(), Vec::new());
    cluster.set_worker_args(vec!["--nthreads".to_string(), options.threads.to_string()]);

    let measured = measure_cairn(&mut cluster, &options).await;
    let stopped = cluster.stop_all_async(Duration::from_secs(10)).await;
    let cairn = match measured {
        Ok(figures) => figures,
        Err(error) => {
            // Keep the logs for whoever reads the error.
            let kept = dir.keep();
            return Err(error.context(format!("cluster logs kept in {}", kept.join("logs").display())));
        }
    };
    stopped.context("stopping the cluster")?;
    // CAIRN_BENCH_KEEP=1 keeps the cluster's logs (with CAIRN_LOG=debug, the
    // per-message timestamps that show where a task's time goes).
    if std::env::var_os("CAIRN_BENCH_KEEP").is_some() {
        println!("cluster logs kept in {}", dir.keep().join("logs").display());
    }

    let dask_figures = match dask {
        Some((python, script)) => Some(measure_dask(&python, &script, &options).await?),
        None => None,
    };
    println!();
    if let Some(dask) = &dask_figures {
        crate::bench_figures::record("dask", "tasks_per_s", dask.throughput_tasks_per_s, "tasks/s");
        crate::bench_figures::record("dask", "chain_us_per_task", dask.chain_us_per_task, "us");
        print!("{}", comparison_table(&cairn, dask));
    }
    for line in target_lines(&cairn, dask_figures.as_ref()) {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(throughput: f64, chain_us: f64) -> Figures {
        Figures {
            throughput_tasks_per_s: throughput,
            chain_us_per_task: chain_us,
            tasks: 100_000,
            chain: 1000,
        }
    }

    /// The tree over N incs has ceil(N/8) + ceil(N/64) + ... sums, down to one root,
    /// as the Dask script's graph does.
    #[test]
    fn the_throughput_graph_counts_incs_and_sums() {
        assert_eq!(throughput_graph(1).1, 2);
        assert_eq!(throughput_graph(8).1, 9);
        assert_eq!(throughput_graph(9).1, 9 + 2 + 1);
        assert_eq!(throughput_graph(10_000).1, 11_431);
        let (root, _) = throughput_graph(64);
        assert_eq!(root.op(), "sum");
        assert_eq!(root.args().len(), 8);
        assert_eq!(expected_sum(10_000), 50_005_000);
    }

    /// A chain of M incs is M tasks deep.
    #[test]
    fn the_chain_is_as_deep_as_asked() {
        let mut depth = 1;
        let mut task = chain_graph(50);
        while let Some(TaskArg::Task(previous)) = task.args().first().cloned() {
            depth += 1;
            task = previous;
        }
        assert_eq!(depth, 50);
    }

    /// The Dask script's JSON line is read even after other output, extra fields and all.
    #[test]
    fn dask_output_is_read_from_its_json_line() {
        let stdout = "noise\n{\"throughput_tasks_per_s\": 630.5, \"chain_us_per_task\": 6100.0, \"tasks\": 100000, \"chain\": 1000, \"graph_tasks\": 114287}\n";
        assert_eq!(parse_dask_output(stdout).expect("parsed"), figures(630.5, 6100.0));
        assert!(parse_dask_output("no json here").is_err());
    }

    /// The table puts both systems side by side with their ratio, and the targets say
    /// met or not met.
    #[test]
    fn the_table_and_targets_read_as_intended() {
        let cairn = figures(12_345.0, 850.0);
        let dask = figures(630.0, 6100.0);
        let table = comparison_table(&cairn, &dask);
        assert!(table.contains("throughput (100000 inc + tree sum)"), "{table}");
        assert!(table.contains("19.6x"), "{table}");
        assert!(table.contains("7.2x faster"), "{table}");
        assert_eq!(latency_ratio(9137.0, 8403.0), "1.1x slower");
        let lines = target_lines(&cairn, Some(&dask));
        assert!(
            lines[0].ends_with("not met (12345 tasks/s, 19.6× Dask)"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("not met (850 µs)"), "{}", lines[1]);
        let lines = target_lines(&figures(200_000.0, 150.0), Some(&figures(1000.0, 6000.0)));
        assert!(lines[0].contains(": met ("), "{}", lines[0]);
        assert!(lines[1].contains(": met ("), "{}", lines[1]);
        let lines = target_lines(&figures(200_000.0, 150.0), None);
        assert!(lines[0].contains("not measured"), "{}", lines[0]);
    }
}
