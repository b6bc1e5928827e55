//! Tabular files for the CLI: CSV, Parquet and Arrow IPC in, out and on screen.
//!
//! Used by `cairn datasets publish NAME --file F [--chunk-rows N]` (reading, progress) and
//! `cairn datasets get NAME --head N | --output F` (showing, writing). Everything here is
//! synchronous file I/O: async callers run it on a blocking thread.
//!
//! # Layout
//!
//! - `format.rs`: [`FileFormat`] from a file's extension; IPC file vs stream by magic bytes.
//! - `read.rs`: [`open_inputs`] and [`TableReader`], several files as one table in chunks.
//! - `csv_source.rs`: one CSV file, schema inferred over all rows, decoded in batches.
//! - `csv_diagnosis.rs`: the line and cause of a CSV decoding error.
//! - `parquet_source.rs`, `ipc_source.rs`: one Parquet / Arrow IPC file.
//! - `schema_check.rs`: the first differing field between two schemas.
//! - `write.rs`: [`TableWriter`], a file written via a temporary and renamed at the end.
//! - `show.rs`: [`format_head`] and [`format_schema`] for the terminal.
//! - `progress.rs`: [`progress_bar`], shown only on a terminal.
//! - `error.rs`: [`TabularError`], every variant naming its file.
//!
//! # Choices
//!
//! - A CSV file must have a header row and at least one data row: with no rows, no column
//!   type can be inferred, so a header-only file is an error ([`TabularError::CsvNoRows`]).
//! - A CSV error names the line where the bad record starts, counting the header as line 1
//!   and counting the newlines inside quoted fields.
//! - Arrow IPC input is recognised by content: `ARROW1` at the start is the file flavour,
//!   a continuation marker the stream flavour, whatever the extension (`.arrow`, `.arrows`,
//!   `.ipc`, `.feather`). Output is the file flavour, except for `.arrows`.

mod csv_diagnosis;
mod csv_source;
mod error;
mod format;
mod ipc_source;
mod parquet_source;
mod progress;
mod read;
mod schema_check;
mod show;
mod write;

#[cfg(test)]
mod test_support;

pub use error::{CsvProblem, TabularError};
pub use format::FileFormat;
pub use progress::progress_bar;
pub use read::{open_inputs, TableReader};
pub use show::{format_head, format_schema};
pub use write::TableWriter;
