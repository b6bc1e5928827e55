//! Why a worker could not start or stopped.

use std::path::PathBuf;

use crate::store::StoreError;

/// A worker failed to start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is invalid.
    #[error("invalid worker configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The data dir cannot be used.
    #[error("{data_dir}: {reason}")]
    BadDataDir {
        /// The data dir.
        data_dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The data dir belongs to another cluster.
    #[error("{data_dir} belongs to another cluster: {message}")]
    OtherCluster {
        /// The data dir.
        data_dir: PathBuf,
        /// What the scheduler said.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The chunk store failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Flight server failed.
    #[error("the Flight server failed: {source}")]
    Serve {
        /// What tonic said.
        source: tonic::transport::Error,
    },
    /// The link to the cluster (registration, heartbeats, task stream) stopped.
    #[error("{reason}")]
    Link {
        /// What happened.
        reason: String,
    },
}
