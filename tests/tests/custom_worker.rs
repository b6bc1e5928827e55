//! A custom worker binary's own operation runs: `worker/examples/custom_worker.rs`
//! registers `to_kelvin` through the `Operation` trait, joins the cluster beside
//! the built-ins, and a graph using it computes the right column.

use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::{Array, Float64Array};
use cairn_client::TaskArg;
use cairn_tests::data::{table, write_csv};
use cairn_tests::{example_binary, phase, TestCluster};

/// Kills the child process when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_workers_operation_runs() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let data_dir = cluster.dir.path().join("custom-worker");
    let log = std::fs::File::create(cluster.dir.path().join("custom-worker.log"))?;
    phase("start the custom worker binary");
    let _worker = Child(
        Command::new(example_binary("cairn-worker", "custom_worker")?)
            .args([
                "--cluster",
                &cluster.cluster.addrs().join(","),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data_dir.to_str().unwrap_or_default(),
                "--memory-limit",
                "256MiB",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    cluster.wait_for_workers(1).await?;
    cluster.wait_for_task_streams(1).await?;
    let client = cluster.client().await?;
    let catalogue = client.operations().await?;
    assert!(
        catalogue.operations.iter().any(|op| op.name == "to_kelvin"),
        "the custom operation is advertised"
    );
    assert!(
        catalogue.operations.iter().any(|op| op.name == "inc"),
        "beside the built-ins"
    );

    phase("a graph using the custom operation");
    let files = tempfile::tempdir()?;
    let csv = files.path().join("celsius.csv");
    write_csv(&csv, &table(0, 50))?;
    let read = client.task("read_csv", [csv.to_str().unwrap_or_default().into()]);
    let kelvin = client.task("to_kelvin", [TaskArg::from(&read), "value".into()]);
    let batch = tokio::time::timeout(Duration::from_secs(60), client.compute(&kelvin)).await??;
    let column = batch
        .column_by_name("value_kelvin")
        .and_then(|column| column.as_any().downcast_ref::<Float64Array>().cloned())
        .ok_or_else(|| anyhow::anyhow!("no value_kelvin column in {:?}", batch.schema()))?;
    assert_eq!(column.len(), 50);
    // value = id * 0.25 - 7.5
    assert!((column.value(4) - (4.0 * 0.25 - 7.5 + 273.15)).abs() < 1e-9);
    Ok(())
}
