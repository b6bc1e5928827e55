//! Which peers this replica has exchanged Raft messages with, recorded durably.
//!
//! A peer that answered one of our Raft requests, or sent us one, held a data dir of
//! this cluster at that moment. The record is written (synced) the first time, before
//! the message is handed to openraft, so every vote or acknowledgement openraft ever
//! acted on comes from a peer recorded here. A replica about to bootstrap with an
//! empty data dir asks its peers whether they know it ([`crate::bootstrap`]): if one
//! does, its disk was lost, and bootstrapping it again could make it vote twice in one
//! term.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cairn_storage::{blocking, Column, Db, Durability, StorageError};

use crate::types::NodeId;

/// The prefix of the `meta` rows, one per known peer (big-endian id after it).
const PREFIX: &[u8] = b"raft/heard_from/";
/// Sorts after every row under [`PREFIX`].
const PREFIX_END: &[u8] = b"raft/heard_from0";

fn key(id: NodeId) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The peers this replica has heard from. Cheap to clone: clones share the set.
#[derive(Clone, Debug)]
pub struct KnownPeers {
    /// This replica (never recorded).
    local_id: NodeId,
    /// Where the records live.
    db: Db,
    /// The recorded peers (a copy of the rows, so the hot path never reads the disk).
    known: Arc<Mutex<BTreeSet<NodeId>>>,
}

impl KnownPeers {
    /// Loads the records of replica `local_id` from `db`.
    pub fn load(local_id: NodeId, db: Db) -> Result<KnownPeers, StorageError> {
        let rows = db.scan(Column::Meta, PREFIX, Some(PREFIX_END), usize::MAX)?;
        let known = rows
            .iter()
            .filter_map(|(key, _)| {
                let bytes: [u8; 8] = key.get(PREFIX.len()..)?.try_into().ok()?;
                Some(NodeId::from_be_bytes(bytes))
            })
            .collect();
        Ok(KnownPeers {
            local_id,
            db,
            known: Arc::new(Mutex::new(known)),
        })
    }

    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<NodeId>> {
        self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this replica has heard from `id`.
    pub fn knows(&self, id: NodeId) -> bool {
        self.set().contains(&id)
    }

    /// Records that `id` took part in a Raft exchange with this replica. Returns once
    /// the record is durable (at once when it already was).
    pub async fn record(&self, id: NodeId) -> Result<(), StorageError> {
        if id == self.local_id || self.knows(id) {
            return Ok(());
        }
        let db = self.db.clone();
        blocking(move || {
            let mut batch = db.batch();
            batch.put(Column::Meta, &key(id), b"");
            db.write(batch, Durability::Synced)
        })
        .await?;
        tracing::debug!(peer = id, "recorded a peer of this cluster");
        self.set().insert(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded peer is known again after the database is reopened; this replica
    /// itself is never recorded.
    #[tokio::test]
    async fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temporary dir");
        {
            let db = Db::open(dir.path()).expect("open");
            let peers = KnownPeers::load(1, db).expect("load");
            assert!(!peers.knows(2));
            peers.record(2).await.expect("record");
            peers.record(300).await.expect("record");
            peers.record(1).await.expect("record self");
            assert!(peers.knows(2));
        }
        let db = Db::open(dir.path()).expect("reopen");
        let peers = KnownPeers::load(1, db).expect("load");
        assert!(peers.knows(2));
        assert!(peers.knows(300));
        assert!(!peers.knows(1));
        assert!(!peers.knows(3));
    }
}
