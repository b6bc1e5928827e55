//! `cairn bench`: benchmarks that print figures, each on a fresh local cluster of
//! real `cairn scheduler` processes (3 replicas, fsync on).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_client::{Client, ClientOptions};

use crate::args::{BenchArgs, BenchCommand};
use crate::bench_figures::record;
use crate::local_cluster::{plan_cluster, wait_for_leader, LocalCluster};

/// Percentiles of a set of durations.
struct Summary {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

/// The summary of `samples`; all zero when there are none (e.g. `--clients 0`).
fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let count = samples.len();
    if count == 0 {
        return Summary {
            count,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            max: Duration::ZERO,
            mean: Duration::ZERO,
        };
    }
    let at = |q: f64| samples[((count as f64 * q).ceil() as usize).clamp(1, count) - 1];
    let total: Duration = samples.iter().sum();
    Summary {
        count,
        p50: at(0.50),
        p99: at(0.99),
        max: samples[count - 1],
        mean: total / count as u32,
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

struct BenchCluster {
    cluster: LocalCluster,
    /// Keeps the temporary data dir alive for the run.
    _temporary: Option<tempfile::TempDir>,
}

async fn start_cluster(dir: Option<PathBuf>) -> anyhow::Result<BenchCluster> {
    let (dir, temporary) = match dir {
        Some(dir) => (dir, None),
        None => {
            let temporary = tempfile::tempdir().context("cannot create a temporary dir")?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    let token = format!("bench-{:x}", rand::random::<u64>());
    let file = plan_cluster(&dir, 3, 0, token)?;
    let binary = std::env::current_exe()?;
    let mut cluster = LocalCluster::new(binary, file, dir.join("logs"), Vec::new());
    cluster.start_all()?;
    wait_for_leader(&cluster.addrs(), Duration::from_secs(30)).await?;
    Ok(BenchCluster {
        cluster,
        _temporary: temporary,
    })
}

/// Runs a benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(path) = args.figures {
        crate::bench_figures::record_to(path);
    }
    match args.command {
        BenchCommand::Publish {
            requests,
            clients,
            seconds,
            value_bytes,
            dir,
        } => publish(requests, clients, seconds, value_bytes, dir).await,
        BenchCommand::Failover { trials, dir } => failover(trials, dir).await,
        BenchCommand::Get { requests, dir } => get(requests, dir).await,
        BenchCommand::Data {
            gib,
            memory_limit,
            csv_mib,
        } => crate::bench_data::run(gib, &memory_limit, csv_mib).await,
        BenchCommand::Seeds {
            data,
            size,
            threads,
            chunk_rows,
            repeat,
            examples,
            compare_dask,
        } => {
            crate::bench_seeds::run(crate::bench_seeds::SeedsBenchOptions {
                data,
                size,
                threads,
                chunk_rows,
                repeat,
                examples,
                compare_dask,
            })
            .await
        }
        BenchCommand::Tasks {
            tasks,
            chain,
            threads,
            rounds,
            compare_dask,
        } => {
            crate::bench_tasks::run(crate::bench_tasks::TasksBenchOptions {
                tasks,
                chain,
                threads,
                rounds,
                compare_dask,
            })
            .await
        }
    }
}

async fn publish(
    requests: usize,
    clients: usize,
    seconds: u64,
    value_bytes: usize,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut bench = start_cluster(dir).await?;
    let addrs = bench.cluster.addrs();
    let value = "x".repeat(value_bytes);
    println!("publish benchmark: 3 schedulers (fsync), {value_bytes}-byte values");

    let client = Client::connect(&addrs).await?;
    for warmup in 0..50 {
        client
            .publish_dataset(&format!("warmup-{warmup}"), value.as_str())
            .await?;
    }
    let mut samples = Vec::with_capacity(requests);
    let (term_before, _) = leader_position(&client).await;
    for index in 0..requests {
        let started = Instant::now();
        client
            .publish_dataset(&format!("latency-{index}"), value.as_str())
            .await?;
        samples.push(started.elapsed());
    }
    let summary = summarize(samples);
    println!(
        "1 client, {} sequential publishes: p50 {}  p99 {}  max {}  mean {}",
        summary.count,
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max),
        ms(summary.mean)
    );
    report_elections(term_before, leader_position(&client).await.0);
    record("cairn", "publish_p50_ms", millis(summary.p50), "ms");
    record("cairn", "publish_p99_ms", millis(summary.p99), "ms");

    let (term_before, index_before) = leader_position(&client).await;
    let shared_value = Arc::new(value);
    let (summary, elapsed) = with_clients(&addrs, clients, Duration::from_secs(seconds), move |client, name| {
        let value = Arc::clone(&shared_value);
        async move { client.publish_dataset(&format!("load-{name}"), value.as_str()).await }
    })
    .await?;
    record(
        "cairn",
        &format!("publish_per_s_{clients}_clients"),
        summary.count as f64 / elapsed.as_secs_f64(),
        "publishes/s",
    );
    let (term_after, index_after) = leader_position(&client).await;
    let entries = index_after.saturating_sub(index_before).max(1);
    println!(
        "{clients} clients for {:.1} s: {:.0} publishes/s  (p50 {}  p99 {}  max {}); {entries} log entries, {:.1} publishes each",
        elapsed.as_secs_f64(),
        summary.count as f64 / elapsed.as_secs_f64(),
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max),
        summary.count as f64 / entries as f64
    );
    report_elections(term_before, term_after);

    // The same clients making a call that touches neither Raft nor a disk: what the
    // gRPC stack alone allows on this machine, the ceiling of the figure above.
    let floor_time = Duration::from_secs(seconds.clamp(1, 3));
    let (floor, elapsed) = with_clients(&addrs, clients, floor_time, |client, _| async move {
        client.operations().await.map(|_| ())
    })
    .await?;
    println!(
        "{clients} clients for {:.1} s, a call to the leader without Raft or disk (ListOperations): {:.0} calls/s  (p50 {})",
        elapsed.as_secs_f64(),
        floor.count as f64 / elapsed.as_secs_f64(),
        ms(floor.p50)
    );
    bench.cluster.stop_all_async(Duration::from_secs(10)).await?;
    Ok(())
}

/// The leader's term and last log index, from one status call ((0, 0) when no
/// replica says it leads).
async fn leader_position(client: &Client) -> (u64, u64) {
    client
        .leader_status()
        .await
        .map_or((0, 0), |status| (status.term, status.last_log_index))
}

/// Says so when the leader changed during a phase: then its max (and perhaps its
/// p99) includes a failover, not only the path being measured.
fn report_elections(before: u64, after: u64) {
    if after != before {
        println!("  (the leader changed during this phase: term {before} -> {after}; its max includes a failover)");
    }
}

/// Runs `clients` clients (each its own connection) calling `call` back to back for
/// `time`; the latencies and the time it took.
async fn with_clients<F, Fut, T>(
    addrs: &[String],
    clients: usize,
    time: Duration,
    call: F,
) -> anyhow::Result<(Summary, Duration)>
where
    F: Fn(Client, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<T, cairn_client::Error>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let client = Client::connect(addrs).await?;
        let stop = Arc::clone(&stop);
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut index = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                call(client.clone(), format!("{worker}-{index}")).await?;
                samples.push(started.elapsed());
                index += 1;
            }
            Ok::<_, cairn_client::Error>(samples)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok((summarize(samples), started.elapsed()))
}

async fn get(requests: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut bench = start_cluster(dir).await?;
    let client = Client::connect(bench.cluster.addrs()).await?;
    client.publish_dataset("bench-get", "x".repeat(100)).await?;
    for _ in 0..100 {
        client.get_dataset("bench-get").await?;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        client.get_dataset("bench-get").await?;
        samples.push(started.elapsed());
    }
    let summary = summarize(samples);
    println!(
        "get_dataset (linearizable, ReadIndex), 3 schedulers, 1 client, {} gets: p50 {}  p99 {}  max {}",
        summary.count,
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max)
    );
    record("cairn", "get_p50_ms", millis(summary.p50), "ms");
    record("cairn", "get_p99_ms", millis(summary.p99), "ms");
    bench.cluster.stop_all_async(Duration::from_secs(10)).await?;
    Ok(())
}

/// Waits until every replica answers and names the same leader.
async fn wait_for_all_following(addrs: &[String], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let options = ClientOptions {
        timeout: Duration::from_millis(500),
        attempt_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    loop {
        if let Ok(client) = Client::connect_with(addrs, options.clone()).await {
            let statuses = client.status().await;
            let leaders: Vec<Option<u64>> = statuses
                .iter()
                .map(|(_, status)| status.as_ref().ok().and_then(|status| status.leader_id))
                .collect();
            if leaders.len() == addrs.len()
                && leaders[0].is_some()
                && leaders.iter().all(|leader| *leader == leaders[0])
            {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the replicas did not all follow one leader within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn failover(trials: usize, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut bench = start_cluster(dir).await?;
    let addrs = bench.cluster.addrs();
    let options = ClientOptions {
        timeout: Duration::from_secs(30),
        attempt_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    println!("failover benchmark: SIGKILL the leader of 3 schedulers, time to the next acknowledged publish");
    // A majority elects the first leader; the first kill must find all three up.
    wait_for_all_following(&addrs, Duration::from_secs(60)).await?;
    let mut samples = Vec::new();
    for trial in 0..trials {
        let leader = wait_for_leader(&addrs, Duration::from_secs(30)).await?;
        let client = Client::connect_with(&addrs, options.clone()).await?;
        client.publish_dataset(&format!("before-{trial}"), "x").await?;
        let killed_at = Instant::now();
        bench.cluster.kill(leader)?;
        client.publish_dataset(&format!("after-{trial}"), "x").await?;
        let elapsed = killed_at.elapsed();
        println!(
            "trial {trial}: killed scheduler {leader}; next publish acknowledged after {}",
            ms(elapsed)
        );
        samples.push(elapsed);
        bench.cluster.start(leader)?;
        // The next kill must find three replicas up (on a loaded machine a restart can
        // take seconds: killing a leader then would time two failures, not one), and
        // the restarted one caught up.
        wait_for_all_following(&addrs, Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let summary = summarize(samples);
    println!(
        "{} trials: median {}  p99 {}  worst {}",
        summary.count,
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max)
    );
    record("cairn", "failover_p50_ms", millis(summary.p50), "ms");
    record("cairn", "failover_p99_ms", millis(summary.p99), "ms");
    bench.cluster.stop_all_async(Duration::from_secs(10)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles are samples (the nearest rank), and no samples summarize to zeros
    /// instead of a panic (`--clients 0`).
    #[test]
    fn summaries_take_the_nearest_rank_and_survive_no_samples() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let summary = summarize(samples);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(summary.max, Duration::from_millis(100));
        let empty = summarize(Vec::new());
        assert_eq!((empty.count, empty.p50, empty.max), (0, Duration::ZERO, Duration::ZERO));
    }
}
