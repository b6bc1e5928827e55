//! Any Arrow client reads a published dataset through Arrow Flight: `pyarrow.flight`
//! (from PyPI, in a virtual environment this test makes under the target dir) lists
//! it on a scheduler, gets its FlightInfo from every replica (followers ask the
//! leader), and reads each chunk from the worker an endpoint names.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use cairn_tests::data::{table, write_arrow, write_csv};
use cairn_tests::{cairn_binary, phase, TestCluster};

/// The virtual environment with pyarrow, made on first use under the target dir.
fn pyarrow_python() -> anyhow::Result<PathBuf> {
    let target = cairn_binary()?
        .parent()
        .and_then(|profile| profile.parent())
        .context("no target dir")?
        .to_path_buf();
    let venv = target.join("pyenv");
    let python = venv.join("bin").join("python");
    let ready = venv.join(".pyarrow-installed");
    if ready.exists() {
        return Ok(python);
    }
    let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status()?;
    if !status.success() {
        bail!("python3 -m venv failed (install python3-venv)");
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "pyarrow"])
        .status()?;
    if !status.success() {
        bail!("pip install pyarrow failed");
    }
    std::fs::write(&ready, "")?;
    Ok(python)
}

/// A dataset published with the CLI reads back equal through pyarrow.flight, from
/// every scheduler replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_flight_reads_a_published_dataset() -> anyhow::Result<()> {
    let python = pyarrow_python()?;
    let cluster = TestCluster::start_with_workers(3, 2, "256MiB", &[]).await?;
    let files = tempfile::tempdir()?;
    let source = table(0, 5_000);
    let csv = files.path().join("stations.csv");
    let expected = files.path().join("expected.arrow");
    write_csv(&csv, &source)?;
    write_arrow(&expected, &source)?;
    let output = cluster.cli(&[
        "datasets",
        "publish",
        "stations",
        "--file",
        csv.to_str().unwrap_or_default(),
        "--chunk-rows",
        "1000",
        "--replicas",
        "2",
    ])?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/read_with_pyarrow_flight.py");
    for addr in cluster.cluster.addrs() {
        phase(&format!("pyarrow.flight via scheduler {addr}"));
        let output = Command::new(&python)
            .arg(&script)
            .arg(&addr)
            .arg("stations")
            .arg(&expected)
            .output()?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{said}");
        assert!(said.contains("OK 5000 rows in 5 endpoints"), "{said}");
    }
    Ok(())
}
