//! Bad input to the `cairn` binary is a clear error, never a panic or a hang.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tests::{cairn_binary, phase, TestCluster};

/// Runs `cairn` with `args`; it must exit by itself within `limit`. Returns
/// (success, stdout + stderr).
fn run_cairn(args: &[&str], limit: Duration) -> anyhow::Result<(bool, String)> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(cairn_binary()?)
        .args(args)
        .current_dir(dir.path())
        .env_remove("CAIRN_CLUSTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            child.kill()?;
            anyhow::bail!("`cairn {}` did not exit within {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains("panicked"), "cairn panicked:\n{text}");
    Ok((output.status.success(), text))
}

fn expect_error(args: &[&str], needle: &str) -> anyhow::Result<()> {
    let (success, text) = run_cairn(args, Duration::from_secs(15))?;
    assert!(!success, "`cairn {}` should fail:\n{text}", args.join(" "));
    assert!(
        text.contains(needle),
        "`cairn {}` should say {needle:?}, said:\n{text}",
        args.join(" ")
    );
    Ok(())
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// A scheduler refuses data dirs and flags that do not fit, with a message that
/// names the problem: unknown id, another node's or cluster's data dir, a corrupt
/// or foreign data dir, a missing one without --peers, bad --peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_refuse_data_dirs_and_flags_that_do_not_fit() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(3, &[]).await?;
    let client = cluster.client().await?;
    client.publish_dataset("keep-me", "1").await?;
    let file = cluster.cluster.file.clone();
    let peers = file.peers_arg();
    // The leader's data dir certainly holds state (a replica that started late may
    // not have made its database yet when the cluster stops).
    let owner = cluster.leader().await?;
    let other = if owner == 1 { 2 } else { 1 };
    let dir1 = file.schedulers[(owner - 1) as usize].data_dir.clone();
    cluster.cluster.stop_all(Duration::from_secs(10))?;
    let scratch = tempfile::tempdir()?;
    let fresh = scratch.path().join("fresh");
    let listen = "127.0.0.1:0";

    phase("--id not among --peers");
    expect_error(
        &[
            "scheduler",
            "--id",
            "4",
            "--listen",
            listen,
            "--data-dir",
            path(&fresh),
            "--peers",
            &peers,
        ],
        "--id 4 is not among the --peers",
    )?;
    phase("malformed --peers");
    expect_error(
        &[
            "scheduler",
            "--id",
            "1",
            "--listen",
            listen,
            "--data-dir",
            path(&fresh),
            "--peers",
            "1=nowhere",
        ],
        "is not an ip:port address",
    )?;
    phase("a missing data dir without --peers or --join");
    expect_error(
        &["scheduler", "--id", "1", "--listen", listen, "--data-dir", path(&fresh)],
        "holds no Cairn state",
    )?;
    phase("another node's data dir");
    expect_error(
        &[
            "scheduler",
            "--id",
            &other.to_string(),
            "--listen",
            listen,
            "--data-dir",
            path(&dir1),
        ],
        &format!("belongs to node {owner}, not to --id {other}"),
    )?;
    phase("another cluster's data dir");
    expect_error(
        &[
            "scheduler",
            "--id",
            &owner.to_string(),
            "--listen",
            listen,
            "--data-dir",
            path(&dir1),
            "--peers",
            &peers,
            "--cluster-token",
            "another-cluster",
        ],
        "belongs to cluster",
    )?;
    phase("a directory that is not a Cairn data dir");
    let foreign = scratch.path().join("foreign");
    std::fs::create_dir_all(&foreign)?;
    std::fs::write(foreign.join("notes.txt"), "mine")?;
    expect_error(
        &[
            "scheduler",
            "--id",
            "1",
            "--listen",
            listen,
            "--data-dir",
            path(&foreign),
            "--peers",
            &peers,
        ],
        "not a Cairn data dir",
    )?;
    phase("a corrupt data dir");
    let corrupt = scratch.path().join("corrupt");
    std::fs::create_dir_all(corrupt.join("db"))?;
    std::fs::write(corrupt.join("db").join("CURRENT"), "garbage\n")?;
    expect_error(
        &[
            "scheduler",
            "--id",
            "1",
            "--listen",
            listen,
            "--data-dir",
            path(&corrupt),
        ],
        "cannot open the database",
    )?;

    phase("the untouched data dirs still bring the cluster back");
    cluster.cluster.start_all()?;
    cluster.leader().await?;
    let client = cluster.client().await?;
    assert_eq!(client.list_datasets().await?, vec!["keep-me"]);

    phase("membership changes naming unknown nodes are refused");
    let output = cluster.cli(&["cluster", "remove-node", "--id", "9"])?;
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && text.contains("node 9 is not a member"),
        "{text}"
    );
    Ok(())
}

/// Client commands without a reachable cluster end with a clear error in bounded
/// time, never hang.
#[test]
fn client_commands_fail_fast_without_a_cluster() -> anyhow::Result<()> {
    expect_error(&["datasets", "list"], "no cluster given")?;
    let started = Instant::now();
    expect_error(
        &["datasets", "list", "--cluster", "127.0.0.1:1", "--timeout-ms", "1500"],
        "cannot reach the cluster",
    )?;
    assert!(started.elapsed() < Duration::from_secs(10));
    expect_error(
        &["datasets", "list", "--cluster", "nonsense"],
        "invalid cluster address",
    )?;
    Ok(())
}
