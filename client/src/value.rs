//! Dataset values and entries as the client sees them.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;

use crate::collection::{ChunkInfo, Collection};

/// A small inline value: bytes and a content type telling how to read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The bytes.
    pub data: Vec<u8>,
    /// A MIME type, e.g. `text/plain; charset=utf-8`.
    pub content_type: String,
}

/// The content type of text values.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of opaque bytes.
pub const BYTES: &str = "application/octet-stream";

impl Value {
    /// A value with an explicit content type.
    ///
    /// ```
    /// let value = cairn_client::Value::new(br#"{"a":1}"#.to_vec(), "application/json");
    /// assert_eq!(value.content_type, "application/json");
    /// ```
    pub fn new(data: Vec<u8>, content_type: impl Into<String>) -> Value {
        Value {
            data,
            content_type: content_type.into(),
        }
    }

    /// The value as text, if it is valid UTF-8.
    ///
    /// ```
    /// let value = cairn_client::Value::from("hello");
    /// assert_eq!(value.as_text(), Some("hello"));
    /// ```
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::new(text.as_bytes().to_vec(), TEXT)
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::new(text.into_bytes(), TEXT)
    }
}

impl From<Vec<u8>> for Value {
    fn from(data: Vec<u8>) -> Value {
        Value::new(data, BYTES)
    }
}

impl From<&[u8]> for Value {
    fn from(data: &[u8]) -> Value {
        Value::new(data.to_vec(), BYTES)
    }
}

/// One dataset to publish: a name, a value, and optional attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The name.
    pub name: String,
    /// The value.
    pub value: Value,
    /// Free-form attributes, shown by `info`.
    pub attributes: BTreeMap<String, String>,
}

impl Dataset {
    /// A dataset with no attributes.
    ///
    /// ```
    /// let dataset = cairn_client::Dataset::new("answer", "42").attribute("unit", "none");
    /// assert_eq!(dataset.attributes["unit"], "none");
    /// ```
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Dataset {
        Dataset {
            name: name.into(),
            value: value.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Dataset {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// What a published dataset holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// A small inline value.
    Value(Value),
    /// A persisted collection: metadata here, chunks on the workers.
    Collection(Collection),
    /// A published view: a lazy collection, computed afresh when asked.
    View(crate::LazyCollection),
}

/// A published dataset, as `get_dataset` returns it.
#[derive(Debug, Clone)]
pub struct PublishedDataset {
    /// The name.
    pub name: String,
    /// The value or the collection.
    pub content: Content,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// Who published it.
    pub publisher: String,
    /// The log index of the publish.
    pub published_at_index: u64,
}

impl PublishedDataset {
    /// The inline value, if the dataset is one.
    pub fn value(&self) -> Option<&Value> {
        match &self.content {
            Content::Value(value) => Some(value),
            Content::Collection(_) | Content::View(_) => None,
        }
    }

    /// The inline value as text, if the dataset is a valid UTF-8 value.
    pub fn as_text(&self) -> Option<&str> {
        self.value().and_then(Value::as_text)
    }

    /// The collection, if the dataset is one.
    pub fn collection(&self) -> Option<&Collection> {
        match &self.content {
            Content::Value(_) | Content::View(_) => None,
            Content::Collection(collection) => Some(collection),
        }
    }
}

/// What `dataset_info` tells about a persisted collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// The Arrow schema.
    pub schema: SchemaRef,
    /// Rows in all chunks.
    pub rows: u64,
    /// Bytes of all chunk files.
    pub bytes: u64,
    /// Workers that held each chunk when it was published.
    pub replicas: u32,
    /// The chunks in order, with where they live.
    pub chunks: Vec<ChunkInfo>,
}

/// What `dataset_info` tells about a dataset, without its data.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// The name.
    pub name: String,
    /// `value`, `persisted` or `view`.
    pub kind: String,
    /// The content type.
    pub content_type: String,
    /// Size of the data in bytes.
    pub bytes: u64,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// Who published it.
    pub publisher: String,
    /// The log index of the publish.
    pub published_at_index: u64,
    /// Schema, rows, chunks and locations of a persisted collection.
    pub collection: Option<CollectionInfo>,
    /// For a persisted collection: `available` (every chunk has its replicas on live
    /// workers), `degraded` (fewer copies than asked, none missing), `recovering`
    /// (some chunk has no live copy but is being recomputed from lineage) or `lost`
    /// (some chunk has neither: the dataset cannot be read).
    pub availability: Option<String>,
}
