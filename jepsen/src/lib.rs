//! `cairn-jepsen` (not built yet): the fault-injection suite that runs real
//! `cairn scheduler` processes in network namespaces, injects kills, pauses,
//! partitions and membership changes, records every operation's history, and checks
//! it for linearizability and lost or doubled writes (issue 3).
//!
//! Intentionally empty until then; the process-level tests in `tests/` cover the
//! kill/pause/restart promises of the catalog meanwhile.
