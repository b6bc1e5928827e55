//! A published dataset's **data** survives what SPEC §4 promises: the loss of a
//! worker when it has replicas, and a SIGKILL of every scheduler and worker followed
//! by a restart (workers re-register the chunks on their disks). A corrupted chunk
//! file is reported and never served.

use std::time::Duration;

use cairn_client::PublishOptions;
use cairn_tests::data::{concat, table};
use cairn_tests::{phase, TestCluster};

/// Publishes `rows` rows in chunks of `chunk_rows` with `replicas`.
async fn publish(
    client: &cairn_client::Client,
    name: &str,
    rows: usize,
    chunk_rows: usize,
    replicas: u32,
) -> anyhow::Result<arrow::array::RecordBatch> {
    let source = table(0, rows);
    let options = PublishOptions {
        replicas,
        chunk_rows,
        ..Default::default()
    };
    let batches = futures::stream::iter(vec![Ok::<_, arrow::error::ArrowError>(source.clone())]);
    client.publish_batches(name, source.schema(), batches, options).await?;
    Ok(source)
}

async fn read_all(client: &cairn_client::Client, name: &str) -> anyhow::Result<arrow::array::RecordBatch> {
    let collection = client.get_collection(name).await?;
    let batches = collection.collect().await?;
    concat(&collection.schema(), &batches)
}

/// What a worker logs each time it registers (once per start, and again after a
/// leader change: a test counts those it has seen before a restart).
const REGISTERED: &str = "registered with the cluster";

fn registrations(cluster: &TestCluster, index: u64) -> usize {
    cluster.worker_log(index).matches(REGISTERED).count()
}

/// With `--replicas 2`, SIGKILL of a worker leaves the dataset readable (the other
/// copy serves); the registry marks the worker gone. More replicas than live workers
/// is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_a_worker_kill() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 2, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    let source = publish(&client, "replicated", 20_000, 5_000, 2).await?;
    let collection = client.get_collection("replicated").await?;
    for chunk in collection.chunks() {
        assert_eq!(chunk.locations.len(), 2, "chunk {} must be on both workers", chunk.key);
    }
    assert_eq!(cluster.chunk_files(1).len(), 4);
    assert_eq!(cluster.chunk_files(2).len(), 4);

    phase("SIGKILL worker 1: the dataset stays readable from worker 2");
    cluster.cluster.kill_worker(1)?;
    assert_eq!(read_all(&client, "replicated").await?, source);

    phase("the leader marks the silent worker gone; 2 replicas are then refused");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while client
        .workers()
        .await?
        .iter()
        .filter(|worker| worker.is_alive())
        .count()
        != 1
    {
        assert!(std::time::Instant::now() < deadline, "worker 1 not marked gone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let error = publish(&client, "too-many", 10, 10, 2).await.expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("asks for 2 replicas, but only 1 worker(s) are alive"),
        "{error}"
    );
    assert_eq!(read_all(&client, "replicated").await?, source);
    Ok(())
}

/// SIGKILL every scheduler and every worker right after an acknowledged publish,
/// start them all again: the dataset comes back byte-identical, served by workers
/// that re-registered the chunks on their disks (checksums verified).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_everything_and_restart() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 2, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    let source = publish(&client, "survivor", 30_000, 4_000, 1).await?;
    let checksums: Vec<u32> = client
        .get_collection("survivor")
        .await?
        .chunks()
        .iter()
        .map(|chunk| chunk.checksum)
        .collect();

    phase("SIGKILL all schedulers and workers");
    // A worker registers again after any leader change: count from here.
    let registered: Vec<usize> = (1..=2).map(|index| registrations(&cluster, index)).collect();
    for index in 1..=2 {
        cluster.cluster.kill_worker(index)?;
    }
    for id in 1..=3 {
        cluster.cluster.kill(id)?;
    }

    phase("start everything again");
    cluster.cluster.start_all()?;
    cluster.leader().await?;
    cluster.cluster.start_workers()?;
    for index in 1..=2 {
        cluster
            .wait_for_worker_log(index, REGISTERED, registered[index as usize - 1] + 1)
            .await?;
    }
    let client = cluster.client().await?;
    let collection = client.get_collection("survivor").await?;
    let after: Vec<u32> = collection.chunks().iter().map(|chunk| chunk.checksum).collect();
    assert_eq!(after, checksums);
    assert_eq!(
        read_all(&client, "survivor").await?,
        source,
        "byte-identical after a full restart"
    );
    Ok(())
}

/// A corrupted chunk file is detected by its checksum: with one replica the read
/// fails with an error naming the chunk (never wrong data), the worker reports the
/// chunk lost, and the catalog stops listing it there; at the worker's restart the
/// file is dropped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_chunks_are_never_served() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    publish(&client, "fragile", 8_000, 2_000, 1).await?;
    let files = cluster.chunk_files(1);
    assert_eq!(files.len(), 4);

    phase("restart the worker with a flipped byte in one chunk file");
    let registered = registrations(&cluster, 1);
    cluster.cluster.terminate_worker(1, Duration::from_secs(10))?;
    let victim = &files[1];
    let mut bytes = std::fs::read(victim)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(victim, &bytes)?;
    cluster.cluster.start_worker(1)?;
    let log = cluster.wait_for_worker_log(1, REGISTERED, registered + 1).await?;
    assert!(log.contains("corrupt chunk file dropped at start"), "{log}");
    assert!(!victim.exists(), "the corrupt file is deleted");

    phase("the chunk is no longer located on the worker; reading it fails clearly");
    let collection = client.get_collection("fragile").await?;
    let lost: Vec<_> = collection
        .chunks()
        .iter()
        .filter(|chunk| chunk.locations.is_empty())
        .collect();
    assert_eq!(lost.len(), 1, "exactly the corrupted chunk has no location left");
    let options = cairn_client::ClientOptions {
        timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let impatient = cairn_client::Client::connect_with(cluster.cluster.addrs(), options).await?;
    let error = impatient
        .get_collection("fragile")
        .await?
        .collect()
        .await
        .expect_err("a lost chunk cannot be read");
    assert!(error.to_string().contains(&lost[0].key), "{error}");
    Ok(())
}
