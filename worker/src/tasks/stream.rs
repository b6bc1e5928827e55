//! The task stream to the leader: the hello (this worker's operations), the leader's
//! messages into the executor, and the executor's reports out in batches (one
//! message carries every report ready at the time, so a burst of small tasks costs
//! one message, not one each).

use cairn_client::wire as pb;
use cairn_client::{signature_to_wire, Client};
use tokio::sync::mpsc;

use super::executor::{Executor, Report};

/// Runs the task stream until it breaks (the leader changed or went away).
pub async fn run_task_stream(
    client: &Client,
    executor: &Executor,
    worker_id: &str,
    nthreads: u32,
) -> Result<(), String> {
    // Reports go to the new stream from now on (queued until it opens), so a task
    // that finishes after the report below is heard of; then the report: what was
    // started (it finishes here), what the store holds (taken after, so a task
    // finishing in between is in one list or both). Queued assignments are dropped.
    let (reports, mut pending) = mpsc::unbounded_channel();
    executor.set_link(Some(client.clone()), Some(reports));
    let running = executor.reopen();
    let held = executor.held();
    let hello = pb::WorkerHello {
        worker_id: worker_id.to_string(),
        nthreads,
        operations: executor.registry().signatures().iter().map(signature_to_wire).collect(),
        held,
        running,
    };
    let opened = client.open_task_stream(hello).await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(error) => {
            executor.set_link(None, None);
            return Err(error.to_string());
        }
    };
    let outbound = stream.outbound.clone();
    let writer = tokio::spawn(async move {
        while let Some(first) = pending.recv().await {
            let mut events = pb::TaskEvents::default();
            let mut next = Some(first);
            while let Some(report) = next {
                match report {
                    Report::Finished { key, bytes, rows } => {
                        events.finished.push(pb::TaskFinished { key, bytes, rows })
                    }
                    Report::Erred { key, message } => events.erred.push(pb::TaskErred { key, message }),
                    Report::Cancelled(key) => events.cancelled.push(key),
                    Report::InputMissing { key, input, holders } => {
                        events.missing.push(pb::InputMissing { key, input, holders })
                    }
                }
                next = pending.try_recv().ok();
            }
            let message = pb::WorkerTaskMessage {
                kind: Some(pb::worker_task_message::Kind::Events(events)),
            };
            if outbound.send(message).is_err() {
                break;
            }
        }
    });
    tracing::info!("task stream open to the leader");
    let result = loop {
        match stream.messages.message().await {
            Ok(Some(message)) => executor.receive(message),
            Ok(None) => break Err("the leader closed the task stream".to_string()),
            Err(status) => break Err(status.message().to_string()),
        }
    };
    executor.set_link(None, None);
    writer.abort();
    result
}
