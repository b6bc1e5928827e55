//! Published tables come back identical: CSV, Parquet and Arrow IPC files published
//! with the CLI are read back through the client, the CLI (`get --head`, `get
//! --output` in every format) and `info`, which tells schema, chunks, rows, bytes
//! and locations without reading data. Unpublishing frees the workers' disks.

use std::time::{Duration, Instant};

use cairn_tests::data::{concat, read_arrow, read_parquet, table, write_arrow, write_csv, write_parquet};
use cairn_tests::{phase, TestCluster};

use cairn_tests::output_text as text;

/// Each format, published with several chunks, reads back equal to its source;
/// `info` describes it; `get --output` writes every format; `get --head` prints rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_the_cluster() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with_workers(3, 2, "256MiB", &[]).await?;
    let files = tempfile::tempdir()?;
    let source = table(0, 10_000);
    let csv = files.path().join("trips.csv");
    let parquet = files.path().join("trips.parquet");
    let arrow = files.path().join("trips.arrow");
    write_csv(&csv, &source)?;
    write_parquet(&parquet, &source)?;
    write_arrow(&arrow, &source)?;
    let client = cluster.client().await?;

    for (name, file) in [("from-csv", &csv), ("from-parquet", &parquet), ("from-arrow", &arrow)] {
        phase(&format!("publish {name} with the CLI, 3,000 rows a chunk"));
        let output = cluster.cli(&[
            "datasets",
            "publish",
            name,
            "--file",
            file.to_str().unwrap_or_default(),
            "--chunk-rows",
            "3000",
        ])?;
        assert!(output.status.success(), "publish failed:\n{}", text(&output));
        assert!(text(&output).contains("10000 rows in 4 chunks"), "{}", text(&output));
        let collection = client.get_collection(name).await?;
        assert_eq!(collection.num_rows(), 10_000);
        assert_eq!(collection.chunks().len(), 4);
        let batches = collection.collect().await?;
        let back = concat(&collection.schema(), &batches)?;
        assert_eq!(back.columns(), source.columns(), "{name} must read back identical");
    }
    assert_eq!(
        client.list_datasets().await?,
        ["from-csv", "from-parquet", "from-arrow"]
    );

    phase("info tells schema, chunks, rows, bytes and locations without reading data");
    let output = cluster.cli(&["datasets", "info", "from-parquet", "--json"])?;
    assert!(output.status.success(), "{}", text(&output));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(info["kind"], "persisted");
    assert_eq!(info["collection"]["rows"], 10_000);
    assert_eq!(info["collection"]["chunks"].as_array().map(Vec::len), Some(4));
    assert_eq!(info["collection"]["schema"][0]["name"], "id");
    assert_eq!(info["collection"]["schema"][1]["type"], "Float64");
    let first_chunk = &info["collection"]["chunks"][0];
    assert_eq!(first_chunk["locations"].as_array().map(Vec::len), Some(1));
    assert_eq!(first_chunk["locations"][0]["live"], true);
    let readable = cluster.cli(&["datasets", "info", "from-parquet"])?;
    let readable = text(&readable);
    for needle in ["rows:         10000", "chunks:       4", "id: Int64", "replicas:     1"] {
        assert!(readable.contains(needle), "info should show {needle:?}:\n{readable}");
    }

    phase("get --head prints a table");
    let output = cluster.cli(&["datasets", "get", "from-csv", "--head", "3"])?;
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("station-2") && !shown.contains("station-3 "), "{shown}");
    assert!(shown.contains("9997 more rows"), "{shown}");

    phase("get --output writes Arrow, Parquet and CSV");
    let out_arrow = files.path().join("out.arrow");
    let out_parquet = files.path().join("out.parquet");
    let out_csv = files.path().join("out.csv");
    for out in [&out_arrow, &out_parquet, &out_csv] {
        let output = cluster.cli(&[
            "datasets",
            "get",
            "from-arrow",
            "--output",
            out.to_str().unwrap_or_default(),
        ])?;
        assert!(output.status.success(), "{}", text(&output));
    }
    assert_eq!(read_arrow(&out_arrow)?, source);
    assert_eq!(read_parquet(&out_parquet)?, source);
    assert_eq!(std::fs::read_to_string(&out_csv)?, std::fs::read_to_string(&csv)?);

    phase("unpublish frees the disk on the workers");
    let before: usize = (1..=2).map(|index| cluster.chunk_files(index).len()).sum();
    assert_eq!(before, 12, "3 datasets of 4 chunks, one replica each");
    for name in ["from-csv", "from-parquet", "from-arrow"] {
        client.unpublish_dataset(name).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: usize = (1..=2).map(|index| cluster.chunk_files(index).len()).sum();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} chunk files left 15 s after unpublish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
