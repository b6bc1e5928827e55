//! Cairn worker (not built yet): task execution, the chunk store holding Arrow
//! `RecordBatch`es in memory, spill to disk as Arrow IPC, and serving chunks to
//! peers and clients (SPEC §5).
//!
//! This crate is intentionally empty until the worker issue: nothing here pretends to
//! run tasks. It will be the only crate that knows how chunks sit in memory and on
//! disk.
