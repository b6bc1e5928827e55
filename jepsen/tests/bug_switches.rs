//! Proof that the suite can fail: with each deliberate scheduler bug on, a short run
//! under partitions must exit 1 and name the anomaly the bug causes. Runs the real
//! `cairn-jepsen` binary against real `cairn scheduler` processes in network
//! namespaces (root needed; where namespaces cannot be made the tests say so and do
//! nothing).

use std::path::Path;
use std::process::Command;

fn anomaly_kinds(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap_or_default();
    let verdicts: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut kinds = Vec::new();
    for verdict in verdicts.as_array().into_iter().flatten() {
        for anomaly in verdict["anomalies"].as_array().into_iter().flatten() {
            if let Some(kind) = anomaly["kind"].as_str() {
                kinds.push(kind.to_string());
            }
        }
    }
    kinds
}

/// Runs `cairn-jepsen run` with `args` and returns (exit code, anomaly kinds, output).
fn run_suite(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn-jepsen"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("cairn-jepsen runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), anomaly_kinds(dir.path()), text)
}

/// Whether partitions can run here (root, iproute2, iptables, the capability).
fn partitions_possible() -> bool {
    match cairn_jepsen::net::namespaces_available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED: partitions need network namespaces: {why}");
            false
        }
    }
}

/// A short run against a cluster whose leader is isolated every few seconds: with
/// `bug` on every node when given.
fn leader_partition_run(
    bug: Option<&str>,
    workload: &str,
    seconds: u64,
    seed: u64,
) -> (Option<i32>, Vec<String>, String) {
    let (seconds, seed) = (seconds.to_string(), seed.to_string());
    let mut args = vec![
        "--workload",
        workload,
        "--nemesis",
        "partition",
        "--partition-shapes",
        "leader",
        "--nemesis-interval",
        "4",
        "--time-limit",
        &seconds,
        "--seed",
        &seed,
    ];
    if let Some(bug) = bug {
        args.extend(["--inject-bug", bug]);
    }
    run_suite(&args)
}

/// `local-reads`: a leader cut off from the others keeps answering reads from its
/// own state; clients still on it read values the new leader has overwritten.
#[test]
fn local_reads_bug_is_caught_as_stale_reads() {
    if !partitions_possible() {
        return;
    }
    let (code, kinds, output) = leader_partition_run(Some("local-reads"), "catalog", 20, 11);
    assert_eq!(code, Some(1), "the run must fail:\n{output}");
    assert!(
        kinds.iter().any(|kind| kind == "non-linearizable"),
        "{kinds:?}\n{output}"
    );
    assert!(kinds.iter().any(|kind| kind == "stale-read"), "{kinds:?}\n{output}");
}

/// `ack-before-commit`: publishes acknowledged by a leader that is then cut off are
/// never committed; the final reads miss them.
#[test]
fn ack_before_commit_bug_is_caught_as_lost_writes() {
    if !partitions_possible() {
        return;
    }
    let (code, kinds, output) = leader_partition_run(Some("ack-before-commit"), "durable", 15, 12);
    assert_eq!(code, Some(1), "the run must fail:\n{output}");
    assert!(kinds.iter().any(|kind| kind == "lost-write"), "{kinds:?}\n{output}");
}

/// Without a bug, the same attack passes (the failures above are the bugs', not the
/// suite's); where partitions cannot run, kills and pauses stand in.
#[test]
fn a_correct_cluster_passes_the_same_attack() {
    let (code, kinds, output) = if partitions_possible() {
        leader_partition_run(None, "catalog", 15, 13)
    } else {
        run_suite(&["--nemesis", "kill,pause", "--time-limit", "15", "--seed", "13"])
    };
    assert_eq!(code, Some(0), "{kinds:?}\n{output}");
}
