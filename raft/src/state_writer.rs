//! The thread that writes the state machine's batches, in apply order.
//!
//! `apply` updates the application in memory, hands its rows to this thread and
//! returns: the clients waiting on those entries are answered without waiting for
//! RocksDB (the entries are already durable in the Raft log; the state rows are not
//! synced anyway, see `state_machine`), and the next entries are applied while the
//! previous batch is sorted and written. Batches are written one at a time, in the
//! order they were queued, so the durable state always matches one applied index.
//!
//! After a failed write nothing more is written (a later batch over a missing one
//! would describe a state that never existed): the failure is reported to the next
//! caller, and openraft stops the node; at restart it applies the log again from the
//! last written index.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use cairn_storage::{Column, Db, Durability, StorageError};
use tokio::sync::{mpsc, oneshot};

use crate::state_machine::StateWrites;

/// Batches queued beyond the one being written before `apply` waits.
const QUEUED_BATCHES: usize = 64;

/// One batch: the application's rows plus the `sm/*` meta rows, encoded.
pub(crate) struct StateBatch {
    pub(crate) writes: StateWrites,
    pub(crate) meta: Vec<(&'static [u8], Vec<u8>)>,
}

enum Job {
    Write(StateBatch),
    /// Answered once every batch queued before it is written (or failed).
    Barrier(oneshot::Sender<()>),
}

/// The sending side, owned by the state machine; dropping it drains and joins the
/// thread, so the database is no longer used once the state machine is gone.
pub(crate) struct StateWriter {
    jobs: Option<mpsc::Sender<Job>>,
    failure: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

/// Why the state writer cannot take work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateWriteError {
    /// An earlier batch failed; nothing after it was written.
    #[error("writing the applied state failed: {0}")]
    Failed(String),
    /// The thread is gone.
    #[error("the state writer thread has stopped")]
    Stopped,
}

impl StateWriter {
    /// Starts the writer thread over `db`.
    pub(crate) fn start(db: Db) -> std::io::Result<StateWriter> {
        let (jobs, queue) = mpsc::channel(QUEUED_BATCHES);
        let failure = Arc::new(Mutex::new(None));
        let thread_failure = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("state-writer".to_string())
            .spawn(move || run(&db, queue, &thread_failure))?;
        Ok(StateWriter {
            jobs: Some(jobs),
            failure,
            thread: Some(thread),
        })
    }

    /// The failure of an earlier batch, if any.
    pub(crate) fn check(&self) -> Result<(), StateWriteError> {
        failed(&self.failure)
    }

    /// Queues a batch (waits only while [`QUEUED_BATCHES`] are queued).
    pub(crate) async fn write(&self, batch: StateBatch) -> Result<(), StateWriteError> {
        self.check()?;
        let jobs = self.jobs.as_ref().ok_or(StateWriteError::Stopped)?;
        jobs.send(Job::Write(batch)).await.map_err(|_| StateWriteError::Stopped)
    }

    /// A future that resolves once every batch queued so far is written; it fails
    /// if one of them failed.
    pub(crate) async fn barrier(&self) -> Result<Barrier, StateWriteError> {
        let (done, wait) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(StateWriteError::Stopped)?;
        jobs.send(Job::Barrier(done))
            .await
            .map_err(|_| StateWriteError::Stopped)?;
        Ok(Barrier {
            wait,
            failure: Arc::clone(&self.failure),
        })
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        // Closing the queue lets the thread write what is left and end.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// See [`StateWriter::barrier`].
pub(crate) struct Barrier {
    wait: oneshot::Receiver<()>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Barrier {
    /// Waits for the batches queued before the barrier.
    pub(crate) async fn wait(self) -> Result<(), StateWriteError> {
        self.wait.await.map_err(|_| StateWriteError::Stopped)?;
        failed(&self.failure)
    }
}

/// `Failed` if a batch failed.
fn failed(failure: &Mutex<Option<String>>) -> Result<(), StateWriteError> {
    match &*failure.lock().unwrap_or_else(PoisonError::into_inner) {
        Some(reason) => Err(StateWriteError::Failed(reason.clone())),
        None => Ok(()),
    }
}

fn run(db: &Db, mut queue: mpsc::Receiver<Job>, failure: &Mutex<Option<String>>) {
    while let Some(job) = queue.blocking_recv() {
        match job {
            Job::Barrier(done) => {
                let _ = done.send(());
            }
            Job::Write(batch) => {
                if failure.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
                    continue;
                }
                if let Err(error) = write(db, batch) {
                    tracing::error!(%error, "cannot write the applied state; nothing more will be written");
                    *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                }
            }
        }
    }
}

fn write(db: &Db, batch: StateBatch) -> Result<(), StorageError> {
    let rows = batch.writes.into_rows();
    // Each record: a tag, the column, two length varints, the key and value.
    let bytes = rows
        .iter()
        .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len) + 16)
        .chain(batch.meta.iter().map(|(key, value)| key.len() + value.len() + 16))
        .sum::<usize>();
    let mut writes = db.batch_with_capacity(bytes);
    for (key, value) in &rows {
        match value {
            Some(value) => writes.put(Column::State, key, value),
            None => writes.delete(Column::State, key),
        }
    }
    for (key, value) in &batch.meta {
        writes.put(Column::Meta, key, value);
    }
    // Not synced: the applied entries are durable in the log (`state_machine` docs).
    db.write(writes, Durability::Buffered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: &[(&[u8], Option<&[u8]>)], applied: u64) -> StateBatch {
        let mut writes = StateWrites::default();
        for (key, value) in rows {
            match value {
                Some(value) => writes.put(key.to_vec(), value.to_vec()),
                None => writes.delete(key.to_vec()),
            }
        }
        StateBatch {
            writes,
            meta: vec![(b"sm/applied".as_slice(), applied.to_be_bytes().to_vec())],
        }
    }

    /// Batches land in the order they were queued (a later batch's write of a key
    /// wins, a delete removes an earlier put); a barrier resolves only once they
    /// are all written; dropping the writer writes what is still queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_written_in_order_and_barriers_wait_for_them() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = Db::open(&dir.path().join("db"))?;
        let writer = StateWriter::start(db.clone())?;
        for round in 0..200u64 {
            let value = round.to_be_bytes();
            let gone: Option<&[u8]> = if round % 2 == 0 { Some(b"x") } else { None };
            writer
                .write(batch(&[(b"last", Some(&value)), (b"toggled", gone)], round))
                .await?;
        }
        writer.barrier().await?.wait().await?;
        assert_eq!(db.get(Column::State, b"last")?, Some(199u64.to_be_bytes().to_vec()));
        assert_eq!(db.get(Column::State, b"toggled")?, None);
        assert_eq!(
            db.get(Column::Meta, b"sm/applied")?,
            Some(199u64.to_be_bytes().to_vec())
        );

        writer.write(batch(&[(b"after", Some(b"y"))], 200)).await?;
        drop(writer);
        assert_eq!(db.get(Column::State, b"after")?, Some(b"y".to_vec()));
        assert_eq!(
            db.get(Column::Meta, b"sm/applied")?,
            Some(200u64.to_be_bytes().to_vec())
        );
        Ok(())
    }
}
