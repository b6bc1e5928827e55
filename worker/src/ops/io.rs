//! The readers: `read_csv` (a byte range of a CSV file), `read_parquet` (a row group
//! of a Parquet file), `read_arrow` (a record batch of an Arrow IPC file). Paths are
//! read on the worker that runs the task; glob patterns are expanded by the client,
//! which makes one task per file (or per byte range, or row group).
//!
//! # Remote objects
//!
//! A path starting with `s3://`, `http://` or `https://` is read by byte range through
//! [`cairn_client::remote`] (S3 configured by the worker's `AWS_*` environment
//! variables: `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), fetching only what the task needs:
//!
//! - `read_csv`: the first [`CSV_SCHEMA_SAMPLE_BYTES`] (the schema), the range itself
//!   from one byte before `start`, and past `end` only the rest of the last line, in
//!   growing blocks until its newline;
//! - `read_parquet`: the footer, then each row group read as one ranged `GET` over
//!   its column chunks (kept in memory while its pages are decoded);
//! - `read_arrow`: the footer, then each record batch read (one ranged `GET` each),
//!   through a [`cairn_client::remote::RangeReader`].
//!
//! The rules below are the same for remote objects; a missing object or bucket, or a
//! network failure, is an error naming the URL (`cannot read s3://…: …`).
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
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow::compute::kernels::concat::concat_batches;
use arrow::csv::reader::Format;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use bytes::Bytes;
use cairn_client::remote::{self, RemoteError, RemoteErrorKind, RemoteObject};
use cairn_client::ParamKind;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::args::{optional, required, Args, Builtin};
use super::batch::arrow_error;
use super::{OpContext, OpError};

/// How much of a CSV file its schema is inferred from: the first 1 MiB, cut at the
/// last line end within it.
pub const CSV_SCHEMA_SAMPLE_BYTES: u64 = 1 << 20;

/// Rows per batch while a CSV range is parsed (the batches are concatenated; between
/// two, the reader looks at the cancellation flag).
const CSV_BATCH_ROWS: usize = 8192;

/// The first block fetched past the end of a remote CSV range to find the end of its
/// last line; each next one is twice as long, up to [`CSV_TAIL_MAX_BYTES`].
const CSV_TAIL_BYTES: u64 = 64 << 10;
/// The longest block fetched at once for the end of a remote CSV range's last line.
const CSV_TAIL_MAX_BYTES: u64 = 4 << 20;

/// The block of the range reader under a remote Arrow IPC file. Arrow's reader reads
/// the 10-byte footer trailer and then each footer and record batch in one read, so
/// small blocks cost only the trailer's block, and every long read is fetched exactly.
const IPC_BLOCK_BYTES: u64 = 64 << 10;

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

    /// A failed remote call, as an I/O error on this URL.
    fn remote(&self, error: &RemoteError) -> OpError {
        OpError::Io {
            op: self.op.to_string(),
            path: self.path.to_path_buf(),
            source: error.to_io_error(),
        }
    }

    /// Opens a remote object (a `HEAD`: a missing object or bucket fails here).
    fn open_remote(&self, url: &str) -> Result<RemoteObject, OpError> {
        RemoteObject::open(url).map_err(|error| self.remote(&error))
    }

    /// A reader's error: an I/O error if a remote call under it failed (`remote`),
    /// else (or if the reader asked for bytes outside the object) a malformed file.
    fn read_failure(&self, remote: Option<&RemoteError>, error: impl std::fmt::Display) -> OpError {
        match remote {
            Some(remote) if remote.kind() != RemoteErrorKind::Invalid => self.remote(remote),
            _ => self.malformed(error),
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
    let raw_path = args.str(0, "path")?;
    let path = Path::new(raw_path);
    let errors = FileErrors {
        op: args.op,
        path,
        format: "CSV",
    };
    let start = args.opt_count(1, "start")?.map(|start| start as u64);
    let end = args.opt_count(2, "end")?.map(|end| end as u64);
    if remote::is_remote(raw_path) {
        let object = errors.open_remote(raw_path)?;
        let (start, end) = csv_range(args, path, start, end, object.size())?;
        return read_remote_csv(args, context, &errors, &object, start, end);
    }
    let (file, length) = errors.open(args)?;
    let (start, end) = csv_range(args, path, start, end, length)?;

    let schema = infer_csv_schema(&errors, &file, length)?;
    let header_end = line_start_at_or_after(&errors, &file, 1, length)?;
    let begin = line_start_at_or_after(&errors, &file, start, length)?.max(header_end);
    let stop = line_start_at_or_after(&errors, &file, end, length)?;
    if begin >= stop {
        return Ok(RecordBatch::new_empty(schema));
    }

    let mut handle = &file;
    handle.seek(SeekFrom::Start(begin)).map_err(|error| errors.io(error))?;
    parse_csv_lines(args, context, &errors, &schema, handle.take(stop - begin), begin..stop)
}

/// The byte range `[start, end)` asked for (default: the whole file), checked against
/// the file's `length`.
fn csv_range(
    args: &Args<'_>,
    path: &Path,
    start: Option<u64>,
    end: Option<u64>,
    length: u64,
) -> Result<(u64, u64), OpError> {
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
    Ok((start, end))
}

/// Parses `lines` (bytes `range` of the file: whole lines, no header) with `schema`.
fn parse_csv_lines(
    args: &Args<'_>,
    context: &OpContext,
    errors: &FileErrors<'_>,
    schema: &SchemaRef,
    lines: impl Read,
    range: Range<u64>,
) -> Result<RecordBatch, OpError> {
    let (begin, stop) = (range.start, range.end);
    let reader = ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_batch_size(CSV_BATCH_ROWS)
        .build(lines)
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
    concat_batches(schema, &batches).map_err(arrow_error(args.op, format!("concatenating {}", errors.path.display())))
}

/// `read_csv` of a remote object: the same lines as a local file's, fetching the
/// schema sample, bytes `[start - 1, end)` and the rest of the last line only.
fn read_remote_csv(
    args: &Args<'_>,
    context: &OpContext,
    errors: &FileErrors<'_>,
    object: &RemoteObject,
    start: u64,
    end: u64,
) -> Result<RecordBatch, OpError> {
    let length = object.size();
    let sample = object
        .get_range(0..length.min(CSV_SCHEMA_SAMPLE_BYTES))
        .map_err(|error| errors.remote(&error))?;
    let schema = schema_from_sample(errors, sample.to_vec(), length)?;
    // The header's line end is in the sample (else the schema failed), unless the
    // object is one line.
    let header_end = sample
        .iter()
        .position(|byte| *byte == b'\n')
        .map_or(length, |newline| newline as u64 + 1);
    // Bytes the sample holds are not fetched again.
    let fetch = |range: Range<u64>| -> Result<Bytes, OpError> {
        if range.end <= sample.len() as u64 {
            return Ok(sample.slice(range.start as usize..range.end as usize));
        }
        object.get_range(range).map_err(|error| errors.remote(&error))
    };
    let empty = || Ok(RecordBatch::new_empty(schema.clone()));
    if start >= end {
        return empty();
    }
    // The first line starting at or after `start` follows the first newline at or
    // after byte `start - 1`; none before `end` means no line starts in the range.
    let from = start.saturating_sub(1);
    let body = fetch(from..end)?;
    let begin = if start == 0 {
        0
    } else {
        match body.iter().position(|byte| *byte == b'\n') {
            Some(newline) => from + newline as u64 + 1,
            None => return empty(),
        }
    };
    let begin = begin.max(header_end);
    if begin >= end {
        return empty();
    }
    // The last line runs to its newline, past `end` if need be.
    let mut tail = Vec::new();
    let stop = if end >= length || body.last() == Some(&b'\n') {
        end
    } else {
        let mut position = end;
        let mut block = CSV_TAIL_BYTES;
        loop {
            context.check_cancelled(args.op)?;
            let next = (position + block).min(length);
            let chunk = fetch(position..next)?;
            if let Some(newline) = chunk.iter().position(|byte| *byte == b'\n') {
                tail.extend_from_slice(&chunk[..=newline]);
                break position + newline as u64 + 1;
            }
            tail.extend_from_slice(&chunk);
            position = next;
            if position >= length {
                break length;
            }
            block = (block * 2).min(CSV_TAIL_MAX_BYTES);
        }
    };
    let lines = Cursor::new(body.slice((begin - from) as usize..)).chain(Cursor::new(tail));
    parse_csv_lines(args, context, errors, &schema, lines, begin..stop)
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
    let sample_length = length.min(CSV_SCHEMA_SAMPLE_BYTES);
    let mut sample = Vec::with_capacity(sample_length as usize);
    let mut handle = file;
    handle.seek(SeekFrom::Start(0)).map_err(|error| errors.io(error))?;
    handle
        .take(sample_length)
        .read_to_end(&mut sample)
        .map_err(|error| errors.io(error))?;
    schema_from_sample(errors, sample, length)
}

/// The schema of a CSV file of `length` bytes from its first
/// `min(length, CSV_SCHEMA_SAMPLE_BYTES)` bytes, `sample`: names from the first line,
/// types inferred from the sample cut at its last line end.
fn schema_from_sample(errors: &FileErrors<'_>, mut sample: Vec<u8>, length: u64) -> Result<SchemaRef, OpError> {
    if length == 0 {
        return Err(errors.malformed("the file is empty: it has no header line"));
    }
    if (sample.len() as u64) < length {
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
    let raw_path = args.str(0, "path")?;
    let path = Path::new(raw_path);
    let errors = FileErrors {
        op: args.op,
        path,
        format: "Parquet",
    };
    let row_group = args.opt_count(1, "row_group")?;
    if remote::is_remote(raw_path) {
        let chunks = RemoteChunks::new(errors.open_remote(raw_path)?);
        let row_groups = chunks.row_groups.clone();
        let learn_row_groups = move |metadata: &ParquetMetaData| {
            let ranges = metadata
                .row_groups()
                .iter()
                .map(|group| {
                    // `byte_range` panics on negative offsets: a malformed footer
                    // gets no prefetch here and fails in the reader instead.
                    let ranges = group.columns().iter().map(|column| {
                        let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
                        let start = u64::try_from(start).unwrap_or(0);
                        start..start.saturating_add(u64::try_from(column.compressed_size()).unwrap_or(0))
                    });
                    let start = ranges.clone().map(|range| range.start).min().unwrap_or(0);
                    let end = ranges.map(|range| range.end).max().unwrap_or(0);
                    start..end
                })
                .collect();
            let _ = row_groups.set(ranges);
        };
        return read_parquet_from(args, context, &errors, chunks, row_group, learn_row_groups);
    }
    let (file, _length) = errors.open(args)?;
    read_parquet_from(args, context, &errors, file, row_group, |_| ())
}

/// A remote object as Parquet's [`ChunkReader`]. Parquet's reader asks for each page
/// header and page on its own, so a row group's column chunks are fetched at once
/// (one ranged `GET` over them, kept until a read leaves the row group) and served
/// from memory; anything else (the footer, the metadata) is fetched as asked, through
/// small blocks.
struct RemoteChunks {
    object: RemoteObject,
    /// The bytes of each row group's column chunks, `[first start, last end)`: set once
    /// the metadata is read.
    row_groups: Arc<std::sync::OnceLock<Vec<Range<u64>>>>,
    /// The row group fetched last: its range's start and bytes.
    current: std::sync::Mutex<Option<(u64, Bytes)>>,
}

/// The block of the range reader for what [`RemoteChunks`] reads outside row groups
/// (the 8-byte footer trailer through `get_read`).
const PARQUET_BLOCK_BYTES: u64 = 64 << 10;

impl RemoteChunks {
    fn new(object: RemoteObject) -> RemoteChunks {
        RemoteChunks {
            object,
            row_groups: Arc::new(std::sync::OnceLock::new()),
            current: std::sync::Mutex::new(None),
        }
    }

    /// The bytes from `start` to the end of the row group holding `[start, end)`
    /// (`start` itself for an empty range), fetching the row group if it is not the
    /// current one; `None` outside row groups.
    fn row_group_bytes(&self, start: u64, end: u64) -> Result<Option<Bytes>, RemoteError> {
        let Some(range) = self.row_groups.get().and_then(|ranges| {
            ranges
                .iter()
                .find(|range| range.start <= start && start < range.end && end <= range.end)
        }) else {
            return Ok(None);
        };
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fetched = match current.as_ref() {
            Some((at, bytes)) if *at == range.start => bytes.clone(),
            _ => {
                let bytes = self.object.get_range(range.clone())?;
                *current = Some((range.start, bytes.clone()));
                bytes
            }
        };
        Ok(Some(fetched.slice((start - range.start) as usize..)))
    }
}

impl Length for RemoteChunks {
    fn len(&self) -> u64 {
        self.object.size()
    }
}

impl ChunkReader for RemoteChunks {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let external = |error: RemoteError| ParquetError::External(Box::new(error));
        if let Some(bytes) = self.row_group_bytes(start, start).map_err(external)? {
            return Ok(Box::new(Cursor::new(bytes)));
        }
        let mut reader = self.object.reader().with_block_size(PARQUET_BLOCK_BYTES);
        reader.seek(SeekFrom::Start(start))?;
        Ok(Box::new(reader))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let external = |error: RemoteError| ParquetError::External(Box::new(error));
        let end = start.saturating_add(length as u64);
        if let Some(bytes) = self.row_group_bytes(start, end).map_err(external)? {
            return Ok(bytes.slice(..length));
        }
        self.object.get_range(start..end).map_err(external)
    }
}

/// The remote call that failed under a Parquet error, if one did.
fn parquet_remote_failure(error: &ParquetError) -> Option<&RemoteError> {
    match error {
        ParquetError::External(source) => source.downcast_ref::<RemoteError>().or_else(|| {
            source
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<RemoteError>())
        }),
        _ => None,
    }
}

/// The remote call that failed under an Arrow error, if one did.
fn arrow_remote_failure(error: &ArrowError) -> Option<&RemoteError> {
    match error {
        ArrowError::IoError(_, io) => io.get_ref().and_then(|inner| inner.downcast_ref::<RemoteError>()),
        ArrowError::ExternalError(source) => source
            .downcast_ref::<RemoteError>()
            .or_else(|| source.downcast_ref::<ParquetError>().and_then(parquet_remote_failure)),
        _ => None,
    }
}

/// `read_parquet` from a local file or a remote object.
fn read_parquet_from<T: ChunkReader + 'static>(
    args: &Args<'_>,
    context: &OpContext,
    errors: &FileErrors<'_>,
    source: T,
    row_group: Option<usize>,
    on_metadata: impl FnOnce(&ParquetMetaData),
) -> Result<RecordBatch, OpError> {
    let path = errors.path;
    let failed = |error: ParquetError| errors.read_failure(parquet_remote_failure(&error), &error);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(source).map_err(failed)?;
    on_metadata(builder.metadata());
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
    let reader = builder.build().map_err(failed)?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for batch in reader {
        context.check_cancelled(args.op)?;
        batches.push(batch.map_err(|error| errors.read_failure(arrow_remote_failure(&error), &error))?);
    }
    concat_batches(&schema, &batches).map_err(arrow_error(args.op, format!("concatenating {}", path.display())))
}

/// `read_arrow(path, batch?)`: one record batch of an Arrow IPC file, or all of them
/// concatenated.
fn read_arrow(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let raw_path = args.str(0, "path")?;
    let path = Path::new(raw_path);
    let errors = FileErrors {
        op: args.op,
        path,
        format: "Arrow IPC",
    };
    let index = args.opt_count(1, "batch")?;
    if remote::is_remote(raw_path) {
        let reader = errors.open_remote(raw_path)?.reader().with_block_size(IPC_BLOCK_BYTES);
        return read_arrow_from(args, context, &errors, reader, index);
    }
    let (file, _length) = errors.open(args)?;
    read_arrow_from(args, context, &errors, BufReader::new(file), index)
}

/// `read_arrow` from a local file or a remote object.
fn read_arrow_from<R: Read + Seek>(
    args: &Args<'_>,
    context: &OpContext,
    errors: &FileErrors<'_>,
    source: R,
    index: Option<usize>,
) -> Result<RecordBatch, OpError> {
    let path = errors.path;
    let failed = |error: ArrowError| errors.read_failure(arrow_remote_failure(&error), &error);
    let mut reader = FileReader::try_new(source, None).map_err(failed)?;
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
        reader.set_index(index).map_err(failed)?;
        return match reader.next() {
            Some(batch) => batch.map_err(failed),
            None => Err(errors.malformed(format!("record batch {index} is missing"))),
        };
    }
    let mut batches = Vec::new();
    for batch in reader {
        context.check_cancelled(args.op)?;
        batches.push(batch.map_err(failed)?);
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
    use cairn_client::remote::CountingStore;
    use object_store::memory::InMemory;

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

    /// `objects` in an in-memory store behind a byte counter, served as
    /// `s3://{bucket}/{key}` to this process's readers.
    fn remote_store(bucket: &str, objects: &[(&str, &[u8])]) -> Arc<CountingStore> {
        use object_store::ObjectStoreExt;
        let inner = Arc::new(InMemory::new());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            for (key, bytes) in objects {
                inner
                    .put(&object_store::path::Path::from(*key), bytes.to_vec().into())
                    .await
                    .expect("put");
            }
        });
        let counting = Arc::new(CountingStore::new(inner));
        remote::register_store(&format!("s3://{bucket}"), counting.clone()).expect("register");
        counting
    }

    /// A remote CSV object reads like the local file: every split point, two and
    /// three ranges, every line exactly once, with and without a final newline.
    #[test]
    fn remote_csv_ranges_cover_each_line_exactly_once_for_every_split_point() {
        let mut content = String::from("id,name,score\n");
        for id in 0..25 {
            content.push_str(&format!("{id},{},{}.5\n", "x".repeat(id % 7), id * 3));
        }
        let trimmed = content.trim_end().to_string();
        remote_store(
            "io-csv-splits",
            &[
                ("trailing.csv", content.as_bytes()),
                ("no_trailing.csv", trimmed.as_bytes()),
            ],
        );
        for (name, length) in [("trailing.csv", content.len()), ("no_trailing.csv", trimmed.len())] {
            let url = format!("s3://io-csv-splits/{name}");
            let path = Path::new(&url);
            let length = length as u64;
            let all: Vec<i64> = (0..25).collect();
            assert_eq!(ids_of_ranges(path, &[(0, length)]), all, "{name}: the whole object");
            for split in 0..=length {
                assert_eq!(
                    ids_of_ranges(path, &[(0, split), (split, length)]),
                    all,
                    "{name}: split at {split}"
                );
            }
            for first in (0..=length).step_by(7) {
                for second in (first..=length).step_by(11) {
                    assert_eq!(
                        ids_of_ranges(path, &[(0, first), (first, second), (second, length)]),
                        all,
                        "{name}: splits at {first} and {second}"
                    );
                }
            }
        }
        let whole = run("read_csv", vec![OpValue::from("s3://io-csv-splits/trailing.csv")]).expect("defaults");
        assert_eq!(whole.num_rows(), 25);
    }

    /// A small range of a large remote CSV fetches the schema sample, the range and
    /// the end of its last line only, and reads the same rows as the local file.
    #[test]
    fn remote_csv_small_range_fetches_a_fraction_of_the_object() {
        let mut text = String::from("id,name,score\n");
        let mut id = 0;
        while text.len() < 16 << 20 {
            text.push_str(&format!("{id},name-{},{}.25\n", id % 1000, id));
            id += 1;
        }
        let counting = remote_store("io-csv-fraction", &[("big.csv", text.as_bytes())]);
        let directory = tempfile::tempdir().expect("temp dir");
        let local = write_file(&directory, "big.csv", text.as_bytes());
        let (start, end) = (8_u64 << 20, (8_u64 << 20) + (64 << 10) + 5);
        let range = |path: OpValue| {
            run(
                "read_csv",
                vec![path, OpValue::from(start as i64), OpValue::from(end as i64)],
            )
        };
        let remote = range(OpValue::from("s3://io-csv-fraction/big.csv")).expect("remote range");
        assert_eq!(remote, range(path_arg(&local)).expect("local range"));
        assert!(remote.num_rows() > 1000, "{} rows", remote.num_rows());
        let fraction = counting.bytes_fetched() as f64 / text.len() as f64;
        eprintln!(
            "remote CSV range of {} bytes: fetched {} of {} bytes ({:.1}%)",
            end - start,
            counting.bytes_fetched(),
            text.len(),
            fraction * 100.0
        );
        assert!(fraction < 0.1, "fetched {:.1}% of the object", fraction * 100.0);

        let message = run(
            "read_csv",
            vec![
                OpValue::from("s3://io-csv-fraction/big.csv"),
                OpValue::from(0_i64),
                OpValue::from(1_i64 << 40),
            ],
        )
        .expect_err("past the end")
        .to_string();
        assert!(
            message.starts_with(
                "read_csv: argument end: byte 1099511627776 is past the end of s3://io-csv-fraction/big.csv"
            ),
            "{message}"
        );
        let message = run("read_csv", vec![OpValue::from("s3://io-csv-fraction/missing.csv")])
            .expect_err("missing")
            .to_string();
        assert!(
            message.starts_with("read_csv: cannot read s3://io-csv-fraction/missing.csv: not found"),
            "{message}"
        );
    }

    /// One row group of a remote Parquet object fetches the footer and its column
    /// chunks only; the whole object reads like the local file.
    #[test]
    fn remote_parquet_row_group_fetches_a_fraction_of_the_object() {
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(10_000))
            .build();
        let mut bytes = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut bytes, sample_batch(0, 1).schema(), Some(properties)).expect("writer");
        writer.write(&sample_batch(0, 200_000)).expect("write");
        writer.close().expect("close");
        let counting = remote_store("io-parquet", &[("data.parquet", &bytes)]);
        let url = "s3://io-parquet/data.parquet";

        let group = run("read_parquet", vec![OpValue::from(url), OpValue::from(7_i64)]).expect("row group 7");
        assert_eq!(group, sample_batch(70_000, 10_000));
        let fraction = counting.bytes_fetched() as f64 / bytes.len() as f64;
        eprintln!(
            "remote Parquet row group 7 of 20: fetched {} of {} bytes ({:.1}%)",
            counting.bytes_fetched(),
            bytes.len(),
            fraction * 100.0
        );
        assert!(fraction < 0.1, "fetched {:.1}% of the object", fraction * 100.0);
        // The HEAD, the footer's trailer, the metadata, the row group: not one per page.
        assert!(counting.requests() <= 4, "{} requests", counting.requests());

        assert_eq!(
            run("read_parquet", vec![OpValue::from(url)]).expect("whole object"),
            sample_batch(0, 200_000)
        );
        let error = run("read_parquet", vec![OpValue::from(url), OpValue::from(20_i64)])
            .expect_err("out of range")
            .to_string();
        assert_eq!(
            error,
            format!("read_parquet: argument row_group: {url} has 20 row group(s), numbered from 0; given 20")
        );
        let error = run("read_parquet", vec![OpValue::from("s3://io-parquet/missing.parquet")])
            .expect_err("missing")
            .to_string();
        assert!(
            error.starts_with("read_parquet: cannot read s3://io-parquet/missing.parquet: not found"),
            "{error}"
        );
    }

    /// One record batch of a remote Arrow IPC object fetches the footer and that
    /// batch only; the whole object reads like the local file.
    #[test]
    fn remote_arrow_batch_fetches_a_fraction_of_the_object() {
        let mut bytes = Vec::new();
        let mut writer = FileWriter::try_new(&mut bytes, &sample_batch(0, 1).schema()).expect("writer");
        for index in 0..20 {
            writer.write(&sample_batch(index * 25_000, 25_000)).expect("write");
        }
        writer.finish().expect("finish");
        drop(writer);
        let counting = remote_store("io-arrow", &[("data.arrow", &bytes)]);
        let url = "s3://io-arrow/data.arrow";

        let batch = run("read_arrow", vec![OpValue::from(url), OpValue::from(17_i64)]).expect("batch 17");
        assert_eq!(batch, sample_batch(17 * 25_000, 25_000));
        let fraction = counting.bytes_fetched() as f64 / bytes.len() as f64;
        eprintln!(
            "remote Arrow IPC batch 17 of 20: fetched {} of {} bytes ({:.1}%)",
            counting.bytes_fetched(),
            bytes.len(),
            fraction * 100.0
        );
        assert!(fraction < 0.1, "fetched {:.1}% of the object", fraction * 100.0);

        assert_eq!(
            run("read_arrow", vec![OpValue::from(url)]).expect("whole object"),
            sample_batch(0, 500_000)
        );
        let error = run("read_arrow", vec![OpValue::from("s3://io-arrow/missing.arrow")])
            .expect_err("missing")
            .to_string();
        assert!(
            error.starts_with("read_arrow: cannot read s3://io-arrow/missing.arrow: not found"),
            "{error}"
        );
        let truncated = &bytes[..bytes.len() - 20];
        remote_store("io-arrow-truncated", &[("data.arrow", truncated)]);
        let error = run("read_arrow", vec![OpValue::from("s3://io-arrow-truncated/data.arrow")])
            .expect_err("truncated")
            .to_string();
        assert!(error.contains("s3://io-arrow-truncated/data.arrow"), "{error}");
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
