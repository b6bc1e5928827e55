//! Small filesystem helpers: directory fsync, removals, the probe write that ends a disk-failure
//! pause, telling a full disk from other failures, and the test-only fault injection.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::file_name::temp_file_name;

/// How many bytes the probe write puts on disk: a megabyte, so that a disk with a few
/// blocks left after a failed chunk write keeps the store paused rather than
/// resuming it for the next chunk to fail again.
const PROBE_BYTES: usize = 1024 * 1024;

/// Makes the directory's entries durable (a rename or an unlink in it survives a crash).
pub(crate) fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file; a file that is already gone is fine. Returns whether it removed one.
pub(crate) fn remove_file_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Whether a write failed because the disk or the quota is full.
pub(crate) fn is_disk_full(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Writes, syncs and removes a small temp file in `dir`: proof that writes work again.
/// On failure, returns the path that failed and the OS error (the temp file is removed).
pub(crate) fn probe_write(dir: &Path, faults: &WriteFaults) -> Result<(), (PathBuf, io::Error)> {
    let probe_path = dir.join(temp_file_name("probe"));
    let written = write_probe_file(&probe_path, faults);
    let removed = remove_file_if_present(&probe_path);
    written.map_err(|error| (probe_path.clone(), error))?;
    removed.map_err(|error| (probe_path.clone(), error))?;
    sync_directory(dir).map_err(|error| (dir.to_path_buf(), error))
}

/// The probe write itself.
fn write_probe_file(probe_path: &Path, faults: &WriteFaults) -> io::Result<()> {
    let mut file = File::create_new(probe_path)?;
    file.write_all(&[0x5a; PROBE_BYTES])?;
    faults.check()?;
    file.sync_all()
}

/// Failure injection for tests: makes every chunk-file write and probe write fail the way a full
/// disk does, after part of the file is written. Outside tests it is empty and never fails.
#[derive(Debug, Default)]
pub(crate) struct WriteFaults {
    /// The error kind every write fails with, while set.
    #[cfg(test)]
    failing_with: std::sync::Mutex<Option<io::ErrorKind>>,
}

impl WriteFaults {
    /// Fails if a test asked writes to fail.
    #[cfg(not(test))]
    pub(crate) fn check(&self) -> io::Result<()> {
        Ok(())
    }

    /// Fails if a test asked writes to fail.
    #[cfg(test)]
    pub(crate) fn check(&self) -> io::Result<()> {
        let failing_with = *self
            .failing_with
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failing_with {
            Some(kind) => Err(io::Error::new(kind, "injected write failure")),
            None => Ok(()),
        }
    }

    /// Makes writes fail with `kind` (or work again, with `None`).
    #[cfg(test)]
    pub(crate) fn fail_writes_with(&self, kind: Option<io::ErrorKind>) {
        *self
            .failing_with
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = kind;
    }
}
