//! What the store reports about one chunk.

use arrow::datatypes::SchemaRef;

use crate::ChunkKey;

/// The metadata of one chunk held by the store (no data).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    /// Which chunk.
    pub key: ChunkKey,
    /// The batch's schema, known even while the chunk is only on disk (for Flight's
    /// `GetFlightInfo` and for callers that plan without reading).
    pub schema: SchemaRef,
    /// The batch's row count.
    pub rows: u64,
    /// The chunk's own Arrow buffer bytes (each allocation once within the chunk) when in memory;
    /// for a chunk only on disk, what it took when last in memory or verified (read back from its
    /// file, a chunk is one allocation about the size of the file).
    pub memory_bytes: u64,
    /// The size of the chunk's file; 0 while it is only in memory.
    pub file_bytes: u64,
    /// The crc32c of the whole file once on disk (it is also in the file name).
    pub checksum: Option<u32>,
    /// Whether the batch is held in memory now (a `get` is a memory hit).
    pub in_memory: bool,
    /// Whether the chunk has a file (it survives leaving memory; a durable chunk always has one).
    pub on_disk: bool,
}
