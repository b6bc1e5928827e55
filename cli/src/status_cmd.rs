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
                    "snapshot_index": status.snapshot_index, "uncommitted_bytes": status.uncommitted_bytes,
                    "datasets": status.datasets,
                    "tasks": status.tasks,
                    "task_counts": status.task_counts.map(|(waiting, assigned, memory, erred)| json!({
                        "waiting": waiting, "assigned": assigned, "memory": memory, "erred": erred,
                    })),
                    "members": status.members.iter().map(|(id, addr, role)| json!({"id": id, "addr": addr, "role": role})).collect::<Vec<_>>(),
                    "workers": status.workers.iter().map(|worker| json!({
                        "worker_id": worker.worker_id, "addr": worker.addr, "state": worker.state,
                        "nthreads": worker.nthreads, "memory_limit": worker.memory_limit,
                        "managed_bytes": worker.managed_bytes, "spilled_bytes": worker.spilled_bytes,
                        "rss_bytes": worker.rss_bytes, "chunks": worker.chunks, "paused": worker.paused,
                        "last_seen_ms_ago": worker.last_seen_ms_ago, "tasks_run": worker.tasks_run,
                    })).collect::<Vec<_>>(),
                    "recovery": json!({
                        "failovers": status.recovery.failovers,
                        "tasks_recomputed": status.recovery.tasks_recomputed,
                        "chunks_reregistered": status.recovery.chunks_reregistered,
                        "replicas_repaired": status.recovery.replicas_repaired,
                    }),
                    "unavailable": status.unavailable.iter().map(|dataset| json!({
                        "name": dataset.name, "state": dataset.state, "chunks": dataset.chunks,
                        "chunks_without_live_copy": dataset.chunks_without_live_copy,
                        "chunks_below_replicas": dataset.chunks_below_replicas,
                    })).collect::<Vec<_>>(),
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
        "{:<22} {:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>8} {:>11}",
        "ADDRESS", "ID", "STATE", "TERM", "LAST", "COMMIT", "APPLIED", "DATASETS", "UNCOMMITTED"
    );
    for (addr, status) in &statuses {
        match status {
            Ok(status) => println!(
                "{:<22} {:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>8} {:>11}",
                addr,
                status.node_id,
                status.state,
                status.term,
                status.last_log_index,
                status.commit_index,
                status.applied_index,
                status.datasets,
                cairn_worker::format_bytes(status.uncommitted_bytes)
            ),
            Err(error) => println!("{addr:<22} unreachable: {error}"),
        }
    }
    // Worker memory figures come from heartbeats, which only the leader hears.
    let reporter = statuses
        .iter()
        .filter_map(|(_, status)| status.as_ref().ok())
        .find(|status| status.state == "leader")
        .or_else(|| statuses.iter().find_map(|(_, status)| status.as_ref().ok()));
    if let Some(status) = reporter {
        if let Some((waiting, assigned, memory, erred)) = status.task_counts {
            println!();
            println!(
                "tasks: {} in the replicated table; on the leader {waiting} waiting, {assigned} assigned to workers, {memory} held, {erred} failed",
                status.tasks
            );
        }
        let recovery = status.recovery;
        println!();
        println!(
            "recovery: {} failovers, {} tasks recomputed, {} results re-registered from workers, {} replicas repaired",
            recovery.failovers, recovery.tasks_recomputed, recovery.chunks_reregistered, recovery.replicas_repaired
        );
        if status.unavailable.is_empty() {
            println!("datasets: all fully available");
        } else {
            for dataset in &status.unavailable {
                println!(
                    "dataset {}: {} ({} of {} chunks without a live copy, {} below their replicas)",
                    dataset.name,
                    dataset.state.to_uppercase(),
                    dataset.chunks_without_live_copy,
                    dataset.chunks,
                    dataset.chunks_below_replicas
                );
            }
        }
        println!();
        if status.workers.is_empty() {
            println!("workers: none registered");
            return Ok(());
        }
        println!(
            "{:<18} {:<22} {:<6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>7}  NOTE",
            "WORKER", "ADDRESS", "STATE", "THREADS", "LIMIT", "MEMORY", "SPILLED", "RSS", "CHUNKS"
        );
        for worker in &status.workers {
            let note = match (&worker.paused, worker.last_seen_ms_ago) {
                (Some(reason), _) => format!("paused: {reason}"),
                (None, Some(ago)) if ago > 3_000 => format!("last heard {:.1} s ago", ago as f64 / 1000.0),
                (None, None) if status.state == "leader" => "not heard since this leader was elected".to_string(),
                _ => String::new(),
            };
            println!(
                "{:<18} {:<22} {:<6} {:>7} {:>10} {:>10} {:>10} {:>10} {:>7}  {}",
                worker.worker_id,
                worker.addr,
                worker.state,
                worker.nthreads,
                cairn_worker::format_bytes(worker.memory_limit),
                cairn_worker::format_bytes(worker.managed_bytes),
                cairn_worker::format_bytes(worker.spilled_bytes),
                cairn_worker::format_bytes(worker.rss_bytes),
                worker.chunks,
                note
            );
        }
    }
    Ok(())
}
