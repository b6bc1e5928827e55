//! Publish, list, get and unpublish datasets on a running cluster.
//!
//! ```sh
//! cairn up &                                     # or any cluster
//! cargo run -p cairn-client --example catalog -- 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
//! ```
//! Without an argument it uses `$CAIRN_CLUSTER`, else `127.0.0.1:7101`.

use cairn_client::{parse_cluster, Client, Dataset, Error};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let list = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CAIRN_CLUSTER").ok())
        .unwrap_or_else(|| "127.0.0.1:7101".to_string());
    let client = Client::connect(parse_cluster(&list)?).await?;

    // Publish one name, then two atomically, with attributes.
    client
        .publish_dataset("example/negative_accounts", "Alice,-100\nBob,-200")
        .await?;
    client
        .publish_datasets(
            vec![
                Dataset::new("example/a", "1").attribute("owner", "example"),
                Dataset::new("example/b", "2"),
            ],
            false,
        )
        .await?;

    // Publishing an existing name is an error that names it.
    match client.publish_dataset("example/a", "again").await {
        Err(Error::AlreadyExists { message }) => println!("as expected: {message}"),
        other => println!("unexpected: {other:?}"),
    }

    println!("datasets in publish order: {:?}", client.list_datasets().await?);
    let dataset = client.get_dataset("example/negative_accounts").await?;
    println!("negative_accounts = {:?}", dataset.as_text());
    let info = client.dataset_info("example/a").await?;
    println!("example/a: {} bytes, attributes {:?}", info.bytes, info.attributes);

    // The mapping interface, and clean up.
    let datasets = client.datasets();
    for name in ["example/negative_accounts", "example/a", "example/b"] {
        datasets.remove(name).await?;
    }
    println!("cleaned up; {} datasets remain", datasets.len().await?);
    Ok(())
}
