//! The allocator's policy: mimalloc (`main.rs`), keeping freed memory for reuse a while.
//!
//! mimalloc gives freed memory back to the OS ("purges" it) one second after a free by
//! default, and then everything freed since, at once. A worker turns over arrays of
//! tens of MiB per task (a NetCDF read, each element-wise step, a chunk read from its
//! file to be served), and a client reading chunks a buffer per chunk: each came from
//! fresh pages the kernel had to fault in and zero (`clear_page_erms` under page
//! faults was a quarter of all CPU in `cairn bench seeds`). Every `cairn` process keeps
//! freed memory for [`PURGE_DELAY`] instead, so an idle one still gives it back within
//! a minute; a worker's RSS never holds more than its target for it: above the target
//! it gives everything back at once ([`release_free_memory`], called by the worker's
//! memory monitor before it spills or pauses).

// One of the workspace's two modules allowed `unsafe` (the other maps chunk files,
// `worker/src/store/mapped.rs`): two calls into mimalloc's C API.
#![allow(unsafe_code)]

use std::time::Duration;

use libmimalloc_sys as ffi;

/// mimalloc v3's `mi_option_purge_delay`: its place in `mi_option_t` (mimalloc.h of
/// libmimalloc-sys 0.1.49; the crate's own constants predate v3 and number it
/// otherwise). `purge_delay_option_is_mimalloc_v3s` checks it.
const PURGE_DELAY_OPTION: ffi::mi_option_t = 15;

/// How long a `cairn` process keeps freed memory for reuse.
pub const PURGE_DELAY: Duration = Duration::from_secs(60);

/// Keeps freed memory for `delay` before it goes back to the OS (unless
/// [`release_free_memory`] comes first).
pub fn keep_free_memory_for(delay: Duration) {
    let millis = std::os::raw::c_long::try_from(delay.as_millis()).unwrap_or(std::os::raw::c_long::MAX);
    // SAFETY: sets an integer option; mimalloc reads options atomically.
    unsafe { ffi::mi_option_set(PURGE_DELAY_OPTION, millis) };
}

/// Turns transparent huge pages off for this process and the processes it starts
/// (`PR_SET_THP_DISABLE`, kept across `fork` and `exec`); a scheduler calls it first
/// thing. mimalloc asks for huge pages on its regions (`MADV_HUGEPAGE`), so each first
/// touch of a region clears and maps 2 MiB at once, and a replica's heap of small
/// records (the task table, the catalog, entries in flight) grew in 2 MiB steps. With
/// them off in the schedulers, a fresh cluster committed a graph of 114k tasks in
/// 0.71 s instead of 1.07–1.19 s and ran it at 44–47k tasks/s instead of 37–41k
/// (`cairn bench tasks`, BENCHMARKS.md "tenth run"). Workers keep huge pages: a chunk
/// stream to a client was faster with them. A failure is only logged: it changes
/// speed, not behaviour.
pub fn without_transparent_huge_pages() {
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!(%error, "cannot turn transparent huge pages off for this process");
    }
}

/// Gives every freed block mimalloc keeps back to the OS now.
pub fn release_free_memory() {
    // SAFETY: no arguments beyond the flag; safe from any thread.
    unsafe { ffi::mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is the purge delay: its default is v3's 1000 ms, and setting it
    /// reads back (a renumbered enum in a new mimalloc fails here, not silently).
    #[test]
    fn purge_delay_option_is_mimalloc_v3s() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            assert_eq!(unsafe { ffi::mi_option_get(PURGE_DELAY_OPTION) }, 1000);
        }
        keep_free_memory_for(Duration::from_millis(2500));
        // SAFETY: as above.
        assert_eq!(unsafe { ffi::mi_option_get(PURGE_DELAY_OPTION) }, 2500);
        release_free_memory();
    }

    /// After the call the kernel reports the flag set (it is inherited by the test
    /// harness's later tests in this process, which do not care).
    #[test]
    fn huge_pages_can_be_turned_off() {
        without_transparent_huge_pages();
        assert_eq!(nix::sys::prctl::get_thp_disable(), Ok(true));
    }
}
