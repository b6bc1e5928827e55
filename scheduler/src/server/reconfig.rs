//! The strict reconfiguration check (as etcd's `--strict-reconfig-check`): a
//! membership change is refused unless a majority of the voters it leaves answer
//! now. Without it, removing a voter while another is down or cut off commits a
//! joint configuration that needs the unreachable one, and the whole cluster stops
//! accepting writes until it returns (found by `cairn-jepsen`: remove during a
//! partition made a 3-node cluster unavailable for 7 s).

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_proto::v1 as pb;
use cairn_proto::v1::admin_client::AdminClient;
use cairn_raft::NodeId;
use tonic::transport::Endpoint;

use super::error::ServerError;

/// Whether the replica at `addr` answers a status request within `limit`.
async fn answers(addr: &str, limit: Duration) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let probe = async {
        let channel = endpoint.connect_timeout(limit).connect().await.ok()?;
        AdminClient::new(channel).status(pb::StatusRequest {}).await.ok()
    };
    matches!(tokio::time::timeout(limit, probe).await, Ok(Some(_)))
}

/// Refuses `change` unless a majority of `voters_after` (id → address) answers now.
/// `this_node` (the leader running the check) counts without a probe.
pub async fn check_quorum_after(
    change: &str,
    this_node: NodeId,
    voters_after: &BTreeMap<NodeId, String>,
    limit: Duration,
) -> Result<(), ServerError> {
    let probes = voters_after.iter().map(|(id, addr)| async move {
        let up = *id == this_node || answers(addr, limit).await;
        (*id, up)
    });
    let results = futures::future::join_all(probes).await;
    let up: Vec<NodeId> = results.iter().filter(|(_, up)| *up).map(|(id, _)| *id).collect();
    let down: Vec<NodeId> = results.iter().filter(|(_, up)| !*up).map(|(id, _)| *id).collect();
    let majority = voters_after.len() / 2 + 1;
    if up.len() >= majority {
        return Ok(());
    }
    Err(ServerError::Membership {
        reason: format!(
            "refusing to {change}: the voters after the change would be {:?}, a majority of {majority} must answer \
             but only {up:?} do ({down:?} do not); the cluster would stop accepting writes until they return. \
             Retry once they are reachable",
            voters_after.keys().collect::<Vec<_>>()
        ),
    })
}
