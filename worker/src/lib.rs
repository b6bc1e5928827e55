//! The Cairn worker: holds chunks (Arrow `RecordBatch`es) in memory and on disk,
//! spills them when memory runs short, serves them over Arrow Flight, and registers
//! with the schedulers (SPEC §1, §5).
//!
//! # Layout
//!
//! - [`chunk_key`]: [`ChunkKey`], the typed name of a chunk.
//! - [`store`]: the chunk store — memory accounting, LRU spill to Arrow IPC files with
//!   checksums, pause thresholds. The only place that knows how chunks sit in memory
//!   and on disk.
//! - [`flight`]: Arrow Flight `DoGet` / `DoPut` (uploads, and copies to replicas).
//! - [`flight_get`]: `DoGet` answered with hand-framed messages (a chunk's bytes are not
//!   copied into tonic's buffer); every other Flight call goes to [`flight`].
//! - [`cluster_link`]: registration through Raft, the heartbeat stream to the leader,
//!   release of unreferenced chunks.
//! - [`identity`]: `worker.json`, the worker id and cluster of a data dir.
//! - [`ops`]: the operation catalogue tasks run (`inc`, readers, filters, reductions…).
//! - [`config`], [`error`], [`rss`]: configuration and byte sizes, errors, process RSS.
//! - [`tasks`]: task execution — the task stream to the leader, the queue with term
//!   fencing, inputs from peers, results into the store.
//! - [`server`]: [`run`], one worker process ([`run_with_operations`] for a custom
//!   worker binary with its own operations).
//!
//! This crate knows nothing of Raft: it talks to the schedulers through
//! `cairn-client`, which follows the leader.

pub mod chunk_key;
pub mod cluster_link;
pub mod config;
pub mod error;
pub mod flight;
pub mod flight_get;
pub mod identity;
pub mod ops;
pub mod rss;
pub mod server;
pub mod store;
pub mod tasks;

pub use chunk_key::{ChunkKey, InvalidChunkKey};
pub use config::{format_bytes, parse_bytes, WorkerConfig};
pub use error::WorkerError;
pub use server::{run, run_with_operations};
