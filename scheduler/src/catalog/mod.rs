//! The published-dataset catalog: names, entries, limits and errors (SPEC §3).

mod entry;
mod error;
mod limits;
mod name;

pub use entry::{
    chunk_key_problem, valid_chunk_key, ChunkRef, DatasetEntry, EntryKind, InlineValue, LegacyPublishItem,
    PersistedCollection, PublishItem, ViewCollection,
};
pub use error::CatalogError;
pub use limits::{
    validate_attributes, MAX_ATTRIBUTES, MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_CHUNKS_PER_DATASET,
    MAX_CHUNK_KEY_BYTES, MAX_CONTENT_TYPE_BYTES, MAX_PUBLISH_BYTES, MAX_REPLICAS, MAX_SCHEMA_BYTES, MAX_VALUE_BYTES,
};
pub use name::{DatasetName, MAX_NAME_BYTES};
