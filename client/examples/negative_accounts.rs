//! The seed "Publish Datasets" (Dask's docs, `dask-publish-datasets-docs.txt`): one
//! client reads CSV account files, keeps the negative balances, persists them on the
//! workers and publishes them; a second client lists the published datasets, gets
//! this one and prints its `head()`. Checked against a direct count from the files.
//!
//! ```text
//! scripts/make-seed-data --out seed-data          # once
//! cargo run -p cairn-client --example negative_accounts -- [--data seed-data] [--cluster A,B,C]
//!     [--accounts 'PATTERN'] [--blocksize BYTES] [--replicas N]
//! ```
//!
//! `--accounts` may be a local glob or an `s3://bucket/prefix*.csv` pattern (the
//! workers and this process read S3 with the usual `AWS_*` environment variables;
//! see the README's "Remote data").

mod common;

use arrow::array::{Array, Int64Array};
use cairn_client::{col, lit, Client, Content, PersistOptions, DEFAULT_BLOCKSIZE};
use common::{check, Args};

const USAGE: &str =
    "negative_accounts [--data DIR] [--cluster A,B,C] [--accounts PATTERN] [--blocksize BYTES] [--replicas N]";

/// How many rows of the CSV texts have a negative `balance` (the third column).
fn count_negative(texts: &[String]) -> usize {
    texts
        .iter()
        .flat_map(|text| text.lines().skip(1))
        .filter(|line| {
            line.split(',')
                .nth(2)
                .and_then(|b| b.parse::<i64>().ok())
                .is_some_and(|b| b < 0)
        })
        .count()
}

/// The account files' texts, read directly (locally or from the object store).
fn read_texts(pattern: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    if cairn_client::remote::is_remote(pattern) {
        let mut texts = Vec::new();
        for (url, size) in cairn_client::remote::list(pattern)? {
            let bytes = cairn_client::remote::get_range(&url, 0..size)?;
            texts.push(String::from_utf8(bytes.to_vec())?);
        }
        return Ok(texts);
    }
    common::files(pattern)
        .iter()
        .map(|path| Ok(std::fs::read_to_string(path)?))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let pattern = match args.get("accounts") {
        Some(pattern) => pattern.to_string(),
        None => {
            let dir = args.data().join("accounts");
            common::require(&dir);
            format!("{}/accounts.*.csv", dir.display())
        }
    };
    let blocksize = args
        .get("blocksize")
        .map(str::parse)
        .transpose()?
        .unwrap_or(DEFAULT_BLOCKSIZE);
    let replicas = args.get("replicas").map(str::parse).transpose()?.unwrap_or(1);

    // The first client: df = dd.read_csv(...); df2 = df[df.balance < 0]; persist; publish.
    let publisher = Client::connect(args.cluster()).await?;
    let accounts = publisher.read_csv_with_blocksize(&pattern, blocksize)?;
    let negative = accounts.filter(&col("balance").lt(lit(0)));
    let held = negative.persist().await?;
    let options = PersistOptions {
        replicas,
        override_existing: true,
        attributes: [("source".to_string(), pattern.clone())].into(),
    };
    let index = publisher.publish_persisted("negative_accounts", &held, options).await?;
    println!(
        "published negative_accounts ({} partitions read from {pattern}) at log index {index}",
        accounts.npartitions()
    );
    drop(held);

    // A second client: client.list_datasets(); df = client.get_dataset(...); df.head()
    let reader = Client::connect(args.cluster()).await?;
    let names = reader.list_datasets().await?;
    println!("datasets: {names:?}");
    check(
        names.iter().any(|name| name == "negative_accounts"),
        "the second client lists negative_accounts",
    );
    let dataset = reader.get_dataset("negative_accounts").await?;
    let Content::Collection(collection) = &dataset.content else {
        return Err("negative_accounts is not a persisted collection".into());
    };
    let head = collection.head(5).await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&head)?);
    let batches = collection.collect().await?;
    let rows: usize = batches.iter().map(|batch| batch.num_rows()).sum();
    let all_negative = batches.iter().all(|batch| {
        batch
            .column_by_name("balance")
            .and_then(|column| column.as_any().downcast_ref::<Int64Array>().cloned())
            .is_some_and(|balances| balances.iter().all(|balance| balance.is_some_and(|b| b < 0)))
    });
    let expected = count_negative(&read_texts(&pattern)?);
    println!("{rows} accounts with a negative balance (direct count from the files: {expected})");
    check(
        rows == expected && rows > 0,
        "the published rows are the negative balances of the files",
    );
    check(all_negative, "every published balance is negative");
    Ok(())
}
