//! Adding and removing scheduler replicas with `cairn cluster add-node | remove-node`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_cli::local_cluster::free_port;
use cairn_tests::{cairn_binary, phase, TestCluster, FAST_TIMING};

/// A fourth replica started with `--join` is added as a learner, catches up and
/// becomes a voter holding every dataset; removing it leaves three voters that
/// keep serving; removing an unknown node is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_replica_is_added_then_removed() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    for index in 0..10 {
        client.publish_dataset(&format!("before-join-{index}"), "x").await?;
    }

    phase("start replica 4 with --join");
    let addr = format!("127.0.0.1:{}", free_port()?);
    let data_dir = cluster.dir.path().join("scheduler-4");
    let log = std::fs::File::create(cluster.dir.path().join("scheduler-4.log"))?;
    let mut fourth = Command::new(cairn_binary()?)
        .args(["scheduler", "--id", "4", "--listen", &addr, "--join"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(FAST_TIMING)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;

    phase("cairn cluster add-node");
    let output = cluster.cli(&["cluster", "add-node", "--id", "4", "--addr", &addr, "--json"])?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let members: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let voters = members["members"]
        .as_array()
        .map(|members| members.iter().filter(|member| member["role"] == "voter").count());
    assert_eq!(voters, Some(4), "{members}");

    phase("replica 4 has every dataset");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fourth_status = cairn_client::Client::connect([addr.as_str()])
            .await?
            .status()
            .await
            .into_iter()
            .find_map(|(_, status)| status.ok().filter(|status| status.node_id == 4));
        if fourth_status.is_some_and(|status| status.datasets == 10) {
            break;
        }
        assert!(Instant::now() < deadline, "replica 4 did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    phase("adding it again is refused; removing an unknown node is refused");
    let output = cluster.cli(&["cluster", "add-node", "--id", "4", "--addr", &addr])?;
    assert!(String::from_utf8_lossy(&output.stderr).contains("already a voting member"));
    let output = cluster.cli(&["cluster", "remove-node", "--id", "7"])?;
    assert!(String::from_utf8_lossy(&output.stderr).contains("node 7 is not a member"));

    phase("cairn cluster remove-node 4");
    let output = cluster.cli(&["cluster", "remove-node", "--id", "4", "--json"])?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let members: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(members["members"].as_array().map(Vec::len), Some(3), "{members}");
    fourth.kill()?;
    fourth.wait()?;
    client.publish_dataset("after-remove", "x").await?;
    assert_eq!(client.list_datasets().await?.len(), 11);
    Ok(())
}

/// Regression test for the first bug `cairn-jepsen` found: removing a voter while
/// another voter was cut off committed a joint configuration that needed the
/// unreachable one, and the cluster accepted no write until it came back (7 s in the
/// run, as long as the partition in general). The removal is now refused up front
/// (as etcd's strict reconfiguration check), and the cluster keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_node_is_refused_when_the_remaining_voters_lack_a_quorum() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    client.publish_dataset("before", "x").await?;
    let leader = cluster.leader().await?;
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (paused, removed) = (others[0], others[1]);

    phase(&format!(
        "SIGSTOP scheduler {paused}, then ask to remove scheduler {removed}"
    ));
    cluster.cluster.pause(paused)?;
    let started = Instant::now();
    let output = cluster.cli(&["cluster", "remove-node", "--id", &removed.to_string()])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the removal must be refused");
    assert!(stderr.contains("refusing to remove node"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "refused in {:?}",
        started.elapsed()
    );

    phase("the two live voters still commit writes; the membership is unchanged");
    client.publish_dataset("during", "y").await?;
    let members = client
        .status()
        .await
        .into_iter()
        .find_map(|(_, status)| status.ok().filter(|status| status.node_id == leader))
        .map(|status| status.members.len());
    assert_eq!(members, Some(3));

    phase("once it is back, the removal goes through");
    cluster.cluster.resume(paused)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = cluster.cli(&["cluster", "remove-node", "--id", &removed.to_string()])?;
        if output.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", String::from_utf8_lossy(&output.stderr));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.publish_dataset("after", "z").await?;
    assert_eq!(client.list_datasets().await?, vec!["before", "during", "after"]);
    Ok(())
}
