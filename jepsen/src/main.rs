//! The `cairn-jepsen` binary: `run` attacks a cluster, `check` re-checks a history.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cairn_jepsen::check::verdict::{Validity, Verdict};
use cairn_jepsen::check::{self, CheckOptions};
use cairn_jepsen::history::{self, Op};
use cairn_jepsen::nemesis::{parse_faults, parse_shapes};
use cairn_jepsen::report;
use cairn_jepsen::run::{self, RunConfig};
use cairn_jepsen::workload::Workload;
use clap::{Args, Parser, Subcommand};

/// Cairn's fault-injection suite: runs real `cairn scheduler` and `cairn worker`
/// processes, attacks them with nemeses while clients work, and checks every
/// history.
#[derive(Debug, Parser)]
#[command(name = "cairn-jepsen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster, run a workload under faults, check the history, write a report.
    Run(Box<RunArgs>),
    /// Re-check a stored history (`history.jsonl` of a run directory).
    Check(CheckArgs),
    /// Remove the namespaces, bridges, processes and worker disks (tmpfs) of runs
    /// that were SIGKILLed.
    Clean,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scheduler replicas (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// `cairn worker` processes (default: 3 for the data and graph workloads, else 0).
    #[arg(long)]
    workers: Option<u64>,
    /// Each worker's --memory-limit.
    #[arg(long, default_value = "512MiB")]
    worker_memory: String,
    /// As root, each worker's data dir is a tmpfs of this many MiB (the full-disk
    /// nemesis fills it); 0: plain directories.
    #[arg(long, default_value_t = 256)]
    worker_disk_mib: u64,
    /// Seconds the workload runs under faults (the final heal and reads come after).
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Faults, comma-separated: kill, pause, partition, netem, membership (schedulers);
    /// kill-worker, pause-worker, partition-worker, full-disk (workers); restart-all
    /// (every process); or all, none.
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    /// Partition shapes to choose from: halves, leader, bridge, ring (5+ nodes), all.
    #[arg(long, default_value = "all")]
    partition_shapes: String,
    /// Mean seconds between faults and mean length of a fault.
    #[arg(long, default_value_t = 6)]
    nemesis_interval: u64,
    /// Never two faults at once: with kill, pause and partition on 3 or 5 nodes a
    /// majority of schedulers can then always reach each other, so the longest stretch
    /// without an answer measures failover alone.
    #[arg(long)]
    one_fault_at_a_time: bool,
    /// catalog (registers: publish/override/unpublish/get/list), durable (a set of
    /// fresh publishes read back at the end), data (persisted datasets of known
    /// content, put and read back) or graph (task graphs of known results).
    #[arg(long, default_value = "catalog")]
    workload: String,
    /// Concurrent clients, each its own cairn_client::Client.
    #[arg(long, default_value_t = 10)]
    concurrency: u64,
    /// Seed for every random choice (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The run directory (default: target/jepsen/<UTC time>-<workload>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cairn binary (default: next to this one, else $CAIRN_BIN).
    #[arg(long, env = "CAIRN_BIN")]
    binary: Option<PathBuf>,
    /// Names worked on at a time (catalog workload).
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Operations per name before a fresh name replaces it (catalog workload).
    #[arg(long, default_value_t = 120)]
    ops_per_key: u64,
    /// Milliseconds an operation may take before it is recorded as unknown (info).
    #[arg(long, default_value_t = 5000)]
    op_timeout_ms: u64,
    /// The nodes build a snapshot every this many log entries (and keep a fifth of it
    /// behind), small so that snapshots are built and installed under faults.
    #[arg(long, default_value_t = 500)]
    snapshot_every: u64,
    /// Run the nodes on loopback even as root (no partition / netem).
    #[arg(long)]
    no_netns: bool,
    /// Keep the nodes' data dirs in the run directory.
    #[arg(long)]
    keep_data: bool,
    /// Fail the run (exit 1) if fewer operations than this completed: a run that
    /// barely worked proves little.
    #[arg(long, default_value_t = 0)]
    min_ops: usize,
    /// Run every node with a deliberate bug (debug builds of cairn only):
    /// local-reads or ack-before-commit. The run must then FAIL.
    #[arg(long, value_name = "BUG")]
    inject_bug: Option<String>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// A history file (JSON lines) or a run directory holding history.jsonl.
    history: PathBuf,
    /// Seconds the linearizability search may take per name before it says unknown.
    #[arg(long, default_value_t = 10)]
    budget: u64,
    /// Also write report.html next to the history.
    #[arg(long)]
    report: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(3);
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(run_command(*args)),
        Command::Check(args) => check_command(args),
        Command::Clean => {
            let mut removed = cairn_jepsen::net::NetnsNetwork::remove_all_leftovers();
            removed.extend(
                cairn_jepsen::net::unmount_all_leftover_disks()
                    .into_iter()
                    .map(|point| format!("tmpfs {point}")),
            );
            if removed.is_empty() {
                println!("nothing to clean");
            }
            for item in removed {
                println!("removed {item}");
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(3)
        }
    }
}

fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("cairn");
    if sibling.exists() {
        return Ok(sibling);
    }
    anyhow::bail!(
        "cannot find the cairn binary next to {}; build it (`cargo build --workspace`) or pass --binary",
        exe.display()
    )
}

async fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let workload: Workload = args.workload.parse().map_err(anyhow::Error::msg)?;
    let faults = parse_faults(&args.nemesis).map_err(anyhow::Error::msg)?;
    let shapes = parse_shapes(&args.partition_shapes).map_err(anyhow::Error::msg)?;
    if args.nodes < 1 || args.nodes > 9 {
        anyhow::bail!("--nodes must be between 1 and 9 (3 or 5 for a highly available cluster)");
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let workers = args.workers.unwrap_or(if workload.needs_workers() { 3 } else { 0 });
    if workload.needs_workers() && workers == 0 {
        anyhow::bail!("the {} workload needs workers (--workers 1 or more)", workload.as_str());
    }
    if workers > 50 {
        anyhow::bail!("--workers must be at most 50");
    }
    let binary = match args.binary {
        Some(binary) => binary,
        None => default_binary()?,
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(1)
    });
    let netns = !args.no_netns
        && match cairn_jepsen::net::namespaces_available() {
            Ok(()) => true,
            Err(why) => {
                eprintln!(
                    "network namespaces unavailable ({why}): the nodes run on loopback and the partition \
                     and netem nemeses are SKIPPED"
                );
                false
            }
        };
    let out_dir = args.out.unwrap_or_else(|| run::default_out_dir(workload));
    let config = RunConfig {
        binary,
        nodes: args.nodes,
        time_limit: Duration::from_secs(args.time_limit),
        faults,
        shapes,
        nemesis_interval: Duration::from_secs(args.nemesis_interval.max(1)),
        one_fault_at_a_time: args.one_fault_at_a_time,
        workload,
        concurrency: args.concurrency,
        seed,
        out_dir,
        inject_bug: args.inject_bug,
        snapshot_every: args.snapshot_every.max(1),
        keys: args.keys,
        ops_per_key: args.ops_per_key,
        op_timeout: Duration::from_millis(args.op_timeout_ms.max(1000)),
        netns,
        keep_data: args.keep_data,
        workers,
        worker_memory: args.worker_memory,
        worker_disk_mib: args.worker_disk_mib,
    };
    eprintln!(
        "cairn-jepsen: workload {} nemesis {} nodes {} workers {} concurrency {} time limit {} s seed {} -> {}",
        workload.as_str(),
        args.nemesis,
        config.nodes,
        config.workers,
        config.concurrency,
        args.time_limit,
        seed,
        config.out_dir.display()
    );
    let outcome = run::run(config).await?;
    let ops: Vec<Op> = history::read_jsonl(&outcome.dir.join("history.jsonl"))?;
    print_summary(&ops, &outcome.verdicts);
    println!("{} operations completed", outcome.completed);
    println!("run directory: {}", outcome.dir.display());
    println!("report: {}", outcome.dir.join("report.html").display());
    if outcome.interrupted {
        return Ok(ExitCode::from(130));
    }
    let code = exit_code(&outcome.verdicts);
    if outcome.completed < args.min_ops {
        println!(
            "TOO FEW OPERATIONS: {} completed, --min-ops {} required",
            outcome.completed, args.min_ops
        );
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}

fn check_command(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let path = if args.history.is_dir() {
        args.history.join("history.jsonl")
    } else {
        args.history.clone()
    };
    let ops: Vec<Op> = history::read_jsonl(&path)?;
    let options = CheckOptions {
        time_budget: Duration::from_secs(args.budget.max(1)),
        ..CheckOptions::default()
    };
    let verdicts = check::check_all(&ops, &options);
    print_summary(&ops, &verdicts);
    if args.report {
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        let timeline = history::read_jsonl(&dir.join("nemesis.jsonl")).unwrap_or_default();
        let meta = report::ReportMeta {
            title: format!("cairn-jepsen check {}", path.display()),
            facts: vec![("history".to_string(), path.display().to_string())],
        };
        let written = report::write(&dir, &meta, &ops, &timeline, &verdicts)?;
        println!("report: {}", written.display());
    }
    Ok(exit_code(&verdicts))
}

fn print_summary(ops: &[Op], verdicts: &[Verdict]) {
    println!(
        "{:<10} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "op", "ok", "fail", "info", "p50 ms", "p99 ms", "max ms"
    );
    // (Nemesis events, status samples and probes are not client operations.)
    for summary in report::summarize(ops) {
        println!(
            "{:<10} {:>7} {:>6} {:>6} {:>9.1} {:>9.1} {:>9.1}",
            summary.f.as_str(),
            summary.ok,
            summary.fail,
            summary.info,
            summary.p50_ms,
            summary.p99_ms,
            summary.max_ms
        );
    }
    if let Some(availability) = report::availability(ops) {
        println!(
            "availability {:.2}% (completions the cluster answered: ok, or a write it refused)",
            availability * 100.0
        );
    }
    if let Some((start, length)) = report::longest_unavailability(ops) {
        println!("longest stretch with no answer: {length:.2} s (from {start:.1} s)");
    }
    for verdict in verdicts {
        let stats: Vec<String> = verdict
            .stats
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        println!(
            "{:<17} {:<8} {}",
            verdict.checker,
            format!("{:?}", verdict.validity).to_uppercase(),
            stats.join(" ")
        );
        for anomaly in verdict.anomalies.iter().take(10) {
            println!(
                "    {} {}: {}",
                anomaly.kind,
                anomaly.key.as_deref().unwrap_or(""),
                anomaly.explanation
            );
        }
        if verdict.anomalies.len() > 10 {
            println!("    ... and {} more (see results.json)", verdict.anomalies.len() - 10);
        }
    }
}

/// 0 when every checker is valid, 1 when one found an anomaly, 2 when one could not
/// decide.
fn exit_code(verdicts: &[Verdict]) -> ExitCode {
    if verdicts.iter().any(|verdict| verdict.validity == Validity::Invalid) {
        println!("INVALID: anomalies found");
        ExitCode::from(1)
    } else if verdicts.iter().any(|verdict| verdict.validity == Validity::Unknown) {
        println!("UNKNOWN: a checker could not decide");
        ExitCode::from(2)
    } else {
        println!("VALID: no anomalies");
        ExitCode::SUCCESS
    }
}
