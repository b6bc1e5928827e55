//! What the runtime tells the core.

use crate::control::ClientId;
use crate::graph::{TaskKey, TaskSpec};
use crate::registry::WorkerId;

/// A chunk of a published dataset that tasks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalChunk {
    /// The chunk's key in the workers' stores.
    pub key: String,
    /// Its size, for placing its readers next to it.
    pub bytes: u64,
    /// The live workers holding it.
    pub locations: Vec<WorkerId>,
}

/// One stimulus. The runtime feeds these in the order things happened (graph
/// submissions in Raft log order) and performs the [`Decision`](super::Decision)s
/// each returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A graph was validated and committed. Keys the core already knows are reused,
    /// not re-added (Dask's semantics: same key, same task); `client` becomes a wanter
    /// of each `wanted` key (Dask's `who_wants`).
    GraphSubmitted {
        /// The submitting client.
        client: ClientId,
        /// The tasks, each after its dependencies or not: order only sets priority.
        tasks: Vec<TaskSpec>,
        /// The keys whose results the client waits for.
        wanted: Vec<TaskKey>,
        /// The published chunks the tasks read, with their live locations (replaces
        /// what the core knew of those chunks).
        chunks: Vec<ExternalChunk>,
    },
    /// A worker opened its task stream. Also sent when a known worker reconnects:
    /// the core cannot know whether its queue survived, so a worker the core still
    /// counts as live is first treated as gone (its tasks go elsewhere, its results
    /// count as lost) and then joins afresh.
    WorkerJoined {
        /// The worker.
        worker: WorkerId,
        /// How many tasks it runs at once (0 counts as 1).
        nthreads: u32,
    },
    /// A worker opened its task stream and said what it holds and runs (its hello).
    /// The core reconciles its books with the report instead of treating the worker
    /// as new: results it holds are kept or learned (a new leader then recomputes
    /// nothing a live worker holds, recorded or not), results the core thought it held
    /// and it does not are lost, tasks it runs stay assigned to it, and tasks assigned
    /// to it that it does not run (a worker drops its queue when it opens a stream)
    /// are ready again. Also ends the wait for this worker after a rebuild.
    WorkerReported {
        /// The worker.
        worker: WorkerId,
        /// How many tasks it runs at once (0 counts as 1).
        nthreads: u32,
        /// The task results in its store: key, bytes, rows.
        held: Vec<(TaskKey, u64, u64)>,
        /// The tasks it runs now.
        running: Vec<TaskKey>,
    },
    /// The wait after a rebuild for the workers' reports is over (some did not
    /// report in time): assign what is ready.
    StopWaitingForReports,
    /// A worker's task stream closed, but the registry has not marked it gone: it
    /// may be reconnecting (after a leader change, or a partition that cut off only
    /// its stream), or dead and not yet noticed. Its queued and running tasks go
    /// elsewhere (without counting a failure), and it gets no task until it reports
    /// again ([`Event::WorkerReported`]); its results stay where they are, so a
    /// reconnecting worker loses nothing, and a dead one's are recomputed when the
    /// registry marks it gone ([`Event::WorkerGone`]).
    WorkerDisconnected {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker is gone (silent, or marked gone through Raft): its results are lost.
    WorkerGone {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker stored a task's result. Accepted from any live worker for a task
    /// not yet in memory (first one wins: after a steal both may run it); a later
    /// duplicate adds a holder, or is released if the result is not needed.
    TaskFinished {
        /// The worker holding the result.
        worker: WorkerId,
        /// The task.
        key: TaskKey,
        /// The result's size in worker memory.
        bytes: u64,
        /// The result's rows.
        rows: u64,
    },
    /// A task's operation raised on a worker.
    TaskErred {
        /// The worker.
        worker: WorkerId,
        /// The task.
        key: TaskKey,
        /// What the operation said.
        message: String,
    },
    /// A worker gave an assigned task back before running it: every holder it was
    /// told of for one input answered that it does not hold it (a restarted worker,
    /// a result deleted there). Those holders are dropped (the last one gone, the
    /// input is computed again; a chunk input with no copy left fails its readers)
    /// and the task is placed again: not a failure of the task (Dask's
    /// `missing-data`).
    InputMissing {
        /// The worker giving the task back.
        worker: WorkerId,
        /// The task.
        key: TaskKey,
        /// The input: a task key or a published chunk's key.
        input: String,
        /// The workers that said they do not hold it.
        holders: Vec<WorkerId>,
    },
    /// A worker dropped a queued task the core asked it to cancel.
    TaskCancelled {
        /// The worker.
        worker: WorkerId,
        /// The task.
        key: TaskKey,
    },
    /// A client no longer wants these keys (also how a client cancels).
    KeysReleased {
        /// The client.
        client: ClientId,
        /// The keys.
        keys: Vec<TaskKey>,
    },
    /// A published dataset refers to these task results: never release them while
    /// pinned (a pinned key not in memory is computed).
    Pinned {
        /// The keys.
        keys: Vec<TaskKey>,
    },
    /// No published dataset refers to these task results any more.
    Unpinned {
        /// The keys.
        keys: Vec<TaskKey>,
    },
    /// The runtime's timer: propose whatever updates are pending.
    Flush,
}
