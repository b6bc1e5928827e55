//! Task graphs run on the workers: a 10,000-task graph completes on 2 workers; a
//! malformed graph is refused with an error naming the task and the cluster carries
//! on; a task that raises fails its dependents with its own message; a persisted
//! collection published by one client is read by a second; a published view is
//! computed afresh on each get.

use std::collections::BTreeMap;

use cairn_client::{col, lit, scalar_i64, Content, Delayed, Error, PersistOptions, TaskArg};
use cairn_tests::data::{table, write_csv};
use cairn_tests::{phase, TestCluster};

/// `n` `inc` tasks over 0..n and a tree sum of fan-in 8 over them: the expected sum
/// is n(n+1)/2. Returns the sum task and how many tasks the graph has.
fn inc_tree(client: &cairn_client::Client, n: i64) -> (Delayed, usize) {
    let mut level: Vec<Delayed> = (0..n).map(|i| client.task("inc", [i.into()])).collect();
    let mut count = level.len();
    while level.len() > 1 {
        level = level
            .chunks(8)
            .map(|group| client.task("sum", group.iter().map(TaskArg::from)))
            .collect();
        count += level.len();
    }
    (level.remove(0), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_run_and_bad_graphs_are_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with_workers(3, 2, "256MiB", &["--nthreads", "2"]).await?;
    let client = cluster.client().await?;

    phase("a graph of 10,000 tasks completes on 2 workers with the right answer");
    let (total, tasks) = inc_tree(&client, 8_850);
    assert!(tasks >= 10_000, "the graph has {tasks} tasks");
    let started = std::time::Instant::now();
    let result = client.compute(&total).await?;
    eprintln!("{tasks} tasks in {:?}", started.elapsed());
    assert_eq!(scalar_i64(&result), Some(8_850 * 8_851 / 2));

    phase("malformed graphs are refused whole, naming the task");
    let one = client.task("inc", [1.into()]);
    let cases: Vec<(Vec<Delayed>, &str)> = vec![
        (vec![client.task("frobnicate", [(&one).into()])], "frobnicate"),
        (vec![client.task("head", [(&one).into(), "ten".into()])], "must be int"),
        (
            vec![
                Delayed::with_key("dup-1", "inc", [1.into()]),
                Delayed::with_key("dup-1", "inc", [2.into()]),
            ],
            "dup-1",
        ),
        (vec![Delayed::with_key("bad/key", "inc", [1.into()])], "bad/key"),
    ];
    for (outputs, needle) in cases {
        let refs: Vec<&Delayed> = outputs.iter().collect();
        let error = client
            .submit_all(&refs)
            .await
            .expect_err("a malformed graph must be refused");
        assert!(
            matches!(error, Error::InvalidGraph { .. } | Error::InvalidArgument { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(needle), "{error} should name {needle}");
    }
    phase("a cycle and a missing dependency, sent as raw graphs");
    let cycle = vec![
        raw("cyc-a", "inc", vec![task_ref("cyc-b")]),
        raw("cyc-b", "inc", vec![task_ref("cyc-a")]),
    ];
    let error = submit_raw(&cluster, cycle, &["cyc-a"])
        .await
        .expect_err("a cycle must be refused");
    assert!(error.contains("cycle") && error.contains("cyc-a"), "{error}");
    let missing = vec![raw("needs-ghost", "inc", vec![task_ref("ghost")])];
    let error = submit_raw(&cluster, missing, &["needs-ghost"])
        .await
        .expect_err("a missing dependency must be refused");
    assert!(error.contains("needs-ghost") && error.contains("ghost"), "{error}");
    phase("the cluster carries on");
    let (total, _) = inc_tree(&client, 100);
    assert_eq!(scalar_i64(&client.compute(&total).await?), Some(5_050));

    phase("a task that raises fails its dependents with its own message");
    let read = client.task("read_csv", ["/nonexistent/cairn/input.csv".into()]);
    let after = client.task("inc", [(&read).into()]);
    let error = client.compute(&after).await.expect_err("the read must fail");
    match &error {
        Error::TaskFailed { key, task, message } => {
            assert_eq!(key, after.key());
            assert_eq!(task, read.key());
            assert!(message.contains("/nonexistent/cairn/input.csv"), "{message}");
        }
        other => panic!("expected a task failure, got {other:?}"),
    }

    phase("a persisted collection published by one client is read by a second");
    let files = tempfile::tempdir()?;
    for part in 0..3 {
        write_csv(
            &files.path().join(format!("accounts.{part}.csv")),
            &table(part * 1_000, 1_000),
        )?;
    }
    let pattern = files.path().join("accounts.*.csv");
    let accounts = client.read_csv(pattern.to_str().unwrap_or_default())?;
    assert_eq!(accounts.npartitions(), 3);
    let negative = accounts.filter(&col("value").lt(lit(0.0)));
    let held = negative.persist().await?;
    client
        .publish_persisted(
            "negative",
            &held,
            PersistOptions {
                replicas: 2,
                ..Default::default()
            },
        )
        .await?;
    drop(held);
    let second = cluster.client().await?;
    let collection = second.get_collection("negative").await?;
    let rows: usize = collection.collect().await?.iter().map(|batch| batch.num_rows()).sum();
    // value = id * 0.25 - 7.5 < 0 for ids 0..=29.
    assert_eq!(rows, 30);
    assert_eq!(collection.replicas(), 2);

    phase("a published view is computed afresh on each get");
    let view_file = files.path().join("live.csv");
    write_csv(&view_file, &table(0, 10))?;
    let live = client.read_csv(view_file.to_str().unwrap_or_default())?;
    client.publish_view("live", &live, BTreeMap::new()).await?;
    let rows_of_view = |dataset: cairn_client::PublishedDataset| async move {
        match dataset.content {
            Content::View(view) => {
                let batches = view.compute().await?;
                Ok::<usize, Error>(batches.iter().map(|batch| batch.num_rows()).sum())
            }
            other => panic!("expected a view, got {other:?}"),
        }
    };
    assert_eq!(rows_of_view(second.get_dataset("live").await?).await?, 10);
    write_csv(&view_file, &table(0, 25))?;
    assert_eq!(rows_of_view(second.get_dataset("live").await?).await?, 25);
    Ok(())
}

fn raw(key: &str, op: &str, args: Vec<cairn_proto::v1::TaskArg>) -> cairn_proto::v1::TaskSpec {
    cairn_proto::v1::TaskSpec {
        key: key.to_string(),
        op: op.to_string(),
        args,
    }
}

fn task_ref(key: &str) -> cairn_proto::v1::TaskArg {
    cairn_proto::v1::TaskArg {
        arg: Some(cairn_proto::v1::task_arg::Arg::Task(key.to_string())),
    }
}

/// Submits a raw graph (one the client library would never build) to the leader.
async fn submit_raw(
    cluster: &TestCluster,
    tasks: Vec<cairn_proto::v1::TaskSpec>,
    wanted: &[&str],
) -> Result<(), String> {
    let leader = cluster.leader().await.map_err(|error| error.to_string())?;
    let addr = cluster.cluster.addr(leader).map_err(|error| error.to_string())?;
    let mut scheduler = cairn_proto::v1::scheduler_client::SchedulerClient::connect(format!("http://{addr}"))
        .await
        .map_err(|error| error.to_string())?;
    scheduler
        .submit_graph(cairn_proto::v1::SubmitGraphRequest {
            client_id: vec![7; 16],
            tasks,
            wanted: wanted.iter().map(|key| key.to_string()).collect(),
        })
        .await
        .map(|_| ())
        .map_err(|status| status.message().to_string())
}
