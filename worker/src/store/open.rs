//! What opening the chunk directory does: remove leftover temp files and malformed chunk files,
//! verify every chunk file (the whole file is read and its crc32c checked, then decoded), delete
//! the corrupt ones, and keep, per key, the newest valid file. Nothing stays in memory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use arrow::datatypes::SchemaRef;

use super::disk::{remove_file_if_present, sync_directory};
use super::file::{read_chunk_file, ChunkFile, ReadFailure};
use super::file_name::{ChunkFileName, DirectoryName};
use super::memory::batch_memory_bytes;
use super::{StoreError, StoredChunk};
use crate::ChunkKey;

/// What [`ChunkStore::open`](super::ChunkStore::open) found in the chunk directory.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenReport {
    /// Every chunk whose file verified, sorted by key; none is in memory yet.
    pub chunks: Vec<StoredChunk>,
    /// Chunk files that failed verification (checksum, decoding) and were deleted, by key, with
    /// what was wrong. A key here may still be in `chunks` if another, newer file of it verified.
    pub corrupt: Vec<(ChunkKey, String)>,
    /// Other files removed, with why: leftover temp files, `.arrow` files whose name is not
    /// `<key>.<crc32c>.arrow`, and older files of a chunk superseded by a newer one.
    pub removed_files: Vec<(PathBuf, String)>,
}

/// A chunk file that verified at open.
#[derive(Debug)]
pub(crate) struct RecoveredChunk {
    /// The batch's schema.
    pub(crate) schema: SchemaRef,
    /// The batch's row count.
    pub(crate) rows: u64,
    /// The decoded batch's size in memory.
    pub(crate) memory_bytes: u64,
    /// The file.
    pub(crate) file: ChunkFile,
}

/// The outcome of [`recover_directory`].
#[derive(Debug, Default)]
pub(crate) struct RecoveredDirectory {
    /// The chunks whose newest file verified, sorted by key.
    pub(crate) chunks: Vec<RecoveredChunk>,
    /// See [`OpenReport::corrupt`].
    pub(crate) corrupt: Vec<(ChunkKey, String)>,
    /// See [`OpenReport::removed_files`].
    pub(crate) removed_files: Vec<(PathBuf, String)>,
}

/// A chunk file found by the scan, not yet verified.
#[derive(Debug)]
struct CandidateFile {
    /// Its parsed name.
    name: ChunkFileName,
    /// Its path.
    path: PathBuf,
    /// Its size.
    bytes: u64,
    /// Its modification time: of two files for one key (a crash between writing a replacement and
    /// removing the old file), the newer one wins.
    modified: SystemTime,
}

/// Cleans and verifies the chunk directory `dir` (which must exist).
pub(crate) fn recover_directory(dir: &Path) -> Result<RecoveredDirectory, StoreError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let mut recovered = RecoveredDirectory::default();
    let mut candidates_by_key: BTreeMap<ChunkKey, Vec<CandidateFile>> = BTreeMap::new();

    for dir_entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let dir_entry = dir_entry.map_err(io_error(dir))?;
        let path = dir_entry.path();
        let file_type = dir_entry.file_type().map_err(io_error(&path))?;
        let Some(file_name) = dir_entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(path = %path.display(), "ignoring a file with a non-UTF-8 name in the chunk directory");
            continue;
        };
        if !file_type.is_file() {
            tracing::warn!(path = %path.display(), "ignoring a non-file entry in the chunk directory");
            continue;
        }
        match DirectoryName::classify(&file_name) {
            DirectoryName::Chunk(name) => {
                let metadata = dir_entry.metadata().map_err(io_error(&path))?;
                let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let candidate = CandidateFile {
                    name,
                    path,
                    bytes: metadata.len(),
                    modified,
                };
                candidates_by_key
                    .entry(candidate.name.key.clone())
                    .or_default()
                    .push(candidate);
            }
            DirectoryName::Temp => {
                remove_file_if_present(&path).map_err(io_error(&path))?;
                tracing::info!(path = %path.display(), "removed a leftover temp file");
                recovered.removed_files.push((path, "leftover temp file".to_string()));
            }
            DirectoryName::MalformedChunk { reason } => {
                remove_file_if_present(&path).map_err(io_error(&path))?;
                tracing::warn!(path = %path.display(), %reason, "removed a malformed chunk file");
                recovered
                    .removed_files
                    .push((path, format!("not a chunk file name: {reason}")));
            }
            DirectoryName::Foreign => {
                tracing::warn!(path = %path.display(), "ignoring a file that is not the chunk store's");
            }
        }
    }

    for (key, mut candidates) in candidates_by_key {
        // Newest first; equal times fall back to the name, so the choice is deterministic.
        candidates.sort_by(|left, right| {
            right
                .modified
                .cmp(&left.modified)
                .then_with(|| right.path.cmp(&left.path))
        });
        let mut kept: Option<ChunkFileName> = None;
        for candidate in candidates {
            if let Some(kept_name) = &kept {
                remove_file_if_present(&candidate.path).map_err(io_error(&candidate.path))?;
                let reason = format!("superseded by the newer file {kept_name}");
                tracing::warn!(path = %candidate.path.display(), %reason, "removed an old chunk file");
                recovered.removed_files.push((candidate.path, reason));
                continue;
            }
            match read_chunk_file(&candidate.path, &candidate.name) {
                Ok(batch) => {
                    kept = Some(candidate.name.clone());
                    recovered.chunks.push(RecoveredChunk {
                        schema: batch.schema(),
                        rows: batch.num_rows() as u64,
                        memory_bytes: batch_memory_bytes(&batch),
                        file: ChunkFile {
                            name: candidate.name,
                            bytes: candidate.bytes,
                        },
                    });
                }
                Err(ReadFailure::Corrupt { reason }) => {
                    remove_file_if_present(&candidate.path).map_err(io_error(&candidate.path))?;
                    tracing::warn!(chunk = %key, %reason, "removed a corrupt chunk file");
                    recovered.corrupt.push((key.clone(), reason));
                }
                Err(ReadFailure::Io { source }) => {
                    return Err(StoreError::Io {
                        path: candidate.path,
                        source,
                    });
                }
            }
        }
    }

    let anything_removed = !recovered.corrupt.is_empty() || !recovered.removed_files.is_empty();
    if anything_removed {
        sync_directory(dir).map_err(io_error(dir))?;
    }
    Ok(recovered)
}
