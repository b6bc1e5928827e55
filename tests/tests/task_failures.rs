//! Graphs survive process failures: SIGKILL of a worker mid-graph, and SIGKILL of
//! the leader mid-graph, still give the right answer (tasks may be recomputed); a
//! chunk file lost under a live worker fails its reader at once, naming the chunk.

use std::time::Duration;

use cairn_client::{scalar_i64, Delayed, TaskArg};
use cairn_tests::{phase, TestCluster};

/// 40 slow tasks (`sleep` 100 ms on `inc(i)`), summed: the answer is 40·41/2.
fn slow_graph(client: &cairn_client::Client) -> Delayed {
    let slow: Vec<Delayed> = (0..40)
        .map(|i| {
            let inc = client.task("inc", [i.into()]);
            client.task("sleep", [(&inc).into(), 100.into()])
        })
        .collect();
    let partial: Vec<Delayed> = slow
        .chunks(8)
        .map(|group| client.task("sum", group.iter().map(TaskArg::from)))
        .collect();
    client.task("sum", partial.iter().map(TaskArg::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_graph() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 2, "256MiB", &["--nthreads", "2"]).await?;
    let client = cluster.client().await?;
    let total = slow_graph(&client);
    let future = client.submit(&total).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    phase("SIGKILL worker 1 while the graph runs");
    cluster.cluster.kill_worker(1)?;
    let result = tokio::time::timeout(Duration::from_secs(60), future.result()).await??;
    assert_eq!(scalar_i64(&result), Some(40 * 41 / 2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_graph() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 2, "256MiB", &["--nthreads", "2"]).await?;
    let client = cluster.client().await?;
    let total = slow_graph(&client);
    let future = client.submit(&total).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let leader = cluster.leader().await?;
    phase(&format!("SIGKILL the leader (node {leader}) while the graph runs"));
    cluster.cluster.kill(leader)?;
    let result = tokio::time::timeout(Duration::from_secs(60), future.result()).await??;
    assert_eq!(scalar_i64(&result), Some(40 * 41 / 2));
    let new_leader = cluster.leader().await?;
    assert_ne!(new_leader, leader);
    Ok(())
}

/// A published chunk's file is lost on its only holder while the worker runs (the
/// leader still counts the copy). A task reading it finds it neither in its store nor
/// at the holder the leader named; the worker gives the task back (`InputMissing`)
/// instead of retrying for 15 s, and the leader, learning that the chunk has no copy
/// left, fails the task at once, naming the chunk. The partitions whose chunks are
/// intact still count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_lost_under_a_live_worker_fails_its_reader_at_once_naming_it() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    cairn_tests::data::publish_in_chunks(&client, "three", &cairn_tests::data::table(0, 3_000), 1_000).await?;
    let keys: Vec<String> = client
        .get_collection("three")
        .await?
        .chunks()
        .iter()
        .map(|chunk| chunk.key.clone())
        .collect();
    assert_eq!(keys.len(), 3);

    phase("restart the worker (its chunks are then on disk only), then delete one chunk's file");
    cluster.cluster.kill_worker(1)?;
    cluster.cluster.start_worker(1)?;
    cluster.wait_for_task_streams(1).await?;
    let lost = &keys[1];
    let file = cluster
        .chunk_files(1)
        .into_iter()
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&format!("{lost}.")))
        })
        .ok_or_else(|| anyhow::anyhow!("no file for chunk {lost}"))?;
    std::fs::remove_file(&file)?;

    phase("count each chunk: the lost one fails at once, naming its chunk; the others count");
    let started = std::time::Instant::now();
    let lost_only = client.collection([TaskArg::Chunk(lost.clone())]);
    let error = tokio::time::timeout(Duration::from_secs(30), lost_only.count())
        .await?
        .expect_err("a chunk with no copy left cannot be counted");
    let took = started.elapsed();
    assert!(error.to_string().contains("no live copy"), "{error}");
    assert!(error.to_string().contains(lost.as_str()), "{error}");
    assert!(took < Duration::from_secs(10), "the reader failed only after {took:?}");
    let log = cluster.worker_log(1);
    assert!(log.contains("giving the task back"), "{log}");
    let intact = client.collection([TaskArg::Chunk(keys[0].clone()), TaskArg::Chunk(keys[2].clone())]);
    let counted = tokio::time::timeout(Duration::from_secs(30), intact.count()).await??;
    assert_eq!(scalar_i64(&counted), Some(2_000), "{counted:?}");
    Ok(())
}
