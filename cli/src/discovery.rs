//! Finding the cluster: `--cluster`, else `$CAIRN_CLUSTER`, else the cluster file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_client::{Client, ClientOptions};

use crate::args::ClientArgs;
use crate::local_cluster::{ClusterFile, CLUSTER_FILE};

/// The scheduler addresses the flags, environment or cluster file name.
pub fn cluster_addrs(args: &ClientArgs) -> anyhow::Result<Vec<String>> {
    if let Some(list) = &args.cluster {
        return cairn_client::parse_cluster(list).context("--cluster");
    }
    if let Ok(list) = std::env::var("CAIRN_CLUSTER") {
        if !list.trim().is_empty() {
            return cairn_client::parse_cluster(&list).context("$CAIRN_CLUSTER");
        }
    }
    let path = args
        .cluster_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(".cairn").join(CLUSTER_FILE));
    if !path.exists() {
        anyhow::bail!(
            "no cluster given: pass --cluster HOST:PORT,..., set CAIRN_CLUSTER, or run `cairn up` here (looked for {})",
            path.display()
        );
    }
    Ok(ClusterFile::read(&path)?.addrs())
}

/// Connects a client as the flags say.
pub async fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    let addrs = cluster_addrs(args)?;
    let options = ClientOptions {
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        ..Default::default()
    };
    Client::connect_with(&addrs, options)
        .await
        .with_context(|| format!("cannot reach the cluster at {}", addrs.join(",")))
}
