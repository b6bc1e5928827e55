//! The seed "Iris, dask, distributed and SPICE" (`iris-dask-distributed-spice.md`):
//! x_wind and y_wind NetCDF files over time → wind speed and direction → the
//! variance of each over time, per grid cell. Checked against a direct computation
//! from the files, written as NetCDF.
//!
//! ```text
//! scripts/make-seed-data --out seed-data          # once
//! cargo run -p cairn-client --example wind_variance -- [--data seed-data] [--cluster A,B,C]
//!     [--output DIR] [--chunk-rows N] [--check true|false]
//! ```

mod common;

use std::time::Instant;

use cairn_client::{Client, NetcdfOptions};
use common::{check, compare, summary, variance_per_cell, Args};

const USAGE: &str = "wind_variance [--data DIR] [--cluster A,B,C] [--output DIR] [--chunk-rows N] [--check true|false]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let data = args.data().join("model_run");
    common::require(&data);
    let client = Client::connect(args.cluster()).await?;
    let options = NetcdfOptions {
        dim: None,
        chunk_rows: args.get("chunk-rows").map(str::parse).transpose()?,
    };
    let u_files = format!("{}/x_wind_*.nc", data.display());
    let v_files = format!("{}/y_wind_*.nc", data.display());

    let started = Instant::now();
    // Lazy, as Iris with dask: only the headers are read here.
    let u = client.read_netcdf_with(&u_files, "x_wind", &options)?;
    let v = client.read_netcdf_with(&v_files, "y_wind", &options)?;
    println!(
        "x_wind, y_wind: {:?} {:?} in {} chunks each, {} {}",
        u.meta().dims,
        u.shape(),
        u.npartitions(),
        u.value_type(),
        u.meta()
            .attrs
            .get("units")
            .map(|units| units.display())
            .unwrap_or_default()
    );
    // Mathematics: speed, and the direction the wind blows from (degrees).
    let speed = u.hypot(&v, "wind_speed")?;
    let direction = u
        .atan2(&v, "wind_from_direction")?
        .map("degrees", None, None)
        .map("add", Some(180.0), None);
    // Statistical reductions over time, both graphs at once.
    let (speed_var, direction_var) = (speed.reduce("var")?, direction.reduce("var")?);
    let (speed_var, direction_var) = tokio::try_join!(speed_var.compute(), direction_var.compute())?;
    let elapsed = started.elapsed();
    println!("computed on the cluster in {:.3} s", elapsed.as_secs_f64());
    println!("elapsed_seconds {:.6}", elapsed.as_secs_f64());

    for (name, grid) in [("wind_speed", &speed_var), ("wind_from_direction", &direction_var)] {
        let (min, mean, max) = summary(grid.values());
        println!(
            "variance of {name} over time: shape {:?}, min {min:.4}, mean {mean:.4}, max {max:.4} ({})",
            grid.shape(),
            grid.meta()
                .attrs
                .get("cell_methods")
                .map(|m| m.display())
                .unwrap_or_default()
        );
        let path = common::output_path(&args, &format!("{name}_variance.nc"));
        grid.to_netcdf(&path)?;
        println!("wrote {}", path.display());
    }

    if args.get("check") != Some("false") {
        // Directly from the files: the same f32 operations the workers run per element,
        // then a two-pass variance in f64.
        let (_, u_values, cells) = common::read_direct(&u_files, "x_wind")?;
        let (_, v_values, _) = common::read_direct(&v_files, "y_wind")?;
        let speed_direct: Vec<f64> = u_values
            .iter()
            .zip(&v_values)
            .map(|(u, v)| f64::from(((u * u + v * v).sqrt()) as f32))
            .collect();
        let direction_direct: Vec<f64> = u_values
            .iter()
            .zip(&v_values)
            .map(|(u, v)| f64::from((*u as f32).atan2(*v as f32).to_degrees() + 180.0))
            .collect();
        let (worst, differing) = compare(speed_var.values(), &variance_per_cell(&speed_direct, cells), 1e-6);
        println!("wind_speed variance vs direct: largest relative difference {worst:.2e}, {differing} cells differ");
        check(differing == 0, "wind speed variance equals the direct computation");
        // The workers' f32 atan2 is a fast polynomial within 2 ulps of libm's, hence a
        // looser tolerance than for the speed.
        let (worst, differing) = compare(
            direction_var.values(),
            &variance_per_cell(&direction_direct, cells),
            1e-5,
        );
        println!(
            "wind_from_direction variance vs direct: largest relative difference {worst:.2e}, {differing} cells differ"
        );
        check(differing == 0, "wind direction variance equals the direct computation");
    }
    Ok(())
}
