//! bincode (2.x, serde mode) encoding of everything this crate stores or sends.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Encoding failed (a type the format cannot represent).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What bincode said.
        source: bincode::error::EncodeError,
    },
    /// The bytes are not a valid encoding (corruption, or another version's format).
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// What bincode said.
        source: bincode::error::DecodeError,
    },
}

/// Encodes `value` with bincode's standard configuration.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|source| CodecError::Encode { what, source })
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _read)| value)
        .map_err(|source| CodecError::Decode { what, source })
}
