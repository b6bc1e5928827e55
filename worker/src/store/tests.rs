//! Behaviour of the whole chunk store, driven directly with small limits and small batches.
//!
//! With a 1 MiB limit and the default fractions the thresholds are: target 629,145 bytes, spill
//! 734,003 bytes, pause 838,860 bytes. `int_batch(rows)` is one `Int64` column in one allocation of
//! `8 × rows` bytes, so 25,000 rows are exactly 200,000 managed bytes.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, DictionaryArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type};
use arrow::ipc::reader::FileReader;

use super::state::StoreState;
use super::{batch_memory_bytes, ChunkStore, OpenReport, StoreConfig, StoreError};
use crate::ChunkKey;

/// The memory limit of every test store.
const LIMIT: u64 = 1 << 20;
/// Managed bytes above which chunks spill, for [`LIMIT`] and the default fractions.
const TARGET_BYTES: u64 = 629_145;
/// Process RSS above which chunks spill, for [`LIMIT`].
const SPILL_BYTES: u64 = 734_003;
/// Managed memory or RSS above which new chunks are refused, for [`LIMIT`].
const PAUSE_BYTES: u64 = 838_860;

fn key(text: &str) -> ChunkKey {
    ChunkKey::parse(text).expect("valid key")
}

/// One `Int64` column of `rows` values starting at `first`: one allocation of `8 × rows` bytes.
fn int_batch(rows: usize, first: i64) -> RecordBatch {
    let values: Vec<i64> = (first..first + rows as i64).collect();
    RecordBatch::try_from_iter([("value", Arc::new(Int64Array::from(values)) as _)]).expect("valid batch")
}

/// A batch with nulls, strings, a dictionary, a list and a struct: what a round trip must keep.
fn mixed_batch() -> RecordBatch {
    let ids = Int64Array::from(vec![Some(1), None, Some(3), Some(4)]);
    let names = StringArray::from(vec![Some("alpha"), Some("beta"), None, Some("delta")]);
    let tags: DictionaryArray<Int32Type> = vec!["red", "blue", "red", "green"].into_iter().collect();
    let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![]),
        Some(vec![Some(4), None]),
    ]);
    let points = StructArray::from(vec![
        (
            Arc::new(Field::new("x", DataType::Float64, false)),
            Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5])) as _,
        ),
        (
            Arc::new(Field::new("y", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3), None])) as _,
        ),
    ]);
    RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as Arc<dyn Array>),
        ("name", Arc::new(names) as _),
        ("tag", Arc::new(tags) as _),
        ("list", Arc::new(lists) as _),
        ("point", Arc::new(points) as _),
    ])
    .expect("valid batch")
}

fn open_store(dir: &Path) -> anyhow::Result<(ChunkStore, OpenReport)> {
    Ok(ChunkStore::open(StoreConfig::new(dir, LIMIT))?)
}

/// The names in `dir`, sorted.
fn file_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The file name a chunk with `checksum` gets.
fn chunk_file_name(key_text: &str, checksum: Option<u32>) -> anyhow::Result<String> {
    let checksum = checksum.ok_or_else(|| anyhow::anyhow!("{key_text} has no file"))?;
    Ok(format!("{key_text}.{checksum:08x}.arrow"))
}

fn is_in_memory(store: &ChunkStore, key_text: &str) -> bool {
    store.chunk(&key(key_text)).is_some_and(|chunk| chunk.in_memory)
}

/// Flips one byte in the middle of a file.
fn flip_a_byte(path: &Path) -> anyhow::Result<()> {
    let mut contents = fs::read(path)?;
    let middle = contents.len() / 2;
    contents[middle] ^= 0xff;
    fs::write(path, contents)?;
    Ok(())
}

/// A store in `dir` holding [`mixed_batch`] as "mixed", pushed to disk by four fillers put
/// after it; and the batch.
fn store_with_mixed_spilled(dir: &Path) -> anyhow::Result<(ChunkStore, RecordBatch)> {
    let (store, _) = open_store(dir)?;
    let original = mixed_batch();
    store.put(key("mixed"), original.clone())?;
    for index in 0..4 {
        store.put(key(&format!("filler-{index}")), int_batch(25_000, index))?;
    }
    Ok((store, original))
}

/// Slices of one batch share its allocation: the store counts it once however many chunks hold
/// it, each chunk's own size is the whole allocation, and the bytes are released only when the
/// last chunk using it leaves memory (by delete or by spill) — otherwise slicing an upload into
/// chunks would look like it multiplied memory use and trigger needless spilling.
#[test]
fn slices_sharing_a_buffer_count_once_until_the_last_leaves_memory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;

    tracing::info!("phase: two slices of one 8,000-byte batch, released by delete");
    let batch = int_batch(1000, 0);
    let first = store.put(key("first"), batch.slice(0, 500))?;
    let second = store.put(key("second"), batch.slice(500, 500))?;
    assert_eq!(first.memory_bytes, 8000);
    assert_eq!(second.memory_bytes, 8000, "a chunk's own size is its whole allocation");
    assert_eq!(store.stats().managed_bytes, 8000, "the shared allocation counts once");
    assert!(store.delete(&key("first"))?);
    assert_eq!(
        store.stats().managed_bytes,
        8000,
        "the other slice still holds the allocation"
    );
    assert!(store.delete(&key("second"))?);
    assert_eq!(store.stats().managed_bytes, 0);

    tracing::info!("phase: two slices of a 400,000-byte batch, released by spilling");
    let shared = int_batch(50_000, 0);
    store.put(key("left"), shared.slice(0, 25_000))?;
    store.put(key("right"), shared.slice(25_000, 25_000))?;
    assert_eq!(store.stats().managed_bytes, 400_000);
    store.put(key("other"), int_batch(37_500, 0))?; // 300,000 bytes: 700,000 > target
    let stats = store.stats();
    assert_eq!(
        stats.spill_count, 2,
        "spilling 'left' alone freed nothing, so 'right' followed"
    );
    assert_eq!(stats.managed_bytes, 300_000);
    assert!(!is_in_memory(&store, "left") && !is_in_memory(&store, "right") && is_in_memory(&store, "other"));
    assert_eq!(store.get(&key("right"))?, shared.slice(25_000, 25_000));
    Ok(())
}

/// When managed memory goes over the target, the least recently *used* chunk leaves memory first
/// — a `get` counts as a use — and only as many as needed: the hot chunks stay in memory.
#[test]
fn least_recently_used_chunk_spills_first_and_get_refreshes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    for (name, first) in [("a", 0), ("b", 1), ("c", 2)] {
        store.put(key(name), int_batch(25_000, first))?;
    }
    assert_eq!(store.stats().spill_count, 0, "600,000 bytes are within the target");

    tracing::info!("phase: 'a' is used again, so 'b' becomes the least recently used");
    store.get(&key("a"))?;
    store.put(key("d"), int_batch(25_000, 3))?;
    let spilled = store.chunk(&key("b")).ok_or_else(|| anyhow::anyhow!("b is gone"))?;
    assert!(!spilled.in_memory && spilled.on_disk, "{spilled:?}");
    assert!(is_in_memory(&store, "a") && is_in_memory(&store, "c") && is_in_memory(&store, "d"));
    let stats = store.stats();
    assert_eq!(
        (stats.spill_count, stats.managed_bytes, stats.chunks_in_memory),
        (1, 600_000, 3)
    );
    assert_eq!(stats.spilled_bytes, spilled.file_bytes);

    tracing::info!("phase: the next insert spills 'c', now the least recently used");
    store.put(key("e"), int_batch(25_000, 4))?;
    assert!(!is_in_memory(&store, "c"));
    assert!(is_in_memory(&store, "a") && is_in_memory(&store, "d") && is_in_memory(&store, "e"));
    Ok(())
}

/// A spilled chunk comes back from `get` identical to what was put (nulls, strings, dictionary,
/// list and struct included), without the caller knowing it was on disk; it counts as an
/// unspill, and once back it is one allocation the size of its file (zero-copy decoding).
#[test]
fn spilled_chunk_reads_back_identical() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, original) = store_with_mixed_spilled(dir.path())?;
    let spilled = store
        .chunk(&key("mixed"))
        .ok_or_else(|| anyhow::anyhow!("mixed is gone"))?;
    assert!(
        !spilled.in_memory && spilled.on_disk,
        "the oldest chunk spilled: {spilled:?}"
    );

    tracing::info!("phase: the spilled file is a plain Arrow IPC file");
    let path = dir.path().join(chunk_file_name("mixed", spilled.checksum)?);
    let from_arrow = FileReader::try_new(fs::File::open(&path)?, None)?.collect::<Result<Vec<_>, _>>()?;
    assert_eq!(from_arrow, vec![original.clone()]);

    tracing::info!("phase: get reads it back transparently");
    assert_eq!(store.get(&key("mixed"))?, original);
    let back = store
        .chunk(&key("mixed"))
        .ok_or_else(|| anyhow::anyhow!("mixed is gone"))?;
    assert!(back.in_memory && back.on_disk);
    assert_eq!(
        back.memory_bytes, back.file_bytes,
        "decoded zero-copy from one file-sized allocation"
    );
    assert_eq!(store.stats().unspill_count, 1);
    assert_eq!(store.get(&key("mixed"))?, original, "a second get is a memory hit");
    assert_eq!(store.stats().unspill_count, 1);
    Ok(())
}

/// A durable put is on disk when it returns: a new store on the same directory finds the chunk
/// with the same checksum and the same data — the guarantee behind publishing a chunk.
#[test]
fn durable_put_survives_a_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let batch = mixed_batch();
    let stored = {
        let (store, _) = open_store(dir.path())?;
        let stored = store.put_durable(key("published"), batch.clone())?;
        assert!(stored.in_memory && stored.on_disk);
        assert_eq!(
            file_names(dir.path())?,
            vec![chunk_file_name("published", stored.checksum)?]
        );
        stored
    };

    let (store, report) = open_store(dir.path())?;
    assert!(
        report.corrupt.is_empty() && report.removed_files.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.chunks.len(), 1);
    let found = &report.chunks[0];
    assert_eq!(
        (&found.key, found.checksum, found.file_bytes, found.rows),
        (&stored.key, stored.checksum, stored.file_bytes, 4)
    );
    assert_eq!(found.schema, batch.schema());
    assert!(!found.in_memory && found.on_disk, "open loads nothing into memory");
    assert_eq!(store.stats().managed_bytes, 0);
    assert_eq!(store.get(&key("published"))?, batch);
    Ok(())
}

/// A chunk file whose bytes changed on disk is found at open (every file is verified), deleted
/// and reported by key, and the other chunks are kept; its data is never returned.
#[test]
fn corrupt_file_is_reported_at_open_and_never_returned() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let damaged = {
        let (store, _) = open_store(dir.path())?;
        let damaged = store.put_durable(key("damaged"), int_batch(1000, 0))?;
        store.put_durable(key("intact"), int_batch(1000, 7))?;
        damaged
    };
    flip_a_byte(&dir.path().join(chunk_file_name("damaged", damaged.checksum)?))?;

    let (store, report) = open_store(dir.path())?;
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].0, key("damaged"));
    assert!(
        report.corrupt[0].1.contains("checksum mismatch"),
        "{}",
        report.corrupt[0].1
    );
    let kept: Vec<&str> = report.chunks.iter().map(|chunk| chunk.key.as_str()).collect();
    assert_eq!(kept, ["intact"]);
    assert_eq!(file_names(dir.path())?.len(), 1, "the corrupt file was deleted");
    assert!(matches!(store.get(&key("damaged")), Err(StoreError::NotFound { .. })));
    assert_eq!(store.get(&key("intact"))?, int_batch(1000, 7));
    Ok(())
}

/// A file damaged after open is caught by `get`, and by `get_for_sending`: the file is
/// deleted, the key dropped, and `Corrupt` returned — never the damaged data — and the key is
/// gone afterwards.
#[test]
fn corrupt_file_found_by_get_is_dropped() -> anyhow::Result<()> {
    type Read = fn(&ChunkStore, &ChunkKey) -> Result<(), StoreError>;
    let reads: [(&str, Read); 2] = [
        ("get", |store, key| store.get(key).map(drop)),
        ("get_for_sending", |store, key| {
            store.get_for_sending(key, u64::MAX).map(drop)
        }),
    ];
    for (name, read) in reads {
        let dir = tempfile::tempdir()?;
        let stored = {
            let (store, _) = open_store(dir.path())?;
            store.put_durable(key("fragile"), int_batch(1000, 0))?
        };
        let (store, _) = open_store(dir.path())?;
        assert!(!is_in_memory(&store, "fragile"));
        flip_a_byte(&dir.path().join(chunk_file_name("fragile", stored.checksum)?))?;

        match read(&store, &key("fragile")) {
            Err(StoreError::Corrupt {
                key: corrupt_key,
                reason,
            }) => {
                assert_eq!(corrupt_key, key("fragile"));
                assert!(reason.contains("checksum mismatch"), "{name}: {reason}");
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
        assert!(!store.contains(&key("fragile")), "{name}");
        assert!(file_names(dir.path())?.is_empty(), "{name}");
        assert!(
            matches!(read(&store, &key("fragile")), Err(StoreError::NotFound { .. })),
            "{name}"
        );
    }
    Ok(())
}

/// Temp files left by a crash mid-write and `.arrow` files with malformed names are removed at
/// open (they are the store's own debris); files that are not the store's are left alone.
#[test]
fn leftover_temp_files_are_removed_at_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for name in [
        ".tmp-chunk-1-00000000deadbeef",
        ".tmp-probe-0123456789abcdef",
        "no-checksum.arrow",
        "notes.txt",
    ] {
        fs::write(dir.path().join(name), b"partial")?;
    }
    let (_store, report) = open_store(dir.path())?;
    assert!(report.chunks.is_empty() && report.corrupt.is_empty());
    assert_eq!(report.removed_files.len(), 3, "{report:?}");
    assert_eq!(file_names(dir.path())?, ["notes.txt"]);
    Ok(())
}

/// Process memory above the pause fraction makes puts fail with a retryable `Paused` (never a
/// panic) while reads keep working; a lower RSS lifts the pause.
#[test]
fn pause_above_the_pause_fraction_is_retryable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    store.put(key("before"), int_batch(100, 0))?;

    store.check_pressure(PAUSE_BYTES + 1);
    let reason = store
        .paused()
        .ok_or_else(|| anyhow::anyhow!("the store should be paused"))?;
    assert!(reason.contains("process memory"), "{reason}");
    match store.put(key("refused"), int_batch(100, 1)) {
        Err(error @ StoreError::Paused { .. }) => assert!(error.is_retryable()),
        other => panic!("expected Paused, got {other:?}"),
    }
    assert!(matches!(
        store.put_durable(key("refused"), int_batch(100, 1)),
        Err(StoreError::Paused { .. })
    ));
    assert!(!store.contains(&key("refused")));
    assert_eq!(store.get(&key("before"))?, int_batch(100, 0), "reads work while paused");
    assert!(store.stats().paused.is_some());

    store.check_pressure(PAUSE_BYTES);
    assert_eq!(store.paused(), None, "at the threshold is not above it");
    store.put(key("accepted"), int_batch(100, 1))?;
    Ok(())
}

/// The accounting core pauses on managed memory too: if chunks cannot leave memory (here none
/// was ever offered a spill), managed memory above the pause fraction refuses new chunks.
#[test]
fn managed_memory_above_the_pause_fraction_pauses() {
    let config = StoreConfig::new("/unused", LIMIT);
    let mut state = StoreState::new(config.thresholds());
    let big = int_batch(110_000, 0); // 880,000 bytes > pause
    let allocations = super::memory::ChunkAllocations::of_batch(&big);
    state.insert(key("big"), big, allocations, None);
    let reason = state.pause_reason().unwrap_or_default();
    assert!(reason.contains("managed memory of 880000 bytes"), "{reason:?}");
}

/// Process RSS above the spill fraction spills chunks even when managed memory is within the
/// target, enough to bring the estimated process memory (unmanaged + managed) under the target.
#[test]
fn rss_above_the_spill_fraction_spills() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    for (name, first) in [("a", 0), ("b", 1), ("c", 2)] {
        store.put(key(name), int_batch(25_000, first))?;
    }
    store.check_pressure(SPILL_BYTES);
    assert_eq!(store.stats().spill_count, 0, "at the spill threshold nothing spills");

    // 800,000 bytes of RSS, 600,000 managed: 200,000 unmanaged, so managed must go to 429,145.
    store.check_pressure(800_000);
    let stats = store.stats();
    assert_eq!((stats.spill_count, stats.managed_bytes), (1, 400_000));
    assert!(!is_in_memory(&store, "a"), "the least recently used chunk went first");
    assert_eq!(store.paused(), None);
    assert!(TARGET_BYTES > stats.managed_bytes);
    Ok(())
}

/// A chunk bigger than the target (but within the limit) is still stored: written to disk and
/// not kept in memory, without looping; a chunk bigger than the whole limit is refused.
#[test]
fn chunk_bigger_than_the_target_goes_to_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    let big = int_batch(87_500, 0); // 700,000 bytes
    let stored = store.put(key("big"), big.clone())?;
    assert!(!stored.in_memory && stored.on_disk, "{stored:?}");
    assert_eq!(store.stats().managed_bytes, 0);
    assert_eq!(store.get(&key("big"))?, big);
    assert!(!is_in_memory(&store, "big"), "read back, then out again");

    let huge = int_batch(140_000, 0); // 1,120,000 bytes
    match store.put(key("huge"), huge) {
        Err(error @ StoreError::TooLarge { .. }) => assert!(!error.is_retryable()),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    Ok(())
}

/// A failed write (a full disk, injected) pauses the store with a reason naming the path and the
/// OS error, removes the partial temp file, loses nothing already stored, and once writes work
/// again a probe write in `check_pressure` lifts the pause.
#[test]
fn failed_write_pauses_keeps_chunks_and_recovers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    let durable = int_batch(1000, 0);
    let in_memory = int_batch(1000, 1);
    store.put_durable(key("durable"), durable.clone())?;
    store.put(key("in-memory"), in_memory.clone())?;

    tracing::info!("phase: the disk fills up");
    store.fail_writes_with(Some(io::ErrorKind::StorageFull));
    match store.put_durable(key("new"), int_batch(1000, 2)) {
        Err(error @ StoreError::DiskFull { .. }) => assert!(error.is_retryable()),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    let reason = store
        .paused()
        .ok_or_else(|| anyhow::anyhow!("the store should be paused"))?;
    assert!(
        reason.contains(".tmp-new-") && reason.contains("injected write failure"),
        "{reason}"
    );
    assert!(
        !file_names(dir.path())?.iter().any(|name| name.starts_with(".tmp-")),
        "the partial file is gone"
    );
    assert!(!store.contains(&key("new")));
    assert_eq!(store.get(&key("durable"))?, durable);
    assert_eq!(store.get(&key("in-memory"))?, in_memory);
    assert!(matches!(
        store.put(key("later"), int_batch(10, 0)),
        Err(StoreError::Paused { .. })
    ));

    store.check_pressure(0);
    assert!(store.paused().is_some(), "the probe write fails too");

    tracing::info!("phase: space is freed");
    store.fail_writes_with(None);
    store.check_pressure(0);
    assert_eq!(store.paused(), None);
    store.put_durable(key("new"), int_batch(1000, 2))?;
    assert_eq!(store.get(&key("new"))?, int_batch(1000, 2));
    Ok(())
}

/// A real I/O failure — the chunk directory replaced by a file — pauses the store the same way;
/// chunks in memory stay readable, and when the directory is back a probe write lifts the pause.
#[test]
fn failed_write_to_a_vanished_directory_pauses_until_it_returns() -> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let chunk_dir = parent.path().join("chunks");
    let moved_dir = parent.path().join("chunks-moved");
    let (store, _) = open_store(&chunk_dir)?;
    let kept = int_batch(1000, 0);
    store.put(key("kept"), kept.clone())?;

    fs::rename(&chunk_dir, &moved_dir)?;
    fs::write(&chunk_dir, b"not a directory")?;
    match store.put_durable(key("refused"), int_batch(1000, 1)) {
        Err(error @ StoreError::WriteFailed { .. }) => assert!(error.is_retryable(), "{error}"),
        other => panic!("expected WriteFailed, got {other:?}"),
    }
    let reason = store
        .paused()
        .ok_or_else(|| anyhow::anyhow!("the store should be paused"))?;
    assert!(reason.contains("chunks"), "{reason}");
    assert_eq!(store.get(&key("kept"))?, kept);
    store.check_pressure(0);
    assert!(store.paused().is_some());

    fs::remove_file(&chunk_dir)?;
    fs::rename(&moved_dir, &chunk_dir)?;
    store.check_pressure(0);
    assert_eq!(store.paused(), None);
    store.put_durable(key("refused"), int_batch(1000, 1))?;
    Ok(())
}

/// `delete` removes the chunk from memory and its file from disk, so it does not come back at
/// the next open; deleting an absent key is `Ok(false)`.
#[test]
fn delete_removes_the_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    store.put_durable(key("doomed"), int_batch(1000, 0))?;
    store.put(key("memory-only"), int_batch(1000, 1))?;
    assert_eq!(file_names(dir.path())?.len(), 1);

    assert!(store.delete(&key("doomed"))?);
    assert!(file_names(dir.path())?.is_empty());
    assert!(!store.contains(&key("doomed")) && store.chunk(&key("doomed")).is_none());
    assert!(!store.delete(&key("doomed"))?);
    assert!(store.delete(&key("memory-only"))?);
    assert_eq!(store.stats().managed_bytes, 0);
    assert!(matches!(store.get(&key("doomed")), Err(StoreError::NotFound { .. })));

    drop(store);
    let (_store, report) = open_store(dir.path())?;
    assert!(report.chunks.is_empty());
    Ok(())
}

/// Putting a key again replaces the chunk: the old file is removed (a memory-only replacement
/// leaves no file), so a reopen cannot resurrect the old data.
#[test]
fn replacing_a_chunk_removes_its_old_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    store.put_durable(key("k"), int_batch(100, 0))?;
    let second = store.put_durable(key("k"), int_batch(100, 1))?;
    assert_eq!(file_names(dir.path())?, vec![chunk_file_name("k", second.checksum)?]);
    assert_eq!(store.get(&key("k"))?, int_batch(100, 1));

    store.put(key("k"), int_batch(100, 2))?;
    assert!(file_names(dir.path())?.is_empty());
    assert_eq!(store.get(&key("k"))?, int_batch(100, 2));
    assert_eq!(store.stats().managed_bytes, batch_memory_bytes(&int_batch(100, 2)));
    Ok(())
}

/// Clones are handles to the same store, usable from several threads at once: concurrent puts,
/// gets and deletes with spilling keep the accounting consistent (checked by the debug
/// assertions inside) and every surviving chunk reads back intact.
#[test]
fn concurrent_use_keeps_the_accounting_consistent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = open_store(dir.path())?;
    let threads: Vec<_> = (0..4_i64)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || -> Result<(), StoreError> {
                for round in 0..20_i64 {
                    let name = key(&format!("t{thread}-{}", round % 5));
                    let batch = int_batch(10_000, thread * 1000 + round);
                    if round % 2 == 0 {
                        store.put(name.clone(), batch.clone())?;
                    } else {
                        store.put_durable(name.clone(), batch.clone())?;
                    }
                    assert_eq!(store.get(&name)?, batch);
                    if round % 7 == 0 {
                        store.delete(&name)?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| anyhow::anyhow!("a thread panicked"))??;
    }
    let stats = store.stats();
    assert!(stats.managed_bytes <= TARGET_BYTES, "{stats:?}");
    for chunk in store.chunks() {
        let batch = store.get(&chunk.key)?;
        assert_eq!(batch.num_rows() as u64, chunk.rows);
    }
    Ok(())
}

/// The Flight messages of a chunk as [`ChunkStore::get_for_sending`] gives them, decoded as a
/// client decodes a `DoGet` answer.
fn decode_sent(chunk: super::ChunkForSending) -> anyhow::Result<Vec<RecordBatch>> {
    use futures::TryStreamExt;
    let messages = match chunk {
        super::ChunkForSending::File(messages) => messages,
        super::ChunkForSending::Batch(batch) => anyhow::bail!("expected the file's messages, got a batch {batch:?}"),
    };
    let flight_data = messages.into_iter().map(|message| {
        Ok(arrow_flight::FlightData {
            data_header: message.header,
            data_body: message.body,
            ..Default::default()
        })
    });
    let decoded =
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(futures::stream::iter(flight_data));
    Ok(futures::executor::block_on(decoded.try_collect())?)
}

/// A chunk only on disk is sent as its file's IPC messages (dictionaries included), which a
/// Flight client decodes to the original batch; sending does not bring it back into memory. A
/// chunk in memory is sent as its batch, and so is one whose file is over the size given.
#[test]
fn spilled_chunk_is_sent_from_its_file_without_unspilling() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, original) = store_with_mixed_spilled(dir.path())?;
    assert!(!is_in_memory(&store, "mixed"), "the oldest chunk spilled");

    assert_eq!(
        decode_sent(store.get_for_sending(&key("mixed"), u64::MAX)?)?,
        vec![original.clone()]
    );
    assert!(!is_in_memory(&store, "mixed"), "sending did not unspill it");
    assert_eq!(store.stats().unspill_count, 0);

    let resident = store.get_for_sending(&key("filler-3"), u64::MAX)?;
    assert!(
        matches!(&resident, super::ChunkForSending::Batch(batch) if *batch == int_batch(25_000, 3)),
        "a chunk in memory is sent as its batch: {resident:?}"
    );
    assert!(matches!(
        store.get_for_sending(&key("absent"), u64::MAX),
        Err(StoreError::NotFound { .. })
    ));

    // A file over the size given is read back as by `get`, and sent as its batch.
    let large = store.get_for_sending(&key("mixed"), 1)?;
    assert!(
        matches!(&large, super::ChunkForSending::Batch(batch) if *batch == original),
        "{large:?}"
    );
    assert!(is_in_memory(&store, "mixed"));

    // The bytes of a chunk being sent stay whole when the chunk is deleted meanwhile
    // (its file is mapped, and the mapping outlives the unlinked file).
    let spilled = (0..4)
        .map(|index| format!("filler-{index}"))
        .find(|name| !is_in_memory(&store, name))
        .expect("a filler chunk is on disk");
    let in_flight = store.get_for_sending(&key(&spilled), u64::MAX)?;
    assert!(store.delete(&key(&spilled))?);
    assert!(matches!(
        store.get_for_sending(&key(&spilled), u64::MAX),
        Err(StoreError::NotFound { .. })
    ));
    let index = spilled.trim_start_matches("filler-").parse()?;
    assert_eq!(decode_sent(in_flight)?, vec![int_batch(25_000, index)]);
    Ok(())
}
