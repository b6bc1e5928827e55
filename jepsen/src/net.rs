//! The network the processes live on: with root, one network namespace per
//! process (scheduler `cj<tag>n<id>`, worker `cj<tag>w<id>`), each with a veth pair
//! on a bridge in the root namespace and its own address, so the links between them
//! can be cut (iptables DROP rules inside the namespaces) and degraded (`tc netem`).
//! The clients run in the root namespace and reach every process over the bridge.
//! Without root, every process listens on loopback and the network nemeses are
//! unavailable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// One process of the cluster under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// Scheduler replica `id` (`n<id>`).
    Scheduler(u64),
    /// Worker `id` (`w<id>`).
    Worker(u64),
}

impl Host {
    /// The letter in its names: `n` for schedulers, `w` for workers.
    fn letter(self) -> char {
        match self {
            Host::Scheduler(_) => 'n',
            Host::Worker(_) => 'w',
        }
    }

    /// The letter of its veth pair's host side: `v` for schedulers, `u` for workers.
    fn veth_letter(self) -> char {
        match self {
            Host::Scheduler(_) => 'v',
            Host::Worker(_) => 'u',
        }
    }

    /// Its number.
    pub fn id(self) -> u64 {
        match self {
            Host::Scheduler(id) | Host::Worker(id) => id,
        }
    }

    /// The last byte of its address: 10 + id for schedulers, 100 + id for workers.
    fn octet(self) -> u64 {
        match self {
            Host::Scheduler(id) => 10 + id,
            Host::Worker(id) => 100 + id,
        }
    }

    /// Whether it is a worker.
    pub fn is_worker(self) -> bool {
        matches!(self, Host::Worker(_))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.letter(), self.id())
    }
}

/// `cj<tag><letter><id>` split, if `name` has that form.
fn parse_ours(name: &str, letters: &[char]) -> Option<(u32, char, u32)> {
    let rest = name.strip_prefix("cj")?;
    let at = rest.find(|c: char| !c.is_ascii_digit())?;
    let (tag, rest) = rest.split_at(at);
    let letter = rest.chars().next()?;
    let id = &rest[letter.len_utf8()..];
    if !letters.contains(&letter) {
        return None;
    }
    Some((tag.parse().ok()?, letter, id.parse().ok()?))
}

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
    /// Process → namespace name.
    namespaces: BTreeMap<Host, String>,
    /// Process → address (no port).
    ips: BTreeMap<Host, String>,
    /// How `netem` works on this kernel.
    pub netem_mode: NetemMode,
    /// Whether `teardown` already ran.
    torn_down: bool,
}

impl NetnsNetwork {
    /// The names used for `tag`.
    fn names(tag: u32, hosts: &[Host]) -> (String, BTreeMap<Host, String>, BTreeMap<Host, String>) {
        let bridge = format!("cjbr{tag}");
        let namespaces = hosts
            .iter()
            .map(|host| (*host, format!("cj{tag}{}{}", host.letter(), host.id())))
            .collect();
        let ips = hosts
            .iter()
            .map(|host| (*host, format!("10.77.{tag}.{}", host.octet())))
            .collect();
        (bridge, namespaces, ips)
    }

    fn veth(&self, host: Host) -> String {
        format!("cj{}{}{}", self.tag, host.veth_letter(), host.id())
    }

    /// Creates a namespace per process on a fresh bridge. `tag` (1..=250) keeps
    /// concurrent runs apart; leftovers of an earlier run with the same tag are
    /// removed first.
    pub fn create(tag: u32, hosts: &[Host]) -> anyhow::Result<NetnsNetwork> {
        let (bridge, namespaces, ips) = NetnsNetwork::names(tag, hosts);
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
            let host_side = self.veth(*id);
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

    /// The namespace of `host`.
    pub fn namespace(&self, host: Host) -> Option<&str> {
        self.namespaces.get(&host).map(String::as_str)
    }

    /// The address `host` listens on.
    pub fn addr(&self, host: Host) -> String {
        format!(
            "{}:{NODE_PORT}",
            self.ips.get(&host).map(String::as_str).unwrap_or("0.0.0.0")
        )
    }

    /// Cuts the links given by `grudge`: process → the processes it must not hear
    /// from. Replaces any earlier partition.
    pub fn partition(&self, grudge: &BTreeMap<Host, BTreeSet<Host>>) -> anyhow::Result<()> {
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
    pub fn degrade(&self, nodes: &[Host], delay_ms: u64, loss_percent: u32) -> anyhow::Result<String> {
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
            if parse_ours(ns, &['n', 'w']).is_some() {
                kill_namespace_processes(ns);
                let _ = run("ip", &["netns", "del", ns]);
                removed.push(format!("namespace {ns}"));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_bridge = name.strip_prefix("cjbr").is_some_and(|tag| tag.parse::<u32>().is_ok());
                let is_veth = parse_ours(&name, &['v', 'u']).is_some();
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
        for host in self.namespaces.keys() {
            let _ = run("ip", &["link", "del", &self.veth(*host)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// Unmounts every tmpfs a run mounted for its workers' data dirs (source
/// `cjdisk<tag>`), whatever run left it; returns the mount points.
pub fn unmount_all_leftover_disks() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut removed = Vec::new();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(point)) = (fields.next(), fields.next()) else {
            continue;
        };
        if source.starts_with("cjdisk") && run("umount", &["-l", point]).is_ok() {
            removed.push(point.to_string());
        }
    }
    removed
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_our_interfaces_are_recognised() {
        assert_eq!(parse_ours("cj12n3", &['n', 'w']), Some((12, 'n', 3)));
        assert_eq!(parse_ours("cj12w10", &['n', 'w']), Some((12, 'w', 10)));
        assert_eq!(parse_ours("cj12u1", &['v', 'u']), Some((12, 'u', 1)));
        assert_eq!(parse_ours("cjbr12", &['n', 'w']), None);
        assert_eq!(parse_ours("cj12x1", &['n', 'w']), None);
        assert_eq!(parse_ours("cjprobe1-2", &['n', 'w']), None);
        assert_eq!(parse_ours("eth0", &['v', 'u']), None);
    }

    #[test]
    fn schedulers_and_workers_get_distinct_names_and_addresses() {
        let hosts = [Host::Scheduler(1), Host::Worker(1)];
        let (_, namespaces, ips) = NetnsNetwork::names(7, &hosts);
        assert_eq!(namespaces[&Host::Scheduler(1)], "cj7n1");
        assert_eq!(namespaces[&Host::Worker(1)], "cj7w1");
        assert_eq!(ips[&Host::Scheduler(1)], "10.77.7.11");
        assert_eq!(ips[&Host::Worker(1)], "10.77.7.101");
        assert_eq!(Host::Worker(2).to_string(), "w2");
    }
}
