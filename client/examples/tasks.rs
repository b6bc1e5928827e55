//! Task graphs against a running cluster (`make up` / `cairn up`): a delayed chain,
//! a tree sum of 1,000 `inc`s, and a lazy collection read from CSV, filtered,
//! reduced and persisted.
//!
//! ```text
//! cargo run -p cairn-client --example tasks [-- 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103]
//! ```

use cairn_client::{col, lit, scalar_i64, Client, TaskArg};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103".to_string());
    let client = Client::connect(cluster.split(',')).await?;

    let catalogue = client.operations().await?;
    println!(
        "{} workers offer {} operations: {}",
        catalogue.connected_workers,
        catalogue.operations.len(),
        catalogue
            .operations
            .iter()
            .map(|op| op.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // delayed: inc(inc(1)) = 3
    let one = client.task("inc", [1.into()]);
    let two = client.task("inc", [(&one).into()]);
    println!("inc(inc(1)) = {:?}", scalar_i64(&client.compute(&two).await?));

    // a tree sum of 1,000 incs: sum(i + 1 for i in 0..1000) = 500,500
    let mut level: Vec<_> = (0..1000).map(|i| client.task("inc", [i.into()])).collect();
    while level.len() > 1 {
        level = level
            .chunks(8)
            .map(|group| client.task("sum", group.iter().map(TaskArg::from)))
            .collect();
    }
    println!("tree sum = {:?}", scalar_i64(&client.compute(&level[0]).await?));

    // a lazy collection from CSV files
    let dir = std::env::temp_dir().join("cairn-tasks-example");
    std::fs::create_dir_all(&dir)?;
    for part in 0..3 {
        let mut text = String::from("name,balance\n");
        for row in 0..100 {
            text.push_str(&format!("account-{part}-{row},{}\n", (row as i64 - 50) * 10));
        }
        std::fs::write(dir.join(format!("accounts.{part}.csv")), text)?;
    }
    let accounts = client.read_csv(&format!("{}/accounts.*.csv", dir.display()))?;
    let negative = accounts.filter(&col("balance").lt(lit(0)));
    let rows: usize = negative.compute().await?.iter().map(|batch| batch.num_rows()).sum();
    println!("{rows} negative balances of {} partitions", accounts.npartitions());
    println!("mean balance: {:?}", accounts.mean().await?);
    Ok(())
}
