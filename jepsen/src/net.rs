//! The network the nodes live on: with root, one network namespace per node, each
//! with a veth pair on a bridge in the root namespace and its own address, so the
//! links between nodes can be cut (iptables DROP rules inside the namespaces) and
//! degraded (`tc netem`). Without root, every node listens on loopback and the
//! network nemeses are unavailable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// The iptables chain (inside each node's namespace) holding partition rules.
const PARTITION_CHAIN: &str = "cairn-partition";
/// The iptables chain holding random-loss rules (the netem fallback).
const LOSS_CHAIN: &str = "cairn-loss";
/// The port every node listens on inside its namespace.
pub const NODE_PORT: u16 = 7000;

/// Runs a command, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (is iproute2/iptables installed?)"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a command inside namespace `ns`.
fn run_in(ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Whether this process may create network namespaces.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether this process can create network namespaces with iptables inside them:
/// root, `ip` and `iptables` installed, and the capability to use them (a container
/// may lack it). `Err` says why not.
pub fn namespaces_available() -> Result<(), String> {
    if !is_root() {
        return Err("not root".to_string());
    }
    // Unique per call: tests probe concurrently from one process.
    let probe = format!("cjprobe{}-{}", std::process::id(), rand::random::<u32>());
    let result = run("ip", &["netns", "add", &probe])
        .and_then(|_| run_in(&probe, "iptables", &["-N", PARTITION_CHAIN]))
        .map(|_| ());
    let _ = run("ip", &["netns", "del", &probe]);
    result.map_err(|error| format!("{error:#}"))
}

/// How links are degraded by the `netem` nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetemMode {
    /// `tc qdisc ... netem`: delay with jitter, loss, reordering.
    Netem,
    /// The kernel has no `sch_netem`: random loss with iptables' `statistic` match
    /// and a slow link with `tc tbf` (no reordering).
    LossAndSlowLink,
}

/// The namespaces, bridge and addresses of one run.
#[derive(Debug)]
pub struct NetnsNetwork {
    /// A run-unique number in every name and the subnet.
    tag: u32,
    /// The bridge in the root namespace.
    bridge: String,
    /// Node id → namespace name.
    namespaces: BTreeMap<u64, String>,
    /// Node id → address (no port).
    ips: BTreeMap<u64, String>,
    /// How `netem` works on this kernel.
    pub netem_mode: NetemMode,
    /// Whether `teardown` already ran.
    torn_down: bool,
}

impl NetnsNetwork {
    /// The names used for `tag`.
    fn names(tag: u32, ids: &[u64]) -> (String, BTreeMap<u64, String>, BTreeMap<u64, String>) {
        let bridge = format!("cjbr{tag}");
        let namespaces = ids.iter().map(|id| (*id, format!("cj{tag}n{id}"))).collect();
        let ips = ids.iter().map(|id| (*id, format!("10.77.{tag}.{}", 10 + id))).collect();
        (bridge, namespaces, ips)
    }

    /// Creates a namespace per node on a fresh bridge. `tag` (1..=250) keeps
    /// concurrent runs apart; leftovers of an earlier run with the same tag are
    /// removed first.
    pub fn create(tag: u32, ids: &[u64]) -> anyhow::Result<NetnsNetwork> {
        let (bridge, namespaces, ips) = NetnsNetwork::names(tag, ids);
        let mut network = NetnsNetwork {
            tag,
            bridge,
            namespaces,
            ips,
            netem_mode: NetemMode::Netem,
            torn_down: false,
        };
        network.remove_leftovers();
        network.build().inspect_err(|_| network.teardown())?;
        network.netem_mode = network.probe_netem();
        Ok(network)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let bridge = self.bridge.clone();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("10.77.{}.1/24", self.tag), "dev", &bridge],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for (id, ns) in &self.namespaces {
            let host_side = format!("cj{}v{id}", self.tag);
            run("ip", &["netns", "add", ns])?;
            run(
                "ip",
                &[
                    "link", "add", &host_side, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            )?;
            run("ip", &["link", "set", &host_side, "master", &bridge])?;
            run("ip", &["link", "set", &host_side, "up"])?;
            run_in(ns, "ip", &["link", "set", "lo", "up"])?;
            run_in(
                ns,
                "ip",
                &["addr", "add", &format!("{}/24", self.ips[id]), "dev", "eth0"],
            )?;
            run_in(ns, "ip", &["link", "set", "eth0", "up"])?;
            for chain in [PARTITION_CHAIN, LOSS_CHAIN] {
                run_in(ns, "iptables", &["-N", chain])?;
                run_in(ns, "iptables", &["-A", "INPUT", "-j", chain])?;
            }
        }
        Ok(())
    }

    fn probe_netem(&self) -> NetemMode {
        let Some(ns) = self.namespaces.values().next() else {
            return NetemMode::LossAndSlowLink;
        };
        match run_in(
            ns,
            "tc",
            &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        ) {
            Ok(_) => {
                let _ = run_in(ns, "tc", &["qdisc", "del", "dev", "lo", "root"]);
                NetemMode::Netem
            }
            Err(_) => NetemMode::LossAndSlowLink,
        }
    }

    /// The namespace of node `id`.
    pub fn namespace(&self, id: u64) -> Option<&str> {
        self.namespaces.get(&id).map(String::as_str)
    }

    /// The address node `id` listens on.
    pub fn addr(&self, id: u64) -> String {
        format!(
            "{}:{NODE_PORT}",
            self.ips.get(&id).map(String::as_str).unwrap_or("0.0.0.0")
        )
    }

    /// Cuts the links given by `grudge`: node → the nodes it must not hear from.
    /// Replaces any earlier partition.
    pub fn partition(&self, grudge: &BTreeMap<u64, BTreeSet<u64>>) -> anyhow::Result<()> {
        self.heal_partition()?;
        for (node, enemies) in grudge {
            let Some(ns) = self.namespaces.get(node) else { continue };
            for enemy in enemies {
                let Some(ip) = self.ips.get(enemy) else { continue };
                run_in(ns, "iptables", &["-A", PARTITION_CHAIN, "-s", ip, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub fn heal_partition(&self) -> anyhow::Result<()> {
        for ns in self.namespaces.values() {
            run_in(ns, "iptables", &["-F", PARTITION_CHAIN])?;
        }
        Ok(())
    }

    /// Degrades the links of `nodes` (delay/loss/reorder with netem, else loss and a
    /// slow link). Returns a description of what was applied.
    pub fn degrade(&self, nodes: &[u64], delay_ms: u64, loss_percent: u32) -> anyhow::Result<String> {
        for node in nodes {
            let Some(ns) = self.namespaces.get(node) else { continue };
            match self.netem_mode {
                NetemMode::Netem => {
                    run_in(
                        ns,
                        "tc",
                        &[
                            "qdisc",
                            "replace",
                            "dev",
                            "eth0",
                            "root",
                            "netem",
                            "delay",
                            &format!("{delay_ms}ms"),
                            &format!("{}ms", delay_ms / 2),
                            "distribution",
                            "normal",
                            "loss",
                            &format!("{loss_percent}%"),
                            "reorder",
                            "10%",
                            "50%",
                        ],
                    )?;
                }
                NetemMode::LossAndSlowLink => {
                    let probability = format!("{:.3}", f64::from(loss_percent) / 100.0);
                    for (peer, ip) in &self.ips {
                        if peer != node {
                            run_in(
                                ns,
                                "iptables",
                                &[
                                    "-A",
                                    LOSS_CHAIN,
                                    "-s",
                                    ip,
                                    "-m",
                                    "statistic",
                                    "--mode",
                                    "random",
                                    "--probability",
                                    &probability,
                                    "-j",
                                    "DROP",
                                ],
                            )?;
                        }
                    }
                    run_in(
                        ns,
                        "tc",
                        &[
                            "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "32kbit",
                            "latency", "400ms",
                        ],
                    )?;
                }
            }
        }
        Ok(match self.netem_mode {
            NetemMode::Netem => format!(
                "netem delay {delay_ms}ms±{}ms loss {loss_percent}% reorder 10%",
                delay_ms / 2
            ),
            NetemMode::LossAndSlowLink => {
                format!("loss {loss_percent}% (iptables statistic) + 4 Mbit/s link (tbf); this kernel has no sch_netem")
            }
        })
    }

    /// Restores every node's links.
    pub fn heal_links(&self) -> anyhow::Result<()> {
        for ns in self.namespaces.values() {
            run_in(ns, "iptables", &["-F", LOSS_CHAIN])?;
            // Deleting the root qdisc fails when none was added: nothing to heal.
            let _ = run_in(ns, "tc", &["qdisc", "del", "dev", "eth0", "root"]);
        }
        Ok(())
    }

    /// A tag no other live run uses: derived from the pid, skipping tags whose
    /// bridge exists.
    pub fn free_tag() -> u32 {
        let first = std::process::id() % 250;
        (0..250)
            .map(|offset| (first + offset) % 250 + 1)
            .find(|tag| !Path::new(&format!("/sys/class/net/cjbr{tag}")).exists())
            .unwrap_or(first + 1)
    }

    /// Removes every namespace and bridge any run left behind (a run killed with
    /// SIGKILL cannot clean up), killing what runs in them. Returns what it removed.
    pub fn remove_all_leftovers() -> Vec<String> {
        let mut removed = Vec::new();
        let listed = run("ip", &["netns", "list"]).unwrap_or_default();
        for ns in listed.lines().filter_map(|line| line.split_whitespace().next()) {
            let is_ours = ns.strip_prefix("cj").is_some_and(|rest| {
                rest.split_once('n')
                    .is_some_and(|(tag, id)| tag.parse::<u32>().is_ok() && id.parse::<u32>().is_ok())
            });
            if is_ours {
                kill_namespace_processes(ns);
                let _ = run("ip", &["netns", "del", ns]);
                removed.push(format!("namespace {ns}"));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_bridge = name.strip_prefix("cjbr").is_some_and(|tag| tag.parse::<u32>().is_ok());
                let is_veth = name.strip_prefix("cj").is_some_and(|rest| {
                    rest.split_once('v')
                        .is_some_and(|(tag, id)| tag.parse::<u32>().is_ok() && id.parse::<u32>().is_ok())
                });
                if is_bridge || is_veth {
                    let _ = run("ip", &["link", "del", &name]);
                    removed.push(format!("link {name}"));
                }
            }
        }
        removed
    }

    /// Kills what runs in the namespaces and removes them and the bridge.
    /// Idempotent; errors are logged, not returned (it runs on every exit path).
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        self.remove_leftovers();
    }

    fn remove_leftovers(&self) {
        for ns in self.namespaces.values() {
            kill_namespace_processes(ns);
            let _ = run("ip", &["netns", "del", ns]);
        }
        for id in self.namespaces.keys() {
            let _ = run("ip", &["link", "del", &format!("cj{}v{id}", self.tag)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// SIGKILLs every process in namespace `ns`.
fn kill_namespace_processes(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace().filter_map(|pid| pid.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for NetnsNetwork {
    fn drop(&mut self) {
        self.teardown();
    }
}
