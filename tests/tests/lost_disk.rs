//! A scheduler whose data dir was lost does not come back as a fresh bootstrapped
//! member of the cluster it belonged to: `--peers` bootstrap is refused, naming the
//! peer that knows it and the safe procedure; the safe procedure brings it back.
//! Replicas starting empty for the first time still form (or join) the cluster.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_cli::local_cluster::{plan_cluster, wait_for_leader, LocalCluster};
use cairn_tests::{cairn_binary, output_text, phase, TestCluster, FAST_TIMING};

/// Runs `cairn scheduler` as node `id` of `cluster` with its original `--peers`, as
/// `LocalCluster::start` does, and waits (at most `limit`) for it to exit.
fn run_with_peers(cluster: &TestCluster, id: u64, limit: Duration) -> anyhow::Result<(Output, Duration)> {
    let file = &cluster.cluster.file;
    let entry = file
        .schedulers
        .iter()
        .find(|entry| entry.id == id)
        .ok_or_else(|| anyhow::anyhow!("no scheduler {id}"))?;
    let child = Command::new(cairn_binary()?)
        .args(["scheduler", "--id", &id.to_string(), "--listen", &entry.addr])
        .arg("--data-dir")
        .arg(&entry.data_dir)
        .args(["--peers", &file.peers_arg(), "--cluster-token", &file.cluster_token])
        .args(FAST_TIMING)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let output = wait_with_limit(child, limit)?;
    Ok((output, started.elapsed()))
}

/// Waits for `child` to exit; kills it and fails after `limit`.
fn wait_with_limit(mut child: Child, limit: Duration) -> anyhow::Result<Output> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            anyhow::bail!("the scheduler did not exit within {limit:?}:\n{}", output_text(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// Asserts that `output` is a refusal of node `id`'s bootstrap naming the safe way back.
fn assert_refused(output: &Output, id: u64, addr: &str) {
    let text = output_text(output);
    assert!(!output.status.success(), "the bootstrap must be refused:\n{text}");
    for needle in [
        format!("refusing to bootstrap node {id} with --peers"),
        "lost its data dir".to_string(),
        format!("cairn cluster remove-node --id {id} --cluster"),
        format!("cairn scheduler --id {id} --listen {addr} --data-dir"),
        "--join".to_string(),
        format!("cairn cluster add-node --id {id} --addr {addr} --cluster"),
    ] {
        assert!(text.contains(&needle), "the message lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains("panicked"), "{text}");
}

fn is_empty_or_missing(path: &Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(true)
}

/// Waits until replica `addr` (node `id`) reports `datasets` datasets applied.
async fn wait_for_datasets(addr: &str, id: u64, datasets: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A replica still starting may refuse the connection: not yet.
        let status = match cairn_client::Client::connect([addr]).await {
            Ok(client) => client
                .status()
                .await
                .into_iter()
                .find_map(|(_, status)| status.ok().filter(|status| status.node_id == id)),
            Err(_) => None,
        };
        if status.as_ref().is_some_and(|status| status.datasets == datasets) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "replica {id} did not reach {datasets} datasets within 20 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leader loses its data dir: restarted with its original `--peers`, it exits
/// non-zero within seconds, naming the peer that knows it and the safe procedure, and
/// leaves its data dir empty. Following the procedure (remove-node, start with
/// `--join`, add-node) brings it back as a voter that holds every dataset and keeps
/// the cluster writable when another replica dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_data_dir_is_refused_and_rejoins_safely() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    for index in 0..5 {
        client.publish_dataset(&format!("before-{index}"), "x").await?;
    }
    let victim = cluster.leader().await?;
    let addr = cluster.cluster.addr(victim)?;
    let data_dir = cluster
        .cluster
        .file
        .schedulers
        .iter()
        .find(|entry| entry.id == victim)
        .map(|entry| entry.data_dir.clone())
        .ok_or_else(|| anyhow::anyhow!("no data dir"))?;

    phase(&format!("SIGKILL the leader {victim} and wipe its data dir"));
    cluster.cluster.kill(victim)?;
    std::fs::remove_dir_all(&data_dir)?;
    client.publish_dataset("while-down", "y").await?;

    phase("restarted with its original --peers, it is refused");
    let (output, took) = run_with_peers(&cluster, victim, Duration::from_secs(30))?;
    assert_refused(&output, victim, &addr);
    eprintln!("{}", String::from_utf8_lossy(&output.stderr).trim_end());
    assert!(took < Duration::from_secs(10), "refused only after {took:?}");
    assert!(
        is_empty_or_missing(&data_dir),
        "the refused start left files in its data dir"
    );
    client.publish_dataset("after-refusal", "z").await?;

    phase("the safe procedure: remove-node, start with --join, add-node");
    let output = cluster.cli(&["cluster", "remove-node", "--id", &victim.to_string()])?;
    assert!(output.status.success(), "{}", output_text(&output));
    let log = std::fs::File::create(cluster.dir.path().join(format!("scheduler-{victim}-join.log")))?;
    let mut joined = Command::new(cairn_binary()?)
        .args(["scheduler", "--id", &victim.to_string(), "--listen", &addr, "--join"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(FAST_TIMING)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let result = async {
        let output = cluster.cli(&[
            "cluster",
            "add-node",
            "--id",
            &victim.to_string(),
            "--addr",
            &addr,
            "--json",
        ])?;
        anyhow::ensure!(output.status.success(), "{}", output_text(&output));
        let members: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let voters = members["members"]
            .as_array()
            .map(|members| members.iter().filter(|member| member["role"] == "voter").count());
        anyhow::ensure!(voters == Some(3), "{members}");
        wait_for_datasets(&addr, victim, 7).await?;

        phase("it serves: with another replica killed, the cluster still writes and reads");
        let other = (1..=3).find(|id| *id != victim).unwrap_or(1);
        cluster.cluster.kill(other)?;
        client.publish_dataset("after-rejoin", "w").await?;
        let read = client.get_dataset("before-0").await?;
        anyhow::ensure!(read.as_text() == Some("x"), "read {:?}", read.as_text());
        anyhow::ensure!(client.list_datasets().await?.len() == 8);
        Ok(())
    }
    .await;
    let _ = joined.kill();
    let _ = joined.wait();
    result
}

/// The whole cluster restarts (as `cairn up` does) and one replica's data dir is
/// gone: the peers it asks come up within its probe deadline and know it, so it is
/// refused; the two intact replicas elect a leader and serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_data_dir_is_refused_when_the_whole_cluster_restarts() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    client.publish_dataset("kept", "1").await?;
    // Every replica must have been a member (and applied the write) before the
    // restart: one still probing at its first start was never known to the others,
    // so with its data dir gone it would rightly bootstrap instead of being refused.
    for entry in cluster.cluster.file.schedulers.clone() {
        wait_for_datasets(&entry.addr, entry.id, 1).await?;
    }
    cluster.cluster.stop_all(Duration::from_secs(10))?;
    let lost = cluster.cluster.file.schedulers[0].clone();
    std::fs::remove_dir_all(&lost.data_dir)?;

    phase(&format!("start all; scheduler {} (wiped) starts first", lost.id));
    cluster.cluster.start_all()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some((_, status)) = cluster.cluster.reap_exited().into_iter().find(|(id, _)| *id == lost.id) {
            break status;
        }
        assert!(Instant::now() < deadline, "the wiped replica did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = cluster.log(lost.id);
    assert!(!status.contains("exit status: 0"), "{status}\n{log}");
    assert!(
        log.contains(&format!("refusing to bootstrap node {} with --peers", lost.id)),
        "{log}"
    );
    assert!(is_empty_or_missing(&lost.data_dir));

    phase("the intact replicas serve");
    cluster.leader().await?;
    client.publish_dataset("after", "2").await?;
    assert_eq!(client.list_datasets().await?, vec!["kept", "after"]);
    Ok(())
}

/// A replica started for the first time after the others formed the cluster (and
/// committed writes) is not mistaken for a lost one: no peer has heard from it, so it
/// bootstraps, joins, and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_late_for_the_first_time_joins() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = plan_cluster(dir.path(), 3, 0, format!("late-{}", std::process::id()))?;
    let args = FAST_TIMING.iter().map(|arg| arg.to_string()).collect();
    let mut cluster = LocalCluster::new(cairn_binary()?, file, dir.path().join("logs"), args);

    phase("start schedulers 1 and 2 only; they elect a leader and commit");
    cluster.start(1)?;
    cluster.start(2)?;
    wait_for_leader(&cluster.addrs(), Duration::from_secs(20)).await?;
    let client = cairn_client::Client::connect(cluster.addrs()).await?;
    for index in 0..3 {
        client.publish_dataset(&format!("early-{index}"), "x").await?;
    }

    phase("scheduler 3 starts for the first time with the same --peers");
    cluster.start(3)?;
    wait_for_datasets(&cluster.addr(3)?, 3, 3).await?;
    assert!(cluster.is_running(3));
    let log = std::fs::read_to_string(cluster.log_path(3))?;
    assert!(log.contains("no peer knows this node: bootstrapping"), "{log}");

    phase("it votes: with scheduler 1 killed, 2 and 3 still write");
    cluster.kill(1)?;
    client.publish_dataset("late", "y").await?;
    Ok(())
}

/// The leader's id and term as the replicas report them.
async fn leader_and_term(client: &cairn_client::Client) -> anyhow::Result<(u64, u64)> {
    let leader = client
        .leader_status()
        .await
        .ok_or_else(|| anyhow::anyhow!("no replica reports being the leader"))?;
    Ok((leader.node_id, leader.term))
}

/// The leader and term once they have held for a second: a replica bootstrapping a
/// little after the others stands for election in term 1 at once (openraft's
/// `initialize`) and can depose the first leader within a second of the start.
async fn settled_leader_and_term(client: &cairn_client::Client) -> anyhow::Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = leader_and_term(client).await.ok();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = leader_and_term(client).await.ok();
        if now.is_some() && now == last {
            return now.ok_or_else(|| anyhow::anyhow!("no leader"));
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader held for a second within 20 s");
        last = now;
    }
}

/// Split votes' cousin: a follower that stopped hearing a live leader (SIGSTOP for
/// five leases) and wakes up does not depose it. It asks for pre-votes first, and the
/// leader and the other follower, which still hear each other, refuse; without them it
/// would stand with a higher term and make the leader step down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_wakes_up_does_not_depose_a_live_leader() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    client.publish_dataset("before", "x").await?;
    let (leader, term) = settled_leader_and_term(&client).await?;
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);
    for round in 0..3 {
        phase(&format!(
            "round {round}: SIGSTOP follower {follower} for 1 s, then SIGCONT"
        ));
        cluster.cluster.pause(follower)?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cluster.cluster.resume(follower)?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        client.publish_dataset(&format!("round-{round}"), "y").await?;
    }
    let after = leader_and_term(&client).await?;
    assert_eq!(after, (leader, term), "the woken follower deposed the leader");
    wait_for_datasets(&cluster.cluster.addr(follower)?, follower, 4).await?;
    Ok(())
}
