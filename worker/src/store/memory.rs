//! Memory accounting by allocation: which allocations a batch's Arrow buffers live in, and a
//! ledger that counts each allocation once across every in-memory chunk.
//!
//! Slices of one batch, or the columns of a batch decoded zero-copy from one IPC file, share
//! allocations. Summing `len()` per buffer would count the shared bytes again for every slice
//! (and miss the unused tail of an allocation); counting each allocation once, for as long as any
//! in-memory chunk uses it, is what the process actually holds because of the store.

use foldhash::{HashMap, HashMapExt};

use arrow::array::{Array, ArrayData, RecordBatch};
use arrow::buffer::Buffer;

/// One allocation used by a chunk: where it starts and how many bytes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllocationSpan {
    /// The allocation's start address (the buffer's data pointer minus its offset into the
    /// allocation): the same for every buffer sliced from it, so it identifies the allocation.
    pub(crate) start: usize,
    /// The allocation's size in bytes (its capacity, not the slice's length).
    pub(crate) bytes: u64,
}

/// The allocations a chunk's buffers live in, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ChunkAllocations {
    /// Every distinct allocation, sorted by start: registered in the ledger when the chunk enters
    /// memory and released, exactly the same list, when it leaves.
    spans: Vec<AllocationSpan>,
    /// The sum of the spans' sizes: the chunk's own deduplicated size
    /// ([`StoredChunk::memory_bytes`](super::StoredChunk::memory_bytes)).
    total_bytes: u64,
}

impl ChunkAllocations {
    /// The allocations `batch`'s buffers live in: every column's buffers, null buffers and child
    /// data (dictionary values included), recursively.
    pub(crate) fn of_batch(batch: &RecordBatch) -> ChunkAllocations {
        let mut bytes_by_start: HashMap<usize, u64> = HashMap::new();
        for column in batch.columns() {
            record_array_data(&column.to_data(), &mut bytes_by_start);
        }
        let mut spans: Vec<AllocationSpan> = bytes_by_start
            .into_iter()
            .map(|(start, bytes)| AllocationSpan { start, bytes })
            .collect();
        spans.sort_unstable_by_key(|span| span.start);
        let total_bytes = spans.iter().map(|span| span.bytes).sum();
        ChunkAllocations { spans, total_bytes }
    }

    /// The chunk's own deduplicated size in bytes.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The distinct allocations.
    pub(crate) fn spans(&self) -> &[AllocationSpan] {
        &self.spans
    }
}

/// The bytes of the allocations `batch`'s Arrow buffers live in, each allocation counted once
/// however many buffers, slices or columns share it.
pub fn batch_memory_bytes(batch: &RecordBatch) -> u64 {
    ChunkAllocations::of_batch(batch).total_bytes()
}

/// Adds the allocations of `data` and its children to `bytes_by_start`.
fn record_array_data(data: &ArrayData, bytes_by_start: &mut HashMap<usize, u64>) {
    for buffer in data.buffers() {
        record_buffer(buffer, bytes_by_start);
    }
    if let Some(nulls) = data.nulls() {
        record_buffer(nulls.buffer(), bytes_by_start);
    }
    // Child data holds list/struct/union children, run-end children and dictionary values.
    for child in data.child_data() {
        record_array_data(child, bytes_by_start);
    }
}

/// Adds the allocation `buffer` lives in to `bytes_by_start`.
fn record_buffer(buffer: &Buffer, bytes_by_start: &mut HashMap<usize, u64>) {
    let start = buffer.data_ptr().as_ptr().addr();
    // `capacity()` is the allocation's size (for memory arrow did not allocate itself, the size
    // it was told); never count less than the part this buffer reaches into.
    let reached = buffer.ptr_offset().saturating_add(buffer.len());
    let bytes = buffer.capacity().max(reached) as u64;
    bytes_by_start
        .entry(start)
        .and_modify(|known| *known = (*known).max(bytes))
        .or_insert(bytes);
}

/// How one allocation is used by in-memory chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AllocationUse {
    /// The size counted for it in managed memory (the largest size any chunk saw for it).
    bytes: u64,
    /// How many in-memory chunks use it: its bytes are released when this reaches zero.
    chunk_count: u64,
}

/// The allocations of every in-memory chunk, each counted once: the store's managed memory.
///
/// An allocation is counted exactly while some registered chunk uses it, and a registered chunk
/// is held in memory by the store, so a counted allocation is alive and its start address cannot
/// be reused by another allocation in the meantime.
#[derive(Debug, Default)]
pub(crate) struct MemoryLedger {
    /// Every allocation used by at least one in-memory chunk, by start address.
    uses_by_start: HashMap<usize, AllocationUse>,
    /// The sum of the counted sizes in `uses_by_start`, kept so reading it is O(1).
    managed_bytes: u64,
}

impl MemoryLedger {
    /// Counts a chunk entering memory; returns the bytes that were not counted before (zero for a
    /// slice of a batch already in memory).
    pub(crate) fn register(&mut self, chunk: &ChunkAllocations) -> u64 {
        let mut added_bytes = 0;
        for span in chunk.spans() {
            match self.uses_by_start.get_mut(&span.start) {
                Some(allocation_use) => {
                    allocation_use.chunk_count += 1;
                    if span.bytes > allocation_use.bytes {
                        added_bytes += span.bytes - allocation_use.bytes;
                        allocation_use.bytes = span.bytes;
                    }
                }
                None => {
                    self.uses_by_start.insert(
                        span.start,
                        AllocationUse {
                            bytes: span.bytes,
                            chunk_count: 1,
                        },
                    );
                    added_bytes += span.bytes;
                }
            }
        }
        self.managed_bytes += added_bytes;
        self.debug_check_invariants();
        added_bytes
    }

    /// Counts a chunk leaving memory (it must have been registered); returns the bytes released
    /// (zero while another in-memory chunk still uses all of its allocations).
    pub(crate) fn release(&mut self, chunk: &ChunkAllocations) -> u64 {
        let mut released_bytes = 0;
        for span in chunk.spans() {
            let Some(allocation_use) = self.uses_by_start.get_mut(&span.start) else {
                debug_assert!(false, "released an allocation that was never registered: {span:?}");
                continue;
            };
            allocation_use.chunk_count -= 1;
            if allocation_use.chunk_count == 0 {
                released_bytes += allocation_use.bytes;
                self.uses_by_start.remove(&span.start);
            }
        }
        self.managed_bytes -= released_bytes;
        self.debug_check_invariants();
        released_bytes
    }

    /// The bytes of every allocation used by an in-memory chunk, each counted once.
    pub(crate) fn managed_bytes(&self) -> u64 {
        self.managed_bytes
    }

    /// Asserts (in debug builds) that the running total matches the map.
    fn debug_check_invariants(&self) {
        debug_assert_eq!(
            self.managed_bytes,
            self.uses_by_start
                .values()
                .map(|allocation_use| allocation_use.bytes)
                .sum::<u64>(),
            "managed bytes drifted from the allocation map"
        );
        debug_assert!(
            self.uses_by_start
                .values()
                .all(|allocation_use| allocation_use.chunk_count > 0),
            "an allocation with no chunk left is still counted"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::Int32Type;

    use super::*;

    fn int_batch(values: Vec<i64>) -> RecordBatch {
        RecordBatch::try_from_iter([("value", Arc::new(Int64Array::from(values)) as _)]).expect("valid batch")
    }

    /// Two slices of one batch live in the same allocations: each slice's own size is the whole
    /// allocation, and together they count it once, until the last one is released — the
    /// property that lets a worker hold many slices of one upload without overcounting.
    #[test]
    fn slices_share_allocations_in_the_ledger() {
        let batch = int_batch((0..1000).collect());
        let whole = ChunkAllocations::of_batch(&batch);
        assert_eq!(
            whole.total_bytes(),
            8000,
            "one Vec<i64> of 1000 values is one 8000-byte allocation"
        );

        let first_half = ChunkAllocations::of_batch(&batch.slice(0, 500));
        let second_half = ChunkAllocations::of_batch(&batch.slice(500, 500));
        assert_eq!(first_half, whole, "a slice still pins its whole allocation");
        assert_eq!(second_half, whole);

        let mut ledger = MemoryLedger::default();
        assert_eq!(ledger.register(&first_half), 8000);
        assert_eq!(
            ledger.register(&second_half),
            0,
            "the shared allocation is already counted"
        );
        assert_eq!(ledger.managed_bytes(), 8000);
        assert_eq!(
            ledger.release(&first_half),
            0,
            "the other slice still holds the allocation"
        );
        assert_eq!(ledger.managed_bytes(), 8000);
        assert_eq!(ledger.release(&second_half), 8000);
        assert_eq!(ledger.managed_bytes(), 0);
    }

    /// Null buffers, variable-size data and dictionary values are all found, so a string or
    /// dictionary column is not undercounted.
    #[test]
    fn nested_buffers_and_dictionaries_are_counted() {
        let strings = StringArray::from(vec![Some("alpha"), None, Some("gamma")]);
        let dictionary: DictionaryArray<Int32Type> = vec!["x", "y", "x"].into_iter().collect();
        let batch = RecordBatch::try_from_iter([
            ("name", Arc::new(strings.clone()) as _),
            ("tag", Arc::new(dictionary.clone()) as _),
        ])
        .expect("valid batch");
        let allocations = ChunkAllocations::of_batch(&batch);
        // strings: offsets, values, nulls; dictionary: keys, values' offsets, values' data.
        assert_eq!(allocations.spans().len(), 6, "{allocations:?}");
        let strings_alone =
            batch_memory_bytes(&RecordBatch::try_from_iter([("name", Arc::new(strings) as _)]).expect("valid batch"));
        assert!(allocations.total_bytes() > strings_alone);
    }
}
