//! Fast tests with three scheduler replicas in one process (real openraft, real
//! RocksDB in temporary dirs, real gRPC on loopback port 0), no child processes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientOptions, Error};
use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::catalog_client::CatalogClient;
use cairn_proto::v1::{InlineValue, OpenSessionRequest, PublishItem, PublishRequest, RequestId, StatusRequest};
use cairn_raft::{Bootstrap, NodeConfig, RaftSettings};
use cairn_scheduler::SchedulerConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Replica {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), cairn_scheduler::SchedulerError>>,
}

struct InProcessCluster {
    replicas: BTreeMap<u64, Replica>,
    _dir: tempfile::TempDir,
}

impl InProcessCluster {
    async fn start() -> anyhow::Result<InProcessCluster> {
        InProcessCluster::start_with(RaftSettings::default(), Duration::from_secs(3)).await
    }

    async fn start_with(settings: RaftSettings, request_timeout: Duration) -> anyhow::Result<InProcessCluster> {
        let dir = tempfile::tempdir()?;
        let mut listeners = BTreeMap::new();
        for id in 1..=3u64 {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            listeners.insert(id, listener);
        }
        let peers: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, listener)| Ok((*id, listener.local_addr()?.to_string())))
            .collect::<anyhow::Result<_>>()?;
        let mut replicas = BTreeMap::new();
        for (id, listener) in listeners {
            let config = SchedulerConfig {
                node: NodeConfig {
                    node_id: id,
                    data_dir: dir.path().join(format!("s{id}")),
                    bootstrap: Bootstrap::Peers {
                        peers: peers.clone(),
                        token: "in-process".to_string(),
                        initialize: true,
                    },
                    settings: settings.clone(),
                },
                request_timeout,
                injected_bugs: Default::default(),
                worker_timeout: Duration::from_secs(10),
            };
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(cairn_scheduler::run(config, listener, async move {
                let _ = stopped.await;
            }));
            replicas.insert(
                id,
                Replica {
                    addr: peers[&id].clone(),
                    stop: Some(stop),
                    task,
                },
            );
        }
        Ok(InProcessCluster { replicas, _dir: dir })
    }

    fn addrs(&self) -> Vec<String> {
        self.replicas.values().map(|replica| replica.addr.clone()).collect()
    }

    async fn client(&self) -> anyhow::Result<Client> {
        let options = ClientOptions {
            timeout: Duration::from_secs(15),
            attempt_timeout: Duration::from_millis(800),
            ..Default::default()
        };
        Ok(Client::connect_with(self.addrs(), options).await?)
    }

    async fn leader(&self, client: &Client) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let statuses = client.status().await;
            let leader = statuses
                .iter()
                .filter_map(|(_, status)| status.as_ref().ok())
                .find(|status| status.state == "leader")
                .map(|status| status.node_id);
            if let Some(leader) = leader {
                return Ok(leader);
            }
            anyhow::ensure!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops replica `id` cleanly (its shutdown future resolves) and waits for it.
    async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        if let Some(mut replica) = self.replicas.remove(&id) {
            if let Some(stop) = replica.stop.take() {
                let _ = stop.send(());
            }
            replica.task.await??;
        }
        Ok(())
    }
}

/// Publish, list, get and unpublish work across replicas; stopping the leader
/// elects another that still has every dataset and takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_survives_the_leader_stopping() -> anyhow::Result<()> {
    let mut cluster = InProcessCluster::start().await?;
    let client = cluster.client().await?;
    for index in 0..20 {
        client.publish_dataset(&format!("d{index}"), format!("{index}")).await?;
    }
    client.unpublish_dataset("d0").await?;
    assert!(matches!(client.get_dataset("d0").await, Err(Error::NotFound { .. })));
    let leader = cluster.leader(&client).await?;
    cluster.stop(leader).await?;
    client.publish_dataset("after", "stop").await?;
    let names = client.list_datasets().await?;
    assert_eq!(names.len(), 20);
    assert_eq!(names.first().map(String::as_str), Some("d1"));
    assert_eq!(names.last().map(String::as_str), Some("after"));
    assert_eq!(client.get_dataset("d7").await?.as_text(), Some("7"));
    Ok(())
}

/// With a majority stopped, a write ends with a timeout error instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_calls_time_out() -> anyhow::Result<()> {
    let mut cluster = InProcessCluster::start().await?;
    let client = cluster.client().await?;
    client.publish_dataset("first", "1").await?;
    cluster.stop(1).await?;
    cluster.stop(2).await?;
    let options = ClientOptions {
        timeout: Duration::from_secs(3),
        attempt_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let lonely = Client::connect_with(cluster.addrs(), options).await?;
    let started = Instant::now();
    let error = lonely.publish_dataset("second", "2").await.expect_err("no quorum");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let error = lonely
        .list_datasets()
        .await
        .expect_err("no quorum for a linearizable read");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    Ok(())
}

/// A leader that cannot commit takes writes only until its uncommitted log reaches
/// its bound, then refuses them at once (`unavailable`, saying why), so clients'
/// retries do not grow its log without bound. Raw calls to the leader alone, so what
/// each write answered is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_quorum_stops_growing_its_log() -> anyhow::Result<()> {
    let settings = RaftSettings {
        max_uncommitted_bytes: 64 * 1024,
        ..RaftSettings::default()
    };
    let mut cluster = InProcessCluster::start_with(settings, Duration::from_millis(500)).await?;
    let client_id = vec![7u8; 16];
    let publish = |catalog: &CatalogClient<tonic::transport::Channel>, seq: u64| {
        let mut catalog = catalog.clone();
        let request = PublishRequest {
            request: Some(RequestId {
                client_id: client_id.clone(),
                seq,
                lowest_unacked_seq: 1,
            }),
            items: vec![PublishItem {
                name: format!("w{seq}"),
                value: Some(InlineValue {
                    data: vec![b'x'; 8 * 1024],
                    content_type: "text/plain".to_string(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        async move { catalog.publish(request).await }
    };
    // The leader right after start may still change: open the session and write
    // once on one that answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (leader, catalog) = loop {
        let leader = cluster.leader(&cluster.client().await?).await?;
        let catalog = CatalogClient::connect(format!("http://{}", cluster.replicas[&leader].addr)).await?;
        let opened = catalog
            .clone()
            .open_session(OpenSessionRequest {
                client_id: client_id.clone(),
            })
            .await;
        let written = match opened {
            Ok(_) => publish(&catalog, 1).await.map(|_| ()),
            Err(status) => Err(status),
        };
        match written {
            Ok(()) => break (leader, catalog),
            Err(status) if Instant::now() < deadline => {
                eprintln!("before the faults: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => return Err(status.into()),
        }
    };
    let followers: Vec<u64> = cluster.replicas.keys().copied().filter(|id| *id != leader).collect();
    for follower in followers {
        cluster.stop(follower).await?;
    }
    // The first wave is appended (about 200 KiB, mostly in 2 entries) and times out;
    // a write of it that waited for room behind those may be refused already.
    let first_wave: Vec<_> = (2..26).map(|seq| tokio::spawn(publish(&catalog, seq))).collect();
    for write in first_wave {
        let status = write.await?.expect_err("no quorum: the write cannot succeed");
        let message = status.message();
        assert!(
            message.contains("did not complete") || message.contains("not yet committed"),
            "{status:?}"
        );
    }
    let mut admin = AdminClient::connect(format!("http://{}", cluster.replicas[&leader].addr)).await?;
    let before = admin.status(StatusRequest {}).await?.into_inner();
    assert!(before.last_log_index > before.commit_index, "{before:?}");
    // The next ones are refused at once, and the log does not grow.
    for seq in 26..40 {
        let status = publish(&catalog, seq)
            .await
            .expect_err("no quorum: the write cannot succeed");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("not yet committed"), "{status:?}");
    }
    let after = admin.status(StatusRequest {}).await?.into_inner();
    assert_eq!(
        (before.last_log_index, before.commit_index),
        (after.last_log_index, after.commit_index),
        "the leader's log grew without a quorum"
    );
    Ok(())
}

/// Many clients writing at once: every write is applied exactly once with its own
/// outcome, and writes that arrive together share log entries (the same log index)
/// instead of taking one Raft round and one fsync each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_keep_their_outcomes() -> anyhow::Result<()> {
    let cluster = InProcessCluster::start().await?;
    let mut writers = Vec::new();
    for writer in 0..16 {
        let client = cluster.client().await?;
        writers.push(tokio::spawn(async move {
            let mut indexes = Vec::new();
            for index in 0..8 {
                indexes.push(client.publish_dataset(&format!("w{writer}-{index}"), "x").await?);
            }
            // Every writer also races for one shared name: exactly one may win.
            let shared = client.publish_dataset("contested", format!("{writer}")).await;
            Ok::<_, Error>((indexes, shared.is_ok()))
        }));
    }
    let mut indexes = Vec::new();
    let mut winners = 0;
    for writer in writers {
        let (written, won) = writer.await??;
        indexes.extend(written);
        winners += usize::from(won);
    }
    assert_eq!(winners, 1, "exactly one publish of the contested name succeeds");
    let names = cluster.client().await?.list_datasets().await?;
    assert_eq!(names.len(), 16 * 8 + 1);
    indexes.sort_unstable();
    let entries = {
        let mut distinct = indexes.clone();
        distinct.dedup();
        distinct.len()
    };
    assert!(
        entries < indexes.len(),
        "{} concurrent writes took {entries} log entries: none were batched",
        indexes.len()
    );
    Ok(())
}
