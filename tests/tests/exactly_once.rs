//! A write retried with the same client id and sequence number is applied once.

use cairn_proto::v1 as pb;
use cairn_proto::v1::catalog_client::CatalogClient;
use cairn_tests::{phase, TestCluster};

async fn leader_channel(cluster: &TestCluster) -> anyhow::Result<CatalogClient<tonic::transport::Channel>> {
    let leader = cluster.leader().await?;
    let addr = cluster.cluster.addr(leader)?;
    Ok(CatalogClient::connect(format!("http://{addr}")).await?)
}

fn publish(client_id: &[u8], seq: u64, name: &str, value: &str) -> pb::PublishRequest {
    pb::PublishRequest {
        request: Some(pb::RequestId {
            client_id: client_id.to_vec(),
            seq,
            lowest_unacked_seq: 1,
        }),
        items: vec![pb::PublishItem {
            name: name.to_string(),
            value: Some(pb::InlineValue {
                data: value.as_bytes().to_vec(),
                content_type: "text/plain".to_string(),
            }),
            attributes: Default::default(),
            persisted: None,
            view: Vec::new(),
        }],
        r#override: false,
        publisher: "test".to_string(),
    }
}

/// Publish X (seq 1), unpublish X (seq 2), then retry seq 1 as if its reply had been
/// lost: the retry returns the first outcome (same log index) and does not publish X
/// again. A retried failure returns the same failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_publish_is_applied_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let mut catalog = leader_channel(&cluster).await?;
    let client_id = [42u8; 16];

    phase("a write before the session is open is refused, not applied");
    let error = catalog
        .publish(publish(&client_id, 1, "X", "v"))
        .await
        .expect_err("no session");
    assert_eq!(error.code(), tonic::Code::FailedPrecondition, "{error}");
    catalog
        .open_session(pb::OpenSessionRequest {
            client_id: client_id.to_vec(),
        })
        .await?;

    phase("seq 1 publishes X; seq 2 unpublishes it");
    let first = catalog.publish(publish(&client_id, 1, "X", "v")).await?.into_inner();
    let unpublish = pb::UnpublishRequest {
        request: Some(pb::RequestId {
            client_id: client_id.to_vec(),
            seq: 2,
            lowest_unacked_seq: 1,
        }),
        name: "X".to_string(),
    };
    catalog.unpublish(unpublish.clone()).await?;

    phase("the retry of seq 1 returns the first outcome and changes nothing");
    let retry = catalog.publish(publish(&client_id, 1, "X", "v")).await?.into_inner();
    assert_eq!(retry.log_index, first.log_index);
    let listed = catalog.list(pb::ListRequest {}).await?.into_inner().names;
    assert!(listed.is_empty(), "the retried publish was applied again: {listed:?}");

    phase("the retry of seq 2 returns its first outcome (success), not not-found");
    catalog.unpublish(unpublish).await?;

    phase("after a leader change, a retry still returns the first outcome");
    let mut fresh = cluster.leader().await?;
    let mut processes = cluster;
    processes.cluster.kill(fresh)?;
    fresh = processes.leader().await?;
    let addr = processes.cluster.addr(fresh)?;
    let mut catalog = CatalogClient::connect(format!("http://{addr}")).await?;
    let retry = catalog.publish(publish(&client_id, 1, "X", "v")).await?.into_inner();
    assert_eq!(retry.log_index, first.log_index);
    assert!(catalog.list(pb::ListRequest {}).await?.into_inner().names.is_empty());
    Ok(())
}
