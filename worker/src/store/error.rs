//! The one error type of the chunk store.

use std::io;
use std::path::PathBuf;

use arrow::error::ArrowError;

use crate::ChunkKey;

/// Everything that can go wrong in the chunk store.
///
/// [`StoreError::is_retryable`] separates the errors that waiting can cure (the store refuses new
/// chunks for now, under memory or disk pressure) from the ones it cannot.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store refuses new chunks for now: memory above the pause threshold, or a disk write
    /// failed and no probe write has succeeded since. Retry later.
    #[error("the chunk store is paused and refuses new chunks for now: {reason}")]
    Paused {
        /// Why, with the figures or the failed path and OS error.
        reason: String,
    },

    /// No chunk has this key (never stored, deleted, or dropped as corrupt).
    #[error("chunk {key} is not in the store")]
    NotFound {
        /// The key asked for.
        key: ChunkKey,
    },

    /// The chunk's file failed verification (checksum, decoding, or it vanished); the file was
    /// deleted and the key dropped, so the data is gone from this worker.
    #[error("chunk {key} is corrupt on disk and was dropped: {reason}")]
    Corrupt {
        /// The dropped chunk.
        key: ChunkKey,
        /// What the verification found.
        reason: String,
    },

    /// Writing a chunk file failed because the disk (or quota) is full. The partial file was
    /// removed and the store is paused until a probe write succeeds.
    #[error("disk full writing {}: {source}; the store is paused until a probe write succeeds", .path.display())]
    DiskFull {
        /// The file being written (or renamed into place).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },

    /// Writing, syncing or renaming a chunk file failed for another reason. The partial file was
    /// removed and the store is paused until a probe write succeeds.
    #[error("writing {} failed: {source}; the store is paused until a probe write succeeds", .path.display())]
    WriteFailed {
        /// The file or directory being written or synced.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },

    /// Reading the chunk directory or a chunk file, or removing a file, failed.
    #[error("i/o error on {}: {source}", .path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },

    /// The batch cannot be written as an Arrow IPC file (an Arrow type IPC does not support).
    #[error("chunk {key} cannot be encoded as an Arrow IPC file: {source}")]
    Encode {
        /// The chunk being written.
        key: ChunkKey,
        /// Arrow's reason.
        source: ArrowError,
    },

    /// The chunk alone is bigger than the whole memory limit: it could never be read back
    /// without exceeding the limit, so it is refused.
    #[error("chunk {key} holds {bytes} bytes of Arrow buffers, more than the memory limit of {limit} bytes")]
    TooLarge {
        /// The refused chunk.
        key: ChunkKey,
        /// Its deduplicated buffer size.
        bytes: u64,
        /// The store's memory limit.
        limit: u64,
    },

    /// The chunk was replaced or moved over and over while being read back; retry.
    #[error("chunk {key} kept changing while it was being read from disk; retry")]
    Busy {
        /// The chunk being read.
        key: ChunkKey,
    },

    /// The configuration is not usable.
    #[error("invalid chunk store configuration: {reason}")]
    InvalidConfig {
        /// Which rule it breaks, with the offending value.
        reason: String,
    },
}

impl StoreError {
    /// True for errors that waiting can cure: the store is paused (memory or disk pressure, or
    /// the write that just paused it) or a read raced with writers. Retry later, or elsewhere.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Paused { .. }
                | StoreError::DiskFull { .. }
                | StoreError::WriteFailed { .. }
                | StoreError::Busy { .. }
        )
    }
}
