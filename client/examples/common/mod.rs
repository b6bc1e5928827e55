//! What the seed examples share: their command line and direct checks.
//!
//! Every example takes `--cluster A,B,C` (default: `cairn up`'s three schedulers)
//! and `--data DIR` (default `seed-data`, as `scripts/make-seed-data` writes it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cairn_client::netcdf_io;

/// The command line of an example: `--name value` pairs.
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Parses `--name value` pairs; `--help` prints `usage` and exits.
    pub fn parse(usage: &str) -> Args {
        let mut pairs = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = arg.strip_prefix("--") else {
                eprintln!("unexpected argument {arg:?}\n{usage}");
                std::process::exit(2);
            };
            let Some(value) = args.next() else {
                eprintln!("--{name} needs a value\n{usage}");
                std::process::exit(2);
            };
            pairs.push((name.to_string(), value));
        }
        Args { pairs }
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The cluster's scheduler addresses.
    pub fn cluster(&self) -> Vec<String> {
        self.get("cluster")
            .unwrap_or("127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103")
            .split(',')
            .map(str::to_string)
            .collect()
    }

    /// The seed data directory.
    pub fn data(&self) -> PathBuf {
        PathBuf::from(self.get("data").unwrap_or("seed-data"))
    }
}

/// The files matching a glob, sorted.
pub fn files(pattern: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .map(|paths| paths.filter_map(Result::ok).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// An example's error.
pub type BoxError = Box<dyn std::error::Error>;

/// A variable read directly from its files (no cluster): the row coordinate and the
/// values as `f64` (missing as NaN), files in the order of their first time.
pub fn read_direct(pattern: &str, variable: &str) -> Result<(Vec<f64>, Vec<f64>, usize), BoxError> {
    let mut parts = Vec::new();
    for path in files(pattern) {
        let chunk = netcdf_io::read_rows(&path, variable, None, 0, None)?;
        let first_time = cairn_client::grid::GridBatch::new(&chunk)?.row_coord().first().copied();
        parts.push((first_time.unwrap_or(0.0), chunk));
    }
    parts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let batches: Vec<_> = parts.into_iter().map(|(_, chunk)| chunk).collect();
    let (meta, coord, values) = cairn_client::grid::gather_f64(&batches)?;
    Ok((coord, values, meta.cells()))
}

/// Per-cell population variance over rows of `cells` values, two-pass in f64,
/// skipping NaN (NaN where no value).
pub fn variance_per_cell(values: &[f64], cells: usize) -> Vec<f64> {
    let rows = values.len() / cells.max(1);
    let mut sum = vec![0.0; cells];
    let mut count = vec![0usize; cells];
    for row in 0..rows {
        for cell in 0..cells {
            let value = values[row * cells + cell];
            if !value.is_nan() {
                sum[cell] += value;
                count[cell] += 1;
            }
        }
    }
    let mean: Vec<f64> = sum.iter().zip(&count).map(|(s, c)| s / *c as f64).collect();
    let mut m2 = vec![0.0; cells];
    for row in 0..rows {
        for cell in 0..cells {
            let value = values[row * cells + cell];
            if !value.is_nan() {
                m2[cell] += (value - mean[cell]).powi(2);
            }
        }
    }
    m2.iter()
        .zip(&count)
        .map(|(m, c)| if *c == 0 { f64::NAN } else { m / *c as f64 })
        .collect()
}

/// Compares two fields: the largest relative difference (over cells present in both),
/// and how many cells differ beyond `tolerance` (or are missing in only one).
pub fn compare(got: &[f64], expected: &[f64], tolerance: f64) -> (f64, usize) {
    let mut worst: f64 = 0.0;
    let mut differing = 0;
    for (a, b) in got.iter().zip(expected) {
        if a.is_nan() || b.is_nan() {
            if a.is_nan() != b.is_nan() {
                differing += 1;
            }
            continue;
        }
        let relative = (a - b).abs() / b.abs().max(1e-6);
        worst = worst.max(relative);
        if relative > tolerance {
            differing += 1;
        }
    }
    if got.len() != expected.len() {
        differing += got.len().abs_diff(expected.len());
    }
    (worst, differing)
}

/// min / mean / max of the present values.
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let min = present.iter().copied().fold(f64::INFINITY, f64::min);
    let max = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = present.iter().sum::<f64>() / present.len().max(1) as f64;
    (min, mean, max)
}

/// A path inside the output directory `--output` (default: the system temp dir).
pub fn output_path(args: &Args, name: &str) -> PathBuf {
    let dir = args
        .get("output")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cairn-seed-examples"));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

/// Fails the example (exit code 1) with `message` unless `ok`.
pub fn check(ok: bool, message: &str) {
    if ok {
        println!("check: {message}: ok");
    } else {
        eprintln!("check FAILED: {message}");
        std::process::exit(1);
    }
}

/// Whether `path` exists, else a hint to make the seed data.
pub fn require(path: &Path) {
    if !path.exists() {
        eprintln!(
            "{} does not exist: run `scripts/make-seed-data --out {}` first (or give --data DIR)",
            path.display(),
            path.parent().and_then(Path::parent).unwrap_or(Path::new(".")).display()
        );
        std::process::exit(2);
    }
}
