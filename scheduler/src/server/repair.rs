//! The leader's repair loop: brings persisted datasets back to their replica count
//! after workers are lost.
//!
//! Every [`REPAIR_INTERVAL`] the leader looks at each chunk of each `Persisted`
//! dataset. A chunk with fewer live copies than the dataset's `replicas` but at least
//! one is copied by a live holder to other live workers (the workers' `persist`
//! Flight action: the holder copies it, each copy is fsync'd and checked against the
//! holder's checksum before the holder answers). A chunk with no live copy whose key
//! is a task of the table is recomputed from lineage by the scheduling core (a
//! published result is pinned, so the core computes it again when its holders are
//! lost); once its result is in memory on a worker, that worker makes it durable and
//! copies it the same way. Either way the new holders reach the catalog through Raft
//! (`ChunksCopied`), so readers find them. A chunk with no live copy and no lineage is
//! lost: `info` and `status` say so by name, and a read of the dataset fails rather
//! than return part of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::Action;
use cairn_proto::v1 as pb;
use futures::StreamExt;
use prost::Message;

use super::consensus::Consensus;
use super::dispatch::Dispatcher;
use crate::catalog::EntryKind;
use crate::control::{ControlCommand, ControlState};
use crate::graph::TaskKey;
use crate::registry::{WorkerId, WorkerState};

/// How often the leader looks for chunks to repair.
const REPAIR_INTERVAL: Duration = Duration::from_secs(1);
/// How many chunks one round repairs at most (the rest wait for the next round).
const MAX_COPIES_PER_ROUND: usize = 64;
/// How long one copy may take (a holder copies at most 1 GiB).
const COPY_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest pause before a failed copy is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The workers' Flight action that makes a held chunk durable and copies it.
const PERSIST_ACTION: &str = "persist";

/// One chunk to copy: from `source` (a live worker holding it) to `targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Copy {
    key: String,
    source: (WorkerId, String),
    targets: Vec<(WorkerId, String)>,
    /// Whether the source holds it only in memory (recomputed): it must be
    /// registered as a holder too.
    source_is_new: bool,
}

/// A chunk that needs more copies, as the catalog sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shortfall {
    key: String,
    /// Live workers holding it durably (per the catalog).
    live: Vec<WorkerId>,
    /// Every worker the catalog lists for it (live or not).
    listed: Vec<WorkerId>,
    /// How many live copies the dataset asks for.
    replicas: usize,
}

/// Runs until the process ends; does something only while this replica leads.
pub async fn run(consensus: Consensus, dispatcher: Dispatcher) {
    let mut tick = tokio::time::interval(REPAIR_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Chunks whose copy failed: not tried again before the time given (doubling, up
    // to a minute), so a paused or unreachable holder is not asked every second.
    let mut backoff: BTreeMap<String, (tokio::time::Instant, Duration)> = BTreeMap::new();
    loop {
        tick.tick().await;
        if dispatcher.term().is_none() {
            continue;
        }
        let (mut shortfalls, addresses) = consensus.state.read(|state| (shortfalls(state), live_addresses(state)));
        let now = tokio::time::Instant::now();
        backoff.retain(|key, _| shortfalls.iter().any(|shortfall| &shortfall.key == key));
        shortfalls.retain(|shortfall| backoff.get(&shortfall.key).is_none_or(|(next, _)| *next <= now));
        if shortfalls.is_empty() {
            continue;
        }
        // Chunks with no live copy: where the core holds a recomputed result.
        let lost: Vec<TaskKey> = shortfalls
            .iter()
            .filter(|shortfall| shortfall.live.is_empty())
            .filter_map(|shortfall| TaskKey::parse(&shortfall.key).ok())
            .collect();
        let mut recomputed: BTreeMap<String, Vec<WorkerId>> = BTreeMap::new();
        if !lost.is_empty() {
            if let Some(results) = dispatcher.states(lost).await {
                for result in results.into_iter().filter(|result| result.state == "memory") {
                    let holders = result
                        .locations
                        .iter()
                        .filter_map(|location| WorkerId::parse(&location.worker_id).ok())
                        .collect();
                    recomputed.insert(result.key, holders);
                }
            }
        }
        let copies = plan(&shortfalls, &recomputed, &addresses);
        for copy in copies {
            if dispatcher.term().is_none() {
                break;
            }
            match copy_chunk(&copy).await {
                Ok(holders) => {
                    backoff.remove(&copy.key);
                    let command = ControlCommand::ChunksCopied {
                        copies: vec![(copy.key.clone(), holders.clone())],
                    };
                    match consensus.propose(&command).await {
                        Ok(_) => tracing::info!(
                            chunk = %copy.key,
                            from = %copy.source.0,
                            holders = ?holders,
                            "repaired a persisted chunk's replicas"
                        ),
                        Err(error) => tracing::warn!(chunk = %copy.key, %error, "cannot record a repaired chunk"),
                    }
                }
                Err(message) => {
                    let pause = backoff
                        .get(&copy.key)
                        .map_or(REPAIR_INTERVAL * 2, |(_, pause)| (*pause * 2).min(MAX_BACKOFF));
                    backoff.insert(copy.key.clone(), (tokio::time::Instant::now() + pause, pause));
                    tracing::warn!(
                        chunk = %copy.key,
                        from = %copy.source.0,
                        %message,
                        retry_in = ?pause,
                        "cannot repair a persisted chunk"
                    )
                }
            }
        }
    }
}

/// Every chunk of a persisted dataset with fewer live copies than asked, each once.
fn shortfalls(state: &ControlState) -> Vec<Shortfall> {
    let alive = |worker: &WorkerId| {
        state
            .worker(worker)
            .is_some_and(|record| record.state == WorkerState::Alive)
    };
    let mut seen = BTreeSet::new();
    let mut shortfalls = Vec::new();
    for entry in state.entries_in_order() {
        let EntryKind::Persisted(collection) = &entry.kind else {
            continue;
        };
        let replicas = collection.replicas.max(1) as usize;
        for chunk in &collection.chunks {
            if !seen.insert(chunk.key.clone()) {
                continue;
            }
            let live: Vec<WorkerId> = chunk.locations.iter().copied().filter(alive).collect();
            if live.len() < replicas {
                shortfalls.push(Shortfall {
                    key: chunk.key.clone(),
                    live,
                    listed: chunk.locations.clone(),
                    replicas,
                });
            }
        }
    }
    shortfalls
}

/// The live workers and their addresses, in registration order.
fn live_addresses(state: &ControlState) -> Vec<(WorkerId, String)> {
    state
        .workers()
        .into_iter()
        .filter(|record| record.state == WorkerState::Alive)
        .map(|record| (record.worker, record.addr.clone()))
        .collect()
}

/// The copies to make this round: for each shortfall with a source (a live durable
/// holder, or a worker holding the recomputed result), the targets that bring it to
/// its replica count, chosen among live workers not holding it, fewest new copies
/// first (ties by registration order). Pure, for tests.
fn plan(
    shortfalls: &[Shortfall],
    recomputed: &BTreeMap<String, Vec<WorkerId>>,
    live: &[(WorkerId, String)],
) -> Vec<Copy> {
    let address: BTreeMap<WorkerId, &String> = live.iter().map(|(worker, addr)| (*worker, addr)).collect();
    let mut load: BTreeMap<WorkerId, usize> = live.iter().map(|(worker, _)| (*worker, 0)).collect();
    let mut copies = Vec::new();
    for shortfall in shortfalls {
        if copies.len() >= MAX_COPIES_PER_ROUND {
            break;
        }
        let (source, source_is_new, mut holders) = match shortfall.live.first() {
            Some(source) => (*source, false, shortfall.live.clone()),
            None => match recomputed
                .get(&shortfall.key)
                .and_then(|holders| holders.iter().find(|worker| address.contains_key(worker)))
            {
                Some(source) => (*source, true, vec![*source]),
                None => continue,
            },
        };
        let Some(source_addr) = address.get(&source) else {
            continue;
        };
        let wanted = shortfall.replicas.saturating_sub(holders.len());
        let mut candidates: Vec<WorkerId> = live
            .iter()
            .map(|(worker, _)| *worker)
            .filter(|worker| !holders.contains(worker) && !shortfall.listed.contains(worker))
            .collect();
        candidates.sort_by_key(|worker| load.get(worker).copied().unwrap_or(0));
        let targets: Vec<(WorkerId, String)> = candidates
            .into_iter()
            .take(wanted)
            .filter_map(|worker| address.get(&worker).map(|addr| (worker, (*addr).clone())))
            .collect();
        if targets.is_empty() && !source_is_new {
            // No live worker left to copy to.
            continue;
        }
        for (worker, _) in &targets {
            *load.entry(*worker).or_default() += 1;
            holders.push(*worker);
        }
        copies.push(Copy {
            key: shortfall.key.clone(),
            source: (source, (*source_addr).clone()),
            targets,
            source_is_new,
        });
    }
    copies
}

/// Asks the source to make the chunk durable and copy it to the targets; returns
/// every worker holding it durably afterwards.
async fn copy_chunk(copy: &Copy) -> Result<Vec<WorkerId>, String> {
    let request = pb::ChunkUpload {
        key: copy.key.clone(),
        replicate_to: copy
            .targets
            .iter()
            .map(|(worker, addr)| pb::ChunkLocation {
                worker_id: worker.to_string(),
                addr: addr.clone(),
                live: true,
            })
            .collect(),
    };
    let call = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", copy.source.1))
            .map_err(|error| error.to_string())?
            .connect_timeout(Duration::from_secs(2));
        let channel = endpoint.connect().await.map_err(|error| error.to_string())?;
        let mut client = FlightServiceClient::new(channel);
        let action = Action {
            r#type: PERSIST_ACTION.to_string(),
            body: request.encode_to_vec().into(),
        };
        let mut results = client
            .do_action(action)
            .await
            .map_err(|status| status.message().to_string())?
            .into_inner();
        let result = results
            .next()
            .await
            .ok_or("the worker answered nothing")?
            .map_err(|status| status.message().to_string())?;
        let stored = pb::ChunkStored::decode(result.body).map_err(|error| error.to_string())?;
        Ok::<_, String>(stored)
    };
    let stored = tokio::time::timeout(COPY_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {COPY_TIMEOUT:?}"))??;
    let mut holders: Vec<WorkerId> = stored
        .holders
        .iter()
        .filter_map(|holder| WorkerId::parse(holder).ok())
        .collect();
    if !holders.contains(&copy.source.0) {
        holders.push(copy.source.0);
    }
    Ok(holders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: u64) -> WorkerId {
        WorkerId(id)
    }

    fn live(ids: &[u64]) -> Vec<(WorkerId, String)> {
        ids.iter().map(|id| (worker(*id), format!("127.0.0.1:{id}"))).collect()
    }

    fn shortfall(key: &str, live: &[u64], listed: &[u64], replicas: usize) -> Shortfall {
        Shortfall {
            key: key.to_string(),
            live: live.iter().map(|id| worker(*id)).collect(),
            listed: listed.iter().map(|id| worker(*id)).collect(),
            replicas,
        }
    }

    /// A chunk down to one copy of two is copied from it to a live worker that does
    /// not hold it; copies spread over the workers.
    #[test]
    fn copies_from_a_live_holder_to_other_live_workers() {
        let shortfalls = vec![
            shortfall("a.0", &[1], &[1, 2], 2),
            shortfall("a.1", &[3], &[3, 2], 2),
            shortfall("a.2", &[1], &[1, 2], 3),
        ];
        let copies = plan(&shortfalls, &BTreeMap::new(), &live(&[1, 3, 4]));
        assert_eq!(copies.len(), 3);
        assert_eq!(copies[0].source.0, worker(1));
        assert_eq!(copies[0].targets.iter().map(|t| t.0).collect::<Vec<_>>(), [worker(3)]);
        assert_eq!(copies[1].source.0, worker(3));
        assert_eq!(copies[1].targets.iter().map(|t| t.0).collect::<Vec<_>>(), [worker(1)]);
        assert_eq!(
            copies[2].targets.iter().map(|t| t.0).collect::<Vec<_>>(),
            [worker(4), worker(3)],
            "fewest copies first"
        );
        assert!(copies.iter().all(|copy| !copy.source_is_new));
    }

    /// A chunk with no live copy is copied from where the core recomputed it, and
    /// nothing is planned for one that is neither held nor recomputed, or when no
    /// worker is left to copy to.
    #[test]
    fn recomputed_chunks_are_made_durable_where_they_are() {
        let shortfalls = vec![
            shortfall("t-1", &[], &[2], 2),
            shortfall("t-2", &[], &[2], 2),
            shortfall("a.0", &[1], &[1, 2], 2),
        ];
        let recomputed = BTreeMap::from([("t-1".to_string(), vec![worker(3)])]);
        let copies = plan(&shortfalls, &recomputed, &live(&[1, 3]));
        assert_eq!(copies.len(), 2, "{copies:?}");
        assert_eq!(copies[0].key, "t-1");
        assert_eq!(copies[0].source.0, worker(3));
        assert!(copies[0].source_is_new);
        assert_eq!(copies[0].targets.iter().map(|t| t.0).collect::<Vec<_>>(), [worker(1)]);
        assert_eq!(copies[1].key, "a.0");
        assert_eq!(copies[1].targets.iter().map(|t| t.0).collect::<Vec<_>>(), [worker(3)]);
        let alone = plan(&[shortfall("a.0", &[1], &[1, 2], 2)], &BTreeMap::new(), &live(&[1]));
        assert!(alone.is_empty(), "nowhere to copy to");
    }
}
