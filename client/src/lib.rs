//! `cairn-client`: the Rust client library for Cairn clusters.
//!
//! Connect to any scheduler replica; the client finds the leader, follows it across
//! leader changes, and retries with bounded backoff. Writes carry a client id and a
//! sequence number, so a write retried after a lost reply is applied exactly once.
//! Reads are linearizable (the leader confirms its leadership with a quorum first).
//!
//! ```no_run
//! use cairn_client::{Client, Dataset};
//!
//! # async fn demo() -> Result<(), cairn_client::Error> {
//! let client = Client::connect(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]).await?;
//! client.publish_dataset("negative_accounts", "Alice,-100\nBob,-200").await?;
//! client.publish_datasets(vec![Dataset::new("a", "1"), Dataset::new("b", "2")], false).await?;
//! assert_eq!(client.list_datasets().await?, ["negative_accounts", "a", "b"]);
//! let dataset = client.get_dataset("negative_accounts").await?;
//! assert_eq!(dataset.as_text(), Some("Alice,-100\nBob,-200"));
//! client.unpublish_dataset("a").await?;
//! # Ok(()) }
//! ```
//!
//! A program that makes one call at a time answers sooner on a current-thread
//! runtime (`#[tokio::main(flavor = "current_thread")]`): the call and its connection
//! then run on one thread instead of handing each other across two. `cairn bench`
//! measured a linearizable get at p50 0.45–0.49 ms this way, 0.50–0.56 ms on the
//! default multi-thread runtime. Many calls at once, or large uploads and streams,
//! may use the threads.
//!
//! # Layout
//!
//! - `client.rs`: [`Client`]: connections, leader following, retries, every call.
//! - `datasets.rs`: [`Datasets`], the mapping interface.
//! - `value.rs`: [`Value`], [`Dataset`], [`PublishedDataset`], [`DatasetInfo`].
//! - `collection.rs`: [`Collection`], a persisted dataset's handle: reads chunks from
//!   workers over Arrow Flight, failing over between replicas.
//! - `upload.rs`: [`Client::publish_batches`]: chunking, durable upload, atomic publish.
//! - `worker_api.rs`: the worker registry ([`Client::workers`]) and the calls workers make.
//! - `tasks.rs`: [`Delayed`] tasks, [`TaskFuture`]s, `submit`, `compute`, `gather`.
//! - `lazy.rs`: [`LazyCollection`] (read CSV/Parquet/Arrow, filter, arithmetic,
//!   reductions as trees, head), [`Persisted`], publishing `Persisted` and `View`s.
//! - `task_types.rs`: [`Literal`], [`OpSignature`]: the words shared with workers.
//! - `error.rs`: [`Error`], and how a replica's gRPC status becomes one.
//! - [`grid`]: the layout of gridded (N-dimensional) chunks, [`grid::GridMeta`].
//! - `grid_collection.rs`: [`GridCollection`] (`read_netcdf`, element-wise, `sel`,
//!   `regrid`, reductions along time) and [`Grid`], a computed grid.
//! - [`netcdf_io`]: NetCDF files as gridded chunks: header, rows, write-back.
//! - `expr.rs`: [`Expr`], the serialisable column expression of `filter` and `with_columns` tasks.
//! - [`remote`]: `s3://` and `http(s)://` data: listing, sizes, ranged reads from any
//!   thread ([`remote::RangeReader`]), the S3 configuration.

mod client;
mod collection;
mod datasets;
mod error;
mod expr;
pub mod grid;
mod grid_collection;
mod lazy;
pub mod netcdf_io;
pub mod remote;
mod task_types;
mod tasks;
mod upload;
mod value;
mod worker_api;

pub use client::{
    parse_cluster, Client, ClientOptions, DatasetAvailability, NodeStatus, RecoveryCounters, CONNECTION_WINDOW_BYTES,
    MAX_FRAME_BYTES, STREAM_WINDOW_BYTES,
};
pub use collection::{ChunkInfo, ChunkLocation, Collection};
pub use datasets::Datasets;
pub use error::Error;
pub use expr::{
    col, lit, named_exprs_from_json, named_exprs_to_json, BinaryOp, CastType, Expr, ExprError, IntoLiteral, UnaryOp,
};
pub use grid_collection::{Grid, GridCollection, NetcdfOptions, DEFAULT_GRID_CHUNK_BYTES};
pub use lazy::{LazyCollection, PersistOptions, Persisted, DEFAULT_BLOCKSIZE, TREE_FAN_IN};
#[doc(hidden)]
pub use task_types::{literal_from_wire, signature_to_wire};
pub use task_types::{Literal, OpSignature, ParamKind, ParamSpec};
pub use tasks::{scalar_f64, scalar_i64, Delayed, OperationCatalogue, TaskArg, TaskFuture, TaskState};
pub use upload::{put_chunk, PublishOptions, PublishSummary, TransferError, UploadProgress};
pub use value::{CollectionInfo, Content, Dataset, DatasetInfo, PublishedDataset, Value, BYTES, TEXT};
pub use worker_api::{HeartbeatStream, TaskStream, WorkerInfo};

/// Wire types that workers exchange with schedulers (for `cairn-worker`).
#[doc(hidden)]
pub use cairn_proto::v1 as wire;
