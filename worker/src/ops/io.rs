//! The readers: `read_csv` (a byte range of a CSV file), `read_parquet` (a row group
//! of a Parquet file), `read_arrow` (a record batch of an Arrow IPC file). Paths are
//! read on the worker that runs the task; glob patterns are expanded by the client,
//! which makes one task per file (or per byte range, or row group).
//!
//! # CSV byte ranges
//!
//! `read_csv(path, start, end)` reads **the data lines that start in `[start, end)`**,
//! so consecutive ranges `[0, a)`, `[a, b)`, …, `[z, file length)` read every line
//! exactly once, wherever the split points fall (the way Dask's `read_csv` splits
//! files into blocks):
//!
//! - a range not starting at 0 skips to the first line that starts at or after
//!   `start`, i.e. to just after the first newline at or after byte `start - 1`;
//! - it then reads every line that starts before `end` (the last one to its newline,
//!   even past `end`);
//! - the file's first line is its header, never data; the column names come from it
//!   and the types are inferred from the first [`CSV_SCHEMA_SAMPLE_BYTES`] of the
//!   file (cut at a line end), so every range of one file gets the same schema. A
//!   value that does not fit the inferred type further on is an error naming the
//!   file and byte range.
//!
//! (The rule differs by one byte from a reading of "skip to just after the first
//! newline at or after `start`": with that, a line starting exactly at a split
//! point would belong to no range.) Newlines inside quoted fields are not supported
//! in ranged reads, as in Dask: a split point inside such a field cuts the record.
//! `start` and `end` must lie within the file: a range past the end means the file
//! is not the one the client measured, and is an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow::compute::kernels::concat::concat_batches;
use arrow::csv::reader::Format;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use cairn_client::ParamKind;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::args::{optional, required, Args, Builtin};
use super::batch::arrow_error;
use super::{OpContext, OpError};

/// How much of a CSV file its schema is inferred from: the first 1 MiB, cut at the
/// last line end within it.
pub const CSV_SCHEMA_SAMPLE_BYTES: u64 = 1 << 20;

/// Rows per batch while a CSV range is parsed (the batches are concatenated; between
/// two, the reader looks at the cancellation flag).
const CSV_BATCH_ROWS: usize = 8192;

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![
        Builtin::new(
            "read_csv",
            vec![
                required("path", ParamKind::Str),
                optional("start", ParamKind::Int),
                optional("end", ParamKind::Int),
            ],
            read_csv,
        ),
        Builtin::new(
            "read_parquet",
            vec![required("path", ParamKind::Str), optional("row_group", ParamKind::Int)],
            read_parquet,
        ),
        Builtin::new(
            "read_arrow",
            vec![required("path", ParamKind::Str), optional("batch", ParamKind::Int)],
            read_arrow,
        ),
    ]
}

/// The errors of one file, so that each names the operation and the path.
struct FileErrors<'a> {
    /// The operation.
    op: &'static str,
    /// The file.
    path: &'a Path,
    /// `CSV`, `Parquet`, `Arrow IPC`.
    format: &'static str,
}

impl FileErrors<'_> {
    fn io(&self, source: std::io::Error) -> OpError {
        OpError::Io {
            op: self.op.to_string(),
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn malformed(&self, reason: impl std::fmt::Display) -> OpError {
        OpError::MalformedFile {
            op: self.op.to_string(),
            path: self.path.to_path_buf(),
            format: self.format,
            reason: reason.to_string(),
        }
    }

    /// Opens the file; a directory is an error here rather than at the first read.
    fn open(&self, args: &Args<'_>) -> Result<(File, u64), OpError> {
        let file = File::open(self.path).map_err(|error| self.io(error))?;
        let metadata = file.metadata().map_err(|error| self.io(error))?;
        if metadata.is_dir() {
            return Err(args.invalid("path", format!("{} is a directory, not a file", self.path.display())));
        }
        Ok((file, metadata.len()))
    }
}

/// `read_csv(path, start?, end?)`: the data lines starting in `[start, end)` (module
/// docs).
fn read_csv(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let path = Path::new(args.str(0, "path")?);
    let errors = FileErrors {
        op: args.op,
        path,
        format: "CSV",
    };
    let start = args.opt_count(1, "start")?.map(|start| start as u64);
    let end = args.opt_count(2, "end")?.map(|end| end as u64);
    let (file, length) = errors.open(args)?;
    let start = start.unwrap_or(0);
    let end = end.unwrap_or(length);
    if end > length {
        return Err(args.invalid(
            "end",
            format!("byte {end} is past the end of {} ({length} bytes)", path.display()),
        ));
    }
    if start > end {
        return Err(args.invalid("start", format!("byte {start} is after end {end}")));
    }

    let schema = infer_csv_schema(&errors, &file, length)?;
    let header_end = line_start_at_or_after(&errors, &file, 1, length)?;
    let begin = line_start_at_or_after(&errors, &file, start, length)?.max(header_end);
    let stop = line_start_at_or_after(&errors, &file, end, length)?;
    if begin >= stop {
        return Ok(RecordBatch::new_empty(schema));
    }

    let mut handle = &file;
    handle.seek(SeekFrom::Start(begin)).map_err(|error| errors.io(error))?;
    let reader = ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_batch_size(CSV_BATCH_ROWS)
        .build(handle.take(stop - begin))
        .map_err(|error| errors.malformed(error))?;
    let mut batches = Vec::new();
    for batch in reader {
        context.check_cancelled(args.op)?;
        let batch = batch.map_err(|error| {
            errors.malformed(format!(
                "bytes {begin}..{stop} (line numbers count from the start of this range): {error}"
            ))
        })?;
        batches.push(batch);
    }
    concat_batches(&schema, &batches).map_err(arrow_error(args.op, format!("concatenating {}", path.display())))
}

/// The position of the first line that starts at or after `position`: `position`
/// itself if it is 0 or follows a newline, else just past the next newline (or the
/// end of the file).
fn line_start_at_or_after(errors: &FileErrors<'_>, file: &File, position: u64, length: u64) -> Result<u64, OpError> {
    if position == 0 || position >= length {
        return Ok(position.min(length));
    }
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(position - 1))
        .map_err(|error| errors.io(error))?;
    let skipped = reader.skip_until(b'\n').map_err(|error| errors.io(error))?;
    Ok((position - 1 + skipped as u64).min(length))
}

/// The schema of a CSV file: names from its first line, types inferred from the
/// first [`CSV_SCHEMA_SAMPLE_BYTES`] cut at the last line end.
fn infer_csv_schema(errors: &FileErrors<'_>, file: &File, length: u64) -> Result<SchemaRef, OpError> {
    if length == 0 {
        return Err(errors.malformed("the file is empty: it has no header line"));
    }
    let sample_length = length.min(CSV_SCHEMA_SAMPLE_BYTES);
    let mut sample = Vec::with_capacity(sample_length as usize);
    let mut handle = file;
    handle.seek(SeekFrom::Start(0)).map_err(|error| errors.io(error))?;
    handle
        .take(sample_length)
        .read_to_end(&mut sample)
        .map_err(|error| errors.io(error))?;
    if sample_length < length {
        match sample.iter().rposition(|byte| *byte == b'\n') {
            Some(last_newline) => sample.truncate(last_newline + 1),
            None => {
                return Err(errors.malformed(format!(
                    "the header line is longer than {CSV_SCHEMA_SAMPLE_BYTES} bytes"
                )))
            }
        }
    }
    let (schema, _records) = Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(sample), None)
        .map_err(|error| errors.malformed(format!("inferring the schema: {error}")))?;
    Ok(Arc::new(schema))
}

/// `read_parquet(path, row_group?)`: one row group, or the whole file.
fn read_parquet(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let path = Path::new(args.str(0, "path")?);
    let errors = FileErrors {
        op: args.op,
        path,
        format: "Parquet",
    };
    let row_group = args.opt_count(1, "row_group")?;
    let (file, _length) = errors.open(args)?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| errors.malformed(error))?;
    let row_groups = builder.metadata().num_row_groups();
    if let Some(row_group) = row_group {
        if row_group >= row_groups {
            return Err(args.invalid(
                "row_group",
                format!(
                    "{} has {row_groups} row group(s), numbered from 0; given {row_group}",
                    path.display()
                ),
            ));
        }
        builder = builder.with_row_groups(vec![row_group]);
    }
    let reader = builder.build().map_err(|error| errors.malformed(error))?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for batch in reader {
        context.check_cancelled(args.op)?;
        batches.push(batch.map_err(|error| errors.malformed(error))?);
    }
    concat_batches(&schema, &batches).map_err(arrow_error(args.op, format!("concatenating {}", path.display())))
}

/// `read_arrow(path, batch?)`: one record batch of an Arrow IPC file, or all of them
/// concatenated.
fn read_arrow(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let path = Path::new(args.str(0, "path")?);
    let errors = FileErrors {
        op: args.op,
        path,
        format: "Arrow IPC",
    };
    let index = args.opt_count(1, "batch")?;
    let (file, _length) = errors.open(args)?;
    let mut reader = FileReader::try_new(BufReader::new(file), None).map_err(|error| errors.malformed(error))?;
    let schema = reader.schema();
    if let Some(index) = index {
        let count = reader.num_batches();
        if index >= count {
            return Err(args.invalid(
                "batch",
                format!(
                    "{} has {count} record batch(es), numbered from 0; given {index}",
                    path.display()
                ),
            ));
        }
        reader.set_index(index).map_err(|error| errors.malformed(error))?;
        return match reader.next() {
            Some(batch) => batch.map_err(|error| errors.malformed(error)),
            None => Err(errors.malformed(format!("record batch {index} is missing"))),
        };
    }
    let mut batches = Vec::new();
    for batch in reader {
        context.check_cancelled(args.op)?;
        batches.push(batch.map_err(|error| errors.malformed(error))?);
    }
    concat_batches(&schema, &batches).map_err(arrow_error(args.op, format!("concatenating {}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use arrow::ipc::writer::FileWriter;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::ops::{OpRegistry, OpValue};

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    fn path_arg(path: &Path) -> OpValue {
        OpValue::from(path.to_str().expect("utf-8 temp path"))
    }

    fn write_file(directory: &tempfile::TempDir, name: &str, content: &[u8]) -> std::path::PathBuf {
        let path = directory.path().join(name);
        let mut file = File::create(&path).expect("create");
        file.write_all(content).expect("write");
        path
    }

    /// The ids read by `read_csv` over the given ranges, in order.
    fn ids_of_ranges(path: &Path, ranges: &[(u64, u64)]) -> Vec<i64> {
        let mut ids = Vec::new();
        for (start, end) in ranges {
            let batch = run(
                "read_csv",
                vec![path_arg(path), OpValue::from(*start as i64), OpValue::from(*end as i64)],
            )
            .unwrap_or_else(|error| panic!("range {start}..{end}: {error}"));
            assert_eq!(
                batch.schema().field(0).data_type(),
                &DataType::Int64,
                "same schema for every range"
            );
            ids.extend(batch.column(0).as_primitive::<Int64Type>().values().iter().copied());
        }
        ids
    }

    /// Whatever the split point, two consecutive ranges read every line exactly once
    /// — including split points on a line's first byte, on its newline, inside the
    /// header, and at both ends; with and without a final newline.
    #[test]
    fn csv_ranges_cover_each_line_exactly_once_for_every_split_point() {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut content = String::from("id,name,score\n");
        for id in 0..25 {
            // Lines of different lengths, so split points fall everywhere.
            content.push_str(&format!("{id},{},{}.5\n", "x".repeat(id % 7), id * 3));
        }
        for (name, text) in [
            ("trailing.csv", content.clone()),
            ("no_trailing.csv", content.trim_end().to_string()),
        ] {
            let path = write_file(&directory, name, text.as_bytes());
            let length = text.len() as u64;
            let all: Vec<i64> = (0..25).collect();
            assert_eq!(ids_of_ranges(&path, &[(0, length)]), all, "{name}: the whole file");
            for split in 0..=length {
                assert_eq!(
                    ids_of_ranges(&path, &[(0, split), (split, length)]),
                    all,
                    "{name}: split at {split}"
                );
            }
            // Three ranges, a sample of split pairs.
            for first in (0..=length).step_by(7) {
                for second in (first..=length).step_by(11) {
                    assert_eq!(
                        ids_of_ranges(&path, &[(0, first), (first, second), (second, length)]),
                        all,
                        "{name}: splits at {first} and {second}"
                    );
                }
            }
        }
    }

    #[test]
    fn csv_defaults_read_the_whole_file_with_inferred_types() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = write_file(&directory, "a.csv", b"name,amount,ok\nAlice,-100.5,true\nBob,,false\n");
        let batch = run("read_csv", vec![path_arg(&path)]).expect("read");
        assert_eq!(batch.num_rows(), 2);
        let types: Vec<&DataType> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|field| field.data_type())
            .collect();
        assert_eq!(types, [&DataType::Utf8, &DataType::Float64, &DataType::Boolean]);
        assert!(batch.column(1).is_null(1));
        let header_only = write_file(&directory, "h.csv", b"a,b\n");
        assert_eq!(
            run("read_csv", vec![path_arg(&header_only)])
                .expect("header only")
                .num_rows(),
            0
        );
    }

    /// Bad paths, ranges past the end and malformed content are errors naming the
    /// file, never panics.
    #[test]
    fn csv_bad_inputs_are_errors() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = write_file(&directory, "a.csv", b"a,b\n1,2\n3,4\n");
        let shown = path.display().to_string();
        let message = |args: Vec<OpValue>| run("read_csv", args).expect_err("error").to_string();

        let missing = directory.path().join("missing.csv");
        assert!(
            message(vec![path_arg(&missing)]).starts_with(&format!("read_csv: cannot read {}: ", missing.display()))
        );
        assert_eq!(
            message(vec![path_arg(&path), OpValue::from(0_i64), OpValue::from(100_i64)]),
            format!("read_csv: argument end: byte 100 is past the end of {shown} (12 bytes)")
        );
        assert_eq!(
            message(vec![path_arg(&path), OpValue::from(5_i64), OpValue::from(2_i64)]),
            "read_csv: argument start: byte 5 is after end 2"
        );
        assert_eq!(
            message(vec![path_arg(&path), OpValue::from(-1_i64)]),
            "read_csv: argument start: must not be negative, given -1"
        );
        assert!(message(vec![path_arg(directory.path())]).contains("is a directory"));
        let empty = write_file(&directory, "empty.csv", b"");
        assert!(message(vec![path_arg(&empty)]).contains("the file is empty"));

        // A value that does not fit the type inferred from the sample.
        let mut text = String::from("n\n");
        let lines = (CSV_SCHEMA_SAMPLE_BYTES / 2) as usize;
        text.push_str(&"1\n".repeat(lines));
        text.push_str("not a number\n");
        let late = write_file(&directory, "late.csv", text.as_bytes());
        let error = message(vec![path_arg(&late)]);
        assert!(
            error.starts_with(&format!("read_csv: {} is not a valid CSV file: bytes ", late.display())),
            "{error}"
        );
        assert!(error.contains("not a number"), "{error}");

        let ragged = write_file(&directory, "ragged.csv", b"a,b\n1,2\n3\n");
        assert!(message(vec![path_arg(&ragged)]).contains("is not a valid CSV file"));
    }

    fn sample_batch(offset: i64, rows: i64) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let ids: Vec<i64> = (offset..offset + rows).collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Float64Array::from(
                    ids.iter().map(|id| Some(*id as f64 / 2.0)).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    ids.iter().map(|id| Some(format!("n{id}"))).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch")
    }

    /// Parquet round trip: each row group alone, and the whole file.
    #[test]
    fn parquet_round_trip_by_row_group() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("data.parquet");
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(10))
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(&path).expect("create"),
            sample_batch(0, 1).schema(),
            Some(properties),
        )
        .expect("writer");
        writer.write(&sample_batch(0, 25)).expect("write");
        writer.close().expect("close");

        let whole = run("read_parquet", vec![path_arg(&path)]).expect("whole file");
        assert_eq!(whole, sample_batch(0, 25));
        let group = run("read_parquet", vec![path_arg(&path), OpValue::from(1_i64)]).expect("row group 1");
        assert_eq!(group, sample_batch(10, 10));
        let last = run("read_parquet", vec![path_arg(&path), OpValue::from(2_i64)]).expect("row group 2");
        assert_eq!(last, sample_batch(20, 5));

        let error = run("read_parquet", vec![path_arg(&path), OpValue::from(3_i64)])
            .expect_err("out of range")
            .to_string();
        assert_eq!(
            error,
            format!(
                "read_parquet: argument row_group: {} has 3 row group(s), numbered from 0; given 3",
                path.display()
            )
        );
        let not_parquet = write_file(&directory, "fake.parquet", b"a,b\n1,2\n");
        let error = run("read_parquet", vec![path_arg(&not_parquet)])
            .expect_err("not parquet")
            .to_string();
        assert!(
            error.starts_with(&format!(
                "read_parquet: {} is not a valid Parquet file: ",
                not_parquet.display()
            )),
            "{error}"
        );
        // A truncated file: the footer is gone.
        let bytes = std::fs::read(&path).expect("read back");
        let truncated = write_file(&directory, "truncated.parquet", &bytes[..bytes.len() / 2]);
        assert!(run("read_parquet", vec![path_arg(&truncated)]).is_err());
    }

    /// Arrow IPC round trip: each batch alone, and all of them concatenated.
    #[test]
    fn arrow_ipc_round_trip_by_batch() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("data.arrow");
        let mut writer =
            FileWriter::try_new(File::create(&path).expect("create"), &sample_batch(0, 1).schema()).expect("writer");
        writer.write(&sample_batch(0, 4)).expect("write");
        writer.write(&sample_batch(4, 3)).expect("write");
        writer.finish().expect("finish");

        assert_eq!(
            run("read_arrow", vec![path_arg(&path)]).expect("all"),
            sample_batch(0, 7)
        );
        assert_eq!(
            run("read_arrow", vec![path_arg(&path), OpValue::from(1_i64)]).expect("batch 1"),
            sample_batch(4, 3)
        );
        let error = run("read_arrow", vec![path_arg(&path), OpValue::from(2_i64)])
            .expect_err("out of range")
            .to_string();
        assert!(
            error.ends_with("has 2 record batch(es), numbered from 0; given 2"),
            "{error}"
        );
        let not_arrow = write_file(&directory, "fake.arrow", b"hello");
        let error = run("read_arrow", vec![path_arg(&not_arrow)])
            .expect_err("not ipc")
            .to_string();
        assert!(
            error.starts_with(&format!(
                "read_arrow: {} is not a valid Arrow IPC file: ",
                not_arrow.display()
            )),
            "{error}"
        );
        let bytes = std::fs::read(&path).expect("read back");
        let truncated = write_file(&directory, "truncated.arrow", &bytes[..bytes.len() - 20]);
        assert!(run("read_arrow", vec![path_arg(&truncated)]).is_err());
    }

    /// A cancelled read stops between batches.
    #[test]
    fn a_cancelled_read_stops() {
        let directory = tempfile::tempdir().expect("temp dir");
        let text = format!("n\n{}", "1\n".repeat(3 * CSV_BATCH_ROWS));
        let path = write_file(&directory, "big.csv", text.as_bytes());
        let context = OpContext::new("read-big");
        context.cancel();
        let operation = OpRegistry::builtins().get("read_csv").expect("built in");
        let result = operation.run(vec![path_arg(&path)], &context);
        assert!(matches!(result, Err(OpError::Cancelled { .. })), "{result:?}");
    }
}
