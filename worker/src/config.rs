//! The worker's configuration, and byte sizes such as `2GiB`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::WorkerError;

/// Everything one worker needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Scheduler addresses (any replica; the worker follows the leader).
    pub cluster: Vec<String>,
    /// Where chunks and the identity file live.
    pub data_dir: PathBuf,
    /// The address other processes reach this worker at (registered with the
    /// schedulers); the listener's own address when not given.
    pub advertise_addr: Option<String>,
    /// Bytes of memory the worker may use for chunks (`--memory-limit`).
    pub memory_limit: u64,
    /// Tasks run at once (`--nthreads`).
    pub nthreads: u32,
    /// Spill least-recently-used chunks above this fraction of the limit.
    pub target_fraction: f64,
    /// Spill when the process RSS is above this fraction of the limit.
    pub spill_fraction: f64,
    /// Accept no new chunks above this fraction of the limit.
    pub pause_fraction: f64,
    /// How often the worker heartbeats to the leader.
    pub heartbeat_interval: Duration,
    /// A chunk no published dataset has ever referred to (an upload whose publish
    /// never came) is deleted only after this long.
    pub orphan_grace: Duration,
    /// Gives the memory the allocator keeps for reuse back to the OS. Called before the
    /// worker acts on its RSS (spill, pause) when the RSS is above the target, so that
    /// freed memory is not taken for data (the `cairn` binary keeps it up to a minute).
    pub release_free_memory: Option<fn()>,
}

impl WorkerConfig {
    /// A configuration with Dask's default thresholds (0.6 / 0.7 / 0.8).
    pub fn new(cluster: Vec<String>, data_dir: PathBuf, memory_limit: u64, nthreads: u32) -> WorkerConfig {
        WorkerConfig {
            cluster,
            data_dir,
            advertise_addr: None,
            memory_limit,
            nthreads,
            target_fraction: 0.6,
            spill_fraction: 0.7,
            pause_fraction: 0.8,
            heartbeat_interval: Duration::from_secs(1),
            orphan_grace: Duration::from_secs(300),
            release_free_memory: None,
        }
    }

    /// Checks the values, with messages naming the flag.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let invalid = |reason: String| Err(WorkerError::Config { reason });
        if self.cluster.is_empty() {
            return invalid("--cluster names no scheduler".to_string());
        }
        if self.memory_limit < 16 * 1024 * 1024 {
            return invalid(format!(
                "--memory-limit {} is below the 16 MiB minimum",
                format_bytes(self.memory_limit)
            ));
        }
        if self.nthreads == 0 {
            return invalid("--nthreads must be at least 1".to_string());
        }
        if self.heartbeat_interval.is_zero() {
            return invalid("the heartbeat interval must be positive".to_string());
        }
        Ok(())
    }
}

/// Parses a byte size: a number with an optional unit (`B`, `kB`/`KB`, `MB`, `GB`,
/// `TB` in powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` in powers of 1024), e.g.
/// `2GiB`, `512MB`, `1.5GiB`, `1000000`.
///
/// ```
/// use cairn_worker::config::parse_bytes;
/// assert_eq!(parse_bytes("2GiB"), Ok(2 * 1024 * 1024 * 1024));
/// assert_eq!(parse_bytes("512 MB"), Ok(512_000_000));
/// assert!(parse_bytes("lots").is_err());
/// ```
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 2GiB, 512MB, 1000000)"))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, kB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as u64)
}

/// A byte count for people: `1.5 GiB`, `300 MiB`, `12 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
