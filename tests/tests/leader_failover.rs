//! Killing the leader loses nothing, and a restarted replica catches up — from a
//! snapshot when the log it missed was purged.

use std::time::{Duration, Instant};

use cairn_tests::{phase, TestCluster};

/// 3 schedulers: publish 100 datasets, SIGKILL the leader; a new leader is elected
/// and takes writes, and all 100 are there. The killed node, restarted after the
/// log was compacted, catches up through a snapshot and serves every dataset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_nothing_and_restarted_node_catches_up() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, &["--snapshot-every", "50", "--snapshot-keep-logs", "0"]).await?;
    let client = cluster.client().await?;

    phase("publish 100 datasets");
    for index in 0..100 {
        client
            .publish_dataset(&format!("ds-{index:03}"), format!("value-{index}"))
            .await?;
    }
    let old_leader = cluster.leader().await?;

    phase(&format!("SIGKILL the leader (scheduler {old_leader})"));
    cluster.cluster.kill(old_leader)?;
    let killed_at = Instant::now();
    client.publish_dataset("after-kill", "new leader takes writes").await?;
    eprintln!("next publish acknowledged {:?} after the kill", killed_at.elapsed());
    let new_leader = cluster.leader().await?;
    assert_ne!(new_leader, old_leader);

    phase("all 100 are there, with their values");
    let names = client.list_datasets().await?;
    assert_eq!(names.len(), 101);
    for index in (0..100).step_by(7) {
        let dataset = client.get_dataset(&format!("ds-{index:03}")).await?;
        assert_eq!(dataset.as_text(), Some(format!("value-{index}").as_str()));
    }

    phase("more writes while the node is down, so its log is purged past it");
    for index in 0..120 {
        client.publish_dataset(&format!("while-down-{index:03}"), "x").await?;
    }

    phase("restart the killed node: it catches up from a snapshot");
    cluster.cluster.start(old_leader)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses = client.status().await;
        let restarted = statuses.iter().find_map(|(_, status)| {
            status
                .as_ref()
                .ok()
                .filter(|status| status.node_id == old_leader)
                .cloned()
        });
        if let Some(status) = restarted {
            if status.datasets == 221 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the restarted node did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cluster.log(old_leader).contains("installed a snapshot"),
        "the restarted node should have caught up through a snapshot:\n{}",
        cluster.log(old_leader)
    );

    phase("the restarted node can lead and serve everything");
    cluster.cluster.kill(new_leader)?;
    let names = client.list_datasets().await?;
    assert_eq!(names.len(), 221);
    assert_eq!(names.first().map(String::as_str), Some("ds-000"));
    Ok(())
}

/// Opens an HTTP/2 connection to `addr` as a client that then stops answering (a
/// paused or cut-off process): the preface and SETTINGS are sent, nothing more is
/// read or written, so a graceful shutdown's PING is never acknowledged.
fn stalled_http2_connection(addr: &str) -> anyhow::Result<std::net::TcpStream> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])?;
    Ok(stream)
}

/// A worker and a scheduler each stop on SIGTERM in bounded time while a client that
/// stopped answering holds a connection to them (tonic's graceful shutdown alone
/// waits for it forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_a_scheduler_stop_on_sigterm_despite_a_stalled_client() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let leader = cluster.leader().await?;
    let follower = (1..=3).find(|id| *id != leader).expect("3 schedulers");
    let _to_worker = stalled_http2_connection(&cluster.cluster.worker_addr(1)?)?;
    let _to_follower = stalled_http2_connection(&cluster.cluster.addr(follower)?)?;
    // Both servers have read the preface before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    phase("SIGTERM the worker: it stops although the stalled client never lets go");
    let started = Instant::now();
    // Fails with "did not stop within" if the stop hangs.
    cluster.cluster.terminate_worker(1, Duration::from_secs(10))?;
    eprintln!("the worker stopped {:?} after SIGTERM", started.elapsed());
    assert!(
        cluster.worker_log(1).contains("worker stopping"),
        "the worker did not go through its stop: {}",
        cluster.worker_log(1)
    );

    phase(&format!("SIGTERM scheduler {follower}, likewise"));
    let started = Instant::now();
    cluster.cluster.terminate(follower, Duration::from_secs(10))?;
    eprintln!("scheduler {follower} stopped {:?} after SIGTERM", started.elapsed());
    cluster.cluster.stop_all(Duration::from_secs(10))?;
    Ok(())
}

/// On a current-thread runtime (the benchmarks'), stopping the cluster while this
/// client's connections are open does not wait out the servers' grace: the async
/// stop leaves the thread free to answer their goodbyes. A blocking wait here would
/// leave them unanswered; each scheduler would then stop only after its 3 s grace,
/// and is killed at 2.8 s (as much time as possible for a stop on a loaded machine).
#[tokio::test(flavor = "current_thread")]
async fn an_async_stop_on_one_thread_does_not_hold_the_servers_hostage() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    client.publish_dataset("held-open", "connections stay open").await?;
    let started = Instant::now();
    cluster.cluster.stop_all_async(Duration::from_millis(2800)).await?;
    eprintln!("the cluster stopped in {:?}", started.elapsed());
    drop(client);
    Ok(())
}

/// A leader stops on SIGTERM in bounded time even while workers hold their streams
/// open to it (tonic's graceful shutdown alone waits for every connection to close),
/// and the rest of the cluster goes on: a new leader takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_with_open_worker_streams_stops_on_sigterm() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let client = cluster.client().await?;
    let leader = cluster.leader().await?;

    phase(&format!(
        "SIGTERM the leader (scheduler {leader}) while the worker's streams are open"
    ));
    let started = Instant::now();
    // Fails with "did not stop within" if the stop hangs.
    cluster.cluster.terminate(leader, Duration::from_secs(10))?;
    eprintln!("the leader stopped {:?} after SIGTERM", started.elapsed());
    assert!(
        cluster.log(leader).contains("scheduler stopping"),
        "the leader did not go through its stop: {}",
        cluster.log(leader)
    );

    phase("a new leader takes writes");
    client.publish_dataset("after-stop", "taken").await?;
    assert_ne!(cluster.leader().await?, leader);
    cluster.cluster.stop_all(Duration::from_secs(10))?;
    Ok(())
}
