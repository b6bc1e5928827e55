//! Conversions between the replicated state's types and their protobuf messages
//! (one place, so every service answers alike).

use std::collections::BTreeMap;

use cairn_proto::v1 as pb;

use super::error::ServerError;
use super::liveness::{Heard, Liveness};
use crate::catalog::{
    ChunkRef, DatasetEntry, DatasetName, EntryKind, InlineValue, PersistedCollection, PublishItem, ViewCollection,
};
use crate::control::{ControlState, RecoveryCounters};
use crate::registry::{WorkerId, WorkerRecord, WorkerState};

/// A publish item from the wire: exactly one of an inline value and a collection.
pub fn publish_item(item: pb::PublishItem) -> Result<PublishItem, ServerError> {
    let name = DatasetName::parse(&item.name)?;
    let attributes = item.attributes.into_iter().collect::<BTreeMap<_, _>>();
    let kind = match (item.value, item.persisted) {
        (Some(_), Some(_)) => {
            return Err(ServerError::InvalidRequest {
                reason: format!("dataset '{name}': give a value or a collection, not both"),
            })
        }
        (Some(_), None) | (None, Some(_)) if !item.view.is_empty() => {
            return Err(ServerError::InvalidRequest {
                reason: format!("dataset '{name}': give a value, a collection or a view, not several"),
            })
        }
        (None, None) if !item.view.is_empty() => EntryKind::View(ViewCollection { graph: item.view }),
        (value, None) => {
            let value = value.unwrap_or_default();
            EntryKind::Value(InlineValue {
                data: value.data,
                content_type: value.content_type,
            })
        }
        (None, Some(collection)) => EntryKind::Persisted(persisted_collection(&name, collection)?),
    };
    Ok(PublishItem { name, kind, attributes })
}

fn persisted_collection(name: &DatasetName, collection: pb::Collection) -> Result<PersistedCollection, ServerError> {
    let chunks = collection
        .chunks
        .into_iter()
        .map(|chunk| {
            let locations = chunk
                .locations
                .iter()
                .map(|location| WorkerId::parse(&location.worker_id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| ServerError::InvalidRequest {
                    reason: format!("dataset '{name}', chunk {}: {error}", chunk.key),
                })?;
            Ok(ChunkRef {
                key: chunk.key,
                rows: chunk.rows,
                bytes: chunk.bytes,
                checksum: chunk.checksum,
                locations,
            })
        })
        .collect::<Result<Vec<_>, ServerError>>()?;
    Ok(PersistedCollection {
        chunks,
        schema_ipc: collection.schema_ipc,
        replicas: collection.replicas,
    })
}

/// A collection with its locations resolved through the registry: live workers first.
pub fn collection_reply(state: &ControlState, collection: &PersistedCollection) -> pb::Collection {
    let chunks = collection
        .chunks
        .iter()
        .map(|chunk| {
            let mut locations: Vec<pb::ChunkLocation> = chunk
                .locations
                .iter()
                .map(|worker| match state.worker(worker) {
                    Some(record) => pb::ChunkLocation {
                        worker_id: worker.to_string(),
                        addr: record.addr.clone(),
                        live: record.state == WorkerState::Alive,
                    },
                    None => pb::ChunkLocation {
                        worker_id: worker.to_string(),
                        addr: String::new(),
                        live: false,
                    },
                })
                .collect();
            locations.sort_by_key(|location| !location.live);
            pb::ChunkInfo {
                key: chunk.key.clone(),
                rows: chunk.rows,
                bytes: chunk.bytes,
                checksum: chunk.checksum,
                locations,
            }
        })
        .collect();
    pb::Collection {
        schema_ipc: collection.schema_ipc.clone(),
        chunks,
        replicas: collection.replicas,
        rows: collection.rows(),
        bytes: collection.bytes(),
    }
}

/// A dataset as `Get` returns it: the value, or the collection's metadata.
pub fn entry_reply(state: &ControlState, entry: &DatasetEntry) -> pb::DatasetEntry {
    let kind = match &entry.kind {
        EntryKind::Value(value) => Some(pb::dataset_entry::Kind::Value(pb::InlineValue {
            data: value.data.clone(),
            content_type: value.content_type.clone(),
        })),
        EntryKind::Persisted(collection) => {
            Some(pb::dataset_entry::Kind::Persisted(collection_reply(state, collection)))
        }
        EntryKind::View(view) => Some(pb::dataset_entry::Kind::View(view.graph.clone())),
    };
    pb::DatasetEntry {
        name: entry.name.to_string(),
        kind,
        attributes: entry.attributes.clone().into_iter().collect(),
        publisher: entry.publisher.clone(),
        published_at_index: entry.published_at_index,
    }
}

/// A dataset as `Info` describes it, without inline data.
pub fn info_reply(state: &ControlState, entry: &DatasetEntry) -> pb::DatasetInfo {
    let (content_type, bytes, persisted) = match &entry.kind {
        EntryKind::Value(value) => (value.content_type.clone(), value.data.len() as u64, None),
        EntryKind::Persisted(collection) => (
            "application/vnd.apache.arrow.file".to_string(),
            collection.bytes(),
            Some(collection_reply(state, collection)),
        ),
        EntryKind::View(view) => ("application/x-cairn-view".to_string(), view.graph.len() as u64, None),
    };
    pb::DatasetInfo {
        name: entry.name.to_string(),
        kind: entry.kind.label().to_string(),
        content_type,
        bytes,
        attributes: entry.attributes.clone().into_iter().collect(),
        publisher: entry.publisher.clone(),
        published_at_index: entry.published_at_index,
        persisted,
        availability: state
            .availability(entry)
            .map(|availability| availability.label().to_string())
            .unwrap_or_default(),
    }
}

/// The published datasets that are not fully available, for status.
pub fn unavailable_datasets(state: &ControlState) -> Vec<pb::DatasetAvailability> {
    state
        .entries_in_order()
        .into_iter()
        .filter_map(|entry| {
            let availability = state.availability(entry)?;
            (availability.label() != "available").then(|| pb::DatasetAvailability {
                name: entry.name.to_string(),
                state: availability.label().to_string(),
                chunks: availability.chunks,
                chunks_without_live_copy: availability.without_live_copy,
                chunks_below_replicas: availability.below_replicas,
            })
        })
        .collect()
}

/// The replicated recovery counters as status shows them.
pub fn recovery_counters(counters: RecoveryCounters) -> pb::RecoveryCounters {
    pb::RecoveryCounters {
        failovers: counters.failovers,
        tasks_recomputed: counters.tasks_recomputed,
        chunks_reregistered: counters.chunks_reregistered,
        replicas_repaired: counters.replicas_repaired,
    }
}

/// Every registered worker as status and `ListWorkers` show them, with the heartbeat
/// figures `liveness` holds (the leader's only).
pub fn worker_statuses(state: &ControlState, liveness: &Liveness) -> Vec<pb::WorkerStatus> {
    state
        .workers()
        .into_iter()
        .map(|record| worker_status(record, liveness.last(&record.worker).as_ref()))
        .collect()
}

/// A worker as status and `ListWorkers` show it; `heard` is the leader's memory of
/// its heartbeats (None elsewhere).
fn worker_status(record: &WorkerRecord, heard: Option<&Heard>) -> pb::WorkerStatus {
    let mut status = pb::WorkerStatus {
        worker_id: record.worker.to_string(),
        addr: record.addr.clone(),
        state: record.state.label().to_string(),
        nthreads: record.nthreads,
        memory_limit: record.memory_limit,
        ..Default::default()
    };
    if let Some(heard) = heard {
        status.managed_bytes = heard.beat.managed_bytes;
        status.spilled_bytes = heard.beat.spilled_bytes;
        status.rss_bytes = heard.beat.rss_bytes;
        status.chunks = heard.beat.chunks.len() as u64;
        status.paused = heard.beat.paused.clone();
        status.last_seen_ms_ago = heard.at.elapsed().as_millis() as u64;
        status.heartbeating = true;
        status.tasks_run = heard.beat.tasks_run;
    }
    status
}
