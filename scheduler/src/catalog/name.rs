//! Dataset names.

use serde::{Deserialize, Serialize};

use super::CatalogError;

/// The longest dataset name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// A valid dataset name: non-empty UTF-8, at most [`MAX_NAME_BYTES`] bytes, with no
/// control characters. The only way to build one is [`DatasetName::parse`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DatasetName(String);

impl DatasetName {
    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<DatasetName, CatalogError> {
        let invalid = |reason: &str| CatalogError::InvalidName {
            name: name.chars().take(64).collect(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(invalid("a dataset name cannot be empty"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(invalid(&format!(
                "a dataset name is at most {MAX_NAME_BYTES} bytes, this one has {}",
                name.len()
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("a dataset name cannot contain control characters"));
        }
        Ok(DatasetName(name.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of SPEC §3: non-empty, ≤ 256 bytes, no control characters; any other
    /// UTF-8 is fine, including spaces, slashes and non-ASCII.
    #[test]
    fn names_follow_the_spec() {
        for good in [
            "a",
            "negative_accounts",
            "wind/2017-06 run",
            "température",
            &"x".repeat(256),
        ] {
            assert!(DatasetName::parse(good).is_ok(), "{good:?} should be valid");
        }
        for bad in [
            "",
            "tab\there",
            "nl\n",
            "nul\0",
            &"x".repeat(257),
            "é".repeat(129).as_str(),
        ] {
            let error = DatasetName::parse(bad).expect_err("should be invalid");
            assert!(matches!(error, CatalogError::InvalidName { .. }), "{bad:?}: {error}");
        }
    }
}
