//! The `cairn` binary.

/// mimalloc rather than glibc's malloc: glibc raises its mmap threshold each time a
/// large block is freed, so a worker cycling 8 MiB chunks through memory kept freed
/// blocks on its heap and its RSS reached 1.7× its memory limit (measured with
/// `tests/tests/data_memory.rs`); mimalloc returns freed memory to the OS promptly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cairn_cli::main()
}
