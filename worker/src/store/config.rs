//! The chunk store's configuration and the byte thresholds derived from it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// Default fraction of the memory limit that managed memory may fill before LRU chunks spill.
pub const DEFAULT_TARGET_FRACTION: f64 = 0.6;
/// Default fraction of the memory limit that the process RSS may reach before spilling starts
/// regardless of managed memory.
pub const DEFAULT_SPILL_FRACTION: f64 = 0.7;
/// Default fraction of the memory limit above which the store refuses new chunks.
pub const DEFAULT_PAUSE_FRACTION: f64 = 0.8;

/// How the chunk store is set up (`--memory-limit`, the chunk directory, the thresholds), as in
/// Dask's `distributed.worker.memory.{target,spill,pause}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The chunk directory: chunk files and temp files live directly in it. Created if missing.
    /// It belongs to the store: leftover temp files and malformed `.arrow` files are deleted.
    pub dir: PathBuf,
    /// The worker's memory budget in bytes; every threshold is a fraction of it.
    pub memory_limit: u64,
    /// Above `target_fraction × memory_limit` of managed memory (the store's own chunk buffers),
    /// least-recently-used chunks leave memory, so the store itself stays within its share.
    pub target_fraction: f64,
    /// Above `spill_fraction × memory_limit` of process RSS (reported to
    /// [`ChunkStore::check_pressure`](super::ChunkStore::check_pressure)), chunks spill too, so that
    /// memory the store does not manage is compensated for.
    pub spill_fraction: f64,
    /// Above `pause_fraction × memory_limit` (managed memory after spilling, or process RSS), new
    /// chunks are refused, so the worker is not killed for running out of memory.
    pub pause_fraction: f64,
}

impl StoreConfig {
    /// A configuration for `dir` with `memory_limit` bytes and the default fractions
    /// (0.6 target, 0.7 spill, 0.8 pause).
    pub fn new(dir: impl Into<PathBuf>, memory_limit: u64) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            memory_limit,
            target_fraction: DEFAULT_TARGET_FRACTION,
            spill_fraction: DEFAULT_SPILL_FRACTION,
            pause_fraction: DEFAULT_PAUSE_FRACTION,
        }
    }

    /// Checks the configuration: a directory, a memory limit above zero, and fractions with
    /// `0 < target <= spill <= pause <= 1`.
    pub fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason: String| Err(StoreError::InvalidConfig { reason });
        if self.dir.as_os_str().is_empty() {
            return invalid("the chunk directory (dir) is empty".to_string());
        }
        if self.memory_limit == 0 {
            return invalid("memory_limit must be more than 0 bytes".to_string());
        }
        let fractions = [
            ("target_fraction", self.target_fraction),
            ("spill_fraction", self.spill_fraction),
            ("pause_fraction", self.pause_fraction),
        ];
        for (name, value) in fractions {
            let in_range = value.is_finite() && value > 0.0 && value <= 1.0;
            if !in_range {
                return invalid(format!("{name} must be a number above 0 and at most 1, got {value}"));
            }
        }
        if self.target_fraction > self.spill_fraction {
            return invalid(format!(
                "target_fraction ({}) must not exceed spill_fraction ({})",
                self.target_fraction, self.spill_fraction
            ));
        }
        if self.spill_fraction > self.pause_fraction {
            return invalid(format!(
                "spill_fraction ({}) must not exceed pause_fraction ({})",
                self.spill_fraction, self.pause_fraction
            ));
        }
        Ok(())
    }

    /// The thresholds in bytes.
    pub(crate) fn thresholds(&self) -> Thresholds {
        let fraction_of_limit = |fraction: f64| (fraction * self.memory_limit as f64) as u64;
        Thresholds {
            memory_limit: self.memory_limit,
            target_bytes: fraction_of_limit(self.target_fraction),
            spill_bytes: fraction_of_limit(self.spill_fraction),
            pause_bytes: fraction_of_limit(self.pause_fraction),
        }
    }
}

/// The configuration's fractions turned into bytes once, so the accounting compares integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// The memory limit itself: no single chunk may be bigger.
    pub(crate) memory_limit: u64,
    /// Managed memory above this spills LRU chunks.
    pub(crate) target_bytes: u64,
    /// Process RSS above this spills too.
    pub(crate) spill_bytes: u64,
    /// Managed memory or RSS above this refuses new chunks.
    pub(crate) pause_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration that cannot work is refused before the store opens, with a message naming
    /// the offending setting, so a typo in `--memory-limit` or a fraction fails fast.
    #[test]
    fn validate_rejects_bad_fractions() {
        assert!(StoreConfig::new("/tmp/chunks", 1 << 20).validate().is_ok());

        let cases: Vec<(StoreConfig, &str)> = vec![
            (StoreConfig::new("", 1 << 20), "dir"),
            (StoreConfig::new("/tmp/chunks", 0), "memory_limit"),
            (
                StoreConfig {
                    target_fraction: 0.0,
                    ..StoreConfig::new("/tmp/chunks", 1 << 20)
                },
                "target_fraction",
            ),
            (
                StoreConfig {
                    target_fraction: -0.5,
                    ..StoreConfig::new("/tmp/chunks", 1 << 20)
                },
                "target_fraction",
            ),
            (
                StoreConfig {
                    spill_fraction: f64::NAN,
                    ..StoreConfig::new("/tmp/chunks", 1 << 20)
                },
                "spill_fraction",
            ),
            (
                StoreConfig {
                    pause_fraction: 1.5,
                    ..StoreConfig::new("/tmp/chunks", 1 << 20)
                },
                "pause_fraction",
            ),
            (
                StoreConfig {
                    target_fraction: 0.75,
                    ..StoreConfig::new("/tmp/chunks", 1 << 20)
                },
                "target_fraction (0.75) must not exceed spill_fraction (0.7)",
            ),
            (
                StoreConfig {
                    spill_fraction: 0.9,
                    target_fraction: 0.5,
                    ..StoreConfig::new("/tmp/chunks", 1 << 20)
                },
                "spill_fraction (0.9) must not exceed pause_fraction (0.8)",
            ),
        ];
        for (config, expected_words) in cases {
            match config.validate() {
                Err(StoreError::InvalidConfig { reason }) => {
                    assert!(
                        reason.contains(expected_words),
                        "{reason:?} should mention {expected_words:?}"
                    );
                }
                other => panic!("{config:?} should be refused, got {other:?}"),
            }
        }
    }

    /// Equal fractions are allowed (pausing right at the spill threshold is a legitimate choice),
    /// and the byte thresholds are the fractions of the limit.
    #[test]
    fn thresholds_are_fractions_of_the_limit() {
        let config = StoreConfig {
            target_fraction: 0.5,
            spill_fraction: 0.5,
            pause_fraction: 1.0,
            ..StoreConfig::new("/tmp/chunks", 1000)
        };
        assert!(config.validate().is_ok());
        let thresholds = config.thresholds();
        assert_eq!(thresholds.target_bytes, 500);
        assert_eq!(thresholds.spill_bytes, 500);
        assert_eq!(thresholds.pause_bytes, 1000);
        assert_eq!(thresholds.memory_limit, 1000);
    }
}
