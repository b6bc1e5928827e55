//! Machine-readable figures of `cairn bench --figures FILE`: each figure a benchmark
//! prints is also appended to FILE as one JSON object per line
//! (`{"system":"cairn","figure":"publish_p50_ms","value":1.96,"unit":"ms"}`), for
//! `bench/report.py`, which runs every benchmark (Cairn and Dask alternately) and
//! prints the side-by-side table of `make bench`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

static FIGURES: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`record`] append to `path` from now on (the first call wins).
pub fn record_to(path: PathBuf) {
    let _ = FIGURES.set(path);
}

/// One figure of one system (`cairn`, or `dask` for the figures a benchmark measures
/// side by side). Without `--figures`, nothing; a file that cannot be written is
/// reported on stderr and the benchmark goes on (the printed figure stands).
pub fn record(system: &str, figure: &str, value: f64, unit: &str) {
    let Some(path) = FIGURES.get() else {
        return;
    };
    let line = serde_json::json!({ "system": system, "figure": figure, "value": value, "unit": unit });
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{line}"));
    if let Err(error) = written {
        eprintln!("cannot append a figure to {}: {error}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_json_lines() {
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("figures.jsonl");
        record_to(path.clone());
        record("cairn", "publish_p50_ms", 1.5, "ms");
        record("dask", "tasks_per_s", 1000.0, "tasks/s");
        let text = std::fs::read_to_string(&path).expect("written");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["figure"], "publish_p50_ms");
        assert_eq!(lines[1]["system"], "dask");
        assert_eq!(lines[1]["value"], 1000.0);
    }
}
