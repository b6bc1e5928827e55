//! Lazy collections (SPEC §5): a list of partitions, each a task not yet run, a held
//! result, or a chunk of a published dataset — Dask's dataframe on Arrow batches.
//! Methods build graphs; `compute` brings results to the client, `persist` keeps
//! them on workers, and both can be published (`Persisted` and `View` entries).
//!
//! ```no_run
//! use cairn_client::{col, lit, Client};
//!
//! # async fn demo(client: Client) -> Result<(), cairn_client::Error> {
//! let accounts = client.read_csv("data/accounts.*.csv")?;
//! let negative = accounts.filter(&col("balance").lt(lit(0)));
//! let held = negative.persist().await?;
//! client.publish_persisted("negative_accounts", &held, Default::default()).await?;
//! let mean = accounts.mean().await?;   // 1 row: the mean of each numeric column
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use arrow::array::RecordBatch;
use cairn_proto::v1 as pb;
use prost::Message;

use crate::error::Error;
use crate::expr::{named_exprs_to_json, Expr};
use crate::remote;
use crate::task_types::Literal;
use crate::tasks::{Delayed, TaskArg, TaskFuture, TaskState};
use crate::Client;

/// How many partial results one tree-reduction step combines.
pub const TREE_FAN_IN: usize = 8;
/// The default byte range of one CSV partition.
pub const DEFAULT_BLOCKSIZE: u64 = 64 * 1024 * 1024;

/// A lazy collection of Arrow batches (one per partition, with one schema).
///
/// ```no_run
/// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
/// let table = client.read_parquet("data/*.parquet")?;
/// println!("{} partitions", table.npartitions());
/// let batches = table.head(5).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LazyCollection {
    client: Client,
    partitions: Vec<TaskArg>,
}

/// Files matching `pattern` (a path or a glob), sorted; an error names the pattern.
/// A remote pattern (`s3://…`, `http(s)://…`) is listed with [`remote::list`] and its
/// URLs are kept as they are (a `PathBuf` holding the URL), for the workers to read.
pub(crate) fn expand(pattern: &str) -> Result<Vec<PathBuf>, Error> {
    if remote::is_remote(pattern) {
        return Ok(expand_remote(pattern)?.into_iter().map(|(url, _size)| url).collect());
    }
    let invalid = |message: String| Error::InvalidArgument { message };
    let paths: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|error| invalid(format!("invalid path pattern {pattern:?}: {error}")))?
        .filter_map(Result::ok)
        .filter(|path| path.is_file())
        .collect();
    if paths.is_empty() {
        return Err(invalid(format!("no file matches {pattern:?}")));
    }
    let mut absolute: Vec<PathBuf> = paths
        .into_iter()
        .map(|path| std::path::absolute(&path).unwrap_or(path))
        .collect();
    absolute.sort();
    Ok(absolute)
}

/// The objects matching a remote pattern with their sizes, sorted by URL.
fn expand_remote(pattern: &str) -> Result<Vec<(PathBuf, u64)>, Error> {
    Ok(remote::list(pattern)?
        .into_iter()
        .map(|(url, size)| (PathBuf::from(url), size))
        .collect())
}

/// [`expand`] with each file's size: a remote pattern's from its listing, a local
/// file's from its metadata.
fn expand_with_sizes(pattern: &str) -> Result<Vec<(PathBuf, u64)>, Error> {
    if remote::is_remote(pattern) {
        return expand_remote(pattern);
    }
    expand(pattern)?
        .into_iter()
        .map(|path| {
            let size = std::fs::metadata(&path)
                .map_err(|error| Error::InvalidArgument {
                    message: format!("cannot read {}: {error}", path.display()),
                })?
                .len();
            Ok((path, size))
        })
        .collect()
}

/// A path or URL as a task argument, unchanged (the worker tells them apart).
fn path_arg(path: &std::path::Path) -> TaskArg {
    TaskArg::Literal(Literal::Str(path.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod remote_planning_tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    use super::*;

    /// Remote patterns expand to their URLs with the listed sizes (what CSV ranges are
    /// cut from), passed to the workers unchanged; errors name the pattern.
    #[test]
    fn remote_patterns_expand_to_urls_with_sizes() {
        let store = Arc::new(InMemory::new());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            for (key, size) in [("data/a.2.csv", 30), ("data/a.1.csv", 10), ("data/b.csv", 5)] {
                store.put(&Path::from(key), vec![b'x'; size].into()).await.expect("put");
            }
        });
        remote::register_store("s3://lazy-planning", store).expect("register");

        let expanded = expand_with_sizes("s3://lazy-planning/data/a.*.csv").expect("expand");
        assert_eq!(
            expanded,
            [
                (PathBuf::from("s3://lazy-planning/data/a.1.csv"), 10),
                (PathBuf::from("s3://lazy-planning/data/a.2.csv"), 30),
            ]
        );
        assert_eq!(
            expand("s3://lazy-planning/data/*.csv").expect("expand").len(),
            3,
            "the same listing without sizes"
        );
        match path_arg(&expanded[0].0) {
            TaskArg::Literal(Literal::Str(url)) => assert_eq!(url, "s3://lazy-planning/data/a.1.csv"),
            other => panic!("expected the URL as a string literal, got {other:?}"),
        }
        match expand("s3://lazy-planning/data/missing.csv") {
            Err(Error::NotFound { message }) => {
                assert!(
                    message.starts_with("s3://lazy-planning/data/missing.csv: not found"),
                    "{message}"
                )
            }
            other => panic!("expected not-found, got {other:?}"),
        }
        match expand("https://example.invalid/data/*.csv") {
            Err(Error::InvalidArgument { message }) => assert!(message.contains("cannot be listed"), "{message}"),
            other => panic!("expected invalid-argument, got {other:?}"),
        }
    }
}

impl Client {
    /// CSV files by path or glob, one partition per `blocksize` bytes of each file
    /// (ranges split on line boundaries by the workers, like Dask's `read_csv`).
    /// Paths are resolved here and must be readable by the workers too. A remote
    /// pattern (`s3://bucket/prefix*.csv`, or one `https://` URL) is listed here
    /// ([`crate::remote::list`]) and read by the workers by byte range; both sides
    /// need the S3 configuration ([`crate::remote`]).
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let accounts = client.read_csv("data/accounts.*.csv")?;
    /// # Ok(()) }
    /// ```
    pub fn read_csv(&self, pattern: &str) -> Result<LazyCollection, Error> {
        self.read_csv_with_blocksize(pattern, DEFAULT_BLOCKSIZE)
    }

    /// [`Client::read_csv`] with an explicit partition size in bytes.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let small_parts = client.read_csv_with_blocksize("data/big.csv", 1 << 20)?;
    /// # Ok(()) }
    /// ```
    pub fn read_csv_with_blocksize(&self, pattern: &str, blocksize: u64) -> Result<LazyCollection, Error> {
        let blocksize = blocksize.max(1);
        let mut partitions = Vec::new();
        for (path, size) in expand_with_sizes(pattern)? {
            let mut start = 0;
            loop {
                let end = (start + blocksize).min(size);
                // The last range of a file reads to its end (as it is when computed:
                // a published view over a growing file sees the new lines).
                let task = if end >= size {
                    Delayed::new("read_csv", [path_arg(&path), TaskArg::from(start as i64)])
                } else {
                    Delayed::new(
                        "read_csv",
                        [path_arg(&path), TaskArg::from(start as i64), TaskArg::from(end as i64)],
                    )
                };
                partitions.push(TaskArg::Task(task));
                if end >= size {
                    break;
                }
                start = end;
            }
        }
        Ok(LazyCollection {
            client: self.clone(),
            partitions,
        })
    }

    /// Parquet files by path or glob, one partition per file.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let table = client.read_parquet("data/*.parquet")?;
    /// # Ok(()) }
    /// ```
    pub fn read_parquet(&self, pattern: &str) -> Result<LazyCollection, Error> {
        self.read_files("read_parquet", pattern)
    }

    /// Arrow IPC files by path or glob, one partition per file.
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let table = client.read_arrow("data/*.arrow")?;
    /// # Ok(()) }
    /// ```
    pub fn read_arrow(&self, pattern: &str) -> Result<LazyCollection, Error> {
        self.read_files("read_arrow", pattern)
    }

    fn read_files(&self, op: &str, pattern: &str) -> Result<LazyCollection, Error> {
        let partitions = expand(pattern)?
            .iter()
            .map(|path| TaskArg::Task(Delayed::new(op, [path_arg(path)])))
            .collect();
        Ok(LazyCollection {
            client: self.clone(),
            partitions,
        })
    }

    /// A lazy collection over explicit partitions (tasks, futures or chunks).
    ///
    /// ```no_run
    /// # fn demo(client: cairn_client::Client) {
    /// let parts = (0..4).map(|i| client.task("inc", [i.into()]).into());
    /// let numbers = client.collection(parts);
    /// assert_eq!(numbers.npartitions(), 4);
    /// # }
    /// ```
    pub fn collection(&self, partitions: impl IntoIterator<Item = TaskArg>) -> LazyCollection {
        LazyCollection {
            client: self.clone(),
            partitions: partitions.into_iter().collect(),
        }
    }
}

impl LazyCollection {
    /// The client the collection's graphs go to.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The partitions.
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) {
    /// for partition in table.partitions() { println!("{partition:?}"); }
    /// # }
    /// ```
    pub fn partitions(&self) -> &[TaskArg] {
        &self.partitions
    }

    /// How many partitions.
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) {
    /// println!("{}", table.npartitions());
    /// # }
    /// ```
    pub fn npartitions(&self) -> usize {
        self.partitions.len()
    }

    /// Runs `op` on every partition with `extra` arguments after it (Dask's
    /// `map_partitions`).
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) {
    /// let first_rows = table.map_partitions("head", [10.into()]);
    /// # }
    /// ```
    pub fn map_partitions(&self, op: &str, extra: impl IntoIterator<Item = TaskArg> + Clone) -> LazyCollection {
        let partitions = self
            .partitions
            .iter()
            .map(|partition| {
                let args = std::iter::once(partition.clone()).chain(extra.clone());
                TaskArg::Task(Delayed::new(op, args))
            })
            .collect();
        LazyCollection {
            client: self.client.clone(),
            partitions,
        }
    }

    /// Keeps the rows where `predicate` is true (null counts as false).
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) {
    /// use cairn_client::{col, lit};
    /// let negative = table.filter(&col("balance").lt(lit(0)));
    /// # }
    /// ```
    pub fn filter(&self, predicate: &Expr) -> LazyCollection {
        self.map_partitions("filter", [TaskArg::from(predicate.to_json())])
    }

    /// Adds or replaces columns computed element-wise.
    ///
    /// ```no_run
    /// # fn demo(wind: cairn_client::LazyCollection) {
    /// use cairn_client::col;
    /// let speed = wind.with_columns(&[("speed", col("u").hypot(col("v")))]);
    /// # }
    /// ```
    pub fn with_columns(&self, columns: &[(&str, Expr)]) -> LazyCollection {
        self.map_partitions("with_columns", [TaskArg::from(named_exprs_to_json(columns))])
    }

    /// Keeps only `columns`, in that order.
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) {
    /// let names = table.select(&["name", "balance"]);
    /// # }
    /// ```
    pub fn select(&self, columns: &[&str]) -> LazyCollection {
        self.map_partitions("select", [TaskArg::from(columns.join(","))])
    }

    /// Element-wise `op` (add, sub, mul, div, pow, hypot, atan2, min, max) between the
    /// numeric columns of two aligned collections: the same number of partitions,
    /// and partitions of equal rows and column names (else the task fails, saying how
    /// they differ).
    ///
    /// ```no_run
    /// # fn demo(u: cairn_client::LazyCollection, v: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// let speed = u.binary(&v, "hypot")?;
    /// # Ok(()) }
    /// ```
    pub fn binary(&self, other: &LazyCollection, op: &str) -> Result<LazyCollection, Error> {
        if self.partitions.len() != other.partitions.len() {
            return Err(Error::InvalidArgument {
                message: format!(
                    "collections are not aligned: {} partitions against {}",
                    self.partitions.len(),
                    other.partitions.len()
                ),
            });
        }
        let partitions = self
            .partitions
            .iter()
            .zip(&other.partitions)
            .map(|(left, right)| {
                TaskArg::Task(Delayed::new("binary", [left.clone(), right.clone(), TaskArg::from(op)]))
            })
            .collect();
        Ok(LazyCollection {
            client: self.client.clone(),
            partitions,
        })
    }

    /// Element-wise `op` between every numeric column and a number.
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) {
    /// let doubled = table.binary_scalar(2.0, "mul");
    /// # }
    /// ```
    pub fn binary_scalar(&self, value: f64, op: &str) -> LazyCollection {
        self.map_partitions("binary_scalar", [TaskArg::from(value), TaskArg::from(op)])
    }

    /// A tree of `op` over `inputs`, each step combining up to [`TREE_FAN_IN`].
    pub(crate) fn tree(op: &str, mut inputs: Vec<TaskArg>) -> Delayed {
        loop {
            let groups: Vec<Vec<TaskArg>> = inputs.chunks(TREE_FAN_IN).map(<[TaskArg]>::to_vec).collect();
            let next: Vec<Delayed> = groups.into_iter().map(|group| Delayed::new(op, group)).collect();
            if next.len() == 1 {
                return next.into_iter().next().unwrap_or_else(|| Delayed::new(op, []));
            }
            inputs = next.into_iter().map(TaskArg::Task).collect();
        }
    }

    fn associative(&self, op: &str) -> Delayed {
        Self::tree(op, self.partitions.clone())
    }

    fn moment(&self, stat: &str) -> Delayed {
        let partials: Vec<TaskArg> = self
            .partitions
            .iter()
            .map(|partition| TaskArg::Task(Delayed::new("agg_partial", [partition.clone()])))
            .collect();
        let combined = Self::tree("agg_combine", partials);
        Delayed::new("agg_finalize", [TaskArg::Task(combined), TaskArg::from(stat)])
    }

    /// The sum of each numeric column, as a lazy 1-row result (a tree across
    /// partitions).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// let total = table.sum_lazy();
    /// # Ok(()) }
    /// ```
    pub fn sum_lazy(&self) -> Delayed {
        self.associative("sum")
    }

    /// A lazy 1-row result of `stat` for each numeric column: `sum`, `count`, `min`,
    /// `max` (trees of the operation itself), `mean`, `var`, `std` (trees of
    /// numerically stable partial moments, combined with Chan's formula).
    ///
    /// ```no_run
    /// # fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// let variance = table.reduction("var")?;
    /// # Ok(()) }
    /// ```
    pub fn reduction(&self, stat: &str) -> Result<Delayed, Error> {
        if self.partitions.is_empty() {
            return Err(Error::InvalidArgument {
                message: "a reduction over a collection with no partitions".to_string(),
            });
        }
        match stat {
            "sum" | "count" | "min" | "max" => Ok(self.associative(stat)),
            "mean" | "var" | "std" | "var1" | "std1" => Ok(self.moment(stat)),
            other => Err(Error::InvalidArgument {
                message: format!("unknown reduction {other:?}: sum, count, min, max, mean, var, std"),
            }),
        }
    }

    async fn reduce(&self, stat: &str) -> Result<RecordBatch, Error> {
        let delayed = self.reduction(stat)?;
        self.client.compute(&delayed).await
    }

    /// The sum of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.sum().await?);
    /// # Ok(()) }
    /// ```
    pub async fn sum(&self) -> Result<RecordBatch, Error> {
        self.reduce("sum").await
    }

    /// The non-null count of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.count().await?);
    /// # Ok(()) }
    /// ```
    pub async fn count(&self) -> Result<RecordBatch, Error> {
        self.reduce("count").await
    }

    /// The mean of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.mean().await?);
    /// # Ok(()) }
    /// ```
    pub async fn mean(&self) -> Result<RecordBatch, Error> {
        self.reduce("mean").await
    }

    /// The population variance of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.var().await?);
    /// # Ok(()) }
    /// ```
    pub async fn var(&self) -> Result<RecordBatch, Error> {
        self.reduce("var").await
    }

    /// The population standard deviation of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.std().await?);
    /// # Ok(()) }
    /// ```
    pub async fn std(&self) -> Result<RecordBatch, Error> {
        self.reduce("std").await
    }

    /// The minimum of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.min().await?);
    /// # Ok(()) }
    /// ```
    pub async fn min(&self) -> Result<RecordBatch, Error> {
        self.reduce("min").await
    }

    /// The maximum of each numeric column (1 row).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// println!("{:?}", table.max().await?);
    /// # Ok(()) }
    /// ```
    pub async fn max(&self) -> Result<RecordBatch, Error> {
        self.reduce("max").await
    }

    /// The first `rows` rows, from the first partition (as Dask's `head`).
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// let first = table.head(5).await?;
    /// # Ok(()) }
    /// ```
    pub async fn head(&self, rows: usize) -> Result<RecordBatch, Error> {
        let first = self.partitions.first().cloned().ok_or_else(|| Error::InvalidArgument {
            message: "head of a collection with no partitions".to_string(),
        })?;
        let head = Delayed::new("head", [first, TaskArg::from(rows as i64)]);
        self.client.compute(&head).await
    }

    /// The tasks to submit for the partitions (chunks and futures become identity
    /// `slice`s so every partition has a key the client can wait on).
    fn partition_tasks(&self) -> Vec<Delayed> {
        self.partitions
            .iter()
            .map(|partition| match partition {
                TaskArg::Task(delayed) => delayed.clone(),
                other => Delayed::new("concat", [other.clone()]),
            })
            .collect()
    }

    /// Computes every partition and brings the batches here, in order; the results
    /// are released on the cluster afterwards.
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// for batch in table.compute().await? { println!("{} rows", batch.num_rows()); }
    /// # Ok(()) }
    /// ```
    pub async fn compute(&self) -> Result<Vec<RecordBatch>, Error> {
        let held = self.persist().await?;
        let batches = held.collect().await;
        // Released now rather than when the futures drop (a process that ends right
        // after would not get to release them).
        let _ = held.release().await;
        batches
    }

    /// Computes every partition and keeps the results on the workers (Dask's
    /// `persist`): the returned [`Persisted`] holds them until dropped.
    ///
    /// ```no_run
    /// # async fn demo(table: cairn_client::LazyCollection) -> Result<(), cairn_client::Error> {
    /// let held = table.persist().await?;
    /// held.wait().await?;
    /// # Ok(()) }
    /// ```
    pub async fn persist(&self) -> Result<Persisted, Error> {
        let tasks = self.partition_tasks();
        let outputs: Vec<&Delayed> = tasks.iter().collect();
        let futures = self.client.submit_all(&outputs).await?;
        Ok(Persisted {
            client: self.client.clone(),
            futures,
        })
    }
}

/// A collection whose partitions are computed (or being computed) and held on
/// workers for this client (Dask's persisted collection).
///
/// ```no_run
/// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
/// let held = client.read_csv("data/*.csv")?.persist().await?;
/// let again = held.lazy().filter(&cairn_client::col("x").gt(cairn_client::lit(1)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Persisted {
    client: Client,
    futures: Vec<TaskFuture>,
}

impl Persisted {
    /// The futures, one per partition.
    ///
    /// ```no_run
    /// # fn demo(held: cairn_client::Persisted) {
    /// println!("{} partitions", held.futures().len());
    /// # }
    /// ```
    pub fn futures(&self) -> &[TaskFuture] {
        &self.futures
    }

    /// Waits until every partition is computed; the first failure is an error.
    ///
    /// ```no_run
    /// # async fn demo(held: cairn_client::Persisted) -> Result<(), cairn_client::Error> {
    /// held.wait().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait(&self) -> Result<Vec<TaskState>, Error> {
        let keys: Vec<String> = self.futures.iter().map(|future| future.key().to_string()).collect();
        let deadline = std::time::Instant::now() + self.client.task_timeout();
        loop {
            let states = self
                .client
                .task_states(&keys, std::time::Duration::from_secs(5))
                .await?;
            let mut all_finished = true;
            for (key, state) in keys.iter().zip(&states) {
                all_finished &= state.settled(key)?;
            }
            if all_finished {
                return Ok(states);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    operation: "persist",
                    after: self.client.task_timeout(),
                    last_error: "partitions still pending".to_string(),
                });
            }
        }
    }

    /// Reads every partition here, in order.
    ///
    /// ```no_run
    /// # async fn demo(held: cairn_client::Persisted) -> Result<(), cairn_client::Error> {
    /// let batches = held.collect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn collect(&self) -> Result<Vec<RecordBatch>, Error> {
        self.client.gather(&self.futures).await
    }

    /// Tells the cluster this client no longer wants the partitions (as dropping
    /// every clone of this `Persisted` does, but at once and awaited).
    ///
    /// ```no_run
    /// # async fn demo(held: cairn_client::Persisted) -> Result<(), cairn_client::Error> {
    /// held.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(&self) -> Result<(), Error> {
        let keys: Vec<String> = self.futures.iter().map(|future| future.key().to_string()).collect();
        self.client.release_keys(keys).await?;
        for future in &self.futures {
            future.mark_released();
        }
        Ok(())
    }

    /// A lazy collection over the held partitions, for further work.
    ///
    /// ```no_run
    /// # fn demo(held: cairn_client::Persisted) {
    /// let more = held.lazy().select(&["x"]);
    /// # }
    /// ```
    pub fn lazy(&self) -> LazyCollection {
        LazyCollection {
            client: self.client.clone(),
            partitions: self
                .futures
                .iter()
                .map(|future| TaskArg::Held(future.clone()))
                .collect(),
        }
    }
}

/// How a persisted collection is published.
///
/// ```
/// let options = cairn_client::PersistOptions { replicas: 2, ..Default::default() };
/// assert!(!options.override_existing);
/// ```
#[derive(Debug, Clone)]
pub struct PersistOptions {
    /// On how many distinct workers each chunk is kept durably (fsync'd).
    pub replicas: u32,
    /// Replace an existing dataset of the same name.
    pub override_existing: bool,
    /// Free-form attributes, shown by `info`.
    pub attributes: BTreeMap<String, String>,
}

impl Default for PersistOptions {
    fn default() -> Self {
        PersistOptions {
            replicas: 1,
            override_existing: false,
            attributes: BTreeMap::new(),
        }
    }
}

/// Rewrites a stored view graph with fresh keys, so each get computes it afresh.
fn rekey(view: pb::ViewGraph, client: &Client) -> Result<LazyCollection, Error> {
    let mut built: HashMap<String, Delayed> = HashMap::new();
    for task in view.tasks {
        let args = task
            .args
            .into_iter()
            .map(|value| rekey_arg(value, &built))
            .collect::<Result<Vec<_>, _>>()?;
        let fresh = Delayed::new(&task.op, args);
        built.insert(task.key, fresh);
    }
    let partitions = view
        .partitions
        .into_iter()
        .map(|partition| rekey_arg(partition, &built))
        .collect::<Result<_, _>>()?;
    Ok(LazyCollection {
        client: client.clone(),
        partitions,
    })
}

fn rekey_arg(value: pb::TaskArg, built: &HashMap<String, Delayed>) -> Result<TaskArg, Error> {
    use pb::task_arg::Arg;
    match value.arg {
        Some(Arg::Task(key)) => built
            .get(&key)
            .cloned()
            .map(TaskArg::Task)
            .ok_or_else(|| Error::Protocol {
                message: format!("the view refers to task '{key}' it does not contain"),
            }),
        Some(Arg::Literal(literal)) => Ok(TaskArg::Literal(crate::task_types::literal_from_wire(literal))),
        Some(Arg::Chunk(key)) => Ok(TaskArg::Chunk(key)),
        Some(Arg::List(list)) => Ok(TaskArg::List(
            list.items
                .into_iter()
                .map(|item| rekey_arg(item, built))
                .collect::<Result<_, _>>()?,
        )),
        None => Err(Error::Protocol {
            message: "the view holds an empty argument".to_string(),
        }),
    }
}

/// Decodes a published view into a lazy collection with fresh keys.
pub(crate) fn view_collection(bytes: &[u8], client: &Client) -> Result<LazyCollection, Error> {
    let view = pb::ViewGraph::decode(bytes).map_err(|error| Error::Protocol {
        message: format!("an undecodable view: {error}"),
    })?;
    rekey(view, client)
}

fn contains_held(arg: &TaskArg) -> bool {
    match arg {
        TaskArg::Held(_) => true,
        TaskArg::List(items) => items.iter().any(contains_held),
        TaskArg::Task(delayed) => delayed.args().iter().any(contains_held),
        TaskArg::Literal(_) | TaskArg::Chunk(_) => false,
    }
}

impl Client {
    /// Publishes a persisted collection as a `Persisted` dataset: each partition is
    /// made durable (fsync'd) on `options.replicas` distinct workers, then the
    /// collection is published atomically; its chunks stay pinned until it is
    /// unpublished. Returns the log index of the publish.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let held = client.read_csv("data/*.csv")?.persist().await?;
    /// client.publish_persisted("accounts", &held, Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_persisted(&self, name: &str, held: &Persisted, options: PersistOptions) -> Result<u64, Error> {
        if options.replicas == 0 {
            return Err(Error::InvalidArgument {
                message: "replicas must be at least 1".to_string(),
            });
        }
        let states = held.wait().await?;
        let workers = self.workers_for_replicas(name, options.replicas).await?;
        let mut chunks = Vec::with_capacity(states.len());
        let mut schema_ipc = Vec::new();
        for (index, (future, state)) in held.futures.iter().zip(states).enumerate() {
            let TaskState::Finished { holders, .. } = state else {
                return Err(Error::Unavailable {
                    message: format!("partition {} ('{}') is not held", index, future.key()),
                });
            };
            let stored = self
                .persist_chunk(future.key(), &holders, &workers, options.replicas as usize, index)
                .await?;
            if schema_ipc.is_empty() {
                schema_ipc = stored.schema_ipc.clone();
            }
            chunks.push(crate::upload::chunk_info(stored));
        }
        let item = crate::upload::persisted_item(name, options.attributes, schema_ipc, chunks, options.replicas);
        self.publish_items(vec![item], options.override_existing).await
    }

    /// Makes one held result durable on its holder and copies it to further workers
    /// until `replicas` hold it.
    async fn persist_chunk(
        &self,
        key: &str,
        holders: &[(String, String)],
        workers: &[crate::WorkerInfo],
        replicas: usize,
        index: usize,
    ) -> Result<pb::ChunkStored, Error> {
        let mut last_error = "no worker holds it".to_string();
        for (holder_id, holder_addr) in holders {
            let others: Vec<pb::ChunkLocation> = (0..workers.len())
                .map(|offset| &workers[(index + offset) % workers.len()])
                .filter(|worker| &worker.worker_id != holder_id)
                .take(replicas.saturating_sub(1))
                .map(|worker| pb::ChunkLocation {
                    worker_id: worker.worker_id.clone(),
                    addr: worker.addr.clone(),
                    live: true,
                })
                .collect();
            match crate::upload::persist_on_worker(self, holder_addr, key, others).await {
                Ok(stored) if stored.holders.len() >= replicas => return Ok(stored),
                Ok(stored) => {
                    last_error = format!("only {} of {replicas} workers hold it", stored.holders.len());
                }
                Err(error) => last_error = error.to_string(),
            }
        }
        Err(Error::Unavailable {
            message: format!("cannot make chunk {key} durable on {replicas} worker(s): {last_error}"),
        })
    }

    /// Publishes a lazy collection as a `View`: its graph is stored, and every
    /// `get_dataset` returns it to be computed afresh (as Dask's published
    /// collections). A view must not refer to futures (held results): publish a
    /// persisted collection for those.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_client::Client) -> Result<(), cairn_client::Error> {
    /// let accounts = client.read_csv("data/accounts.*.csv")?;
    /// client.publish_view("all_accounts", &accounts, Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_view(
        &self,
        name: &str,
        collection: &LazyCollection,
        attributes: BTreeMap<String, String>,
    ) -> Result<u64, Error> {
        if collection.partitions.iter().any(contains_held) {
            return Err(Error::InvalidArgument {
                message: format!(
                    "view '{name}' refers to results held by this client; publish it with publish_persisted instead"
                ),
            });
        }
        let delayed: Vec<&Delayed> = collection
            .partitions
            .iter()
            .filter_map(|partition| match partition {
                TaskArg::Task(delayed) => Some(delayed),
                _ => None,
            })
            .collect();
        let (tasks, _held) = crate::tasks::graph_of(&delayed);
        let view = pb::ViewGraph {
            tasks,
            partitions: collection.partitions.iter().map(TaskArg::to_wire).collect(),
        };
        let item = pb::PublishItem {
            name: name.to_string(),
            value: None,
            attributes: attributes.into_iter().collect(),
            persisted: None,
            view: view.encode_to_vec(),
        };
        self.publish_items(vec![item], false).await
    }
}
