//! One worker process: opens its data dir and chunk store, serves Arrow Flight,
//! links to the schedulers, and watches its memory.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;

use crate::cluster_link::run_link;
use crate::config::{format_bytes, WorkerConfig};
use crate::error::WorkerError;
use crate::flight::{WorkerData, WorkerFlightService, MAX_MESSAGE_BYTES};
use crate::flight_get::FlightRoutes;
use crate::identity::WorkerIdentity;
use crate::ops::OpRegistry;
use crate::rss::process_rss;
use crate::store::{ChunkStore, StoreConfig};
use crate::tasks::Executor;

/// How often the worker compares its RSS with the limits.
const PRESSURE_INTERVAL: Duration = Duration::from_millis(100);

/// How long open connections may delay a stop after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Chunk uploads a worker receives at once (others wait, unread).
const UPLOADS_AT_ONCE: usize = 2;

/// The directory of chunk files inside a worker's data dir.
pub const CHUNK_DIR: &str = "chunks";

/// Runs a worker with the built-in operations on `listener` until `shutdown`
/// resolves or the cluster refuses it.
pub async fn run(
    config: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    run_with_operations(config, listener, shutdown, OpRegistry::builtins()).await
}

/// Runs a worker offering `operations` (the built-ins plus a custom binary's own,
/// see `worker/examples/custom_worker.rs`).
///
/// ```no_run
/// # async fn demo(config: cairn_worker::WorkerConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let operations = cairn_worker::ops::OpRegistry::builtins();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7201").await?;
/// cairn_worker::run_with_operations(config, listener, std::future::pending(), operations).await?;
/// # Ok(()) }
/// ```
pub async fn run_with_operations(
    config: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    operations: OpRegistry,
) -> Result<(), WorkerError> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    let identity = tokio::task::spawn_blocking(move || WorkerIdentity::load_or_create(&data_dir))
        .await
        .map_err(|error| WorkerError::Config {
            reason: error.to_string(),
        })??;
    let mut store_config = StoreConfig::new(config.data_dir.join(CHUNK_DIR), config.memory_limit);
    store_config.target_fraction = config.target_fraction;
    store_config.spill_fraction = config.spill_fraction;
    store_config.pause_fraction = config.pause_fraction;
    store_config.validate()?;
    let (store, report) = tokio::task::spawn_blocking(move || ChunkStore::open(store_config))
        .await
        .map_err(|error| WorkerError::Config {
            reason: error.to_string(),
        })??;
    for (key, reason) in &report.corrupt {
        tracing::error!(chunk = %key, %reason, "corrupt chunk file dropped at start; it will not be served");
    }
    let local = listener.local_addr().map_err(|error| WorkerError::Io {
        path: config.data_dir.clone(),
        source: error,
    })?;
    let addr = config.advertise_addr.clone().unwrap_or_else(|| local.to_string());
    tracing::info!(
        worker = %identity.worker_id,
        %addr,
        chunks = report.chunks.len(),
        corrupt = report.corrupt.len(),
        memory_limit = %format_bytes(config.memory_limit),
        "worker serving"
    );
    let data = WorkerData {
        worker_id: identity.worker_id.clone(),
        store: store.clone(),
        lost: Arc::new(Mutex::new(Vec::new())),
        upload_permits: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
        forwarding_permits: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
        boot: rand::random::<u64>().max(1),
        registered: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let flight = FlightServiceServer::new(WorkerFlightService::new(data.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let flight = FlightRoutes::new(data.clone(), flight);
    let executor = Executor::new(config.nthreads as usize, store.clone(), Arc::new(operations));
    let pressure = tokio::spawn(watch_pressure(store, config.release_free_memory));
    // Spawned, not polled by this function: the caller may be `block_on`'s own future
    // on the main thread, outside the runtime's workers, and every message of the task
    // stream would then cross from the thread running its connection to the main
    // thread and back (with `--runtime-threads 1` that is two threads for one stream).
    let mut link = tokio::spawn(run_link(config, identity, addr, data, executor));
    // tonic's graceful shutdown waits for every connection to close, and a client that
    // stopped answering (paused, cut off, blocked) never closes its own: after the
    // signal, connections get SHUTDOWN_GRACE, then the worker stops regardless.
    let (stopping, mut stop_requested) = tokio::sync::watch::channel(false);
    let signal_then_grace = async move {
        shutdown.await;
        let _ = stopping.send(true);
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let served = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Uploads and copies stream whole chunks in: the same windows as the client's.
        .initial_stream_window_size(cairn_client::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(cairn_client::CONNECTION_WINDOW_BYTES)
        .max_frame_size(cairn_client::MAX_FRAME_BYTES)
        .add_service(flight)
        .serve_with_incoming_shutdown(
            // Small messages (task assignments, reports, catalog calls) must not wait
            // for Nagle's algorithm: the builder's `tcp_nodelay` applies only to
            // listeners tonic binds itself, not to one handed in.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                let _ = stop_requested.wait_for(|stopping| *stopping).await;
            },
        );
    let result = tokio::select! {
        served = served => served.map_err(|source| WorkerError::Serve { source }),
        linked = &mut link => match linked {
            Ok(linked) => linked,
            Err(error) => Err(WorkerError::Link {
                reason: format!("the cluster link's task ended abnormally: {error}"),
            }),
        },
        () = signal_then_grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the shutdown grace; stopping anyway");
            Ok(())
        }
    };
    link.abort();
    pressure.abort();
    tracing::info!("worker stopping");
    result
}

/// Feeds the process RSS to the store: it spills and pauses on RSS too. With
/// `release_free_memory`, an RSS above the store's target first has the allocator give
/// back the freed memory it keeps, and is read again: memory kept for reuse is not
/// data, and must not make the worker spill or pause.
async fn watch_pressure(store: ChunkStore, release_free_memory: Option<fn()>) {
    let mut tick = tokio::time::interval(PRESSURE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(mut rss) = process_rss() else {
            continue;
        };
        let store = store.clone();
        let paused_before = store.paused();
        let paused_after = tokio::task::spawn_blocking(move || {
            let target = store.config().thresholds().target_bytes;
            if let Some(release) = release_free_memory.filter(|_| rss > target) {
                release();
                if let Some(after) = process_rss() {
                    tracing::debug!(before = rss, after, target, "free memory given back to the OS");
                    rss = after;
                }
            }
            store.check_pressure(rss);
            store.paused()
        })
        .await
        .unwrap_or(None);
        match (&paused_before, &paused_after) {
            (None, Some(reason)) => tracing::warn!(%reason, "worker paused: it accepts no new chunks"),
            (Some(_), None) => tracing::info!("worker resumed: it accepts chunks again"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::StoreConfig;

    static RELEASES: AtomicUsize = AtomicUsize::new(0);

    fn count_release() {
        RELEASES.fetch_add(1, Ordering::SeqCst);
    }

    /// An RSS above the store's target has the allocator give back its free memory
    /// before the store hears of it; below it, nothing is released.
    #[tokio::test]
    async fn free_memory_is_released_only_above_the_threshold() -> anyhow::Result<()> {
        // A target of 0.6 PiB, then of 0.6 bytes.
        let (big, small) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let store = ChunkStore::open(StoreConfig::new(big.path(), 1 << 50))?.0;
        let watching = tokio::spawn(watch_pressure(store, Some(count_release)));
        tokio::time::sleep(PRESSURE_INTERVAL * 4).await;
        watching.abort();
        assert_eq!(RELEASES.load(Ordering::SeqCst), 0, "no RSS is above the target");
        let store = ChunkStore::open(StoreConfig::new(small.path(), 1))?.0;
        let watching = tokio::spawn(watch_pressure(store, Some(count_release)));
        tokio::time::sleep(PRESSURE_INTERVAL * 4).await;
        watching.abort();
        assert!(
            RELEASES.load(Ordering::SeqCst) >= 2,
            "every tick above the threshold releases"
        );
        Ok(())
    }
}
