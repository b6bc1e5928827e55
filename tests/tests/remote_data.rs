//! Remote data is read by byte range on a real cluster from a real S3-compatible
//! server: CSV (several ranges per object), Parquet (several row groups) and Arrow
//! IPC objects under `s3://` (moto on loopback, from a virtual environment this test
//! makes under the target dir) read through `client.read_csv/read_parquet/read_arrow`
//! equal the same files read locally; a missing key or bucket is an error naming the
//! URL; one public object over plain `http://` reads the same.
//!
//! The workers get the S3 configuration as `AWS_*` environment variables
//! (`TestCluster::start_with_workers_and_env`); this process's client gets the same
//! with `cairn_client::remote::configure_s3`, not `std::env::set_var`.

use std::path::Path;

use arrow::array::RecordBatch;
use cairn_client::{remote, Client, Error, LazyCollection};
use cairn_tests::data::{concat, schema, table, write_csv};
use cairn_tests::s3::MotoServer;
use cairn_tests::{phase, TestCluster};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const BUCKET: &str = "cairn-remote-data";

/// All of a lazy collection's partitions computed, as one batch.
async fn rows(collection: &LazyCollection) -> anyhow::Result<RecordBatch> {
    let batches = collection.compute().await?;
    concat(&schema(), &batches)
}

/// The message of a failed computation, whatever variant.
async fn failure(client: &Client, op: &str, url: &str) -> String {
    let task = client.task(op, [url.into()]);
    match client.compute(&task).await {
        Ok(batch) => panic!("{op}({url}) must fail, read {} rows", batch.num_rows()),
        Err(error) => {
            eprintln!("{op}({url}): {error}");
            error.to_string()
        }
    }
}

fn write_parquet_groups(path: &Path, batch: &RecordBatch, rows_per_group: usize) -> anyhow::Result<()> {
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path)?, batch.schema(), Some(properties))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

fn write_arrow_batches(path: &Path, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let mut writer = arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(path)?, &schema())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_objects_are_read_by_range_on_a_real_cluster() -> anyhow::Result<()> {
    phase("moto: a real S3-compatible server on loopback");
    let Some(server) = MotoServer::start()? else {
        return Ok(());
    };
    server.create_bucket(BUCKET)?;

    let files = tempfile::tempdir()?;
    let local = files.path();
    std::fs::create_dir_all(local.join("csv"))?;
    for part in 0..3 {
        let name = format!("accounts.{part}.csv");
        write_csv(&local.join("csv").join(&name), &table(part * 2_000, 2_000))?;
        server.put_file(BUCKET, &format!("csv/{name}"), &local.join("csv").join(&name))?;
    }
    // Not matched by the pattern.
    server.put(BUCKET, "csv/readme.txt", b"not data")?;
    server.put(BUCKET, "csv/old/accounts.9.csv", b"id\n1\n")?;
    let parquet_file = local.join("stations.parquet");
    write_parquet_groups(&parquet_file, &table(0, 30_000), 5_000)?;
    server.put_file(BUCKET, "parquet/stations.parquet", &parquet_file)?;
    let arrow_file = local.join("stations.arrow");
    write_arrow_batches(
        &arrow_file,
        &[table(0, 4_000), table(4_000, 3_000), table(7_000, 5_000)],
    )?;
    server.put_file(BUCKET, "arrow/stations.arrow", &arrow_file)?;

    remote::configure_s3(server.s3_env())?;
    let cluster = TestCluster::start_with_workers_and_env(3, 2, "256MiB", &[], &server.s3_env()).await?;
    let client = cluster.client().await?;

    phase("CSV: several byte ranges per object, the same rows as the local files");
    let remote_csv = client.read_csv_with_blocksize(&format!("s3://{BUCKET}/csv/accounts.*.csv"), 16 << 10)?;
    let local_pattern = local.join("csv").join("accounts.*.csv");
    let local_csv = client.read_csv_with_blocksize(local_pattern.to_str().unwrap_or_default(), 16 << 10)?;
    assert_eq!(remote_csv.npartitions(), local_csv.npartitions());
    assert!(
        remote_csv.npartitions() >= 9,
        "{} partitions: expected several ranges per object",
        remote_csv.npartitions()
    );
    let expected = table(0, 6_000);
    assert_eq!(rows(&remote_csv).await?, expected);
    assert_eq!(rows(&local_csv).await?, expected);

    phase("Parquet: several row groups, the same rows as the local file");
    let remote_parquet = client.read_parquet(&format!("s3://{BUCKET}/parquet/*.parquet"))?;
    assert_eq!(remote_parquet.npartitions(), 1);
    let local_parquet = client.read_parquet(parquet_file.to_str().unwrap_or_default())?;
    let remote_rows = rows(&remote_parquet).await?;
    assert_eq!(remote_rows, rows(&local_parquet).await?);
    assert_eq!(remote_rows, table(0, 30_000));
    let group = client.task(
        "read_parquet",
        [format!("s3://{BUCKET}/parquet/stations.parquet").into(), 3.into()],
    );
    assert_eq!(client.compute(&group).await?, table(15_000, 5_000));

    phase("Arrow IPC: the same rows as the local file, and one batch alone");
    let remote_arrow = client.read_arrow(&format!("s3://{BUCKET}/arrow/stations.arrow"))?;
    let local_arrow = client.read_arrow(arrow_file.to_str().unwrap_or_default())?;
    let remote_rows = rows(&remote_arrow).await?;
    assert_eq!(remote_rows, rows(&local_arrow).await?);
    assert_eq!(remote_rows, table(0, 12_000));
    let batch = client.task(
        "read_arrow",
        [format!("s3://{BUCKET}/arrow/stations.arrow").into(), 1.into()],
    );
    assert_eq!(client.compute(&batch).await?, table(4_000, 3_000));

    phase("a missing key or bucket is an error naming the URL");
    let missing = format!("s3://{BUCKET}/csv/missing.csv");
    match client.read_csv(&missing) {
        Err(Error::NotFound { message }) => assert!(message.starts_with(&missing), "{message}"),
        other => panic!("expected not-found naming {missing}, got {other:?}"),
    }
    let error = client
        .read_parquet(&format!("s3://{BUCKET}/nothing/*.parquet"))
        .expect_err("nothing matches");
    assert!(error.to_string().contains("no object matches"), "{error}");
    let message = failure(&client, "read_csv", &missing).await;
    assert!(
        message.contains(&format!("cannot read {missing}: not found")),
        "{message}"
    );
    let no_bucket = "s3://cairn-no-such-bucket/a.parquet";
    let message = failure(&client, "read_parquet", no_bucket).await;
    assert!(message.contains(&format!("cannot read {no_bucket}")), "{message}");

    phase("plain http://: one public object by URL, read by range; no listing");
    let csv_one = std::fs::read(local.join("csv").join("accounts.1.csv"))?;
    server.put_public(BUCKET, "public/accounts.1.csv", &csv_one)?;
    let url = format!("{}/{BUCKET}/public/accounts.1.csv", server.endpoint());
    assert_eq!(remote::size(&url)?, csv_one.len() as u64);
    let over_http = client.read_csv_with_blocksize(&url, 16 << 10)?;
    assert!(over_http.npartitions() >= 3, "{} partitions", over_http.npartitions());
    assert_eq!(rows(&over_http).await?, table(2_000, 2_000));
    let error = client.read_csv(&format!("{}/{BUCKET}/public/*.csv", server.endpoint()));
    assert!(
        matches!(&error, Err(Error::InvalidArgument { message }) if message.contains("cannot be listed")),
        "{error:?}"
    );
    let private = format!("{}/{BUCKET}/csv/accounts.1.csv", server.endpoint());
    let message = failure(&client, "read_csv", &private).await;
    assert!(message.contains(&format!("cannot read {private}")), "{message}");
    Ok(())
}
