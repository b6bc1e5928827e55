//! Catalog entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::limits::{
    validate_attributes, MAX_CHUNKS_PER_DATASET, MAX_CHUNK_KEY_BYTES, MAX_CONTENT_TYPE_BYTES, MAX_REPLICAS,
    MAX_SCHEMA_BYTES, MAX_VALUE_BYTES,
};
use super::{CatalogError, DatasetName};
use crate::registry::WorkerId;

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
    /// The chunk's key on the workers (and its Flight ticket).
    pub key: String,
    /// Rows in the chunk.
    pub rows: u64,
    /// Size of the chunk's Arrow IPC file.
    pub bytes: u64,
    /// crc32c of the chunk's Arrow IPC file, as every holder verified it.
    pub checksum: u32,
    /// The workers that acknowledged the chunk as fsync'd, minus those that have
    /// since reported it lost. A worker that is gone stays listed: its disk may come back.
    pub locations: Vec<WorkerId>,
}

/// A collection whose chunks are held, pinned, on workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedCollection {
    /// The chunks in collection order.
    pub chunks: Vec<ChunkRef>,
    /// The Arrow schema, as an encapsulated Arrow IPC schema message.
    #[serde(with = "serde_bytes")]
    pub schema_ipc: Vec<u8>,
    /// How many distinct workers held each chunk durably when it was published.
    pub replicas: u32,
}

impl PersistedCollection {
    /// Rows in all chunks.
    pub fn rows(&self) -> u64 {
        self.chunks.iter().map(|chunk| chunk.rows).sum()
    }

    /// Bytes of all chunk files.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|chunk| chunk.bytes).sum()
    }

    /// Checks the collection's shape (no state needed): replicas, chunk keys,
    /// locations, sizes.
    pub fn validate(&self, name: &str) -> Result<(), CatalogError> {
        let invalid = |reason: String| CatalogError::InvalidCollection {
            name: name.to_string(),
            reason,
        };
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(invalid(format!(
                "replicas must be between 1 and {MAX_REPLICAS}, not {}",
                self.replicas
            )));
        }
        if self.schema_ipc.is_empty() || self.schema_ipc.len() > MAX_SCHEMA_BYTES {
            return Err(invalid(format!(
                "the schema must be 1 to {MAX_SCHEMA_BYTES} bytes of Arrow IPC, not {}",
                self.schema_ipc.len()
            )));
        }
        if self.chunks.len() > MAX_CHUNKS_PER_DATASET {
            return Err(invalid(format!(
                "{} chunks; a dataset has at most {MAX_CHUNKS_PER_DATASET}",
                self.chunks.len()
            )));
        }
        for chunk in &self.chunks {
            if !valid_chunk_key(&chunk.key) {
                return Err(invalid(format!(
                    "chunk key {:?} is not 1 to {MAX_CHUNK_KEY_BYTES} ASCII letters, digits, '-', '_' or '.'",
                    chunk.key.chars().take(64).collect::<String>()
                )));
            }
            let distinct: BTreeSet<&WorkerId> = chunk.locations.iter().collect();
            if distinct.len() != chunk.locations.len() {
                return Err(invalid(format!("chunk {} lists a worker twice", chunk.key)));
            }
            if (distinct.len() as u64) < u64::from(self.replicas) {
                return Err(invalid(format!(
                    "chunk {} is held by {} worker(s), fewer than the {} replicas asked for",
                    chunk.key,
                    distinct.len(),
                    self.replicas
                )));
            }
        }
        Ok(())
    }
}

/// Whether `key` is a chunk key the workers accept (the same rule as
/// `cairn_worker::ChunkKey`): 1 to 128 ASCII letters, digits, `-`, `_`, `.`, not
/// starting with `.`.
pub fn valid_chunk_key(key: &str) -> bool {
    chunk_key_problem(key).is_none()
}

/// Which chunk-key rule `key` breaks, if any (task keys follow the same rules: a
/// task's result is the chunk of the same key).
pub fn chunk_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("empty");
    }
    if key.len() > MAX_CHUNK_KEY_BYTES {
        return Some("longer than 128 bytes");
    }
    if key.starts_with('.') {
        return Some("starts with '.'");
    }
    if !key
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        return Some("only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    None
}

/// An un-persisted collection: the graph that computes it, recomputed on every get.
///
/// Published by `publish_view`: the client stores the graph, and decodes and
/// re-keys it on every get.
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

/// One name to publish, as the first version of the log recorded it (inline values
/// only). Kept so that logs written before persisted collections still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyPublishItem {
    /// The name.
    pub name: DatasetName,
    /// The value.
    pub value: InlineValue,
    /// User attributes.
    pub attributes: BTreeMap<String, String>,
}

impl From<LegacyPublishItem> for PublishItem {
    fn from(item: LegacyPublishItem) -> PublishItem {
        PublishItem {
            name: item.name,
            kind: EntryKind::Value(item.value),
            attributes: item.attributes,
        }
    }
}

/// One name to publish, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishItem {
    /// The name.
    pub name: DatasetName,
    /// What it holds: an inline value, a persisted collection, or a view (a graph).
    pub kind: EntryKind,
    /// User attributes.
    pub attributes: BTreeMap<String, String>,
}

impl PublishItem {
    /// An inline value.
    pub fn value(name: DatasetName, value: InlineValue, attributes: BTreeMap<String, String>) -> PublishItem {
        PublishItem {
            name,
            kind: EntryKind::Value(value),
            attributes,
        }
    }

    /// Checks the value, collection and metadata limits.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let name = self.name.as_str();
        match &self.kind {
            EntryKind::Value(value) => Self::validate_value(name, value)?,
            EntryKind::Persisted(collection) => collection.validate(name)?,
            EntryKind::View(view) => {
                if view.graph.is_empty() {
                    return Err(CatalogError::InvalidCollection {
                        name: name.to_string(),
                        reason: "a view needs its graph".to_string(),
                    });
                }
            }
        }
        validate_attributes(name, &self.attributes)
    }

    fn validate_value(name: &str, value: &InlineValue) -> Result<(), CatalogError> {
        if value.data.len() > MAX_VALUE_BYTES {
            return Err(CatalogError::ValueTooLarge {
                name: name.to_string(),
                bytes: value.data.len(),
                limit: MAX_VALUE_BYTES,
            });
        }
        if value.content_type.len() > MAX_CONTENT_TYPE_BYTES || value.content_type.chars().any(char::is_control) {
            return Err(CatalogError::InvalidMetadata {
                name: name.to_string(),
                reason: format!(
                    "the content type must be at most {MAX_CONTENT_TYPE_BYTES} bytes without control characters"
                ),
            });
        }
        Ok(())
    }

    /// Bytes this item adds to a publish (its stored size, near enough).
    pub fn size(&self) -> usize {
        let content = match &self.kind {
            EntryKind::Value(value) => value.data.len() + value.content_type.len(),
            EntryKind::Persisted(collection) => {
                collection.schema_ipc.len()
                    + collection
                        .chunks
                        .iter()
                        .map(|chunk| chunk.key.len() + 24 + 8 * chunk.locations.len())
                        .sum::<usize>()
            }
            EntryKind::View(view) => view.graph.len(),
        };
        self.name.as_str().len()
            + content
            + self
                .attributes
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum::<usize>()
    }
}
