//! SPEC §4 for running work and data, with real processes:
//!
//! - a leader SIGKILLed in the middle of a 10,000-task graph: the new leader learns
//!   the results the workers hold (recorded or not) and finishes the graph without
//!   computing any of them again; the client's future gets its result without
//!   resubmitting;
//! - a worker SIGKILLed under three persisted datasets: the one published with
//!   `replicas = 2` is read without recomputation while it is degraded and is copied
//!   back to two live workers; the one computed from CSV files (lineage in the task
//!   table) is recomputed and made durable again; the one uploaded with one copy is
//!   reported lost by name in `info` and `status`, and a read of it fails whole.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use cairn_client::{scalar_i64, Client, Delayed, NodeStatus, PersistOptions, PublishOptions, TaskArg};
use cairn_tests::{output_text, phase, TestCluster};

/// Chains of `inc` and `sleep 2 ms`, 50 tasks each, summed by a tree: 9,980 tasks
/// with the tree. Chain `i` ends at `i + 25`.
const CHAINS: i64 = 199;
const CHAIN_LENGTH: usize = 50;

fn chained_graph(client: &Client) -> (Delayed, usize, i64) {
    let mut tasks = 0;
    let mut ends = Vec::new();
    let mut expected = 0;
    for chain in 0..CHAINS {
        let mut value = client.task("inc", [chain.into()]);
        tasks += 1;
        for step in 1..CHAIN_LENGTH {
            value = if step % 2 == 1 {
                client.task("sleep", [(&value).into(), 2.into()])
            } else {
                client.task("inc", [(&value).into()])
            };
            tasks += 1;
        }
        expected += chain + (CHAIN_LENGTH as i64) / 2;
        ends.push(value);
    }
    // A tree of sums, 8 at a time.
    let mut level = ends;
    while level.len() > 1 {
        level = level
            .chunks(8)
            .map(|group| client.task("sum", group.iter().map(TaskArg::from)))
            .collect();
        tasks += level.len();
    }
    (level.pop().expect("a root"), tasks, expected)
}

/// Operations the workers have run (from the leader's last heartbeats).
fn tasks_run(status: &NodeStatus) -> u64 {
    status.workers.iter().map(|worker| worker.tasks_run).sum()
}

/// The task keys a worker log says were run to completion, in order (the workers
/// log each at trace level with the filter the test gives them).
fn runs(log: &str) -> Vec<String> {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour sequence: ESC [ … m.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|line| line.contains("task ran"))
        .filter_map(|line| line.split("key=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_graph_recomputes_nothing_held() -> anyhow::Result<()> {
    let trace = [(
        "CAIRN_LOG".to_string(),
        "info,cairn_worker::tasks::executor=trace".to_string(),
    )];
    let mut cluster = TestCluster::start_with_workers_and_env(3, 2, "512MiB", &["--nthreads", "2"], &trace).await?;
    let client = cluster.client().await?;
    let before = client.leader_status().await.context("no leader")?;
    let (root, tasks, expected) = chained_graph(&client);
    assert!((9_900..=10_100).contains(&tasks), "{tasks} tasks");
    phase(&format!("submit a graph of {tasks} tasks"));
    let future = client.submit(&root).await?;
    // Wait until a good part is done (the workers' counters come with heartbeats).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.leader_status().await;
        if status
            .as_ref()
            .is_some_and(|status| tasks_run(status) - tasks_run(&before) >= (tasks as u64) * 3 / 10)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the graph made no progress: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = cluster.leader().await?;
    phase(&format!("SIGKILL the leader (node {leader}) mid-graph"));
    let killed = Instant::now();
    cluster.cluster.kill(leader)?;
    // What the workers had run when the leader died (their logs up to now).
    let logged_before: Vec<usize> = [1, 2].iter().map(|index| cluster.worker_log(*index).len()).collect();
    // The graph continues when the new leader has assigned work again.
    let continued = loop {
        if let Some(status) = client.leader_status().await {
            if status.node_id != leader {
                if let Some((_, assigned, _, _)) = status.task_counts {
                    if assigned > 0 {
                        break killed.elapsed();
                    }
                }
            }
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("no new leader assigned work within 30 s of the kill");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let result = tokio::time::timeout(Duration::from_secs(120), future.result()).await??;
    assert_eq!(scalar_i64(&result), Some(expected), "the graph's answer");
    let finished = killed.elapsed();
    // Every worker's counter is current once a heartbeat or two have gone by.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = client.leader_status().await.context("no leader after the graph")?;
    let run = tasks_run(&after) - tasks_run(&before);
    let recovery = after.recovery;
    // Results computed before the kill and computed again after it.
    let mut before_kill = std::collections::BTreeSet::new();
    let mut after_kill = Vec::new();
    for (at, index) in [1u64, 2].iter().enumerate() {
        let log = cluster.worker_log(*index);
        let cut = logged_before[at].min(log.len());
        // The cut may fall inside a line: that line counts as after the kill.
        let cut = log[..cut].rfind('\n').map_or(0, |newline| newline + 1);
        before_kill.extend(runs(&log[..cut]));
        after_kill.extend(runs(&log[cut..]));
    }
    let recomputed: Vec<&String> = after_kill.iter().filter(|key| before_kill.contains(*key)).collect();
    println!(
        "FIGURE leader SIGKILL mid-graph: {tasks} tasks, {} run before the kill, {} after; {} results computed \
         before the kill were computed again; {run} operations in all ({} more than tasks); graph \
         continuing {:.0} ms after the kill, finished {:.1} s after; recovery counters {recovery:?}",
        before_kill.len(),
        after_kill.len(),
        recomputed.len(),
        run.saturating_sub(tasks as u64),
        continued.as_secs_f64() * 1000.0,
        finished.as_secs_f64()
    );
    assert!(before_kill.len() > tasks / 4, "the kill came mid-graph");
    assert!(
        recomputed.is_empty(),
        "results computed before the leader died were computed again: {recomputed:?}"
    );
    assert!(
        recovery.failovers >= 2,
        "the first leader and the new one each count a failover: {recovery:?}"
    );
    assert_eq!(recovery.tasks_recomputed, 0, "no worker was lost: {recovery:?}");
    assert!(
        recovery.chunks_reregistered > 0,
        "the new leader learns unrecorded results from the workers: {recovery:?}"
    );
    // Apart from the failover, a task runs twice only when an idle worker steals one
    // its first worker had already started (it completes there too): a handful.
    assert!(run <= tasks as u64 + 16, "{run} operations for {tasks} tasks");
    Ok(())
}

/// `n` rows of `(id, value)` with `value = id * 7 + seed`.
fn numbers(seed: i64, start: i64, rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Int64, false),
    ]));
    let ids: Vec<i64> = (start..start + rows).collect();
    let values: Vec<i64> = ids.iter().map(|id| id * 7 + seed).collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids)), Arc::new(Int64Array::from(values))],
    )
    .expect("a batch")
}

/// The sum of `value` over every row of a dataset, and its rows (reads it whole).
async fn read_sum(client: &Client, name: &str) -> anyhow::Result<(i64, usize)> {
    let collection = client.get_collection(name).await?;
    let batches = collection.collect().await?;
    let mut sum = 0i64;
    let mut rows = 0;
    for batch in batches {
        let column = batch
            .column_by_name("value")
            .context("a value column")?
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("int64 values")?
            .clone();
        rows += column.len();
        sum += column.iter().flatten().sum::<i64>();
    }
    Ok((sum, rows))
}

/// Live copies of each chunk of a dataset, by chunk key.
async fn live_copies(client: &Client, name: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let info = client.dataset_info(name).await?;
    let collection = info.collection.context("a persisted dataset")?;
    Ok(collection
        .chunks
        .iter()
        .map(|chunk| {
            (
                chunk.key.clone(),
                chunk
                    .locations
                    .iter()
                    .filter(|location| location.live)
                    .map(|location| location.worker_id.clone())
                    .collect(),
            )
        })
        .collect())
}

async fn wait_for_availability(client: &Client, name: &str, wanted: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let info = client.dataset_info(name).await?;
        if info.availability.as_deref() == Some(wanted) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "dataset {name} is {:?}, not {wanted}, after {within:?}",
                info.availability
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_is_repaired_recomputed_or_reported_lost() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 3, "256MiB", &["--nthreads", "1"]).await?;
    let client = cluster.client().await?;
    let workers = cluster.wait_for_workers(3).await?;

    phase("publish `twice` (replicas 2), `once` (replicas 1, uploaded) and `lineage` (computed from CSV files)");
    let small_chunks = |replicas| PublishOptions {
        replicas,
        chunk_rows: 1_000,
        ..Default::default()
    };
    let twice: Vec<RecordBatch> = (0..6).map(|at| numbers(1, at * 1_000, 1_000)).collect();
    let schema = twice[0].schema();
    client
        .publish_batches(
            "twice",
            schema.clone(),
            futures::stream::iter(twice.into_iter().map(Ok::<_, arrow::error::ArrowError>)),
            small_chunks(2),
        )
        .await?;
    let once: Vec<RecordBatch> = (0..6).map(|at| numbers(2, at * 1_000, 1_000)).collect();
    client
        .publish_batches(
            "once",
            schema.clone(),
            futures::stream::iter(once.into_iter().map(Ok::<_, arrow::error::ArrowError>)),
            small_chunks(1),
        )
        .await?;
    let csv_dir = cluster.dir.path().join("csv");
    std::fs::create_dir_all(&csv_dir)?;
    for file in 0..9i64 {
        let mut text = String::from("id,value\n");
        for id in file * 100..(file + 1) * 100 {
            text.push_str(&format!("{id},{}\n", id * 7 + 3));
        }
        std::fs::write(csv_dir.join(format!("part{file}.csv")), text)?;
    }
    let held = client
        .read_csv(&format!("{}/part*.csv", csv_dir.display()))?
        .persist()
        .await?;
    client
        .publish_persisted("lineage", &held, PersistOptions::default())
        .await?;
    drop(held);
    let expected_twice = read_sum(&client, "twice").await?;
    let expected_once = read_sum(&client, "once").await?;
    let expected_lineage = read_sum(&client, "lineage").await?;
    assert_eq!(expected_lineage, ((0..900i64).map(|id| id * 7 + 3).sum(), 900));
    for name in ["twice", "once", "lineage"] {
        assert_eq!(
            client.dataset_info(name).await?.availability.as_deref(),
            Some("available")
        );
    }

    // The worker to kill: one holding chunks of `once` and `lineage` alone.
    let once_copies = live_copies(&client, "once").await?;
    let lineage_copies = live_copies(&client, "lineage").await?;
    let victim = workers
        .iter()
        .map(|worker| worker.worker_id.clone())
        .max_by_key(|id| {
            let only = |copies: &BTreeMap<String, Vec<String>>| {
                copies
                    .values()
                    .filter(|holders| holders.as_slice() == [id.clone()])
                    .count()
            };
            (
                only(&once_copies).min(1) + only(&lineage_copies).min(1),
                only(&lineage_copies),
            )
        })
        .context("a worker")?;
    let lost_lineage = lineage_copies
        .values()
        .filter(|holders| **holders == [victim.clone()])
        .count();
    let lost_once = once_copies
        .values()
        .filter(|holders| **holders == [victim.clone()])
        .count();
    anyhow::ensure!(
        lost_lineage > 0 && lost_once > 0,
        "placement left no worker holding both `once` and `lineage` chunks alone: {once_copies:?} {lineage_copies:?}"
    );
    let victim_addr = workers
        .iter()
        .find(|worker| worker.worker_id == victim)
        .map(|worker| worker.addr.clone())
        .context("the victim's address")?;
    let entry = cluster
        .cluster
        .file
        .workers
        .iter()
        .map(|entry| entry.index)
        .find(|index| cluster.cluster.worker_addr(*index).ok().as_deref() == Some(victim_addr.as_str()))
        .context("the victim's process")?;
    phase(&format!(
        "SIGKILL worker {victim} (process {entry}): {lost_once} chunks of `once` and {lost_lineage} of `lineage` had no other copy"
    ));
    cluster.cluster.kill_worker(entry)?;

    phase("`twice` reads whole from its other copies at once (no recomputation)");
    assert_eq!(read_sum(&client, "twice").await?, expected_twice);

    phase("the registry marks the worker gone");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.leader_status().await;
        let gone = status.as_ref().is_some_and(|status| {
            status
                .workers
                .iter()
                .any(|worker| worker.worker_id == victim && worker.state == "gone")
        });
        if gone {
            break;
        }
        if Instant::now() > deadline {
            bail!("worker {victim} not marked gone within 30 s: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    phase("`twice` is copied back to 2 live workers; `lineage` is recomputed and made durable");
    wait_for_availability(&client, "twice", "available", Duration::from_secs(30)).await?;
    for (key, holders) in live_copies(&client, "twice").await? {
        assert_eq!(holders.len(), 2, "chunk {key} of `twice` has {holders:?}");
        assert!(!holders.contains(&victim), "{key} still counts the dead worker");
    }
    assert_eq!(read_sum(&client, "twice").await?, expected_twice);
    wait_for_availability(&client, "lineage", "available", Duration::from_secs(30)).await?;
    assert_eq!(read_sum(&client, "lineage").await?, expected_lineage);

    phase("`once` is reported lost by name in info and status, and cannot be read");
    wait_for_availability(&client, "once", "lost", Duration::from_secs(10)).await?;
    let status = client.leader_status().await.context("a leader")?;
    let lost: Vec<(&str, &str)> = status
        .unavailable
        .iter()
        .map(|dataset| (dataset.name.as_str(), dataset.state.as_str()))
        .collect();
    assert_eq!(lost, [("once", "lost")], "{:?}", status.unavailable);
    assert!(status.recovery.replicas_repaired >= 6, "{:?}", status.recovery);
    // Each `lineage` chunk whose only durable copy died is recomputed, unless a live
    // worker still held its task result in memory (after a steal both may have run
    // it): that copy is made durable where it is instead.
    assert!(
        (1..=lost_lineage as u64).contains(&status.recovery.tasks_recomputed),
        "{lost_lineage} lost: {:?}",
        status.recovery
    );
    let text = output_text(&cluster.cli(&["status"])?);
    assert!(text.contains("dataset once: LOST"), "{text}");
    let text = output_text(&cluster.cli(&["datasets", "info", "once"])?);
    assert!(text.contains("availability: lost"), "{text}");
    let started = Instant::now();
    let read = client.get_collection("once").await?.collect().await;
    let error = read
        .err()
        .context("a lost dataset must not be served, even partially")?;
    assert!(error.to_string().contains("is lost"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a lost dataset fails at once"
    );
    let output = cluster.dir.path().join("once.csv");
    let got = cluster.cli(&["datasets", "get", "once", "--output", &output.display().to_string()])?;
    let text = output_text(&got);
    assert!(!got.status.success() && text.contains("is lost"), "{text}");
    assert!(!output.exists(), "no partial file is left");
    println!(
        "FIGURE worker loss: recovery counters {:?}; `once` lost {lost_once} of 6 chunks",
        status.recovery
    );
    let _ = expected_once;
    Ok(())
}
