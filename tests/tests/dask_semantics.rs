//! Dask's published-dataset behaviour, case by case, against a cluster of real
//! `cairn scheduler` processes, each result seen from a second client.

use cairn_client::{Dataset, Error};
use cairn_tests::{phase, TestCluster};

/// publish, duplicate name, get missing, unpublish, several at once, override,
/// the mapping interface and publish order behave as in Dask, and what one client
/// does, another connected to a different replica sees at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_datasets_behave_as_in_dask() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let alice = cluster.client_of(1).await?;
    let bob = cluster.client_of(3).await?;

    phase("publish, then list and get from a second client");
    alice
        .publish_dataset("negative_accounts", "Alice,-100\nBob,-200")
        .await?;
    assert_eq!(bob.list_datasets().await?, vec!["negative_accounts"]);
    let dataset = bob.get_dataset("negative_accounts").await?;
    assert_eq!(dataset.as_text(), Some("Alice,-100\nBob,-200"));

    phase("a duplicate name is an error naming it, and changes nothing");
    let error = bob
        .publish_dataset("negative_accounts", "other")
        .await
        .expect_err("duplicate");
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error:?}");
    assert!(
        error.to_string().contains("'negative_accounts' already exists"),
        "{error}"
    );
    assert_eq!(
        alice.get_dataset("negative_accounts").await?.as_text(),
        Some("Alice,-100\nBob,-200")
    );

    phase("override replaces the value and keeps the publish position");
    bob.publish_datasets(vec![Dataset::new("second", "2")], false).await?;
    bob.publish_datasets(vec![Dataset::new("negative_accounts", "replaced")], true)
        .await?;
    assert_eq!(
        alice.get_dataset("negative_accounts").await?.as_text(),
        Some("replaced")
    );
    assert_eq!(alice.list_datasets().await?, vec!["negative_accounts", "second"]);

    phase("get and unpublish of a missing name are not-found errors naming it");
    let error = alice.get_dataset("nope").await.expect_err("missing");
    assert!(
        matches!(error, Error::NotFound { .. }) && error.to_string().contains("'nope' not found"),
        "{error}"
    );
    let error = alice.unpublish_dataset("nope").await.expect_err("missing");
    assert!(
        matches!(error, Error::NotFound { .. }) && error.to_string().contains("'nope' not found"),
        "{error}"
    );

    phase("several names publish atomically: all, or none when one exists");
    alice
        .publish_datasets(vec![Dataset::new("a", "1"), Dataset::new("b", "2")], false)
        .await?;
    let error = alice
        .publish_datasets(vec![Dataset::new("c", "3"), Dataset::new("a", "again")], false)
        .await
        .expect_err("a exists");
    assert!(error.to_string().contains("'a' already exists"), "{error}");
    assert!(
        !bob.datasets().contains("c").await?,
        "a failed publish must publish nothing"
    );
    assert_eq!(
        bob.list_datasets().await?,
        vec!["negative_accounts", "second", "a", "b"]
    );

    phase("unpublish removes the name for everyone");
    bob.unpublish_dataset("second").await?;
    assert_eq!(alice.list_datasets().await?, vec!["negative_accounts", "a", "b"]);

    phase("the mapping interface");
    let datasets = alice.datasets();
    datasets.insert("k", "v").await?;
    assert!(bob.datasets().contains("k").await?);
    assert_eq!(bob.datasets().get("k").await?.as_text(), Some("v"));
    assert!(
        datasets.insert("k", "w").await.is_err(),
        "insert of an existing key fails, as in Dask"
    );
    assert_eq!(bob.datasets().keys().await?, vec!["negative_accounts", "a", "b", "k"]);
    assert_eq!(bob.datasets().len().await?, 4);
    datasets.remove("k").await?;
    assert!(!bob.datasets().contains("k").await?);

    phase("info describes without data; attributes and publisher are kept");
    alice
        .publish_datasets(vec![Dataset::new("described", "12345").attribute("unit", "m/s")], false)
        .await?;
    let info = bob.dataset_info("described").await?;
    assert_eq!((info.kind.as_str(), info.bytes), ("value", 5));
    assert_eq!(info.attributes.get("unit").map(String::as_str), Some("m/s"));
    assert!(!info.publisher.is_empty());
    Ok(())
}

/// Bad names and oversized values are clear errors that change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_oversized_values_are_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    let long_name = "x".repeat(257);
    for bad in ["", "tab\tname", "line\nbreak", long_name.as_str()] {
        let error = client.publish_dataset(bad, "v").await.expect_err("invalid name");
        assert!(matches!(error, Error::InvalidName { .. }), "{bad:?}: {error:?}");
    }
    let error = client
        .publish_dataset("big", vec![0u8; 1024 * 1024 + 1])
        .await
        .expect_err("too large");
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("at most 1048576 bytes"), "{error}");
    let error = client
        .publish_datasets(vec![Dataset::new("twice", "1"), Dataset::new("twice", "2")], false)
        .await
        .expect_err("duplicate in one publish");
    assert!(error.to_string().contains("more than once"), "{error}");
    client.publish_dataset("exactly-1MiB", vec![7u8; 1024 * 1024]).await?;
    assert_eq!(client.list_datasets().await?, vec!["exactly-1MiB"]);
    Ok(())
}
