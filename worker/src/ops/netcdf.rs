//! `read_netcdf`: a range of indexes along a NetCDF variable's row dimension as one
//! gridded chunk ([`cairn_client::grid`]), read through
//! [`cairn_client::netcdf_io::read_rows`] (the same code the client plans with, so
//! the chunk's grid is the one the client saw). Globs are expanded by the client,
//! which makes one task per file and chunk of rows.

use std::path::Path;

use arrow::record_batch::RecordBatch;
use cairn_client::{netcdf_io, ParamKind};

use super::args::{optional, required, Args, Builtin};
use super::{OpContext, OpError};

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![Builtin::new(
        "read_netcdf",
        vec![
            required("path", ParamKind::Str),
            required("variable", ParamKind::Str),
            optional("dim", ParamKind::Str),
            optional("start", ParamKind::Int),
            optional("end", ParamKind::Int),
        ],
        read_netcdf,
    )]
}

/// `read_netcdf(path, variable, dim?, start?, end?)`: indexes `[start, end)` (default:
/// all) along `dim` (default: the unlimited dimension, else `time`, else the first).
fn read_netcdf(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let path = Path::new(args.str(0, "path")?);
    let variable = args.str(1, "variable")?;
    let dim = args.opt_str(2, "dim")?;
    let start = args.opt_count(3, "start")?;
    let end = args.opt_count(4, "end")?;
    context.check_cancelled(args.op)?;
    netcdf_io::read_rows(path, variable, dim, start.unwrap_or(0), end)
        .map_err(|error| args.invalid("path", error.to_string()))
}

#[cfg(test)]
mod tests {
    use cairn_client::grid::{Coord, GridBatch, GridMeta};
    use cairn_client::Literal;

    use crate::ops::{OpContext, OpRegistry, OpValue};

    #[test]
    fn reads_a_range_of_rows_and_names_the_file_in_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.nc");
        let meta = GridMeta::new("t", "time", vec![Coord::new("latitude", vec![0.0, 1.0])]);
        let batch = meta
            .batch(&[0.0, 1.0, 2.0], (0..6).map(|i| Some(i as f32)).collect())
            .expect("batch");
        cairn_client::netcdf_io::write(&path, &[vec![batch]]).expect("write");
        let registry = OpRegistry::builtins();
        let context = OpContext::new("read");
        let text = |s: &str| OpValue::Literal(Literal::Str(s.to_string()));
        let path_text = path.to_string_lossy().into_owned();
        let chunk = registry
            .run(
                "read_netcdf",
                vec![
                    text(&path_text),
                    text("t"),
                    OpValue::Literal(Literal::Null),
                    1_i64.into(),
                    3_i64.into(),
                ],
                &context,
            )
            .expect("read");
        let grid = GridBatch::new(&chunk).expect("grid");
        assert_eq!(grid.row_coord(), &[1.0, 2.0]);
        assert_eq!(grid.values_f64(), vec![2.0, 3.0, 4.0, 5.0]);
        let all = registry
            .run("read_netcdf", vec![text(&path_text), text("t")], &context)
            .expect("read all");
        assert_eq!(all.num_rows(), 3);
        let error = registry
            .run("read_netcdf", vec![text(&path_text), text("u")], &context)
            .expect_err("an error")
            .to_string();
        assert!(
            error.starts_with("read_netcdf: argument path:") && error.contains("t.nc") && error.contains("no variable"),
            "{error}"
        );
    }
}
