//! A leader paused past the election timeout steps down when it resumes, and no
//! write is lost or applied twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cairn_tests::{phase, TestCluster};

/// SIGSTOP the leader for longer than the election timeout while clients keep
/// publishing, then SIGCONT: the others elect a new leader, the old one steps down
/// to a follower of a higher term, every acknowledged publish is there exactly once,
/// and nothing unacknowledged appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_steps_down_and_nothing_is_lost_or_doubled() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    let old_leader = cluster.leader().await?;
    let old_term = client
        .status()
        .await
        .into_iter()
        .find_map(|(_, status)| status.ok().filter(|status| status.node_id == old_leader))
        .map(|status| status.term)
        .unwrap_or(0);

    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let name = format!("before-pause-{index}");
        client.publish_dataset(&name, "x").await?;
        acknowledged.push(name);
    }

    phase(&format!(
        "SIGSTOP the leader (scheduler {old_leader}) for 2 s, publishing meanwhile"
    ));
    cluster.cluster.pause(old_leader)?;
    let paused_at = Instant::now();
    let mut index = 0;
    while paused_at.elapsed() < Duration::from_secs(2) {
        let name = format!("during-pause-{index}");
        index += 1;
        match client.publish_dataset(&name, "x").await {
            Ok(_) => acknowledged.push(name),
            Err(error) => eprintln!("publish {name} not acknowledged: {error}"),
        }
    }
    let new_leader = cluster.leader().await?;
    assert_ne!(
        new_leader, old_leader,
        "a new leader must be elected while the old one is paused"
    );

    phase("SIGCONT: the old leader steps down");
    cluster.cluster.resume(old_leader)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client
            .status()
            .await
            .into_iter()
            .find_map(|(_, status)| status.ok().filter(|status| status.node_id == old_leader));
        if let Some(status) = status {
            // Another election may follow under load; what matters is that the old
            // leader no longer leads and has seen the higher term.
            if status.state == "follower" && status.term > old_term && status.leader_id.is_some() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the old leader did not step down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for index in 0..10 {
        let name = format!("after-resume-{index}");
        client.publish_dataset(&name, "x").await?;
        acknowledged.push(name);
    }

    phase("every acknowledged publish is there, once, in order");
    let listed = client.list_datasets().await?;
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a name is listed twice: {listed:?}");
    for name in &acknowledged {
        assert!(unique.contains(name), "acknowledged publish {name} is lost");
    }
    let positions: Vec<usize> = acknowledged
        .iter()
        .filter_map(|name| listed.iter().position(|listed| listed == name))
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "publish order broken"
    );
    for name in &listed {
        assert!(
            acknowledged.contains(name) || name.starts_with("during-pause-"),
            "{name} appeared but was never published"
        );
    }
    Ok(())
}
