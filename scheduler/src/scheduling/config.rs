//! The core's tuning knobs.

/// How the scheduling core behaves; [`CoreConfig::default`] is what a scheduler runs
/// with unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreConfig {
    /// How many times a task's worker may die while the task is assigned to it before
    /// the task errs (Dask's `allowed-failures`): a task that kills its workers must
    /// not take the whole cluster down one worker at a time.
    pub allowed_failures: u32,
    /// How many tasks a worker may have assigned (running and queued) per thread; the
    /// rest wait in the core's ready queue, so a worker that joins late, or frees its
    /// slots, still finds work, and few tasks need stealing.
    pub max_assigned_per_thread: u32,
    /// Emit [`Decision::Propose`](super::Decision::Propose) on its own, without waiting
    /// for the runtime's [`Event::Flush`](super::Event::Flush), once this many updates
    /// are pending: bounds one Raft entry and the news a leader change can lose.
    pub max_batch_updates: usize,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            allowed_failures: 3,
            max_assigned_per_thread: 256,
            max_batch_updates: 10_000,
        }
    }
}
