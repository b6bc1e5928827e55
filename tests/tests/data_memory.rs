//! A worker holds a published dataset four times its memory limit: chunks spill to
//! disk as Arrow IPC, the process's peak RSS stays within 1.2× the limit, and every
//! byte reads back identical (spilled chunks come back transparently).

use cairn_cli::bench_data::{generated_chunk, schema, CHUNK_ROWS};
use cairn_client::PublishOptions;
use cairn_tests::{phase, TestCluster};
use futures::TryStreamExt;

/// Chunks: 128 × 8 MiB = 1 GiB.
const CHUNKS: usize = 128;

fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    cairn_worker::rss::pid_status_bytes(pid, "VmHWM").ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// The `THP_enabled` field of process `pid` (None on kernels without it).
fn huge_pages_enabled(pid: u32) -> Option<String> {
    cairn_worker::rss::pid_status_field(pid, "THP_enabled")
}

/// 1 GiB published to one worker with `--memory-limit 256MiB`: peak RSS (VmHWM)
/// ≤ 1.2 × 256 MiB while publishing and while reading back, and the data is
/// byte-identical. Also: schedulers run without transparent huge pages, workers
/// as the machine is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holds_four_times_its_memory() -> anyhow::Result<()> {
    let limit: u64 = 256 * 1024 * 1024;
    let cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let pid = cluster
        .cluster
        .worker_pid(1)
        .ok_or_else(|| anyhow::anyhow!("worker 1 is not running"))?;
    let scheduler = cluster
        .cluster
        .pid(1)
        .ok_or_else(|| anyhow::anyhow!("scheduler 1 is not running"))?;
    if let Some(here) = huge_pages_enabled(std::process::id()) {
        assert_eq!(
            huge_pages_enabled(scheduler).as_deref(),
            Some("0"),
            "a scheduler turns them off"
        );
        assert_eq!(huge_pages_enabled(pid), Some(here), "a worker leaves them as they are");
    }
    let client = cluster.client().await?;

    phase("publish 1 GiB in 8 MiB chunks");
    let batches = futures::stream::iter((0..CHUNKS).map(generated_chunk));
    let options = PublishOptions {
        chunk_rows: CHUNK_ROWS,
        ..Default::default()
    };
    client.publish_batches("big", schema(), batches, options).await?;
    let after_publish = peak_rss(pid)?;
    eprintln!("peak RSS after publishing 1 GiB: {} MiB", after_publish >> 20);

    phase("read everything back, chunk by chunk");
    let collection = client.get_collection("big").await?;
    assert_eq!(collection.chunks().len(), CHUNKS);
    let mut stream = std::pin::pin!(collection.stream());
    let mut index = 0;
    while let Some(batch) = stream.try_next().await? {
        assert!(batch == generated_chunk(index)?, "chunk {index} differs");
        index += 1;
    }
    assert_eq!(index, CHUNKS);
    let after_read = peak_rss(pid)?;
    eprintln!("peak RSS after reading 1 GiB back: {} MiB", after_read >> 20);
    let ratio = after_read as f64 / limit as f64;
    assert!(ratio <= 1.2, "peak RSS is {ratio:.2}× the memory limit");
    let workers = client.workers().await?;
    assert!(
        workers[0].spilled_bytes > 0 || workers[0].managed_bytes < limit,
        "{workers:?}"
    );
    Ok(())
}
