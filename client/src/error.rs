//! The client's errors.

use std::time::Duration;

use tonic::{Code, Status};

/// Why a client call failed.
///
/// `AlreadyExists`, `NotFound`, `InvalidName`, `TooLarge` and `InvalidArgument` mean
/// the cluster refused the call and changed nothing. `Timeout` means the call did
/// not complete in time: for a write, it **may or may not** have taken effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A publish named a dataset that exists (and `override` was not set).
    #[error("{message}")]
    AlreadyExists {
        /// The server's message, naming the dataset(s).
        message: String,
    },
    /// The named dataset does not exist.
    #[error("{message}")]
    NotFound {
        /// The server's message, naming the dataset.
        message: String,
    },
    /// A dataset name breaks the naming rules.
    #[error("{message}")]
    InvalidName {
        /// Which rule.
        message: String,
    },
    /// A value or a publish is over the size limit.
    #[error("{message}")]
    TooLarge {
        /// Which limit.
        message: String,
    },
    /// The request is otherwise invalid.
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// The client's session expired; the write was not applied. A new `Client`
    /// starts a new session.
    #[error("{message}")]
    SessionExpired {
        /// The server's message.
        message: String,
    },
    /// A membership change was refused.
    #[error("{message}")]
    Membership {
        /// Why.
        message: String,
    },
    /// More replicas were asked for than there are live workers.
    #[error("{message}")]
    NotEnoughWorkers {
        /// Replicas asked for, and workers alive.
        message: String,
    },
    /// No worker could store or serve data in time (the metadata call itself
    /// succeeded or was not made).
    #[error("{message}")]
    Unavailable {
        /// Which workers failed, and how.
        message: String,
    },
    /// A worker's data dir belongs to another cluster.
    #[error("{message}")]
    OtherCluster {
        /// The scheduler's message.
        message: String,
    },
    /// No replica completed the call in time (no quorum, no leader, or unreachable).
    /// For a write the outcome is unknown.
    #[error("{operation} did not complete within {after:?}; last error: {last_error}")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
        /// The deadline.
        after: Duration,
        /// The last thing a replica said, or why none answered.
        last_error: String,
    },
    /// A cluster address is malformed, or none was given.
    #[error("invalid cluster address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// A submitted graph was refused (a cycle, a missing dependency, an unknown
    /// operation, a wrong argument, a duplicate key); nothing of it runs. The message
    /// names the task.
    #[error("{message}")]
    InvalidGraph {
        /// What is wrong, naming the task.
        message: String,
    },
    /// A task failed: `task` raised (it is `key` itself or one of its dependencies)
    /// with `message`, as the operation said it.
    #[error("task '{key}' failed: {}", failure_text(key, task, message))]
    TaskFailed {
        /// The key asked for.
        key: String,
        /// The task that raised.
        task: String,
        /// Its message.
        message: String,
    },
    /// A replica answered something this client does not understand.
    #[error("unexpected reply: {message}")]
    Protocol {
        /// What was unexpected.
        message: String,
    },
}

fn failure_text(key: &str, task: &str, message: &str) -> String {
    if key == task {
        message.to_string()
    } else {
        format!("its dependency '{task}' failed: {message}")
    }
}

/// How the client should react to a failed attempt.
pub(crate) enum Attempt {
    /// Final: return this error.
    Fail(Error),
    /// Try the leader at this address next.
    Redirect(String),
    /// Try another replica after a pause.
    Retry(String),
}

const ERROR_KIND_KEY: &str = "cairn-error";
const LEADER_ADDR_KEY: &str = "cairn-leader-addr";

/// Classifies a gRPC status from a replica.
pub(crate) fn classify(status: &Status) -> Attempt {
    let kind = status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let message = status.message().to_string();
    match kind {
        "already-exists" => Attempt::Fail(Error::AlreadyExists { message }),
        "not-found" => Attempt::Fail(Error::NotFound { message }),
        "invalid-name" => Attempt::Fail(Error::InvalidName { message }),
        "too-large" => Attempt::Fail(Error::TooLarge { message }),
        "invalid-argument" => Attempt::Fail(Error::InvalidArgument { message }),
        "session-expired" => Attempt::Fail(Error::SessionExpired { message }),
        "membership" => Attempt::Fail(Error::Membership { message }),
        "not-enough-workers" => Attempt::Fail(Error::NotEnoughWorkers { message }),
        "other-cluster" => Attempt::Fail(Error::OtherCluster { message }),
        "invalid-graph" => Attempt::Fail(Error::InvalidGraph { message }),
        "not-leader" => match status
            .metadata()
            .get(LEADER_ADDR_KEY)
            .and_then(|value| value.to_str().ok())
        {
            Some(addr) => Attempt::Redirect(addr.to_string()),
            None => Attempt::Retry(message),
        },
        "timeout" | "unavailable" => Attempt::Retry(message),
        _ => match status.code() {
            // Transport-level failures: connection refused, reset, deadline.
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {
                Attempt::Retry(format!("{:?}: {message}", status.code()))
            }
            Code::ResourceExhausted => Attempt::Fail(Error::TooLarge { message }),
            _ => Attempt::Fail(Error::Protocol {
                message: format!("{:?}: {message}", status.code()),
            }),
        },
    }
}
