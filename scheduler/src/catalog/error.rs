//! What can go wrong with a catalog operation. These errors are part of the
//! replicated outcome of a command, so they are serializable and deterministic.

use serde::{Deserialize, Serialize};

/// A catalog operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CatalogError {
    /// A publish without `override` named datasets that exist.
    #[error("{}", already_exists_message(names))]
    AlreadyExists {
        /// Every name that exists.
        names: Vec<String>,
    },
    /// The named dataset does not exist.
    #[error("dataset '{name}' not found")]
    NotFound {
        /// The missing name.
        name: String,
    },
    /// A name breaks the naming rules.
    #[error("invalid dataset name {name:?}: {reason}")]
    InvalidName {
        /// The name (cut to 64 characters).
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The same name appears twice in one publish.
    #[error("dataset '{name}' is given more than once in one publish")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A publish named no dataset.
    #[error("a publish needs at least one dataset")]
    NothingToPublish,
    /// An inline value is over the size limit.
    #[error("the value of dataset '{name}' is {bytes} bytes; inline values are at most {limit} bytes")]
    ValueTooLarge {
        /// The dataset.
        name: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A whole publish is over the size limit.
    #[error("the publish is {bytes} bytes in all; one publish is at most {limit} bytes")]
    PublishTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Attributes or content type break a limit.
    #[error("dataset '{name}': {reason}")]
    InvalidMetadata {
        /// The dataset.
        name: String,
        /// Which limit.
        reason: String,
    },
    /// A persisted collection is malformed (replicas, chunk keys, locations).
    #[error("dataset '{name}': {reason}")]
    InvalidCollection {
        /// The dataset.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A persisted collection names a worker the registry does not know.
    #[error("dataset '{name}': chunk {chunk} is placed on worker {worker}, which is not registered")]
    UnknownWorker {
        /// The dataset.
        name: String,
        /// The chunk.
        chunk: String,
        /// The worker.
        worker: String,
    },
    /// More replicas were asked for than there are live workers.
    #[error("dataset '{name}' asks for {replicas} replicas, but only {live} worker(s) are alive")]
    NotEnoughWorkers {
        /// The dataset.
        name: String,
        /// Replicas asked for.
        replicas: u32,
        /// Live workers.
        live: usize,
    },
    /// The client's session is unknown or has expired, so a retried request can no
    /// longer be matched to its first outcome.
    #[error("the client session has expired or is unknown; reconnect and check whether the last write took effect")]
    SessionExpired,
    /// The command bytes could not be decoded (a client or server of another version).
    #[error("malformed command: {reason}")]
    MalformedCommand {
        /// What was wrong.
        reason: String,
    },
}

fn already_exists_message(names: &[String]) -> String {
    match names {
        [one] => format!("dataset '{one}' already exists"),
        many => {
            let quoted: Vec<String> = many.iter().map(|name| format!("'{name}'")).collect();
            format!("datasets {} already exist", quoted.join(", "))
        }
    }
}
