//! Bad data input is a clear error that changes nothing: unknown formats, a
//! malformed CSV (the line is named), files whose schemas differ, a missing file, a
//! name that exists, `--replicas 0` or more than the workers, and a worker data dir
//! of another cluster.

use std::time::Duration;

use cairn_tests::data::{table, write_csv, write_parquet};
use cairn_tests::{cairn_binary, phase, TestCluster};

use cairn_tests::output_text as text;

/// Every refused publish names its problem, exits non-zero without a panic, and
/// leaves the catalog as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_publishes_name_the_problem_and_change_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let files = tempfile::tempdir()?;
    let good = files.path().join("good.csv");
    write_csv(&good, &table(0, 100))?;
    let other_schema = files.path().join("other.csv");
    std::fs::write(&other_schema, "a,b\n1,2\n")?;
    let bad_line = files.path().join("bad.csv");
    std::fs::write(&bad_line, "x,y\n1,2\n3,4\n5\n7,8\n")?;
    let unknown = files.path().join("data.xlsx");
    std::fs::write(&unknown, "whatever")?;
    let fake_parquet = files.path().join("fake.parquet");
    std::fs::write(&fake_parquet, "this is not parquet")?;
    let parquet = files.path().join("good.parquet");
    write_parquet(&parquet, &table(0, 10))?;
    let path = |p: &std::path::Path| p.to_str().unwrap_or_default().to_string();

    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![path(&unknown)], "data.xlsx"),
        (vec![path(&bad_line)], "line 4"),
        (vec![path(&good), path(&other_schema)], "other.csv"),
        (
            vec![files
                .path()
                .join("missing.csv")
                .to_str()
                .unwrap_or_default()
                .to_string()],
            "missing.csv",
        ),
        (vec![path(&fake_parquet)], "fake.parquet"),
    ];
    for (inputs, needle) in cases {
        phase(&format!("publish {inputs:?} is refused, naming {needle:?}"));
        let mut args = vec!["datasets".to_string(), "publish".to_string(), "refused".to_string()];
        for input in &inputs {
            args.push("--file".to_string());
            args.push(input.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = cluster.cli(&args)?;
        let said = text(&output);
        assert!(!output.status.success(), "should fail:\n{said}");
        assert!(said.contains(needle), "should name {needle:?}:\n{said}");
        assert!(!said.contains("panicked"), "{said}");
    }

    phase("replicas: 0, and more than the workers");
    let output = cluster.cli(&[
        "datasets",
        "publish",
        "refused",
        "--file",
        &path(&good),
        "--replicas",
        "0",
    ])?;
    assert!(
        !output.status.success() && text(&output).contains("--replicas must be at least 1"),
        "{}",
        text(&output)
    );
    let output = cluster.cli(&[
        "datasets",
        "publish",
        "refused",
        "--file",
        &path(&good),
        "--replicas",
        "2",
    ])?;
    assert!(
        !output.status.success() && text(&output).contains("asks for 2 replicas, but only 1 worker(s) are alive"),
        "{}",
        text(&output)
    );

    phase("an existing name is refused; --override replaces it");
    let output = cluster.cli(&["datasets", "publish", "taken", "--file", &path(&parquet)])?;
    assert!(output.status.success(), "{}", text(&output));
    let output = cluster.cli(&["datasets", "publish", "taken", "--file", &path(&good)])?;
    assert!(
        !output.status.success() && text(&output).contains("dataset 'taken' already exists"),
        "{}",
        text(&output)
    );
    let client = cluster.client().await?;
    assert_eq!(
        client.get_collection("taken").await?.num_rows(),
        10,
        "the refused publish changed nothing"
    );
    assert_eq!(
        client.list_datasets().await?,
        ["taken"],
        "no refused publish left a name"
    );
    let output = cluster.cli(&["datasets", "publish", "taken", "--file", &path(&good), "--override"])?;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(client.get_collection("taken").await?.num_rows(), 100);
    Ok(())
}

/// A worker whose data dir belongs to another cluster exits with an error saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_another_clusters_data_dir() -> anyhow::Result<()> {
    let mut first = TestCluster::start_with_workers(3, 1, "256MiB", &[]).await?;
    let data_dir = first.cluster.file.workers[0].data_dir.clone();
    first.cluster.terminate_worker(1, Duration::from_secs(10))?;
    let second = TestCluster::start(3, &[]).await?;
    let mut child = std::process::Command::new(cairn_binary()?)
        .args([
            "worker",
            "--cluster",
            &second.cluster.addrs().join(","),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--memory-limit", "64MiB"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let started = std::time::Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill()?;
            anyhow::bail!("the worker did not exit within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output()?;
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("belongs to another cluster"), "{said}");
    Ok(())
}
