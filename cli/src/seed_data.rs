//! `cairn seed-data`: realistic input files for the seed examples, so that examples,
//! tests and benchmarks need nothing from outside.
//!
//! - `model_run/{x_wind,y_wind}_dayNN.nc`: hourly wind components on a global
//!   regular latitude/longitude grid, one file per day (NetCDF-4, CF attributes:
//!   `standard_name`, `units`, a `hours since` time axis, `degrees_north/east`);
//!   together `--size` bytes of values.
//! - `model_run/{air_temperature,air_pressure_at_sea_level}_day00.nc`: two more
//!   parameters of the same run, first day only.
//! - `accounts/accounts.NN.csv`: four CSV files of bank accounts (`id,name,balance,branch`),
//!   about a fifth of them with a negative balance (the Dask docs' example).
//!
//! The fields are smooth large-scale patterns plus deterministic noise, so
//! variances, regridding and filters have something to find.

use std::f64::consts::PI;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use arrow::array::Float32Array;
use arrow::datatypes::Float32Type;
use cairn_client::grid::{AttrValue, Coord, GridMeta};
use cairn_client::netcdf_io;

use crate::args::SeedDataArgs;

/// A fast deterministic hash to noise in [-1, 1).
fn noise(seed: u64, index: u64) -> f64 {
    let mut x = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn text(value: &str) -> AttrValue {
    AttrValue::from(value)
}

/// The global grid at `step` degrees: latitudes -90..=90, longitudes 0..360.
fn grid(step: f64) -> (Coord, Coord) {
    let lat_count = (180.0 / step).round() as usize + 1;
    let lon_count = (360.0 / step).round() as usize;
    let mut lat = Coord::new("latitude", (0..lat_count).map(|i| -90.0 + i as f64 * step).collect());
    lat.attrs.insert("units".into(), text("degrees_north"));
    lat.attrs.insert("standard_name".into(), text("latitude"));
    lat.attrs.insert("axis".into(), text("Y"));
    let mut lon = Coord::new("longitude", (0..lon_count).map(|i| i as f64 * step).collect());
    lon.attrs.insert("units".into(), text("degrees_east"));
    lon.attrs.insert("standard_name".into(), text("longitude"));
    lon.attrs.insert("axis".into(), text("X"));
    (lat, lon)
}

/// One parameter of the model run: its CF description and its field.
struct Parameter {
    name: &'static str,
    units: &'static str,
    long_name: &'static str,
    /// The value at (hour, latitude°, longitude°, noise in [-1, 1)).
    field: fn(f64, f64, f64, f64) -> f64,
}

const PARAMETERS: [Parameter; 4] = [
    Parameter {
        name: "x_wind",
        units: "m s-1",
        long_name: "Eastward wind at 10 m",
        field: |hour, lat, lon, noise| {
            8.0 * lat.to_radians().cos() + 4.0 * (2.0 * PI * (3.0 * lon / 360.0 + hour / 24.0)).sin() + 2.0 * noise
        },
    },
    Parameter {
        name: "y_wind",
        units: "m s-1",
        long_name: "Northward wind at 10 m",
        field: |hour, lat, lon, noise| {
            3.0 * (2.0 * lat.to_radians()).sin() * (2.0 * PI * (2.0 * lon / 360.0) - hour / 12.0).cos() + 2.0 * noise
        },
    },
    Parameter {
        name: "air_temperature",
        units: "K",
        long_name: "Air temperature at 1.5 m",
        field: |hour, lat, lon, noise| {
            288.0 - 40.0 * lat.to_radians().sin().powi(2)
                + 5.0 * (2.0 * PI * hour / 24.0 + lon.to_radians()).sin()
                + noise
        },
    },
    Parameter {
        name: "air_pressure_at_sea_level",
        units: "Pa",
        long_name: "Air pressure at mean sea level",
        field: |hour, lat, lon, noise| {
            101_325.0
                + 1_500.0 * (3.0 * lat.to_radians()).cos() * (lon.to_radians() * 2.0 - hour / 30.0).sin()
                + 50.0 * noise
        },
    },
];

/// Writes one day-file of `parameter`: hours `first_hour..first_hour + hours`.
fn write_parameter(
    directory: &Path,
    parameter: &Parameter,
    day: usize,
    first_hour: usize,
    hours: usize,
    (lat, lon): (&Coord, &Coord),
    seed: u64,
) -> anyhow::Result<u64> {
    let mut meta = GridMeta::new(parameter.name, "time", vec![lat.clone(), lon.clone()]);
    meta.attrs.insert("standard_name".into(), text(parameter.name));
    meta.attrs.insert("units".into(), text(parameter.units));
    meta.attrs.insert("long_name".into(), text(parameter.long_name));
    meta.attrs.insert("grid_mapping".into(), text("latitude_longitude"));
    meta.row_attrs
        .insert("units".into(), text("hours since 2026-11-01 00:00:00"));
    meta.row_attrs.insert("standard_name".into(), text("time"));
    meta.row_attrs.insert("calendar".into(), text("gregorian"));
    meta.row_attrs.insert("axis".into(), text("T"));
    meta.global_attrs.insert("Conventions".into(), text("CF-1.7"));
    meta.global_attrs
        .insert("title".into(), text("Cairn seed data: a synthetic global model run"));
    meta.global_attrs.insert(
        "source".into(),
        text("cairn seed-data (deterministic synthetic fields)"),
    );
    let cells = lat.len() * lon.len();
    let param_seed = seed.wrapping_add(parameter.name.len() as u64 * 1_000_003 + parameter.name.as_bytes()[0] as u64);
    let mut values = Vec::with_capacity(hours * cells);
    for hour in first_hour..first_hour + hours {
        for (i, latitude) in lat.values.iter().enumerate() {
            for (j, longitude) in lon.values.iter().enumerate() {
                let index = ((hour * lat.len() + i) * lon.len() + j) as u64;
                let value = (parameter.field)(hour as f64, *latitude, *longitude, noise(param_seed, index));
                values.push(value as f32);
            }
        }
    }
    let hours_coord: Vec<f64> = (first_hour..first_hour + hours).map(|h| h as f64).collect();
    let batch = meta.batch_of::<Float32Type>(&hours_coord, Float32Array::from(values))?;
    let path = directory.join(format!("{}_day{day:02}.nc", parameter.name));
    netcdf_io::write(&path, &[vec![batch]]).with_context(|| format!("writing {}", path.display()))?;
    Ok((hours * cells * 4) as u64)
}

fn write_accounts(directory: &Path, rows_per_file: usize, seed: u64) -> anyhow::Result<usize> {
    const NAMES: [&str; 12] = [
        "Alice", "Bob", "Charlie", "Dan", "Edith", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Oscar",
    ];
    const BRANCHES: [&str; 4] = ["Exeter", "Reading", "Edinburgh", "Cardiff"];
    let mut negative = 0;
    for file in 0..4 {
        let path = directory.join(format!("accounts.{file:02}.csv"));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        writeln!(out, "id,name,balance,branch")?;
        for row in 0..rows_per_file {
            let id = file * rows_per_file + row;
            let n = noise(seed ^ 0xacc0, id as u64);
            // About a fifth negative: shift the symmetric noise.
            let balance = ((n + 0.6) * 5_000.0).round() as i64;
            if balance < 0 {
                negative += 1;
            }
            let name = NAMES[id % NAMES.len()];
            let branch = BRANCHES[(id / 7) % BRANCHES.len()];
            writeln!(out, "{id},{name},{balance},{branch}")?;
        }
        out.flush()?;
    }
    Ok(negative)
}

/// Runs `cairn seed-data`.
pub fn run(args: SeedDataArgs) -> anyhow::Result<()> {
    let size = cairn_worker::parse_bytes(&args.size).map_err(|reason| anyhow::anyhow!("--size: {reason}"))?;
    if args.steps_per_file == 0 {
        anyhow::bail!("--steps-per-file must be at least 1");
    }
    let step = args.grid_step.unwrap_or(if size >= 256 << 20 {
        0.25
    } else if size >= 16 << 20 {
        1.0
    } else {
        2.5
    });
    if !(0.01..=30.0).contains(&step) || (180.0 / step - (180.0 / step).round()).abs() > 1e-9 {
        anyhow::bail!("--grid-step must divide 180 degrees (e.g. 0.25, 0.5, 1, 2.5), given {step}");
    }
    let (lat, lon) = grid(step);
    let cells = lat.len() * lon.len();
    let hours = (size as usize).div_ceil(2 * 4 * cells).max(1);
    let model_run = args.out.join("model_run");
    let accounts = args.out.join("accounts");
    for directory in [&model_run, &accounts] {
        std::fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    }
    let mut bytes = 0;
    let mut day = 0;
    let mut first_hour = 0;
    while first_hour < hours {
        let count = args.steps_per_file.min(hours - first_hour);
        for parameter in &PARAMETERS[..2] {
            bytes += write_parameter(&model_run, parameter, day, first_hour, count, (&lat, &lon), args.seed)?;
        }
        if day == 0 {
            for parameter in &PARAMETERS[2..] {
                write_parameter(&model_run, parameter, day, first_hour, count, (&lat, &lon), args.seed)?;
            }
        }
        first_hour += count;
        day += 1;
    }
    let negative = write_accounts(&accounts, args.account_rows, args.seed)?;
    println!(
        "wrote {}: wind {hours} hours on a {}x{} grid ({step} degrees) in {day} file(s) per component, {:.1} MiB of values; \
         air_temperature and air_pressure_at_sea_level for day 0; {} accounts in 4 CSV files ({negative} negative)",
        args.out.display(),
        lat.len(),
        lon.len(),
        bytes as f64 / (1 << 20) as f64,
        4 * args.account_rows
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_bounded() {
        assert_eq!(noise(1, 2), noise(1, 2));
        assert_ne!(noise(1, 2), noise(1, 3));
        assert!((0..10_000).map(|i| noise(7, i)).all(|n| (-1.0..1.0).contains(&n)));
    }

    #[test]
    fn writes_the_model_run_and_accounts() {
        let dir = tempfile::tempdir().expect("temp dir");
        run(SeedDataArgs {
            out: dir.path().to_path_buf(),
            size: "1MiB".into(),
            grid_step: Some(5.0),
            steps_per_file: 10,
            account_rows: 100,
            seed: 7,
        })
        .expect("seed data");
        let header = netcdf_io::inspect(&dir.path().join("model_run/x_wind_day00.nc"), "x_wind", None).expect("header");
        assert_eq!(header.meta.shape(header.rows()), vec![10, 37, 72]);
        assert_eq!(header.meta.attrs.get("units"), Some(&text("m s-1")));
        assert!(dir.path().join("model_run/air_temperature_day00.nc").exists());
        let csv = std::fs::read_to_string(dir.path().join("accounts/accounts.00.csv")).expect("csv");
        assert!(csv.starts_with("id,name,balance,branch\n0,Alice,"));
        assert_eq!(csv.lines().count(), 101);
    }
}
