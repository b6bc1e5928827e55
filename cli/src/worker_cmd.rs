//! `cairn worker`: one worker, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_worker::{parse_bytes, WorkerConfig};

use crate::args::WorkerArgs;
use crate::signals::shutdown_signal;

/// Validates the flags into a configuration.
pub fn config(args: &WorkerArgs) -> anyhow::Result<WorkerConfig> {
    let cluster = cairn_client::parse_cluster(&args.cluster).context("--cluster")?;
    let memory_limit = parse_bytes(&args.memory_limit).map_err(|reason| anyhow::anyhow!("--memory-limit: {reason}"))?;
    if args.heartbeat_ms == 0 {
        bail!("--heartbeat-ms must be positive");
    }
    let mut config = WorkerConfig::new(cluster, args.data_dir.clone(), memory_limit, args.nthreads);
    config.advertise_addr = args.advertise.clone();
    config.heartbeat_interval = Duration::from_millis(args.heartbeat_ms);
    config.orphan_grace = Duration::from_secs(args.orphan_grace_secs);
    config.release_free_memory = Some(crate::allocator::release_free_memory);
    config.validate()?;
    Ok(config)
}

/// Runs the worker until a shutdown signal.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let mut config = config(&args)?;
    let addr: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen `{}` is not an ip:port address", args.listen))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if config.advertise_addr.is_none() && addr.ip().is_unspecified() {
        bail!("--listen {addr} is a wildcard address: give --advertise HOST:PORT so others can reach this worker");
    }
    if config.advertise_addr.is_none() {
        config.advertise_addr = Some(listener.local_addr()?.to_string());
    }
    cairn_worker::run(config, listener, shutdown_signal())
        .await
        .context("the worker failed")?;
    Ok(())
}
