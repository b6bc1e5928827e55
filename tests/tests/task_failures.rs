//! Graphs survive process failures: SIGKILL of a worker mid-graph, and SIGKILL of
//! the leader mid-graph, still give the right answer (tasks may be recomputed).

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
