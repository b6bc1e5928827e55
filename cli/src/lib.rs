//! The `cairn` binary's code: argument parsing and the subcommands.
//!
//! # Layout
//!
//! - `args.rs`: the command line (clap).
//! - `scheduler_cmd.rs`: `cairn scheduler`, one replica.
//! - `worker_cmd.rs`: `cairn worker`, one worker.
//! - `tabular/`: CSV, Parquet and Arrow IPC files in and out, tables for people.
//! - `up.rs`: `cairn up`, a local cluster of child processes.
//! - `datasets_cmd.rs`, `status_cmd.rs`, `cluster_cmd.rs`: client commands.
//! - `bench.rs`: `cairn bench`, benchmarks that print figures; `bench_data.rs` and
//!   `bench_tasks.rs` (task throughput and latency, side by side with Dask) are two.
//! - [`local_cluster`]: scheduler child processes with fault verbs (also used by
//!   the process-level tests).
//! - `discovery.rs`: `--cluster`, `$CAIRN_CLUSTER`, or the cluster file.
//! - `signals.rs`: SIGTERM / Ctrl-C.
//! - [`allocator`]: how long freed memory is kept for reuse, and giving it back.

pub mod allocator;
mod args;
mod bench;
pub mod bench_data;
pub mod bench_figures;
pub mod bench_seeds;
pub mod bench_tasks;
mod cluster_cmd;
mod datasets_cmd;
mod discovery;
pub mod local_cluster;
mod scheduler_cmd;
mod seed_data;
mod signals;
mod status_cmd;
pub mod tabular;
mod up;
mod worker_cmd;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, SchedulerArgs, WorkerArgs};

fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A scheduler's or worker's async runtime threads unless told: half the CPUs, at
/// least 1 (`--runtime-threads`).
fn default_runtime_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| (cpus.get() / 2).max(1))
}

/// Parses the command line and runs the command; errors are printed, not panicked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Scheduler(_) | Command::Worker(_) => "info,openraft=warn",
        _ => "warn",
    };
    init_tracing(default_level);
    allocator::keep_free_memory_for(allocator::PURGE_DELAY);
    if matches!(cli.command, Command::Scheduler(_)) {
        allocator::without_transparent_huge_pages();
    }
    let mut builder = match &cli.command {
        Command::Scheduler(SchedulerArgs { runtime, .. }) | Command::Worker(WorkerArgs { runtime, .. }) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(runtime.runtime_threads.unwrap_or_else(default_runtime_threads).max(1));
            builder
        }
        // The benchmarks' clients make one call at a time: on one thread, a call and
        // its connection do not hand each other across threads (get p50 0.50–0.56 ms
        // on the default runtime, 0.45–0.49 on this one).
        Command::Bench(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Scheduler(args) => scheduler_cmd::run(args).await,
            Command::Worker(args) => worker_cmd::run(args).await,
            Command::Up(args) => up::run(args).await,
            Command::Datasets(args) => datasets_cmd::run(args).await,
            Command::Status(args) => status_cmd::run(args).await,
            Command::Cluster(args) => cluster_cmd::run(args).await,
            // Interrupted, the benchmark's future is dropped, and with it the local
            // cluster it started (its processes are stopped, not left running).
            Command::Bench(args) => tokio::select! {
                result = bench::run(args) => result,
                () = signals::shutdown_signal() => Err(anyhow::anyhow!("interrupted; the benchmark's cluster was stopped")),
            },
            Command::SeedData(args) => seed_data::run(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
