//! The four seed examples (`client/examples/`) run as a new user runs them, against a
//! cluster of real processes, on small data from `cairn seed-data`: each checks its
//! own result against a direct computation and exits non-zero if it differs.

use std::path::Path;
use std::process::Command;

use cairn_tests::s3::MotoServer;
use cairn_tests::{cairn_binary, example_binary, output_text, phase, TestCluster};

/// Small seed data: a 10° grid, 36 hours in files of 12 (3 files per wind
/// component), 4 × 400 accounts.
fn seed_data(dir: &Path) -> anyhow::Result<()> {
    let output = Command::new(cairn_binary()?)
        .args(["seed-data", "--out", dir.to_str().unwrap_or_default()])
        .args([
            "--size",
            "300KiB",
            "--grid-step",
            "10",
            "--steps-per-file",
            "12",
            "--account-rows",
            "400",
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cairn seed-data failed: {}",
        output_text(&output)
    );
    Ok(())
}

/// Runs an example against the cluster; its output, after checking it succeeded.
pub fn run_example(
    name: &str,
    cluster: &TestCluster,
    data: &Path,
    extra: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<String> {
    let output = Command::new(example_binary("cairn-client", name)?)
        .args(["--cluster", &cluster.cluster.addrs().join(",")])
        .args(["--data", data.to_str().unwrap_or_default()])
        .args(["--output", data.join("out").to_str().unwrap_or_default()])
        .args(extra)
        .envs(env.iter().map(|(key, value)| (key.as_str(), value.as_str())))
        .output()?;
    let text = output_text(&output);
    println!("--- {name}\n{text}");
    anyhow::ensure!(output.status.success(), "example {name} failed:\n{text}");
    anyhow::ensure!(
        !text.contains("FAILED"),
        "example {name} reported a failed check:\n{text}"
    );
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_seed_examples_run_and_check_their_results() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    phase("seed data");
    seed_data(data.path())?;
    let cluster = TestCluster::start_with_workers(3, 2, "256MiB", &[]).await?;

    phase("negative_accounts");
    let text = run_example(
        "negative_accounts",
        &cluster,
        data.path(),
        &["--blocksize", "4096"],
        &[],
    )?;
    assert!(
        text.contains("check: the published rows are the negative balances of the files: ok"),
        "{text}"
    );
    assert!(text.contains("datasets: [\"negative_accounts\"]"), "{text}");

    phase("wind_variance");
    let text = run_example("wind_variance", &cluster, data.path(), &["--chunk-rows", "5"], &[])?;
    assert!(
        text.contains("check: wind speed variance equals the direct computation: ok"),
        "{text}"
    );
    assert!(
        text.contains("check: wind direction variance equals the direct computation: ok"),
        "{text}"
    );
    let written =
        cairn_client::netcdf_io::inspect(&data.path().join("out/wind_speed_variance.nc"), "wind_speed", None)?;
    assert_eq!(written.meta.shape(written.rows()), vec![1, 19, 36]);
    assert!(
        written
            .meta
            .attrs
            .get("cell_methods")
            .map(|m| m.display())
            .unwrap_or_default()
            .contains("time: variance"),
        "{:?}",
        written.meta.attrs
    );

    phase("regrid");
    let text = run_example(
        "regrid",
        &cluster,
        data.path(),
        &["--chunk-rows", "4", "--lats", "40:65:2.5", "--lons", "-15:10:2.5"],
        &[],
    )?;
    for param in ["x_wind", "y_wind", "air_temperature", "air_pressure_at_sea_level"] {
        assert!(
            text.contains(&format!("check: {param} regridded equals the direct interpolation: ok")),
            "{text}"
        );
    }

    phase("publish_model_run");
    let text = run_example("publish_model_run", &cluster, data.path(), &[], &[])?;
    assert!(
        text.contains("check: the new client discovers every parameter: ok"),
        "{text}"
    );
    assert!(
        text.contains("check: model_run/air_temperature computed from the view equals the files: ok"),
        "{text}"
    );
    assert!(text.contains("model_run/x_wind") && text.contains("m s-1"), "{text}");

    phase("cairn datasets get --output F.nc writes NetCDF");
    let out = data.path().join("temperature.nc");
    let output = cluster.cli(&[
        "datasets",
        "get",
        "model_run/air_temperature",
        "--output",
        out.to_str().unwrap_or_default(),
    ])?;
    assert!(output.status.success(), "{}", output_text(&output));
    let header = cairn_client::netcdf_io::inspect(&out, "air_temperature", None)?;
    assert_eq!(header.meta.shape(header.rows()), vec![12, 19, 36]);
    assert_eq!(
        header.meta.attrs.get("units").map(|u| u.display()),
        Some("K".to_string())
    );

    phase("cairn datasets info shows a grid's metadata without reading data");
    let output = cluster.cli(&["datasets", "info", "model_run/x_wind"])?;
    let text = output_text(&output);
    assert!(
        output.status.success() && text.contains("m s-1") && text.contains("time, latitude, longitude"),
        "{text}"
    );
    // A persisted grid: its schema metadata, shown as the grid it describes.
    let client = cluster.client().await?;
    let temperature = client.read_netcdf(
        &format!("{}/model_run/air_temperature_*.nc", data.path().display()),
        "air_temperature",
    )?;
    let held = temperature.persist().await?;
    client
        .publish_persisted("temperature", &held, Default::default())
        .await?;
    let output = cluster.cli(&["datasets", "info", "temperature"])?;
    let text = output_text(&output);
    for expected in [
        "grid:",
        "units: K",
        "shape: 12 x 19 x 36",
        "latitude_range: -90 .. 90",
        "standard_name: air_temperature",
    ] {
        assert!(
            output.status.success() && text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netcdf_errors_name_the_file() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    seed_data(data.path())?;
    let cluster = TestCluster::start(1, &[]).await?;
    let client = cluster.client().await?;
    let run = data.path().join("model_run");

    let error = client
        .read_netcdf(&format!("{}/x_wind_*.nc", run.display()), "y_wind")
        .expect_err("an error")
        .to_string();
    assert!(
        error.contains("x_wind_day00.nc") && error.contains("no variable \"y_wind\""),
        "{error}"
    );

    // A file on another grid in the glob.
    let other = data.path().join("other");
    let output = Command::new(cairn_binary()?)
        .args([
            "seed-data",
            "--out",
            other.to_str().unwrap_or_default(),
            "--size",
            "100KiB",
            "--grid-step",
            "15",
        ])
        .output()?;
    assert!(output.status.success(), "{}", output_text(&output));
    std::fs::copy(other.join("model_run/x_wind_day00.nc"), run.join("x_wind_day99.nc"))?;
    let error = client
        .read_netcdf(&format!("{}/x_wind_*.nc", run.display()), "x_wind")
        .expect_err("an error")
        .to_string();
    assert!(
        error.contains("x_wind_day99.nc") && error.contains("latitude has 19 points"),
        "{error}"
    );

    let error = client
        .read_netcdf("s3://bucket/x_wind_*.nc", "x_wind")
        .expect_err("an error")
        .to_string();
    assert!(error.contains("local or mounted path"), "{error}");
    let error = client
        .read_netcdf(&format!("{}/nothing_*.nc", run.display()), "x")
        .expect_err("an error")
        .to_string();
    assert!(error.contains("no file matches"), "{error}");
    Ok(())
}

/// `negative_accounts` reading its CSV files from S3 (a real S3-compatible server, moto,
/// on loopback): the workers read byte ranges of the objects, the example checks its
/// result against the objects' content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_accounts_reads_from_s3() -> anyhow::Result<()> {
    let Some(server) = MotoServer::start()? else {
        return Ok(()); // no python3 venv here: MotoServer says why
    };
    let data = tempfile::tempdir()?;
    seed_data(data.path())?;
    let bucket = "seed-accounts";
    server.create_bucket(bucket)?;
    for file in std::fs::read_dir(data.path().join("accounts"))? {
        let path = file?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_string();
        server.put(bucket, &format!("accounts/{name}"), &std::fs::read(&path)?)?;
    }
    let env = server.s3_env();
    let cluster = TestCluster::start_with_workers_and_env(3, 2, "256MiB", &[], &env).await?;
    let pattern = format!("s3://{bucket}/accounts/accounts.*.csv");
    let text = run_example(
        "negative_accounts",
        &cluster,
        data.path(),
        &["--accounts", &pattern, "--blocksize", "4096"],
        &env,
    )?;
    assert!(
        text.contains("check: the published rows are the negative balances of the files: ok"),
        "{text}"
    );
    assert!(text.contains(&format!("read from {pattern}")), "{text}");
    Ok(())
}
