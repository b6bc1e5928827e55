//! Size limits of catalog entries. Checked by the server before proposing and again,
//! deterministically, when a command is applied.

use std::collections::BTreeMap;

use super::CatalogError;

/// The largest inline value (SPEC §2: "bounded, e.g. 1 MiB").
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// The largest publish, all values and attributes together.
pub const MAX_PUBLISH_BYTES: usize = 8 * 1024 * 1024;
/// The most attributes one dataset may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// The longest attribute key.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;
/// The longest attribute value.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 4096;
/// The most chunks one persisted dataset may have.
pub const MAX_CHUNKS_PER_DATASET: usize = 100_000;
/// The longest chunk key (the workers' rule).
pub const MAX_CHUNK_KEY_BYTES: usize = 128;
/// The most replicas of a chunk.
pub const MAX_REPLICAS: u32 = 16;
/// The largest Arrow IPC schema message.
pub const MAX_SCHEMA_BYTES: usize = 1024 * 1024;
/// The longest content type.
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;

/// Checks a dataset's attributes against the limits.
pub fn validate_attributes(name: &str, attributes: &BTreeMap<String, String>) -> Result<(), CatalogError> {
    let invalid = |reason: String| CatalogError::InvalidMetadata {
        name: name.to_string(),
        reason,
    };
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "{} attributes given; at most {MAX_ATTRIBUTES} are allowed",
            attributes.len()
        )));
    }
    for (key, value) in attributes {
        if key.is_empty() || key.len() > MAX_ATTRIBUTE_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(invalid(format!(
                "attribute key {key:?} must be 1 to {MAX_ATTRIBUTE_KEY_BYTES} bytes without control characters"
            )));
        }
        if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(invalid(format!(
                "attribute {key:?} is {} bytes; at most {MAX_ATTRIBUTE_VALUE_BYTES} are allowed",
                value.len()
            )));
        }
    }
    Ok(())
}
