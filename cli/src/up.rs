//! `cairn up`: a local cluster of scheduler child processes on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::args::UpArgs;
use crate::local_cluster::{
    plan_cluster, plan_workers, port_is_free, port_of, wait_for_leader, wait_for_workers, ClusterFile, LocalCluster,
    CLUSTER_FILE,
};
use crate::signals::shutdown_signal;

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("cannot read the current directory")?
        .join(path))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Loads the cluster recorded in `dir`, or plans a new one.
fn cluster_file(args: &UpArgs, dir: &Path) -> anyhow::Result<ClusterFile> {
    let path = dir.join(CLUSTER_FILE);
    let new = !path.exists();
    let mut file = if new {
        let token = format!("{:016x}", rand::random::<u64>());
        plan_cluster(dir, args.schedulers, args.base_port, token)?
    } else {
        ClusterFile::read(&path)?
    };
    if file.schedulers.len() as u64 != args.schedulers {
        bail!(
            "{} holds a cluster of {} schedulers; pass --schedulers {} or use another --dir",
            dir.display(),
            file.schedulers.len(),
            file.schedulers.len()
        );
    }
    let workers_before = file.workers.len();
    plan_workers(
        &mut file,
        dir,
        args.workers,
        args.worker_base_port,
        &args.worker_memory_limit,
    )?;
    if new || file.workers.len() != workers_before {
        file.write(&path)?;
    }
    if new {
        return Ok(file);
    }
    let addrs = file
        .schedulers
        .iter()
        .map(|entry| (entry.addr.clone(), format!("scheduler {}", entry.id)))
        .chain(
            file.workers
                .iter()
                .map(|entry| (entry.addr.clone(), format!("worker {}", entry.index))),
        );
    for (addr, what) in addrs {
        if let Some(port) = port_of(&addr) {
            if !port_is_free(port) {
                bail!(
                    "{addr} ({what}) is already in use: is this cluster already running (another `cairn up --dir {}`)?",
                    dir.display()
                );
            }
        }
    }
    Ok(file)
}

/// Starts the cluster, prints where it is, and stops it cleanly on Ctrl-C/SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    if args.schedulers == 0 || args.schedulers > 9 {
        bail!("--schedulers must be between 1 and 9 (3 or 5 for high availability)");
    }
    if args.workers > 64 {
        bail!("--workers must be at most 64");
    }
    cairn_worker::parse_bytes(&args.worker_memory_limit)
        .map_err(|reason| anyhow::anyhow!("--worker-memory-limit: {reason}"))?;
    let dir = absolute(&args.dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = cluster_file(&args, &dir)?;
    let binary = std::env::current_exe().context("cannot find the cairn binary")?;
    let mut cluster = LocalCluster::new(binary, file.clone(), dir.join("logs"), Vec::new());
    cluster.start_all()?;

    let addrs = file.addrs();
    let leader = tokio::select! {
        leader = wait_for_leader(&addrs, Duration::from_secs(30)) => leader,
        _ = shutdown_signal() => {
            cluster.stop_all(Duration::from_secs(10))?;
            return Ok(());
        }
    };
    let leader = match leader {
        Ok(leader) => leader,
        Err(error) => {
            for (id, status) in cluster.reap_exited() {
                eprintln!("scheduler {id} exited ({status}):\n{}", log_tail(&cluster.log_path(id)));
            }
            cluster.stop_all(Duration::from_secs(10))?;
            return Err(error.context("the cluster did not come up"));
        }
    };

    // Workers start once there is a leader to register with; only those the file
    // lists up to --workers run (a smaller --workers leaves the others stopped).
    let worker_indexes: Vec<u64> = file
        .workers
        .iter()
        .map(|entry| entry.index)
        .filter(|index| *index <= args.workers)
        .collect();
    for index in &worker_indexes {
        cluster.start_worker(*index)?;
    }
    if let Err(error) = wait_for_workers(&addrs, worker_indexes.len(), Duration::from_secs(30)).await {
        for (index, status) in cluster.reap_exited_workers() {
            eprintln!(
                "worker {index} exited ({status}):\n{}",
                log_tail(&cluster.worker_log_path(index))
            );
        }
        cluster.stop_all(Duration::from_secs(10))?;
        return Err(error.context("the workers did not come up"));
    }

    println!(
        "Cairn is up: {} schedulers and {} workers on loopback (data in {})",
        file.schedulers.len(),
        worker_indexes.len(),
        dir.display()
    );
    for entry in &file.schedulers {
        println!(
            "  scheduler {}  {}  data {}  log {}",
            entry.id,
            entry.addr,
            entry.data_dir.display(),
            cluster.log_path(entry.id).display()
        );
    }
    for entry in file
        .workers
        .iter()
        .filter(|entry| worker_indexes.contains(&entry.index))
    {
        println!(
            "  worker {}     {}  data {}  memory {}  log {}",
            entry.index,
            entry.addr,
            entry.data_dir.display(),
            entry.memory_limit,
            cluster.worker_log_path(entry.index).display()
        );
    }
    println!("leader: scheduler {leader}");
    println!(
        "cluster file: {} (client commands run from {} find it)",
        dir.join(CLUSTER_FILE).display(),
        dir.parent()
            .map(|parent| parent.display().to_string())
            .unwrap_or_default()
    );
    println!("or from anywhere: export CAIRN_CLUSTER={}", file.addrs().join(","));
    println!("try:   cairn datasets put greeting hello && cairn datasets list && cairn status");
    println!("       cairn datasets publish trips --file trips.csv && cairn datasets get trips --head 5");
    println!("Ctrl-C stops the cluster; `cairn up` again brings it back with its datasets.");

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                for (id, status) in cluster.reap_exited() {
                    eprintln!(
                        "warning: scheduler {id} exited ({status}); the cluster runs on while a majority is up. Last log lines:\n{}",
                        log_tail(&cluster.log_path(id))
                    );
                }
                for (index, status) in cluster.reap_exited_workers() {
                    eprintln!(
                        "warning: worker {index} exited ({status}); its chunks are served by replicas, if any. Last log lines:\n{}",
                        log_tail(&cluster.worker_log_path(index))
                    );
                }
            }
        }
    }
    println!("stopping the cluster…");
    cluster.stop_all(Duration::from_secs(10))?;
    println!("stopped.");
    Ok(())
}
