//! `cairn status`: every replica's view of the cluster.

use serde_json::json;

use crate::args::ClientArgs;
use crate::discovery::{cluster_addrs, connect};

/// Prints each replica's status; fails if no replica answers.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let client = match connect(&args).await {
        Ok(client) => client,
        Err(error) => {
            let addrs = cluster_addrs(&args).unwrap_or_default();
            return Err(error.context(format!("no scheduler answered ({})", addrs.join(","))));
        }
    };
    let statuses = client.status().await;
    if args.json {
        let nodes: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(addr, status)| match status {
                Ok(status) => json!({
                    "addr": addr, "node_id": status.node_id, "cluster_id": status.cluster_id,
                    "state": status.state, "leader_id": status.leader_id, "leader_addr": status.leader_addr,
                    "term": status.term, "last_log_index": status.last_log_index,
                    "commit_index": status.commit_index, "applied_index": status.applied_index,
                    "snapshot_index": status.snapshot_index, "datasets": status.datasets,
                    "members": status.members.iter().map(|(id, addr, role)| json!({"id": id, "addr": addr, "role": role})).collect::<Vec<_>>(),
                }),
                Err(error) => json!({"addr": addr, "error": error.to_string()}),
            })
            .collect();
        println!("{}", json!({ "nodes": nodes }));
        return Ok(());
    }
    if let Some((_, Ok(first))) = statuses.iter().find(|(_, status)| status.is_ok()) {
        println!("cluster {}", first.cluster_id);
        let members: Vec<String> = first
            .members
            .iter()
            .map(|(id, addr, role)| format!("{id}={addr} ({role})"))
            .collect();
        println!("members: {}", members.join(", "));
        match (&first.leader_id, &first.leader_addr) {
            (Some(id), Some(addr)) => println!("leader:  node {id} at {addr}"),
            _ => println!("leader:  none known"),
        }
    }
    println!(
        "{:<22} {:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "ADDRESS", "ID", "STATE", "TERM", "LAST", "COMMIT", "APPLIED", "DATASETS"
    );
    for (addr, status) in &statuses {
        match status {
            Ok(status) => println!(
                "{:<22} {:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>8}",
                addr,
                status.node_id,
                status.state,
                status.term,
                status.last_log_index,
                status.commit_index,
                status.applied_index,
                status.datasets
            ),
            Err(error) => println!("{addr:<22} unreachable: {error}"),
        }
    }
    Ok(())
}
