//! The `cairn` binary as a new user meets it: `--help`, and `cairn up` followed by
//! dataset commands from another shell, twice on the same directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

fn cairn(dir: &Path, args: &[&str]) -> Output {
    Command::new(CAIRN)
        .args(args)
        .current_dir(dir)
        .env_remove("CAIRN_CLUSTER")
        .output()
        .expect("cairn runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cairn failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Starts `cairn up` in `dir` and returns once it printed that the cluster is up.
fn up(dir: &Path) -> Child {
    let mut child = Command::new(CAIRN)
        .args(["up", "--base-port", "0", "--worker-base-port", "0"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cairn up starts");
    let out = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("[cairn up] {line}");
            let _ = lines.send(line);
        }
    });
    loop {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("Cairn is up") => return child,
            Ok(_) => {}
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cairn up did not print that the cluster is up: {error}");
            }
        }
    }
}

fn interrupt(mut child: Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("signal cairn up");
    let status = child.wait().expect("cairn up exits");
    assert!(status.success(), "cairn up should stop cleanly on Ctrl-C: {status}");
}

/// Every subcommand has `--help`.
#[test]
fn every_command_has_help() {
    let dir = std::env::temp_dir();
    for args in [
        vec!["--help"],
        vec!["scheduler", "--help"],
        vec!["worker", "--help"],
        vec!["datasets", "publish", "--help"],
        vec!["datasets", "get", "--help"],
        vec!["bench", "data", "--help"],
        vec!["up", "--help"],
        vec!["datasets", "--help"],
        vec!["datasets", "put", "--help"],
        vec!["status", "--help"],
        vec!["cluster", "add-node", "--help"],
        vec!["bench", "--help"],
    ] {
        let text = stdout(&cairn(&dir, &args));
        assert!(text.contains("Usage"), "{args:?}:\n{text}");
    }
}

/// The README's path: `cairn up`, then put/list/get/rm from another shell in the
/// same directory; Ctrl-C stops the cluster, and `cairn up` again brings it back
/// with its datasets.
#[test]
fn cairn_up_serves_datasets_and_comes_back_with_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = up(dir.path());

    stdout(&cairn(dir.path(), &["datasets", "put", "greeting", "hello"]));
    stdout(&cairn(
        dir.path(),
        &["datasets", "put", "answer", "42", "--attr", "unit=none"],
    ));
    assert_eq!(stdout(&cairn(dir.path(), &["datasets", "list"])), "greeting\nanswer\n");
    assert_eq!(stdout(&cairn(dir.path(), &["datasets", "get", "greeting"])), "hello\n");
    let info = stdout(&cairn(dir.path(), &["datasets", "info", "answer", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["attributes"]["unit"], "none");
    let duplicate = cairn(dir.path(), &["datasets", "put", "greeting", "again"]);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("'greeting' already exists"));
    stdout(&cairn(dir.path(), &["datasets", "rm", "answer"]));
    let status = stdout(&cairn(dir.path(), &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(status["nodes"][0]["workers"].as_array().map(Vec::len), Some(2));

    // A table: publish a CSV file, look at it, read a few rows.
    let csv: String = std::iter::once("city,temperature\n".to_string())
        .chain((0..1000).map(|row| format!("city-{row},{}.5\n", row % 40)))
        .collect();
    std::fs::write(dir.path().join("weather.csv"), &csv).expect("write csv");
    let published = stdout(&cairn(
        dir.path(),
        &[
            "datasets",
            "publish",
            "weather",
            "--file",
            "weather.csv",
            "--chunk-rows",
            "300",
        ],
    ));
    assert!(published.contains("1000 rows in 4 chunks"), "{published}");
    let info = stdout(&cairn(dir.path(), &["datasets", "info", "weather"]));
    assert!(info.contains("temperature: Float64"), "{info}");
    let head = stdout(&cairn(dir.path(), &["datasets", "get", "weather", "--head", "2"]));
    assert!(head.contains("city-1") && head.contains("998 more rows"), "{head}");
    let status = stdout(&cairn(dir.path(), &["status"]));
    assert!(status.contains("WORKER") && status.contains("alive"), "{status}");
    interrupt(cluster);

    let cluster = up(dir.path());
    assert_eq!(
        stdout(&cairn(dir.path(), &["datasets", "list", "--json"])).trim(),
        r#"["greeting","weather"]"#
    );
    assert_eq!(stdout(&cairn(dir.path(), &["datasets", "get", "greeting"])), "hello\n");
    stdout(&cairn(
        dir.path(),
        &["datasets", "get", "weather", "--output", "back.csv"],
    ));
    let back = std::fs::read_to_string(dir.path().join("back.csv")).expect("read back");
    assert_eq!(back, csv, "the table comes back identical after a restart");
    stdout(&cairn(dir.path(), &["datasets", "rm", "weather"]));
    interrupt(cluster);
}
