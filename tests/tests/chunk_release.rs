//! Chunks are released only when nothing refers to them — never before: an uploaded
//! chunk that no publish ever names is deleted once its upload is older than the
//! orphan grace; a published chunk stays, however old, until it is unpublished.

use std::time::{Duration, Instant};

use cairn_tests::data::{publish_in_chunks, table};
use cairn_tests::{phase, TestCluster};

/// With `--orphan-grace-secs 2`: an orphan upload disappears within seconds, a
/// published dataset outlives several grace periods untouched, and its unpublish
/// frees its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_go_published_chunks_stay() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with_workers(3, 1, "256MiB", &["--orphan-grace-secs", "2"]).await?;
    let client = cluster.client().await?;
    publish_in_chunks(&client, "kept", &table(0, 3_000), 1_000).await?;

    phase("upload a chunk that no publish names");
    let worker = cluster.cluster.worker_addr(1)?;
    let stored = cairn_client::put_chunk(&worker, "uorphan0000000001.000000", table(0, 10), Vec::new())
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(stored.rows, 10);
    assert_eq!(cluster.chunk_files(1).len(), 4);

    phase("the orphan is deleted after its grace; the published chunks stay");
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.chunk_files(1).len() != 3 {
        assert!(Instant::now() < deadline, "the orphan chunk was not released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(cluster.chunk_files(1).len(), 3, "published chunks are never released");
    let collection = client.get_collection("kept").await?;
    assert_eq!(
        collection
            .collect()
            .await?
            .iter()
            .map(|batch| batch.num_rows())
            .sum::<usize>(),
        3_000
    );

    phase("unpublish releases them");
    client.unpublish_dataset("kept").await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cluster.chunk_files(1).is_empty() {
        assert!(Instant::now() < deadline, "unpublished chunks were not released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// With the default orphan grace (5 minutes): a dataset unpublished right after its
/// publish, before any heartbeat reply could show its chunks referenced, still frees
/// its files within seconds (the leader's reply says which unreferenced chunks a
/// committed write dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_dropped_before_any_heartbeat_saw_them_are_released_at_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    let source = table(0, 3_000);
    for round in 0..3 {
        publish_in_chunks(&client, &format!("brief-{round}"), &source, 1_000).await?;
        client.unpublish_dataset(&format!("brief-{round}")).await?;
    }
    phase("unpublished at once: released within seconds, not after the orphan grace");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cluster.chunk_files(1).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} chunk files left 15 s after unpublish",
            cluster.chunk_files(1).len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
