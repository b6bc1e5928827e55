//! The typed id of a worker.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A worker's id: a random non-zero 64-bit number the worker draws on its first
/// start and keeps in its data dir; written as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

/// Text that is not a worker id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid worker id {text:?}: expected 16 hex digits, not all zero")]
pub struct InvalidWorkerId {
    /// The rejected text (cut to 32 characters).
    pub text: String,
}

impl WorkerId {
    /// Parses 16 hex digits.
    ///
    /// ```
    /// use cairn_scheduler::registry::WorkerId;
    /// assert_eq!(WorkerId::parse("00000000000000ff").unwrap(), WorkerId(255));
    /// assert!(WorkerId::parse("0000000000000000").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<WorkerId, InvalidWorkerId> {
        let invalid = || InvalidWorkerId {
            text: text.chars().take(32).collect(),
        };
        if text.len() != 16 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        match u64::from_str_radix(text, 16) {
            Ok(0) | Err(_) => Err(invalid()),
            Ok(id) => Ok(WorkerId(id)),
        }
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
