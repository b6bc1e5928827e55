//! The seed "Dicing with Dask" (`dicing-with-dask.md`): several parameters of a model
//! run, each regridded chunk by chunk, in parallel, onto a user's latitude/longitude
//! grid with bilinear interpolation, then rejoined and written as one NetCDF file.
//! The user asks for times (default: the hours every parameter has) and a grid; the
//! user's grid here crosses the 0° meridian (the source runs 0..360°: the
//! interpolation wraps around). Checked against a direct bilinear interpolation.
//!
//! ```text
//! scripts/make-seed-data --out seed-data          # once
//! cargo run -p cairn-client --example regrid -- [--data seed-data] [--cluster A,B,C]
//!     [--params x_wind,y_wind,air_temperature,air_pressure_at_sea_level]
//!     [--lats 40:65:0.1] [--lons -15:10:0.1] [--hours FIRST:LAST] [--chunk-rows N] [--output DIR] [--check true|false]
//! ```

mod common;

use std::time::Instant;

use cairn_client::{Client, Grid, NetcdfOptions};
use common::{check, Args};

const USAGE: &str = "regrid [--data DIR] [--cluster A,B,C] [--params a,b] [--lats START:STOP:STEP] \
                     [--lons START:STOP:STEP] [--hours FIRST:LAST] [--chunk-rows N] [--output DIR] [--check true|false]";

/// `start:stop:step`, stop included.
fn axis(text: &str) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let parts: Vec<f64> = text.split(':').map(str::parse).collect::<Result<_, _>>()?;
    let [start, stop, step] = parts[..] else {
        return Err(format!("{text:?} is not START:STOP:STEP").into());
    };
    if step <= 0.0 || stop < start {
        return Err(format!("{text:?}: STEP must be positive and STOP at least START").into());
    }
    let count = ((stop - start) / step + 1e-9).floor() as usize + 1;
    Ok((0..count).map(|i| start + i as f64 * step).collect())
}

/// The index `i` with `coords[i] <= x <= coords[i + 1]` in ascending `coords`, and the
/// weight of `i + 1`.
fn bracket(coords: &[f64], x: f64) -> Option<(usize, f64)> {
    let last = coords.len().checked_sub(1)?;
    if x < coords[0] || x > coords[last] {
        return None;
    }
    let i = coords
        .partition_point(|c| *c <= x)
        .saturating_sub(1)
        .min(last.saturating_sub(1));
    if last == 0 {
        return Some((0, 0.0));
    }
    Some((i, (x - coords[i]) / (coords[i + 1] - coords[i])))
}

/// Direct bilinear interpolation of one field (lat-major) at (lat, lon), the source
/// longitudes global (0..360 with a regular step).
fn bilinear(field: &[f64], lats: &[f64], lons: &[f64], lat: f64, lon: f64) -> f64 {
    let Some((i, wy)) = bracket(lats, lat) else {
        return f64::NAN;
    };
    let n = lons.len();
    let x = (lon - lons[0]).rem_euclid(360.0) + lons[0];
    // Columns j and j + 1 (wrapping past the last column to the first, at +360°).
    let (j, wx) = if x > lons[n - 1] {
        (n - 1, (x - lons[n - 1]) / (lons[0] + 360.0 - lons[n - 1]))
    } else {
        match bracket(lons, x) {
            Some(found) => found,
            None => return f64::NAN,
        }
    };
    let j1 = (j + 1) % n;
    let i1 = (i + 1).min(lats.len() - 1);
    let at = |r: usize, c: usize| field[r * n + c];
    let term = |value: f64, weight: f64| if weight == 0.0 { 0.0 } else { value * weight };
    term(at(i, j), (1.0 - wy) * (1.0 - wx))
        + term(at(i, j1), (1.0 - wy) * wx)
        + term(at(i1, j), wy * (1.0 - wx))
        + term(at(i1, j1), wy * wx)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let data = args.data().join("model_run");
    common::require(&data);
    let params: Vec<String> = args
        .get("params")
        .unwrap_or("x_wind,y_wind,air_temperature,air_pressure_at_sea_level")
        .split(',')
        .map(str::to_string)
        .collect();
    let lats = axis(args.get("lats").unwrap_or("40:65:0.1"))?;
    let lons = axis(args.get("lons").unwrap_or("-15:10:0.1"))?;
    let options = NetcdfOptions {
        dim: None,
        chunk_rows: args.get("chunk-rows").map(str::parse).transpose()?,
    };
    let client = Client::connect(args.cluster()).await?;

    let started = Instant::now();
    // regrid_a_param for each parameter: the graph is built here (not delayed), and
    // only regrid_a_chunk runs on the workers, one task per chunk, all in parallel.
    let mut sources = Vec::new();
    for param in &params {
        let pattern = format!("{}/{param}_*.nc", data.display());
        sources.push((client.read_netcdf_with(&pattern, param, &options)?, pattern));
    }
    // The user's times: `--hours A:B`, else the hours every parameter has.
    let (first, last) = match args.get("hours") {
        Some(text) => {
            let bounds: Vec<f64> = text.split(':').map(str::parse).collect::<Result<_, _>>()?;
            let [first, last] = bounds[..] else {
                return Err(format!("--hours {text:?} is not FIRST:LAST").into());
            };
            (first, last)
        }
        None => sources
            .iter()
            .fold((f64::NEG_INFINITY, f64::INFINITY), |(first, last), (source, _)| {
                let coord = source.row_coord();
                (
                    first.max(coord.first().copied().unwrap_or(f64::NAN)),
                    last.min(coord.last().copied().unwrap_or(f64::NAN)),
                )
            }),
    };
    let mut regridded = Vec::new();
    let mut patterns = Vec::new();
    for ((source, pattern), param) in sources.iter().zip(&params) {
        let source = source.sel("time", first, last)?;
        println!(
            "{param}: {:?} {:?} in {} chunks -> {} x {} target points",
            source.meta().dims,
            source.shape(),
            source.npartitions(),
            lats.len(),
            lons.len()
        );
        regridded.push(source.regrid(&lats, &lons)?);
        patterns.push(pattern.clone());
    }
    // Rejoined: every parameter's chunks come back in order.
    let grids: Vec<Grid> = futures::future::try_join_all(regridded.iter().map(|grid| grid.compute())).await?;
    let elapsed = started.elapsed();
    println!(
        "regridded {} parameters on the cluster in {:.3} s",
        params.len(),
        elapsed.as_secs_f64()
    );
    println!("elapsed_seconds {:.6}", elapsed.as_secs_f64());

    let path = common::output_path(&args, "regridded.nc");
    let collections: Vec<_> = grids.iter().map(|grid| grid.batches().to_vec()).collect();
    cairn_client::netcdf_io::write(&path, &collections)?;
    println!("wrote {} ({} variables)", path.display(), grids.len());

    if args.get("check") != Some("false") {
        for ((param, pattern), grid) in params.iter().zip(&patterns).zip(&grids) {
            let header = cairn_client::netcdf_io::inspect(&common::files(pattern)[0], param, None)?;
            let (src_lats, src_lons) = header.meta.lat_lon()?;
            let (coord, all_values, cells) = common::read_direct(pattern, param)?;
            let kept: Vec<usize> = (0..coord.len())
                .filter(|&row| coord[row] >= first && coord[row] <= last)
                .collect();
            let values: Vec<f64> = kept
                .iter()
                .flat_map(|&row| all_values[row * cells..(row + 1) * cells].iter().copied())
                .collect();
            let rows = kept.len();
            let target = lats.len() * lons.len();
            let mut worst: f64 = 0.0;
            let mut checked = 0;
            for row in 0..rows {
                let field = &values[row * cells..(row + 1) * cells];
                for point in (row % 37..target).step_by(37) {
                    let expected = bilinear(
                        field,
                        &src_lats.values,
                        &src_lons.values,
                        lats[point / lons.len()],
                        lons[point % lons.len()],
                    );
                    let got = grid.values()[row * target + point];
                    let difference = if expected.is_nan() || got.is_nan() {
                        if expected.is_nan() == got.is_nan() {
                            0.0
                        } else {
                            f64::INFINITY
                        }
                    } else {
                        (got - expected).abs() / expected.abs().max(1.0)
                    };
                    worst = worst.max(difference);
                    checked += 1;
                }
            }
            println!("{param}: {checked} regridded points vs direct bilinear: largest relative difference {worst:.2e}");
            check(
                worst < 1e-5,
                &format!("{param} regridded equals the direct interpolation"),
            );
        }
    }
    Ok(())
}
