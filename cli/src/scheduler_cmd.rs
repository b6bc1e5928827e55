//! `cairn scheduler`: one replica, until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_raft::{check_before_bootstrap, Bootstrap, BootstrapCheck, NodeConfig, RaftSettings};
use cairn_scheduler::server::{InjectedBugs, SchedulerConfig};

use crate::args::SchedulerArgs;
use crate::signals::shutdown_signal;

/// Parses `--peers`: `ID=HOST:PORT,...`.
pub fn parse_peers(text: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("--peers entry `{part}` is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("--peers entry `{part}`: `{id}` is not a node id"))?;
        if id == 0 {
            bail!("--peers entry `{part}`: node ids start at 1");
        }
        addr.trim()
            .parse::<SocketAddr>()
            .with_context(|| format!("--peers entry `{part}`: `{addr}` is not an ip:port address"))?;
        if peers.insert(id, addr.trim().to_string()).is_some() {
            bail!("--peers names node {id} twice");
        }
    }
    if peers.is_empty() {
        bail!("--peers is empty");
    }
    Ok(peers)
}

fn parse_range(text: &str) -> anyhow::Result<(u64, u64)> {
    let (min, max) = text
        .split_once('-')
        .with_context(|| format!("--election-timeout-ms `{text}` is not MIN-MAX"))?;
    let min: u64 = min
        .trim()
        .parse()
        .context("--election-timeout-ms: MIN is not a number")?;
    let max: u64 = max
        .trim()
        .parse()
        .context("--election-timeout-ms: MAX is not a number")?;
    Ok((min, max))
}

/// Validates the flags into a configuration.
pub fn config(args: &SchedulerArgs) -> anyhow::Result<SchedulerConfig> {
    if args.id == 0 {
        bail!("--id must be a positive integer");
    }
    let bootstrap = match (&args.peers, args.join) {
        (Some(peers), _) => Bootstrap::Peers {
            peers: parse_peers(peers)?,
            token: args.cluster_token.clone(),
            initialize: true,
        },
        (None, true) => Bootstrap::Join,
        (None, false) => Bootstrap::RestartOnly,
    };
    let (election_timeout_min_ms, election_timeout_max_ms) = parse_range(&args.election_timeout_ms)?;
    if args.heartbeat_ms == 0
        || election_timeout_min_ms <= args.heartbeat_ms * 2
        || election_timeout_max_ms <= election_timeout_min_ms
    {
        bail!(
            "timing must satisfy 0 < 2 × --heartbeat-ms ({}) < election timeout MIN ({}) < MAX ({})",
            args.heartbeat_ms,
            election_timeout_min_ms,
            election_timeout_max_ms
        );
    }
    if args.snapshot_every == 0 {
        bail!("--snapshot-every must be positive");
    }
    let injected_bugs = match &args.unsafe_inject_bug {
        None => InjectedBugs::default(),
        Some(_) if !cfg!(debug_assertions) => {
            bail!("--unsafe-inject-bug exists only in debug builds (it makes the scheduler lose data on purpose)")
        }
        Some(names) => names
            .parse::<InjectedBugs>()
            .map_err(|error| anyhow::anyhow!("--unsafe-inject-bug: {error}"))?,
    };
    Ok(SchedulerConfig {
        injected_bugs,
        node: NodeConfig {
            node_id: args.id,
            data_dir: args.data_dir.clone(),
            bootstrap,
            settings: RaftSettings {
                heartbeat_ms: args.heartbeat_ms,
                election_timeout_min_ms,
                election_timeout_max_ms,
                snapshot_every: args.snapshot_every,
                logs_kept_after_snapshot: args.snapshot_keep_logs,
                max_uncommitted_bytes: args.max_uncommitted_mib.max(1).saturating_mul(1024 * 1024),
            },
        },
        request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
        worker_timeout: Duration::from_millis(args.worker_timeout_ms.max(1)),
    })
}

/// How long a replica about to bootstrap with an empty data dir waits for its peers
/// to say whether they know it (a replica started alone waits this long once).
pub const BOOTSTRAP_PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// The check before a bootstrap with `--peers` (`None` for `--join` or a restart).
fn bootstrap_check(args: &SchedulerArgs, config: &SchedulerConfig) -> Option<BootstrapCheck> {
    match &config.node.bootstrap {
        Bootstrap::Peers { peers, token, .. } => Some(BootstrapCheck {
            node_id: config.node.node_id,
            data_dir: config.node.data_dir.clone(),
            peers: peers.clone(),
            token: token.clone(),
            listen: args.listen.clone(),
            deadline: BOOTSTRAP_PROBE_DEADLINE,
        }),
        Bootstrap::Join | Bootstrap::RestartOnly => None,
    }
}

/// Runs the replica until a shutdown signal.
pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let mut config = config(&args)?;
    let addr: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen `{}` is not an ip:port address", args.listen))?;
    let mut listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if let Some(check) = bootstrap_check(&args, &config) {
        // With an empty data dir: refuse if a peer knows this replica (its data dir
        // was lost). The port is bound first so that replicas starting together answer
        // each other's probes.
        let findings = check_before_bootstrap(&check, listener)
            .await
            .with_context(|| format!("scheduler {} failed", args.id))?;
        listener = findings.listener;
        if let (Some(peer), Bootstrap::Peers { initialize, .. }) = (findings.formed_by, &mut config.node.bootstrap) {
            // Starting after the others: initializing would stand for election in
            // term 1 and depose their leader; its leader brings this replica in.
            tracing::info!(peer, "peer {peer} has already formed the cluster");
            *initialize = false;
        }
    }
    cairn_scheduler::run(config, listener, shutdown_signal())
        .await
        .with_context(|| format!("scheduler {} failed", args.id))?;
    Ok(())
}
