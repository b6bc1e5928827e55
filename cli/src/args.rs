//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Cairn: a highly available task scheduler cluster for Arrow data.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scheduler replica (a Raft member serving the client, worker and Raft APIs).
    Scheduler(SchedulerArgs),
    /// Run one worker: holds chunks in memory and on disk, serves them over Arrow Flight.
    Worker(WorkerArgs),
    /// Start a local cluster (3 schedulers + 2 workers) on loopback as child processes; Ctrl-C stops it.
    Up(UpArgs),
    /// Published datasets: list, info, get, put, rm.
    Datasets(DatasetsArgs),
    /// Show every replica's view: members, leader, term, commit index, datasets.
    Status(ClientArgs),
    /// Change the scheduler membership.
    Cluster(ClusterArgs),
    /// Benchmarks that print figures (publish latency/throughput, failover time).
    Bench(BenchArgs),
    /// Write realistic input files for the seed examples: NetCDF model output on a
    /// global lat/lon grid with CF attributes, and CSV account files.
    SeedData(SeedDataArgs),
}

/// `cairn seed-data`.
#[derive(Debug, Args)]
pub struct SeedDataArgs {
    /// The directory to write into (`model_run/*.nc`, `accounts/*.csv`).
    #[arg(long, default_value = "seed-data")]
    pub out: PathBuf,
    /// The size of the wind files (x_wind + y_wind) together, e.g. `1GiB`, `8MiB`.
    #[arg(long, default_value = "64MiB")]
    pub size: String,
    /// The grid spacing in degrees (default: 0.25 from 256 MiB, 1 from 16 MiB, else 2.5).
    #[arg(long)]
    pub grid_step: Option<f64>,
    /// Time steps (hours) per file.
    #[arg(long, default_value_t = 24)]
    pub steps_per_file: usize,
    /// Rows per account CSV file (4 files).
    #[arg(long, default_value_t = 25_000)]
    pub account_rows: usize,
    /// Seed of the pseudo-random noise.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `cairn scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// This replica's id (a positive integer, unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// The address to listen on for clients and peers (ip:port).
    #[arg(long)]
    pub listen: String,
    /// Where the replica keeps its RocksDB database and snapshots.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The initial voters, `ID=HOST:PORT,...`; bootstraps the cluster on the first
    /// start and is ignored when the data dir already holds one.
    #[arg(long, conflicts_with = "join")]
    pub peers: Option<String>,
    /// Start empty and wait to be added with `cairn cluster add-node`.
    #[arg(long)]
    pub join: bool,
    /// Distinguishes clusters bootstrapped with the same --peers (as etcd's
    /// --initial-cluster-token).
    #[arg(long, default_value = "cairn")]
    pub cluster_token: String,
    /// Leader heartbeat interval, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Election timeout range in milliseconds, `MIN-MAX`. Voters keep the leader's lease
    /// for MAX; a follower that stops hearing from the leader waits MAX (longer if
    /// heartbeats have been arriving late) plus a random 0..MAX−MIN, asks its peers for
    /// pre-votes, and stands only with a majority.
    #[arg(long, default_value = "120-200")]
    pub election_timeout_ms: String,
    /// How long a write or read may wait for a quorum before answering "timeout".
    #[arg(long, default_value_t = 3000)]
    pub request_timeout_ms: u64,
    /// Build a snapshot and purge the log after this many entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// How many log entries to keep behind a snapshot for lagging followers.
    #[arg(long, default_value_t = 1_000)]
    pub snapshot_keep_logs: u64,
    /// A leader whose log holds more than this many MiB of entries it could not commit
    /// yet (no quorum answers) refuses new writes with "unavailable" until they commit,
    /// instead of growing its log with every retry.
    #[arg(long, default_value_t = 128)]
    pub max_uncommitted_mib: u64,
    /// How long the leader waits without a heartbeat before it marks a worker gone
    /// (through Raft), in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub worker_timeout_ms: u64,
    /// FOR FAULT-INJECTION TESTS ONLY, debug builds only: run with deliberate bugs
    /// (`local-reads`, `ack-before-commit`) that `cairn-jepsen` must catch.
    #[arg(long, hide = true, value_name = "BUG,...")]
    pub unsafe_inject_bug: Option<String>,
    /// The async runtime.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// `cairn worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Scheduler addresses, `HOST:PORT,...` (any replicas; the worker follows the leader).
    #[arg(long, env = "CAIRN_CLUSTER")]
    pub cluster: String,
    /// The address to serve Arrow Flight on (ip:port; port 0 picks a free one).
    #[arg(long)]
    pub listen: String,
    /// The address other processes reach this worker at (default: the listen address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Where the worker keeps its identity and chunk files.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Memory for chunks, e.g. 2GiB, 512MB: above 60 % chunks spill to disk, above
    /// 80 % the worker accepts no new chunks.
    #[arg(long, default_value = "2GiB")]
    pub memory_limit: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 2)]
    pub nthreads: u32,
    /// Heartbeat interval to the leader, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// Seconds before an uploaded chunk that no dataset ever referred to is deleted.
    #[arg(long, default_value_t = 300)]
    pub orphan_grace_secs: u64,
    /// The async runtime.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// `cairn up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the cluster keeps its data, logs and cluster file.
    #[arg(long, default_value = ".cairn")]
    pub dir: PathBuf,
    /// How many scheduler replicas (3 or 5 for a highly available cluster).
    #[arg(long, default_value_t = 3)]
    pub schedulers: u64,
    /// The first port; replica N listens on BASE+N-1 (a free port is picked when busy).
    #[arg(long, default_value_t = 7101)]
    pub base_port: u16,
    /// How many workers.
    #[arg(long, default_value_t = 2)]
    pub workers: u64,
    /// Each worker's --memory-limit.
    #[arg(long, default_value = "1GiB")]
    pub worker_memory_limit: String,
    /// The first worker port; worker N listens on BASE+N-1 (a free port when busy).
    #[arg(long, default_value_t = 7201)]
    pub worker_base_port: u16,
}

/// The async runtime of a long-running process (`cairn scheduler`, `cairn worker`).
#[derive(Debug, Args, Clone)]
pub struct RuntimeArgs {
    /// Threads of the async runtime (network, Raft, bookkeeping; not task execution).
    /// Default: half the CPUs, at least 1. On a 2-core machine that runs 3 schedulers
    /// and 2 workers, 1 thread each ran a chain of tasks 20 % faster than 2 (fewer
    /// hand-offs of tasks between threads) and changed no other benchmark beyond noise.
    #[arg(long)]
    pub runtime_threads: Option<usize>,
}

/// How client commands find the cluster.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Scheduler addresses, `HOST:PORT,...` (else $CAIRN_CLUSTER, else the cluster file
    /// of `cairn up`).
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The cluster file written by `cairn up` (default: .cairn/cluster.json).
    #[arg(long, global = true)]
    pub cluster_file: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long a call may take in all, in milliseconds.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// `cairn datasets`.
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    /// Which operation.
    #[command(subcommand)]
    pub command: DatasetsCommand,
    /// Cluster discovery and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `cairn datasets ...`.
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// List dataset names in publish order.
    List,
    /// Describe a dataset without reading its data.
    Info {
        /// The dataset.
        name: String,
    },
    /// Print a dataset (a value's bytes; a collection as a table) or write it to a file.
    Get {
        /// The dataset.
        name: String,
        /// Write it to this file: a value as raw bytes; a collection as .arrow, .parquet or .csv.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print only the first N rows of a collection (default 20 on a terminal).
        #[arg(long)]
        head: Option<usize>,
    },
    /// Load CSV, Parquet or Arrow IPC files, store them durably on workers, and publish them.
    Publish {
        /// The dataset.
        name: String,
        /// The file(s) to load (.csv, .parquet, .arrow); repeat for several with one schema.
        #[arg(long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Distinct workers that must hold every chunk (fsync'd) before the publish.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// The most rows in one chunk.
        #[arg(long, default_value_t = 1_048_576)]
        chunk_rows: usize,
        /// Replace the dataset if it exists.
        #[arg(long = "override")]
        override_existing: bool,
        /// An attribute `KEY=VALUE` (repeatable).
        #[arg(long = "attr")]
        attributes: Vec<String>,
    },
    /// Publish a small inline value (`-` reads standard input).
    Put {
        /// The dataset.
        name: String,
        /// The value, or `-` for standard input.
        value: String,
        /// The value's content type.
        #[arg(long, default_value = cairn_client::TEXT)]
        content_type: String,
        /// Replace the dataset if it exists.
        #[arg(long = "override")]
        override_existing: bool,
        /// An attribute `KEY=VALUE` (repeatable).
        #[arg(long = "attr")]
        attributes: Vec<String>,
    },
    /// Unpublish a dataset.
    Rm {
        /// The dataset.
        name: String,
    },
}

/// `cairn cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Which change.
    #[command(subcommand)]
    pub command: ClusterCommand,
    /// Cluster discovery and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `cairn cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Add a scheduler (started with `--join`): it catches up as a learner, then votes.
    AddNode {
        /// The new replica's id.
        #[arg(long)]
        id: u64,
        /// The new replica's address (ip:port).
        #[arg(long)]
        addr: String,
    },
    /// Remove a scheduler from the cluster.
    RemoveNode {
        /// The replica's id.
        #[arg(long)]
        id: u64,
    },
}

/// `cairn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Also append each figure to FILE as a JSON line (`bench/report.py` reads them).
    #[arg(long, global = true, value_name = "FILE")]
    pub figures: Option<std::path::PathBuf>,
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// `cairn bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Publish latency with one client, then throughput with many, on a fresh local
    /// 3-replica cluster (fsync on).
    Publish {
        /// Publishes measured for latency (one client, one at a time).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent clients for the throughput phase.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// How long the throughput phase runs, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Size of each published value.
        #[arg(long, default_value_t = 100)]
        value_bytes: usize,
        /// Where the cluster keeps its data (a temporary dir by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// SIGKILL the leader, time until the next acknowledged publish; repeat.
    Failover {
        /// How many leader kills.
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Where the cluster keeps its data (a temporary dir by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Data plane figures: publish --file, publish and streaming of a dataset larger
    /// than a worker's memory, spill speed, peak RSS.
    Data {
        /// Size of the large dataset, in GiB.
        #[arg(long, default_value_t = 1.0)]
        gib: f64,
        /// The worker's --memory-limit.
        #[arg(long, default_value = "256MiB")]
        memory_limit: String,
        /// Size of the CSV file for the publish --file figure, in MiB.
        #[arg(long, default_value_t = 256)]
        csv_mib: u64,
    },
    /// Task throughput (`--tasks` inc tasks and their tree sum) and chained-task
    /// latency on a fresh local cluster of 3 schedulers and 2 workers; with
    /// `--compare-dask`, Dask distributed runs the same graphs and both are printed
    /// side by side.
    Tasks {
        /// `inc` tasks in the throughput graph (a tree sum of fan-in 8 comes on top).
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Dependent `inc` tasks in the chain.
        #[arg(long, default_value_t = 1000)]
        chain: usize,
        /// Each worker's --nthreads (Dask's threads_per_worker).
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// Runs the throughput graph this many times on the same cluster, printing each
        /// round's tasks/s and every process's resident memory after it (the figure
        /// recorded is the first round's).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// A Python with `distributed` (`scripts/bench-venv` prints one): runs
        /// bench/dask_graph.py with it and compares.
        #[arg(long, value_name = "PYTHON")]
        compare_dask: Option<PathBuf>,
    },
    /// The seed workloads (`wind_variance`, `regrid`) on NetCDF files from
    /// `cairn seed-data`, run by the example programs against a fresh local cluster of
    /// 3 schedulers and 2 workers; with `--compare-dask`, bench/seeds.py runs them with
    /// xarray + dask.array on a `distributed.LocalCluster` and checks the results agree.
    Seeds {
        /// The seed data directory (made with `cairn seed-data` when it lacks data of
        /// `--size`).
        #[arg(long, default_value = "target/seed-data")]
        data: PathBuf,
        /// Size of the wind files (x_wind + y_wind).
        #[arg(long, default_value = "1GiB")]
        size: String,
        /// Each worker's --nthreads (Dask's threads_per_worker).
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// Time steps per chunk (default: the client's, about 32 MiB per chunk).
        #[arg(long)]
        chunk_rows: Option<usize>,
        /// Runs of each workload (the median is reported; the first run also warms the
        /// page cache).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Where the example binaries are (default: `examples/` beside this binary;
        /// `cargo build --release -p cairn-client --examples` builds them).
        #[arg(long)]
        examples: Option<PathBuf>,
        /// A Python with xarray and distributed (`scripts/bench-venv` prints one).
        #[arg(long, value_name = "PYTHON")]
        compare_dask: Option<PathBuf>,
    },
    /// Linearizable get latency on a fresh local 3-replica cluster.
    Get {
        /// Gets measured.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        /// Where the cluster keeps its data (a temporary dir by default).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}
