//! A worker whose disk fills up pauses with a clear error and loses nothing that was
//! acknowledged: publishes that cannot be stored fail (nothing is published), the
//! datasets already published stay readable, and `cairn status` says why the
//! worker is paused.
//!
//! Needs root (a small tmpfs is mounted for the worker's data dir); skipped with the
//! reason otherwise.

use std::process::Command;

use cairn_client::PublishOptions;
use cairn_tests::data::{concat, table};
use cairn_tests::{phase, TestCluster};

/// Mounts a tmpfs of `size` at `dir`; Err with the reason if this machine cannot.
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Result<(), String> {
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|error| format!("cannot run mount: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "mount failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill an 8 MiB disk: the publish that does not fit fails with a disk error naming
/// the worker as paused, earlier datasets read back identical, and status shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_the_worker_and_loses_nothing() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, &["--worker-timeout-ms", "3000"]).await?;
    let disk = cluster.dir.path().join("small-disk");
    std::fs::create_dir_all(&disk)?;
    if let Err(reason) = mount_tmpfs(&disk, "8m") {
        eprintln!("SKIPPED a_full_disk_pauses_the_worker_and_loses_nothing: {reason}");
        return Ok(());
    }
    let _unmount = Unmount(disk.clone());
    cairn_cli::local_cluster::plan_workers(&mut cluster.cluster.file, &disk, 1, 0, "256MiB")?;
    cluster
        .cluster
        .set_worker_args(vec!["--heartbeat-ms".to_string(), "200".to_string()]);
    cluster.cluster.start_workers()?;
    cluster.wait_for_workers(1).await?;
    let client = cluster.client().await?;

    phase("a small dataset fits");
    let small = table(0, 20_000);
    let options = || PublishOptions {
        chunk_rows: 10_000,
        ..Default::default()
    };
    let batches = futures::stream::iter(vec![Ok::<_, arrow::error::ArrowError>(small.clone())]);
    client
        .publish_batches("fits", small.schema(), batches, options())
        .await?;

    phase("a dataset larger than the disk does not: the publish fails, nothing is published");
    let large = table(0, 400_000);
    let batches = futures::stream::iter(vec![Ok::<_, arrow::error::ArrowError>(large.clone())]);
    let error = client
        .publish_batches("too-big", large.schema(), batches, options())
        .await
        .expect_err("the disk is full");
    let message = error.to_string();
    eprintln!("the publish failed with: {message}");
    assert!(
        message.contains("paused") || message.contains("No space left"),
        "{message}"
    );
    assert_eq!(client.list_datasets().await?, ["fits"]);

    phase("what was acknowledged is intact, and status says why the worker is paused");
    let collection = client.get_collection("fits").await?;
    let back = concat(&collection.schema(), &collection.collect().await?)?;
    assert_eq!(back, small);
    let log = cluster.worker_log(1);
    assert!(
        log.contains("disk write failed") && log.contains("No space left on device"),
        "the worker should log the failed write and the OS error:\n{log}"
    );
    // The pause lasts until a 1 MiB probe write succeeds: while the disk stays full,
    // status says why (the orphaned chunks of the failed publish fill it until their
    // grace period ends).
    let chunk_dir = disk.join("worker-1").join("chunks");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = cluster.cli(&["status"])?;
        let status = String::from_utf8_lossy(&status.stdout).to_string();
        if status.contains("paused:") {
            break;
        }
        let free_enough = std::fs::read_dir(&chunk_dir)?.count() < 20;
        assert!(
            free_enough || std::time::Instant::now() < deadline,
            "the disk is full but status does not say the worker is paused:\n{status}"
        );
        if free_enough {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}
