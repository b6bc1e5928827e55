//! A chunk file mapped into memory, for sending it as it is.
//!
//! A chunk streamed from a spill file was read into a fresh buffer: the kernel zeroed
//! the new pages (`clear_page_erms`) and copied the page cache into them
//! (`filemap_read`), 17 % of the machine's samples while `cairn bench data` streamed
//! a GiB. A mapping shares the page cache's pages: nothing to zero, nothing to keep,
//! and the pages leave the process when the last slice of the chunk is dropped. (The
//! checksum still reads the file, through a small buffer that stays in the CPU's
//! cache: see below.)
//!
//! The only `unsafe` here is the mapping itself (memmap2's `map` is `unsafe` because
//! the file could change under it). The store's files never do: a chunk file is
//! written under a temporary name, synced, renamed into place, and afterwards only
//! ever read or unlinked, and unlinking a mapped file leaves the mapping whole. A file
//! changed by something else than the store is caught by the checksum computed
//! before anything is sent; truncating it while it is mapped would raise SIGBUS,
//! which is why the store's directory is the worker's alone (ARCHITECTURE.md). The
//! checksum is computed over a `read` of the file, not over the mapping, so that a
//! disk that cannot give a page back fails with an error rather than a SIGBUS
//! (`read_chunk_file_bytes`).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// The whole of `file`, mapped read-only with its pages faulted in at once.
pub(super) fn map_whole_file(file: &File) -> io::Result<bytes::Bytes> {
    // SAFETY: the store's chunk files are immutable once renamed into place (see the
    // module's documentation); the mapping is read-only.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
    Ok(bytes::Bytes::from_owner(map))
}
