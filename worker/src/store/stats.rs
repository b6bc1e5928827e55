//! The store's figures, for status reports and heartbeats.

use serde::Serialize;

/// A snapshot of the store's memory and disk use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// The configured memory limit, so the figures can be read as fractions of it.
    pub memory_limit: u64,
    /// The bytes of the allocations in-memory chunks use, each allocation once (shared buffers
    /// and slices included): what spilling and pausing compare with the thresholds.
    pub managed_bytes: u64,
    /// The file bytes of chunks that are only on disk: what a full read-back would cost in disk I/O.
    pub spilled_bytes: u64,
    /// The file bytes of every chunk with a file (in memory too or not): the disk the store uses.
    pub disk_bytes: u64,
    /// How many chunks are in memory.
    pub chunks_in_memory: u64,
    /// How many chunks have a file (some of them are in memory too).
    pub chunks_on_disk: u64,
    /// How many times a chunk left memory since the store opened.
    pub spill_count: u64,
    /// How many times a chunk was read back into memory from its file since the store opened.
    pub unspill_count: u64,
    /// Why new chunks are refused now, if they are.
    pub paused: Option<String>,
}
