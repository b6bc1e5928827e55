//! The errors of reading, writing and showing tabular files.
//!
//! Every variant names the file it is about, so that `cairn datasets publish` with
//! several `--file` arguments tells which one is wrong, and CSV errors name the line.

use std::path::PathBuf;

use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use parquet::errors::ParquetError;

use super::format::FileFormat;

/// What went wrong with a tabular file.
#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    /// The file name does not end with an extension that names a format we know.
    #[error(
        "{}: cannot tell the file format from the extension; supported: .csv, .parquet, .pq, .arrow, .arrows, .ipc, .feather",
        path.display()
    )]
    UnsupportedExtension {
        /// The path as given.
        path: PathBuf,
    },

    /// `open_inputs` was called with an empty list.
    #[error("no input files were given")]
    NoInputs,

    /// Batches of zero rows would never make progress.
    #[error("the chunk size must be at least 1 row (got 0)")]
    ZeroChunkRows,

    /// The file could not be opened (missing, permissions, a directory, ...).
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// Reading an opened file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The content is not what the extension says (e.g. a `.parquet` that is text).
    #[error("{} is not a valid {format} file: {detail}", path.display())]
    NotThisFormat {
        /// The file.
        path: PathBuf,
        /// The format its extension names.
        format: FileFormat,
        /// Why the content was rejected.
        detail: String,
    },

    /// The Parquet footer or metadata could not be read.
    #[error("{} is not a readable Parquet file: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The Parquet library's error.
        source: ParquetError,
    },

    /// Decoding the data of a Parquet or Arrow IPC file failed after its schema was read.
    #[error("cannot decode the {format} data of {}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: FileFormat,
        /// Arrow's error.
        source: ArrowError,
    },

    /// A CSV file has nothing in it, not even a header row.
    #[error("{} is empty: a CSV file needs a header row naming the columns", path.display())]
    CsvNoHeader {
        /// The file.
        path: PathBuf,
    },

    /// A CSV file has a header but no data rows, so no column type can be inferred.
    #[error("{} has a header but no rows, so the types of its columns cannot be inferred", path.display())]
    CsvNoRows {
        /// The file.
        path: PathBuf,
    },

    /// Schema inference (the first pass over a CSV file) failed, e.g. on invalid UTF-8.
    #[error("{}: cannot infer the CSV schema: {source}", path.display())]
    CsvInference {
        /// The file.
        path: PathBuf,
        /// Arrow's error (its line numbers, when it gives one, count the header as line 1).
        source: ArrowError,
    },

    /// One record of a CSV file is malformed; `line` is where the record starts in the file.
    #[error("{}, line {line}: {problem}", path.display())]
    CsvRecord {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file, the header being line 1.
        line: u64,
        /// What is wrong with the record.
        problem: CsvProblem,
    },

    /// Decoding a CSV file failed and the faulty record could not be pinned down.
    #[error("{}: cannot decode the CSV data near line {near_line}: {source}", path.display())]
    CsvDecode {
        /// The file.
        path: PathBuf,
        /// The line where the batch being decoded started.
        near_line: u64,
        /// Arrow's error (its own line numbers are relative and should not be trusted).
        source: ArrowError,
    },

    /// Two input files do not have the same fields in the same order.
    #[error(
        "{} does not have the same schema as {}: field {position} is {first_field} in {} but {other_field} in {}",
        other_path.display(), first_path.display(), first_path.display(), other_path.display()
    )]
    SchemaMismatch {
        /// The first input file, whose schema is the table's.
        first_path: PathBuf,
        /// The file that differs.
        other_path: PathBuf,
        /// 1-based position of the first differing field.
        position: usize,
        /// That field in the first file, as `name: type (nullable)`, or "absent".
        first_field: String,
        /// That field in the other file, as `name: type (nullable)`, or "absent".
        other_field: String,
    },

    /// A batch given to the writer does not have the fields the writer was created with.
    #[error("cannot write to {}: a batch has the schema [{found}] but the file has [{expected}]", path.display())]
    BatchSchemaMismatch {
        /// The output file.
        path: PathBuf,
        /// The writer's fields.
        expected: String,
        /// The batch's fields.
        found: String,
    },

    /// The temporary file next to the output could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The output file (not the temporary one, which the user never named).
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The encoder (CSV, Arrow IPC) rejected the data.
    #[error("cannot encode {} as {format}: {source}", path.display())]
    Encode {
        /// The output file.
        path: PathBuf,
        /// The output format.
        format: FileFormat,
        /// Arrow's error.
        source: ArrowError,
    },

    /// The Parquet encoder rejected the data.
    #[error("cannot encode {} as Parquet: {source}", path.display())]
    EncodeParquet {
        /// The output file.
        path: PathBuf,
        /// The Parquet library's error.
        source: ParquetError,
    },

    /// The finished temporary file could not be renamed over the output path.
    #[error("cannot move the finished file into place at {}: {source}", path.display())]
    Persist {
        /// The output file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// Arrow's pretty printer failed (an unsupported type).
    #[error("cannot format the table for display: {source}")]
    Display {
        /// Arrow's error.
        source: ArrowError,
    },
}

/// What is wrong with one CSV record (the file and line are in [`TabularError::CsvRecord`]).
#[derive(Debug, thiserror::Error)]
pub enum CsvProblem {
    /// The record has more or fewer fields than the header.
    #[error("expected {expected} fields (as in the header) but found {found}")]
    WrongFieldCount {
        /// The number of columns in the header.
        expected: usize,
        /// The number of fields in the record (counted by a quote-aware scan).
        found: usize,
    },

    /// A value does not parse as the type inferred for its column.
    #[error("value {value:?} in column {column:?} is not a valid {expected_type}")]
    BadValue {
        /// The column's name from the header.
        column: String,
        /// The value as written in the file (unquoted).
        value: String,
        /// The type inferred for the column.
        expected_type: DataType,
    },

    /// The record contains bytes that are not UTF-8.
    #[error("the record is not valid UTF-8")]
    InvalidUtf8,

    /// Arrow rejected the record for a reason the checks above did not find.
    #[error("cannot decode the record: {source}")]
    Undecodable {
        /// Arrow's error.
        source: ArrowError,
    },
}
