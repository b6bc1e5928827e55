//! One run: set up the cluster, drive the workload under the nemesis, heal, read
//! back, tear down, then check the history and write the run directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;

use crate::check::verdict::{Anomaly, Validity, Verdict};
use crate::check::{self, CheckOptions};
use crate::cluster::{Cluster, ClusterConfig, CounterSampler};
use crate::history::{self, Extra, NemesisPhase, OpFn, OpType};
use crate::nemesis::{self, Fault, NemesisConfig, Shape, Timeline};
use crate::report::{self, ReportMeta};
use crate::workload::{self, data, graph, Event, KeyPool, Leftovers, Recorder, WorkerContext, Workload};

/// The history's process id of the status sampler.
pub const STATUS_PROCESS: u64 = 9_000_000_002;
/// How often the status sampler reads the leader's recovery counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How long the final phase may take.
const FINAL_LIMIT: Duration = Duration::from_secs(120);

/// Everything a run needs.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// The `cairn` binary.
    pub binary: PathBuf,
    /// Schedulers (3 or 5).
    pub nodes: u64,
    /// How long the workload runs under faults.
    pub time_limit: Duration,
    /// The faults to inject.
    #[serde(serialize_with = "serialize_faults")]
    pub faults: Vec<Fault>,
    /// Partition shapes to choose from.
    #[serde(serialize_with = "serialize_shapes")]
    pub shapes: Vec<Shape>,
    /// Mean quiet period and fault length.
    pub nemesis_interval: Duration,
    /// Never two faults at once.
    pub one_fault_at_a_time: bool,
    /// The workload.
    #[serde(serialize_with = "serialize_workload")]
    pub workload: Workload,
    /// Concurrent clients.
    pub concurrency: u64,
    /// The seed of every random choice (nemesis and clients).
    pub seed: u64,
    /// The run directory.
    pub out_dir: PathBuf,
    /// Deliberate bugs to run the nodes with.
    pub inject_bug: Option<String>,
    /// The nodes' `--snapshot-every`.
    pub snapshot_every: u64,
    /// Names at a time in the catalog workload.
    pub keys: usize,
    /// Operations per name before it is replaced.
    pub ops_per_key: u64,
    /// How long one operation may take before it is recorded as `info`.
    pub op_timeout: Duration,
    /// Use network namespaces (needs root).
    pub netns: bool,
    /// Keep the nodes' data dirs after the run.
    pub keep_data: bool,
    /// `cairn worker` processes.
    pub workers: u64,
    /// Each worker's `--memory-limit`.
    pub worker_memory: String,
    /// Each worker's tmpfs data dir, in MiB (root only).
    pub worker_disk_mib: u64,
}

fn serialize_faults<S: serde::Serializer>(faults: &[Fault], serializer: S) -> Result<S::Ok, S::Error> {
    let names: Vec<&str> = faults.iter().map(|fault| fault.as_str()).collect();
    names.serialize(serializer)
}

fn serialize_shapes<S: serde::Serializer>(shapes: &[Shape], serializer: S) -> Result<S::Ok, S::Error> {
    let names: Vec<String> = shapes.iter().map(|shape| format!("{shape:?}").to_lowercase()).collect();
    names.serialize(serializer)
}

fn serialize_workload<S: serde::Serializer>(workload: &Workload, serializer: S) -> Result<S::Ok, S::Error> {
    workload.as_str().serialize(serializer)
}

/// What a run concluded.
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Every checker's verdict.
    pub verdicts: Vec<Verdict>,
    /// Operations completed (ok, fail or info).
    pub completed: usize,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
}

/// Performs a run. The cluster is torn down (processes, namespaces) on every path.
pub async fn run(config: RunConfig) -> anyhow::Result<RunOutcome> {
    std::fs::create_dir_all(&config.out_dir).with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    std::fs::write(config.out_dir.join("run.json"), serde_json::to_string_pretty(&config)?)?;
    let start = Instant::now();
    let recorder = Arc::new(Recorder::new(start));
    let timeline = Arc::new(Timeline::with_recorder(recorder.clone()));
    let mut faults = config.faults.clone();
    let skip = |faults: &mut Vec<Fault>, applies: &dyn Fn(Fault) -> bool, why: &str| {
        let skipped: Vec<&str> = faults.iter().filter(|f| applies(**f)).map(|f| f.as_str()).collect();
        if !skipped.is_empty() {
            timeline.record(
                NemesisPhase::Info,
                "setup",
                format!("SKIPPING {}: {why}", skipped.join(", ")),
            );
        }
        faults.retain(|fault| !applies(*fault));
    };
    if config.workers == 0 {
        skip(
            &mut faults,
            &Fault::needs_workers,
            "the run has no workers (--workers 0)",
        );
    }
    if !config.netns {
        skip(
            &mut faults,
            &Fault::needs_netns,
            "the processes run on loopback (network namespaces need root)",
        );
    }

    let cluster = Cluster::create(ClusterConfig {
        binary: config.binary.clone(),
        nodes: config.nodes,
        dir: config.out_dir.clone(),
        use_netns: config.netns,
        inject_bug: config.inject_bug.clone(),
        snapshot_every: config.snapshot_every,
        workers: config.workers,
        worker_memory: config.worker_memory.clone(),
        worker_disk_mib: config.worker_disk_mib,
        keep_data: config.keep_data,
    })?;
    if !cluster.has_worker_disks() {
        skip(
            &mut faults,
            &Fault::needs_worker_disks,
            "the workers' data dirs are not their own tmpfs (mounting one needs root)",
        );
    }
    if let Some(network) = &cluster.network {
        if network.netem_mode == crate::net::NetemMode::LossAndSlowLink && faults.contains(&Fault::Netem) {
            timeline.record(
                NemesisPhase::Info,
                "setup",
                "this kernel has no sch_netem: `netem` applies random loss (iptables) and a slow link (tbf) instead",
            );
        }
    }
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));
    let result = drive(&config, faults, cluster.clone(), timeline.clone(), recorder.clone()).await;
    {
        let mut cluster = cluster.lock().await;
        cluster.teardown();
        if !config.keep_data {
            let _ = std::fs::remove_dir_all(config.out_dir.join("data"));
        }
    }
    let (final_complete, interrupted) = result?;

    let ops = recorder.ops();
    let events = timeline.events();
    history::write_jsonl(&config.out_dir.join("history.jsonl"), &ops)?;
    history::write_jsonl(&config.out_dir.join("nemesis.jsonl"), &events)?;
    let mut verdicts = check::check_all(&ops, &CheckOptions::default());
    verdicts.push(recovery_verdict(final_complete, interrupted));
    std::fs::write(
        config.out_dir.join("results.json"),
        serde_json::to_string_pretty(&verdicts)?,
    )?;
    let meta = ReportMeta {
        title: format!(
            "cairn-jepsen: {} under {}",
            config.workload.as_str(),
            describe_faults(&config.faults)
        ),
        facts: vec![
            ("workload".to_string(), config.workload.as_str().to_string()),
            ("nemesis".to_string(), describe_faults(&config.faults)),
            ("nodes".to_string(), config.nodes.to_string()),
            (
                "workers".to_string(),
                if config.workers == 0 {
                    "none".to_string()
                } else {
                    format!(
                        "{} (memory limit {}, {})",
                        config.workers,
                        config.worker_memory,
                        if config.worker_disk_mib > 0 && crate::net::is_root() {
                            format!("a {} MiB tmpfs data dir each", config.worker_disk_mib)
                        } else {
                            "data dirs on the run's disk".to_string()
                        }
                    )
                },
            ),
            (
                "network".to_string(),
                if config.netns { "namespaces" } else { "loopback" }.to_string(),
            ),
            ("concurrency".to_string(), config.concurrency.to_string()),
            ("time limit".to_string(), format!("{} s", config.time_limit.as_secs())),
            ("seed".to_string(), config.seed.to_string()),
            (
                "snapshot every".to_string(),
                format!("{} entries", config.snapshot_every),
            ),
            (
                "injected bug".to_string(),
                config.inject_bug.clone().unwrap_or_else(|| "none".to_string()),
            ),
            ("binary".to_string(), config.binary.display().to_string()),
        ],
    };
    report::write(&config.out_dir, &meta, &ops, &events, &verdicts)?;
    Ok(RunOutcome {
        dir: config.out_dir.clone(),
        completed: recorder.completed(),
        verdicts,
        interrupted,
    })
}

fn describe_faults(faults: &[Fault]) -> String {
    if faults.is_empty() {
        return "no faults".to_string();
    }
    let names: Vec<&str> = faults.iter().map(|fault| fault.as_str()).collect();
    names.join(",")
}

/// After healing, the cluster must elect a leader and answer the final reads.
fn recovery_verdict(final_complete: bool, interrupted: bool) -> Verdict {
    let (validity, problem) = if interrupted {
        (
            Validity::Unknown,
            Some(("interrupted", "the run was interrupted before its final reads")),
        )
    } else if !final_complete {
        (
            Validity::Invalid,
            Some((
                "unavailable-after-heal",
                "after every fault was healed the cluster did not answer the final reads in time",
            )),
        )
    } else {
        (Validity::Valid, None)
    };
    Verdict {
        checker: "recovery".to_string(),
        validity,
        anomalies: problem
            .map(|(kind, explanation)| Anomaly {
                kind: kind.to_string(),
                key: None,
                explanation: explanation.to_string(),
                ops: Vec::new(),
            })
            .into_iter()
            .collect(),
        stats: Default::default(),
    }
}

/// Records one sample of the leader's recovery counters as a `status` operation
/// (`is_final` for the last one, after the final phase: it also marks that the
/// final phase ran).
async fn sample_counters(recorder: &Recorder, sampler: &CounterSampler, is_final: bool) {
    let event = |kind: OpType, error: Option<String>, extra: Extra| Event {
        process: STATUS_PROCESS,
        kind,
        f: OpFn::Status,
        key: Some("leader".to_string()),
        value: None,
        names: None,
        error,
        is_final,
        extra,
    };
    recorder.record(event(OpType::Invoke, None, Extra::default()));
    match sampler.sample().await {
        Ok(counters) => {
            let error = counters
                .is_none()
                .then(|| "the leader reports no recovery counters".to_string());
            recorder.record(event(
                OpType::Ok,
                error,
                Extra {
                    counters,
                    ..Extra::default()
                },
            ));
        }
        Err(error) => recorder.record(event(OpType::Fail, Some(format!("{error:#}")), Extra::default())),
    }
}

/// Setup, workload + nemesis, heal, final reads. Returns (final reads complete,
/// interrupted).
async fn drive(
    config: &RunConfig,
    faults: Vec<Fault>,
    cluster: Arc<tokio::sync::Mutex<Cluster>>,
    timeline: Arc<Timeline>,
    recorder: Arc<Recorder>,
) -> anyhow::Result<(bool, bool)> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop_tx = stop_tx.clone();
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match &mut terminate {
                    Some(terminate) => {
                        terminate.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let signalled = tokio::select! {
                result = tokio::signal::ctrl_c() => result.is_ok(),
                _ = terminated => true,
            };
            if signalled {
                eprintln!("interrupted: healing, stopping the processes and removing the namespaces");
                interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = stop_tx.send(true);
            }
        });
    }
    let sampler = {
        let mut cluster = cluster.lock().await;
        cluster.start_all()?;
        let leader = cluster.wait_healthy(Duration::from_secs(60)).await?;
        timeline.record(
            NemesisPhase::Info,
            "setup",
            format!(
                "{} nodes up, n{leader} leads: {}",
                config.nodes,
                cluster.addrs().join(" ")
            ),
        );
        if config.workers > 0 {
            cluster.wait_workers(Duration::from_secs(60)).await?;
            let addrs: Vec<String> = cluster
                .worker_ids()
                .into_iter()
                .map(|id| format!("w{id} {}", cluster.worker_addr(id)))
                .collect();
            timeline.record(
                NemesisPhase::Info,
                "setup",
                format!("{} workers up: {}", config.workers, addrs.join(" ")),
            );
            Some(Arc::new(CounterSampler::new(
                &cluster.addrs(),
                Duration::from_millis(800),
            )?))
        } else {
            None
        }
    };
    let sampling = sampler.clone().map(|sampler| {
        let recorder = recorder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                sample_counters(&recorder, &sampler, false).await;
                tokio::select! {
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    });
    let keys = Arc::new(KeyPool::new(config.keys, config.ops_per_key));
    let pool = Arc::new(data::DataPool::default());
    let replicas = config.workers.clamp(1, 2) as u32;
    let nonce = format!("{:08x}", config.seed as u32);
    let client_timeout = config.op_timeout.saturating_sub(Duration::from_millis(500));
    let mut workers = Vec::new();
    for worker in 0..config.concurrency {
        let client = cluster
            .lock()
            .await
            .client_for_tasks(
                client_timeout,
                client_timeout.min(Duration::from_secs(1)),
                client_timeout,
            )
            .await?;
        workers.push(tokio::spawn(workload::worker(WorkerContext {
            workload: config.workload,
            worker,
            concurrency: config.concurrency,
            client,
            recorder: recorder.clone(),
            keys: keys.clone(),
            seed: config.seed.wrapping_add(1 + worker),
            op_timeout: config.op_timeout,
            stop: stop_rx.clone(),
            pool: pool.clone(),
            replicas,
            nonce: nonce.clone(),
        })));
    }
    let nemesis = tokio::spawn(nemesis::run(
        NemesisConfig {
            faults,
            shapes: config.shapes.clone(),
            interval: config.nemesis_interval,
            seed: config.seed,
            one_at_a_time: config.one_fault_at_a_time,
        },
        cluster.clone(),
        timeline.clone(),
        stop_rx.clone(),
    ));
    let progress = {
        let recorder = recorder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    _ = stop.changed() => return,
                }
                eprintln!(
                    "[{:>7.2}s] {} operations completed",
                    recorder.elapsed().as_secs_f64(),
                    recorder.completed()
                );
            }
        })
    };
    let mut stop_wait = stop_rx.clone();
    tokio::select! {
        _ = tokio::time::sleep(config.time_limit) => {}
        _ = stop_wait.changed() => {}
    }
    let _ = stop_tx.send(true);
    let mut leftovers = Leftovers::default();
    for worker in workers {
        if let Ok(left) = worker.await {
            leftovers.graphs.extend(left.graphs);
        }
    }
    let _ = nemesis.await;
    progress.abort();
    if let Some(sampling) = sampling {
        let _ = sampling.await;
    }
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok((false, true));
    }
    let final_timeout = config.op_timeout.max(Duration::from_secs(10));
    let client = {
        let mut cluster = cluster.lock().await;
        nemesis::heal_all(&mut cluster, &timeline).await;
        match cluster.wait_healthy(Duration::from_secs(60)).await {
            Ok(leader) => timeline.record(NemesisPhase::Info, "heal", format!("healthy again, n{leader} leads")),
            Err(error) => timeline.record(NemesisPhase::Info, "heal", format!("{error:#}")),
        }
        if config.workers > 0 {
            match cluster.wait_workers(Duration::from_secs(60)).await {
                Ok(()) => timeline.record(NemesisPhase::Info, "heal", "every worker alive and connected"),
                Err(error) => timeline.record(NemesisPhase::Info, "heal", format!("{error:#}")),
            }
        }
        let timeout = final_timeout.saturating_sub(Duration::from_millis(500));
        cluster
            .client_for_tasks(timeout, timeout.min(Duration::from_secs(2)), timeout)
            .await?
    };
    eprintln!("final reads ...");
    let complete = match config.workload {
        Workload::Catalog | Workload::Durable => {
            workload::final_reads(recorder.clone(), client, 1_000_000, Duration::from_secs(90)).await
        }
        Workload::Data => {
            data::final_reads(recorder.clone(), client, &pool, 1_000_000, FINAL_LIMIT, final_timeout).await
        }
        Workload::Graph => {
            graph::final_gathers(
                recorder.clone(),
                client,
                leftovers.graphs,
                1_000_000,
                FINAL_LIMIT,
                final_timeout,
            )
            .await
        }
    };
    if let Some(sampler) = &sampler {
        // The last sample, after everything healed and settled: the counters' totals.
        tokio::time::sleep(SAMPLE_EVERY).await;
        sample_counters(&recorder, sampler, true).await;
    }
    Ok((complete, interrupted.load(std::sync::atomic::Ordering::SeqCst)))
}

/// The default run directory: `target/jepsen/<UTC time>-<workload>`, next to the
/// binary's target dir when it can be found.
pub fn default_out_dir(workload: Workload) -> PathBuf {
    let base = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(|target| target.join("jepsen")))
        .unwrap_or_else(|| PathBuf::from("jepsen-runs"));
    base.join(format!("{}-{}", utc_stamp(), workload.as_str()))
}

/// `YYYYMMDDTHHMMSSZ` for now.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_look_like_iso_basic_format() {
        let stamp = utc_stamp();
        assert_eq!(stamp.len(), 16, "{stamp}");
        assert!(stamp.starts_with("20"), "{stamp}");
        assert!(stamp.ends_with('Z'), "{stamp}");
    }
}
