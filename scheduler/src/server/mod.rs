//! The scheduler server: one replica serving the Catalog, Admin and Raft APIs on one
//! gRPC port.

mod admin_service;
mod bugs;
mod catalog_service;
mod consensus;
mod convert;
mod convert_graph;
mod dispatch;
mod error;
mod flight_service;
mod liveness;
mod reconfig;
mod repair;
mod task_service;
mod worker_service;

use std::future::Future;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use cairn_proto::v1::admin_server::AdminServer;
use cairn_proto::v1::catalog_server::CatalogServer;
use cairn_proto::v1::scheduler_server::SchedulerServer;
use cairn_proto::v1::worker_registry_server::WorkerRegistryServer;
use cairn_raft::network::MAX_MESSAGE_BYTES;
use cairn_raft::{NodeConfig, OpenError, RaftNode};
use tokio::net::TcpListener;

pub use admin_service::AdminService;
pub use bugs::{InjectedBugs, BUG_NAMES};
pub use catalog_service::CatalogService;
pub use consensus::{Consensus, DroppedChunks};
pub use dispatch::Dispatcher;
pub use error::{ServerError, ERROR_KIND_KEY, LEADER_ADDR_KEY, LEADER_ID_KEY};
pub use flight_service::CatalogFlightService;
pub use liveness::Liveness;
pub use task_service::TaskService;
pub use worker_service::WorkerService;

use crate::control::ControlState;
use crate::scheduling::CoreConfig;

/// Everything one scheduler replica needs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// The Raft replica: id, data dir, bootstrap, timing.
    pub node: NodeConfig,
    /// How long a write or linearizable read may wait for a quorum.
    pub request_timeout: Duration,
    /// Deliberate bugs for the fault-injection suite (none unless asked for).
    pub injected_bugs: InjectedBugs,
    /// How long the leader waits without a heartbeat before it marks a worker gone.
    pub worker_timeout: Duration,
}

/// Why a scheduler stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The data dir or Raft could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {source}")]
    Serve {
        /// What tonic said.
        source: tonic::transport::Error,
    },
}

/// How long open connections may delay a stop after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs one scheduler replica on `listener` until `shutdown` resolves, then stops
/// Raft cleanly. The listener's address must be the one the peers know it by.
pub async fn run(
    config: SchedulerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SchedulerError> {
    let node = RaftNode::<ControlState>::open(config.node.clone()).await?;
    let local_addr = listener.local_addr().ok();
    tracing::info!(node = node.node_id, addr = ?local_addr, "scheduler serving");
    if config.injected_bugs.any() {
        tracing::error!(
            bugs = ?config.injected_bugs,
            "THIS REPLICA RUNS WITH DELIBERATE BUGS (--unsafe-inject-bug): it can lose or misread data"
        );
    }
    let consensus = Consensus::new(
        node.replica(),
        node.state.clone(),
        config.request_timeout,
        config.injected_bugs,
    );
    let liveness = Liveness::default();
    let dispatcher = Dispatcher::start(consensus.clone(), CoreConfig::default());
    let monitor = tokio::spawn(liveness::monitor(
        consensus.clone(),
        liveness.clone(),
        dispatcher.clone(),
        config.worker_timeout,
    ));
    let repairs = tokio::spawn(repair::run(consensus.clone(), dispatcher.clone()));
    let catalog = CatalogServer::new(CatalogService::new(consensus.clone(), dispatcher.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let workers = WorkerRegistryServer::new(WorkerService::new(
        consensus.clone(),
        node.identity.clone(),
        liveness.clone(),
        dispatcher.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let scheduler = SchedulerServer::new(TaskService::new(consensus.clone(), dispatcher.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let flight = FlightServiceServer::new(CatalogFlightService::new(consensus.clone()))
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServer::new(AdminService::new(
        consensus,
        node.identity.clone(),
        liveness,
        dispatcher.clone(),
    ));
    // tonic's graceful shutdown waits for every connection to close, and peers and
    // workers keep theirs open: after the signal it gets SHUTDOWN_GRACE, then Raft
    // stops regardless (a stop must not hang on a peer).
    let (stopping, mut stop_requested) = tokio::sync::watch::channel(false);
    // Peers' AppendEntries streams end at the signal, not at the grace.
    let transport = node.transport(stopping.subscribe());
    let signal_then_grace = async move {
        shutdown.await;
        let _ = stopping.send(true);
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let server_shutdown = async move {
        let _ = stop_requested.wait_for(|stopping| *stopping).await;
    };
    let served = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(transport)
        .add_service(catalog)
        .add_service(workers)
        .add_service(scheduler)
        .add_service(flight)
        .add_service(admin)
        .serve_with_incoming_shutdown(
            // Small messages (task assignments, reports, catalog calls) must not wait
            // for Nagle's algorithm: the builder's `tcp_nodelay` applies only to
            // listeners tonic binds itself, not to one handed in.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            server_shutdown,
        );
    let served = tokio::select! {
        served = served => served,
        () = signal_then_grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the shutdown grace; stopping anyway");
            Ok(())
        }
    };
    monitor.abort();
    repairs.abort();
    tracing::info!(node = node.node_id, "scheduler stopping");
    node.replica().shutdown().await;
    served.map_err(|source| SchedulerError::Serve { source })
}
