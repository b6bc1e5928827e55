//! A full restart of every scheduler keeps every acknowledged publish.

use std::time::Duration;

use cairn_tests::{phase, TestCluster};

/// Stop all 3 schedulers (cleanly, then by SIGKILL) and start them again:
/// everything acknowledged is still there, in publish order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_every_dataset() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    let mut expected = Vec::new();
    for index in 0..30 {
        let name = format!("before-stop-{index}");
        client.publish_dataset(&name, format!("{index}")).await?;
        expected.push(name);
    }
    client.unpublish_dataset("before-stop-3").await?;
    expected.retain(|name| name != "before-stop-3");

    phase("SIGTERM every scheduler, start them again");
    cluster.cluster.stop_all(Duration::from_secs(10))?;
    cluster.cluster.start_all()?;
    cluster.leader().await?;
    let client = cluster.client().await?;
    assert_eq!(client.list_datasets().await?, expected);

    phase("SIGKILL every scheduler right after a publish, start them again");
    client.publish_dataset("last-before-kill", "acknowledged").await?;
    expected.push("last-before-kill".to_string());
    for id in 1..=3 {
        cluster.cluster.kill(id)?;
    }
    cluster.cluster.start_all()?;
    cluster.leader().await?;
    let client = cluster.client().await?;
    assert_eq!(client.list_datasets().await?, expected);
    assert_eq!(
        client.get_dataset("last-before-kill").await?.as_text(),
        Some("acknowledged")
    );
    Ok(())
}
