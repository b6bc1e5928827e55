//! `cairn-jepsen`: Cairn's fault-injection suite.
//!
//! It runs a cluster of real `cairn scheduler` and `cairn worker` processes (each
//! in its own network namespace when run as root), drives concurrent clients
//! against it while nemeses kill, pause, partition, slow down, reconfigure and
//! restart the processes and fill the workers' disks, records every operation, and
//! checks the history: linearizability per dataset name (Wing–Gong–Lowe with
//! P-compositionality), stale reads, durability of every acknowledged publish, the
//! exact content of every persisted dataset, the result of every task graph, and
//! the scheduler's recovery counters. See `jepsen/README.md`.
//!
//! # Layout
//!
//! - [`net`]: network namespaces, bridge, iptables partitions, tc netem;
//! - [`cluster`]: the `cairn scheduler` and `cairn worker` processes, the workers'
//!   disks, and their fault verbs;
//! - [`content`]: the data workload's deterministic datasets and their checksum;
//! - [`nemesis`]: the faults, their schedule and the timeline;
//! - [`workload`]: the clients and the recorded [`history`];
//! - [`check`]: the checkers; [`report`]: the HTML report;
//! - [`run`]: one run end to end.

pub mod check;
pub mod cluster;
pub mod content;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod workload;
