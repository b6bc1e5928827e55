//! Which cluster and which node a data dir belongs to.
//!
//! A cluster id is derived at bootstrap from the initial peers and the cluster token,
//! so every replica computes the same id without talking to the others. It is stored
//! in the data dir; every Raft message carries it, and a replica refuses messages of
//! another cluster. A replica started with `--join` has no id until the first message
//! of the cluster that added it, and adopts that one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use cairn_storage::{blocking, Column, Db, Durability, StorageError};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::types::NodeId;

const IDENTITY_KEY: &[u8] = b"node/identity";

/// What a data dir records about whom it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIdentity {
    /// The replica id (`--id`) this data dir was created for.
    pub node_id: NodeId,
    /// The cluster id, once known.
    pub cluster_id: Option<String>,
}

/// Derives the cluster id from the bootstrap peers and the cluster token.
///
/// FNV-1a over a canonical text; stable across versions and platforms.
pub fn derive_cluster_id(peers: &BTreeMap<NodeId, String>, token: &str) -> String {
    let mut canonical = format!("token={token}");
    for (id, addr) in peers {
        canonical.push_str(&format!(";{id}={addr}"));
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in canonical.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Reads the stored identity of a data dir, if any.
pub fn read_identity(db: &Db) -> Result<Option<StoredIdentity>, crate::OpenError> {
    match db.get(Column::Meta, IDENTITY_KEY)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(codec::decode("node identity", &bytes)?)),
    }
}

/// Writes the identity of a data dir (synced).
pub fn write_identity(db: &Db, identity: &StoredIdentity) -> Result<(), crate::OpenError> {
    let bytes = codec::encode("node identity", identity)?;
    let mut batch = db.batch();
    batch.put(Column::Meta, IDENTITY_KEY, &bytes);
    db.write(batch, Durability::Synced)?;
    Ok(())
}

/// A message came from another cluster.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The sender belongs to a different cluster.
    #[error("refusing a message of cluster {theirs}: this replica belongs to cluster {ours}")]
    OtherCluster {
        /// The sender's cluster id.
        theirs: String,
        /// This replica's cluster id.
        ours: String,
    },
    /// The message carried no cluster id.
    #[error("refusing a message without a cluster id")]
    Missing,
    /// Adopting the id failed to persist.
    #[error("cannot record the cluster id: {source}")]
    Storage {
        /// What storage said.
        source: StorageError,
    },
}

/// The cluster identity of a running replica, shared by its transport and network.
#[derive(Clone)]
pub struct ClusterIdentity {
    /// The replica id.
    node_id: NodeId,
    /// The cluster id, `None` until a `--join` replica hears from its cluster.
    cluster_id: Arc<RwLock<Option<String>>>,
    /// Where an adopted id is recorded.
    db: Db,
}

impl ClusterIdentity {
    /// The identity of replica `node_id` with a known or unknown cluster id.
    pub fn new(node_id: NodeId, cluster_id: Option<String>, db: Db) -> ClusterIdentity {
        ClusterIdentity {
            node_id,
            cluster_id: Arc::new(RwLock::new(cluster_id)),
            db,
        }
    }

    /// The replica id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The cluster id, if known.
    pub fn current(&self) -> Option<String> {
        self.cluster_id
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Accepts a message stamped with `theirs`, adopting it if this replica has none yet.
    pub async fn admit(&self, theirs: &str) -> Result<(), AdmitError> {
        if theirs.is_empty() {
            return Err(AdmitError::Missing);
        }
        match self.current() {
            Some(ours) if ours == theirs => Ok(()),
            Some(ours) => Err(AdmitError::OtherCluster {
                theirs: theirs.to_string(),
                ours,
            }),
            None => {
                let identity = StoredIdentity {
                    node_id: self.node_id,
                    cluster_id: Some(theirs.to_string()),
                };
                let db = self.db.clone();
                blocking(move || {
                    write_identity(&db, &identity).map_err(|error| StorageError::TaskFailed {
                        reason: error.to_string(),
                    })
                })
                .await
                .map_err(|source| AdmitError::Storage { source })?;
                tracing::info!(cluster = theirs, "joined the cluster");
                *self.cluster_id.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(theirs.to_string());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every replica derives the same id from the same peers, and another peers list
    /// or token gives another id.
    #[test]
    fn cluster_id_depends_on_peers_and_token() {
        let peers: BTreeMap<NodeId, String> = [(1, "a:1".to_string()), (2, "a:2".to_string())].into();
        let same = derive_cluster_id(&peers.clone(), "t");
        assert_eq!(derive_cluster_id(&peers, "t"), same);
        assert_ne!(derive_cluster_id(&peers, "u"), same);
        let other: BTreeMap<NodeId, String> = [(1, "a:1".to_string())].into();
        assert_ne!(derive_cluster_id(&other, "t"), same);
    }
}
