//! Writing a table to a CSV, Parquet or Arrow IPC file as its batches arrive.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::writer::{FileWriter, StreamWriter};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tempfile::NamedTempFile;

use super::error::TabularError;
use super::format::FileFormat;
use super::schema_check::{describe_fields, first_field_difference};

/// The encoder for the output format, writing into the temporary file.
enum Encoder {
    /// CSV with a header row.
    Csv(arrow::csv::Writer<BufWriter<File>>),
    /// Parquet, zstd-compressed (the Parquet writer buffers by itself).
    Parquet(Box<ArrowWriter<File>>),
    /// Arrow IPC file flavour (`.arrow`, `.ipc`, `.feather`).
    IpcFile(FileWriter<BufWriter<File>>),
    /// Arrow IPC stream flavour (`.arrows`, whose name says stream).
    IpcStream(StreamWriter<BufWriter<File>>),
}

/// Writes batches to a file in the format its extension names, atomically.
///
/// The data goes to a hidden temporary file in the same directory, renamed over `path` by
/// [`TableWriter::finish`]; if the writer is dropped before, or anything fails, the temporary
/// file is removed and `path` is untouched. This lets the caller feed batches as they arrive
/// from the network without ever leaving half a file.
pub struct TableWriter {
    /// The file the user asked for.
    path: PathBuf,
    /// Its format, for error messages.
    format: FileFormat,
    /// The fields every batch must have.
    schema: SchemaRef,
    /// The temporary file next to `path`; deleted on drop unless persisted.
    temporary: NamedTempFile,
    /// The format's encoder, writing to a second handle on `temporary`.
    encoder: Encoder,
    /// Rows written so far, returned by `finish`.
    rows_written: u64,
}

impl TableWriter {
    /// Creates the temporary file next to `path` and starts a table of `schema` in the format
    /// named by the extension of `path` (a CSV file gets its header row at once).
    pub fn create(path: &Path, schema: SchemaRef) -> Result<TableWriter, TabularError> {
        let format = FileFormat::from_path(path)?;
        let temporary = create_temporary_next_to(path)?;
        let handle = temporary
            .as_file()
            .try_clone()
            .map_err(|source| write_error(path, source))?;
        let encode_error = |source: ArrowError| TabularError::Encode {
            path: path.to_path_buf(),
            format,
            source,
        };
        let encoder = match format {
            FileFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(BufWriter::new(handle));
                // The CSV writer writes the header with the first batch: an empty one makes
                // sure that a table without rows still gets its header.
                writer
                    .write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(encode_error)?;
                Encoder::Csv(writer)
            }
            FileFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let writer = ArrowWriter::try_new(handle, schema.clone(), Some(properties)).map_err(|source| {
                    TabularError::EncodeParquet {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                Encoder::Parquet(Box::new(writer))
            }
            FileFormat::ArrowIpc if names_ipc_stream(path) => {
                Encoder::IpcStream(StreamWriter::try_new(BufWriter::new(handle), &schema).map_err(encode_error)?)
            }
            FileFormat::ArrowIpc => {
                Encoder::IpcFile(FileWriter::try_new(BufWriter::new(handle), &schema).map_err(encode_error)?)
            }
        };
        Ok(TableWriter {
            path: path.to_path_buf(),
            format,
            schema,
            temporary,
            encoder,
            rows_written: 0,
        })
    }

    /// Appends `batch`, which must have the writer's fields (names, types, nullability).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TabularError> {
        if first_field_difference(&self.schema, &batch.schema()).is_some() {
            return Err(TabularError::BatchSchemaMismatch {
                path: self.path.clone(),
                expected: describe_fields(&self.schema),
                found: describe_fields(&batch.schema()),
            });
        }
        // Same fields, perhaps other metadata: give the batch the writer's schema, which the
        // Parquet and IPC writers compare against.
        let batch = if batch.schema() == self.schema {
            batch.clone()
        } else {
            RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec()).map_err(|source| {
                TabularError::Encode {
                    path: self.path.clone(),
                    format: self.format,
                    source,
                }
            })?
        };
        let path = &self.path;
        let format = self.format;
        let encode_error = |source: ArrowError| TabularError::Encode {
            path: path.clone(),
            format,
            source,
        };
        match &mut self.encoder {
            Encoder::Csv(writer) => writer.write(&batch).map_err(encode_error)?,
            Encoder::IpcFile(writer) => writer.write(&batch).map_err(encode_error)?,
            Encoder::IpcStream(writer) => writer.write(&batch).map_err(encode_error)?,
            Encoder::Parquet(writer) => writer.write(&batch).map_err(|source| TabularError::EncodeParquet {
                path: path.clone(),
                source,
            })?,
        }
        self.rows_written += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Completes the file (footer, flush, fsync), renames it to its final path and returns
    /// the number of rows written.
    pub fn finish(self) -> Result<u64, TabularError> {
        let TableWriter {
            path,
            format,
            schema: _,
            temporary,
            encoder,
            rows_written,
        } = self;
        let encode_error = |source: ArrowError| TabularError::Encode {
            path: path.clone(),
            format,
            source,
        };
        let buffered = match encoder {
            Encoder::Csv(writer) => writer.into_inner(),
            Encoder::IpcFile(writer) => writer.into_inner().map_err(encode_error)?,
            Encoder::IpcStream(writer) => writer.into_inner().map_err(encode_error)?,
            Encoder::Parquet(writer) => {
                let file = writer.into_inner().map_err(|source| TabularError::EncodeParquet {
                    path: path.clone(),
                    source,
                })?;
                BufWriter::new(file)
            }
        };
        let file = buffered
            .into_inner()
            .map_err(|error| write_error(&path, error.into_error()))?;
        file.sync_all().map_err(|source| write_error(&path, source))?;
        drop(file);
        temporary.persist(&path).map_err(|error| TabularError::Persist {
            path: path.clone(),
            source: error.error,
        })?;
        Ok(rows_written)
    }
}

/// Whether `path` asks for the IPC stream flavour (`.arrows`) rather than the file flavour.
fn names_ipc_stream(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension.eq_ignore_ascii_case("arrows"))
}

/// A hidden temporary file in the directory of `path`, so that the final rename stays on one
/// file system, with the permissions a new file would get (0666 less the umask).
fn create_temporary_next_to(path: &Path) -> Result<NamedTempFile, TabularError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(&directory)
        .map_err(|source| write_error(path, source))
}

fn write_error(path: &Path, source: std::io::Error) -> TabularError {
    TabularError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::tabular::test_support::{concatenated, read_all, sample_batch, write_with_table_writer};

    /// The names of the entries of `directory`, sorted.
    fn entries(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .expect("read dir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Each output format round-trips the sample table (nulls, quoted text, floats) through
    /// the writer and `open_inputs`, and only the final file is left in the directory.
    #[test]
    fn every_format_round_trips_and_leaves_no_temporary_file() {
        for name in ["out.parquet", "out.arrow", "out.arrows", "out.csv"] {
            let directory = tempfile::tempdir().expect("temp dir");
            let path = directory.path().join(name);
            let batches = [sample_batch(0, 100), sample_batch(100, 1), sample_batch(101, 99)];

            let rows = write_with_table_writer(&path, &batches);

            assert_eq!(rows, 200, "{name}");
            assert_eq!(entries(directory.path()), vec![name.to_string()], "{name}");
            let read_back = concatenated(&read_all(&[path], 64));
            let expected = concatenated(&batches);
            if name.ends_with(".csv") {
                // CSV does not keep nullability: every inferred column is nullable.
                assert_eq!(read_back.columns(), expected.columns(), "{name}");
            } else {
                assert_eq!(read_back, expected, "{name}");
            }
        }
    }

    /// The IPC flavour written follows the extension: stream for `.arrows`, file otherwise.
    #[test]
    fn arrows_is_written_as_a_stream_and_arrow_as_a_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let file_path = directory.path().join("t.arrow");
        let stream_path = directory.path().join("t.arrows");
        write_with_table_writer(&file_path, &[sample_batch(0, 3)]);
        write_with_table_writer(&stream_path, &[sample_batch(0, 3)]);

        assert!(std::fs::read(&file_path).expect("read").starts_with(b"ARROW1"));
        assert!(std::fs::read(&stream_path)
            .expect("read")
            .starts_with(&[0xFF, 0xFF, 0xFF, 0xFF]));
    }

    /// A CSV table without rows still gets its header line.
    #[test]
    fn empty_csv_output_has_its_header() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("empty.csv");
        let writer = TableWriter::create(&path, sample_batch(0, 1).schema()).expect("create");

        assert_eq!(writer.finish().expect("finish"), 0);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "id,name,score\n");
    }

    /// A writer dropped before `finish` (the download failed) leaves nothing behind, not
    /// even over an existing file of the same name.
    #[test]
    fn unfinished_writer_leaves_no_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("partial.parquet");
        std::fs::write(&path, b"previous content").expect("write previous");
        let mut writer = TableWriter::create(&path, sample_batch(0, 1).schema()).expect("create");
        writer.write(&sample_batch(0, 10)).expect("write");
        assert_eq!(
            entries(directory.path()).len(),
            2,
            "the temporary file exists while writing"
        );

        drop(writer);

        assert_eq!(entries(directory.path()), vec!["partial.parquet".to_string()]);
        assert_eq!(std::fs::read(&path).expect("read"), b"previous content");
    }

    /// A batch with other fields than the writer's is refused with both field lists.
    #[test]
    fn batch_with_other_fields_is_refused() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("t.arrow");
        let mut writer = TableWriter::create(&path, sample_batch(0, 1).schema()).expect("create");
        let other_schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let other = RecordBatch::try_new(other_schema, vec![Arc::new(Int32Array::from(vec![1]))]).expect("batch");

        let message = writer.write(&other).expect_err("other fields").to_string();

        assert!(message.contains("a batch has the schema [x: Int32]"), "{message}");
        assert!(
            message.contains("id: Int64, name: Utf8 (nullable), score: Float64 (nullable)"),
            "{message}"
        );
    }

    /// An unknown output extension is refused before any file is created.
    #[test]
    fn unknown_output_extension_creates_nothing() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("out.xlsx");

        let error = TableWriter::create(&path, sample_batch(0, 1).schema())
            .err()
            .expect("refused");

        assert!(matches!(error, TabularError::UnsupportedExtension { .. }));
        assert!(entries(directory.path()).is_empty());
    }
}
