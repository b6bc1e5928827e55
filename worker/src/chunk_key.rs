//! The typed key of a chunk.

use std::fmt;
use std::sync::Arc;

/// The longest chunk key, in bytes.
pub const MAX_CHUNK_KEY_BYTES: usize = 128;

/// Names one chunk (an Arrow `RecordBatch`) across the cluster: on every worker that
/// holds it, in the catalog, and as a Flight ticket.
///
/// Keys are made of ASCII letters, digits, `-`, `_` and `.` (not starting with `.`),
/// at most [`MAX_CHUNK_KEY_BYTES`] bytes, so a key is always a safe file name.
/// Shared, not copied, by its clones: the store, its LRU order and the task queue
/// each keep one per chunk, and a trivial task's result is stored, touched and
/// released thousands of times a second.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkKey(Arc<str>);

/// A string that is not a valid chunk key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunk key {key:?}: {reason}")]
pub struct InvalidChunkKey {
    /// The rejected text (cut to 64 characters).
    pub key: String,
    /// Which rule it breaks.
    pub reason: &'static str,
}

impl ChunkKey {
    /// Checks `text` against the key rules.
    ///
    /// ```
    /// assert!(cairn_worker::ChunkKey::parse("upload-1f2e.0003").is_ok());
    /// assert!(cairn_worker::ChunkKey::parse("../etc/passwd").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<ChunkKey, InvalidChunkKey> {
        let invalid = |reason| InvalidChunkKey {
            key: text.chars().take(64).collect(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if text.len() > MAX_CHUNK_KEY_BYTES {
            return Err(invalid("longer than 128 bytes"));
        }
        if text.starts_with('.') {
            return Err(invalid("starts with '.'"));
        }
        if !text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        {
            return Err(invalid("only ASCII letters, digits, '-', '_' and '.' are allowed"));
        }
        Ok(ChunkKey(Arc::from(text)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that could escape the chunk directory or collide with temp files are refused.
    #[test]
    fn keys_are_safe_file_names() {
        for bad in ["", ".hidden", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(ChunkKey::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(
            ChunkKey::parse("u-1.2_3").map(|key| key.to_string()),
            Ok("u-1.2_3".to_string())
        );
    }
}
