//! Catalog entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{validate_attributes, MAX_CONTENT_TYPE_BYTES, MAX_VALUE_BYTES};
use super::{CatalogError, DatasetName};

/// A small value stored inline in the catalog (`client.datasets['k'] = 'v'`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineValue {
    /// The bytes, at most [`MAX_VALUE_BYTES`].
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// A MIME type telling readers how to decode `data` (e.g. `text/plain`).
    pub content_type: String,
}

/// One chunk of a persisted collection, as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk's key on the workers.
    pub key: String,
    /// Rows in the chunk.
    pub rows: u64,
    /// Encoded size of the chunk.
    pub bytes: u64,
}

/// A collection whose chunks are computed and pinned on workers.
///
/// Designed now so that stored catalogs keep their format; workers and `persist`
/// create these in a later issue, and no operation produces one yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedCollection {
    /// The chunks in collection order.
    pub chunks: Vec<ChunkRef>,
    /// The Arrow schema, as an Arrow IPC schema message.
    #[serde(with = "serde_bytes")]
    pub schema_ipc: Vec<u8>,
    /// How many workers hold each chunk.
    pub replicas: u32,
}

/// An un-persisted collection: the graph that computes it, recomputed on every get.
///
/// Designed now; created by the graph API in a later issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewCollection {
    /// The encoded task graph.
    #[serde(with = "serde_bytes")]
    pub graph: Vec<u8>,
}

/// What a dataset holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A small inline value.
    Value(InlineValue),
    /// Chunks held on workers.
    Persisted(PersistedCollection),
    /// A graph computed afresh on every get.
    View(ViewCollection),
}

impl EntryKind {
    /// The kind's name as shown to users.
    pub fn label(&self) -> &'static str {
        match self {
            EntryKind::Value(_) => "value",
            EntryKind::Persisted(_) => "persisted",
            EntryKind::View(_) => "view",
        }
    }
}

/// One published dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetEntry {
    /// The dataset's name.
    pub name: DatasetName,
    /// What it holds.
    pub kind: EntryKind,
    /// User attributes (free-form string map).
    pub attributes: BTreeMap<String, String>,
    /// Who published it (as the client said).
    pub publisher: String,
    /// The log index of the publish that wrote this entry.
    pub published_at_index: u64,
    /// Position in publish order: the first publish of the name sets it, an
    /// override keeps it (as a Python dict keeps a key's place, so Dask does).
    pub order: u64,
}

/// One name to publish, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishItem {
    /// The name.
    pub name: DatasetName,
    /// The value.
    pub value: InlineValue,
    /// User attributes.
    pub attributes: BTreeMap<String, String>,
}

impl PublishItem {
    /// Checks the value and metadata limits.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let name = self.name.as_str();
        if self.value.data.len() > MAX_VALUE_BYTES {
            return Err(CatalogError::ValueTooLarge {
                name: name.to_string(),
                bytes: self.value.data.len(),
                limit: MAX_VALUE_BYTES,
            });
        }
        if self.value.content_type.len() > MAX_CONTENT_TYPE_BYTES
            || self.value.content_type.chars().any(char::is_control)
        {
            return Err(CatalogError::InvalidMetadata {
                name: name.to_string(),
                reason: format!(
                    "the content type must be at most {MAX_CONTENT_TYPE_BYTES} bytes without control characters"
                ),
            });
        }
        validate_attributes(name, &self.attributes)
    }

    /// Bytes this item adds to a publish.
    pub fn size(&self) -> usize {
        self.name.as_str().len()
            + self.value.data.len()
            + self.value.content_type.len()
            + self
                .attributes
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum::<usize>()
    }
}
