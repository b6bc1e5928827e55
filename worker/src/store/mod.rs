//! The chunk store: a worker's chunks (Arrow `RecordBatch`es under a [`ChunkKey`](crate::ChunkKey))
//! in memory and on disk, spilled least-recently-used first when memory runs short — Dask's
//! `SpillBuffer` (a fast/slow mapping with LRU order and exact weights) with Arrow IPC files as
//! the slow side.
//!
//! # Layout
//!
//! - [`chunk_store`]: [`ChunkStore`], the one type callers and tests drive. It is the I/O edge:
//!   it asks the accounting core what to do, performs the disk writes and reads, and reports back.
//! - `state`: the accounting core (no I/O): every chunk's entry, the LRU order, the memory ledger,
//!   the pause state and counters. It decides which chunk leaves memory next.
//! - `memory`: which allocations a batch's Arrow buffers live in, and the ledger that counts each
//!   allocation once across all in-memory chunks.
//! - `lru`: the least-recently-used order of in-memory chunks.
//! - `file_name`: chunk file names (`<key>.<crc32c hex>.arrow`) and temp file names (`.tmp-…`).
//! - `file`: the on-disk format — plain Arrow IPC files, written through a checksumming writer,
//!   verified and decoded (zero-copy) on read.
//! - `disk`: small filesystem helpers — directory fsync, removals, the probe write that ends a
//!   disk-failure pause, and the test-only fault injection.
//! - `open`: what [`ChunkStore::open`] does to a directory: remove temp files, verify every chunk file.
//! - [`config`]: [`StoreConfig`] and its thresholds; [`error`]: [`StoreError`];
//!   [`stored_chunk`]: [`StoredChunk`]; [`stats`]: [`StoreStats`]; [`OpenReport`].
//!
//! # Invariants
//!
//! - Every chunk is in memory, on disk, or both; a chunk leaves memory only once its file exists.
//! - Managed memory counts each underlying allocation once, however many chunks (or slices) use
//!   it, and exactly while at least one in-memory chunk holds it (so the allocation cannot be
//!   freed and its address reused while it is counted).
//! - A chunk file is named after the crc32c of its bytes, which is verified on every read; corrupt
//!   data is deleted and reported, never returned.
//! - A file appears under its final name only by a rename done while holding the state lock, for
//!   the entry that is current at that moment; files are deleted only under that lock too.
//! - A failed disk write pauses the store (new chunks refused, retryably) but never loses a chunk
//!   already stored; only a successful probe write ends that pause.

pub mod chunk_store;
pub mod config;
mod disk;
pub mod error;
mod file;
mod file_name;
mod lru;
mod mapped;
mod memory;
mod open;
mod state;
pub mod stats;
pub mod stored_chunk;

#[cfg(test)]
mod tests;

pub use chunk_store::{ChunkForSending, ChunkStore};
pub use config::{StoreConfig, DEFAULT_PAUSE_FRACTION, DEFAULT_SPILL_FRACTION, DEFAULT_TARGET_FRACTION};
pub use error::StoreError;
pub use file::IpcMessage;
pub use memory::batch_memory_bytes;
pub use open::OpenReport;
pub use stats::StoreStats;
pub use stored_chunk::StoredChunk;
