//! Which worker a data dir belongs to, and to which cluster.
//!
//! `worker.json` in the data dir holds the worker's id (drawn on its first start) and
//! the cluster id (learned at its first registration). A restart with the same data
//! dir is the same worker; a data dir of another cluster is refused by the schedulers.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::WorkerError;

/// The identity file inside a worker's data dir.
pub const IDENTITY_FILE: &str = "worker.json";

/// What a worker's data dir says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerIdentity {
    /// 16 hex digits, never all zero (the schedulers' `WorkerId`).
    pub worker_id: String,
    /// The cluster this data dir belongs to; empty until the first registration.
    pub cluster_id: String,
}

fn io_error(path: &Path, source: std::io::Error) -> WorkerError {
    WorkerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl WorkerIdentity {
    /// Reads the identity of `data_dir`, or makes a new one (and the dir) on a first start.
    pub fn load_or_create(data_dir: &Path) -> Result<WorkerIdentity, WorkerError> {
        let path = data_dir.join(IDENTITY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let identity: WorkerIdentity =
                    serde_json::from_str(&text).map_err(|error| WorkerError::BadDataDir {
                        data_dir: data_dir.to_path_buf(),
                        reason: format!("{IDENTITY_FILE} is damaged: {error}"),
                    })?;
                let valid = identity.worker_id.len() == 16
                    && identity.worker_id.bytes().all(|byte| byte.is_ascii_hexdigit())
                    && identity.worker_id.bytes().any(|byte| byte != b'0');
                if !valid {
                    return Err(WorkerError::BadDataDir {
                        data_dir: data_dir.to_path_buf(),
                        reason: format!("{IDENTITY_FILE} holds an invalid worker id {:?}", identity.worker_id),
                    });
                }
                Ok(identity)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(|error| io_error(data_dir, error))?;
                let foreign = std::fs::read_dir(data_dir)
                    .map_err(|error| io_error(data_dir, error))?
                    .filter_map(Result::ok)
                    .any(|entry| entry.file_name() != "chunks");
                if foreign {
                    return Err(WorkerError::BadDataDir {
                        data_dir: data_dir.to_path_buf(),
                        reason: format!(
                            "it is not empty and has no {IDENTITY_FILE}: not a Cairn worker data dir; refusing to use it"
                        ),
                    });
                }
                let identity = WorkerIdentity {
                    worker_id: format!("{:016x}", rand::random::<u64>().max(1)),
                    cluster_id: String::new(),
                };
                identity.save(data_dir)?;
                Ok(identity)
            }
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// Writes the identity durably (temp file, fsync, rename, directory fsync).
    pub fn save(&self, data_dir: &Path) -> Result<(), WorkerError> {
        let path: PathBuf = data_dir.join(IDENTITY_FILE);
        let temporary = data_dir.join(format!(".{IDENTITY_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|error| WorkerError::BadDataDir {
            data_dir: data_dir.to_path_buf(),
            reason: error.to_string(),
        })?;
        let mut file = File::create(&temporary).map_err(|error| io_error(&temporary, error))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|error| io_error(&temporary, error))?;
        std::fs::rename(&temporary, &path).map_err(|error| io_error(&path, error))?;
        File::open(data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| io_error(data_dir, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data dir keeps its worker id across restarts; a foreign non-empty dir is refused.
    #[test]
    fn identity_is_kept_and_foreign_dirs_are_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = WorkerIdentity::load_or_create(dir.path())?;
        let again = WorkerIdentity::load_or_create(dir.path())?;
        assert_eq!(first, again);
        let foreign = tempfile::tempdir()?;
        std::fs::write(foreign.path().join("notes.txt"), "mine")?;
        let error = WorkerIdentity::load_or_create(foreign.path()).expect_err("refused");
        assert!(error.to_string().contains("not a Cairn worker data dir"), "{error}");
        Ok(())
    }
}
