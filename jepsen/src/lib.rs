//! `cairn-jepsen`: Cairn's fault-injection suite.
//!
//! It runs a cluster of real `cairn scheduler` processes (each in its own network
//! namespace when run as root), drives concurrent clients against it while nemeses
//! kill, pause, partition, slow down and reconfigure the nodes, records every
//! operation, and checks the history: linearizability per dataset name
//! (Wing–Gong–Lowe with P-compositionality), stale reads, and durability of every
//! acknowledged publish. See `jepsen/README.md`.
//!
//! # Layout
//!
//! - [`net`]: network namespaces, bridge, iptables partitions, tc netem;
//! - [`cluster`]: the `cairn scheduler` processes and their fault verbs;
//! - [`nemesis`]: the faults, their schedule and the timeline;
//! - [`workload`]: the clients and the recorded [`history`];
//! - [`check`]: the checkers; [`report`]: the HTML report;
//! - [`run`]: one run end to end.

pub mod check;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod workload;
