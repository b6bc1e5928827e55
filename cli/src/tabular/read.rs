//! Opening one or several input files as one table, read in batches of at most `chunk_rows`.

use std::io;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::csv_source::{infer_csv_schema, CsvSource};
use super::error::TabularError;
use super::format::FileFormat;
use super::ipc_source::IpcSource;
use super::parquet_source::{parquet_schema, ParquetSource};
use super::schema_check::first_field_difference;

/// Opens `paths` as one table and returns a reader of its batches.
///
/// All files must have the same fields (names, types, nullability, in order) as the first;
/// otherwise the error names both files and the first differing field. Every file is checked
/// here, before any batch is read: CSV files are read once in full to infer their types.
/// Batches have at most `chunk_rows` rows; they may be smaller at the end of each file (and,
/// for Parquet, of each row group; for Arrow IPC, of each stored batch).
///
/// A CSV file must have a header row and at least one data row (see
/// [`TabularError::CsvNoHeader`], [`TabularError::CsvNoRows`]).
pub fn open_inputs(paths: &[PathBuf], chunk_rows: usize) -> Result<TableReader, TabularError> {
    if chunk_rows == 0 {
        return Err(TabularError::ZeroChunkRows);
    }
    let Some(first_path) = paths.first() else {
        return Err(TabularError::NoInputs);
    };
    let mut inputs = Vec::with_capacity(paths.len());
    let mut table_schema: Option<SchemaRef> = None;
    for path in paths {
        let format = FileFormat::from_path(path)?;
        let size = regular_file_size(path)?;
        let schema = probe_schema(path, format)?;
        match &table_schema {
            None => table_schema = Some(schema),
            Some(first_schema) => {
                if let Some(difference) = first_field_difference(first_schema, &schema) {
                    return Err(TabularError::SchemaMismatch {
                        first_path: first_path.clone(),
                        other_path: path.clone(),
                        position: difference.position,
                        first_field: difference.first_field,
                        other_field: difference.other_field,
                    });
                }
            }
        }
        inputs.push(InputFile {
            path: path.clone(),
            format,
            size,
        });
    }
    let Some(schema) = table_schema else {
        return Err(TabularError::NoInputs);
    };
    let total_bytes = inputs.iter().map(|input| input.size).sum();
    Ok(TableReader {
        schema,
        inputs,
        chunk_rows,
        next_input_index: 0,
        current: None,
        leftover: None,
        bytes_of_finished_files: 0,
        total_bytes,
        stopped: false,
    })
}

/// The size of `path`, which must be an existing regular file (not a directory).
fn regular_file_size(path: &Path) -> Result<u64, TabularError> {
    let metadata = std::fs::metadata(path).map_err(|source| TabularError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.is_dir() {
        return Err(TabularError::Open {
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::IsADirectory),
        });
    }
    Ok(metadata.len())
}

/// The schema of one file, read (or, for CSV, inferred) without keeping the file open.
fn probe_schema(path: &Path, format: FileFormat) -> Result<SchemaRef, TabularError> {
    match format {
        FileFormat::Csv => infer_csv_schema(path),
        FileFormat::Parquet => parquet_schema(path),
        FileFormat::ArrowIpc => Ok(IpcSource::open(path)?.schema()),
    }
}

/// One input file whose schema has been checked against the table's.
#[derive(Debug, Clone)]
struct InputFile {
    /// Where it is.
    path: PathBuf,
    /// Its format, from the extension.
    format: FileFormat,
    /// Its size when opened, for the progress bar.
    size: u64,
}

/// The open reader of one input file.
enum FileSource {
    /// A CSV file, decoded with the table's schema (boxed: its decoder is large).
    Csv(Box<CsvSource>),
    /// A Parquet file.
    Parquet(ParquetSource),
    /// An Arrow IPC file or stream.
    Ipc(IpcSource),
}

impl FileSource {
    fn open(input: &InputFile, schema: &SchemaRef, chunk_rows: usize) -> Result<FileSource, TabularError> {
        match input.format {
            FileFormat::Csv => {
                let source = CsvSource::open(&input.path, schema.clone(), chunk_rows)?;
                Ok(FileSource::Csv(Box::new(source)))
            }
            FileFormat::Parquet => {
                let source = ParquetSource::open(&input.path, chunk_rows, input.size)?;
                Ok(FileSource::Parquet(source))
            }
            FileFormat::ArrowIpc => Ok(FileSource::Ipc(IpcSource::open(&input.path)?)),
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, TabularError> {
        match self {
            FileSource::Csv(source) => source.next_batch(),
            FileSource::Parquet(source) => source.next_batch(),
            FileSource::Ipc(source) => source.next_batch(),
        }
    }

    fn bytes_consumed(&self) -> u64 {
        match self {
            FileSource::Csv(source) => source.bytes_consumed(),
            FileSource::Parquet(source) => source.bytes_consumed(),
            FileSource::Ipc(source) => source.bytes_consumed(),
        }
    }
}

/// The file being read and its reader.
struct CurrentFile {
    /// Its path, format and size (which bounds its progress).
    input: InputFile,
    /// Its reader.
    source: FileSource,
}

/// A batch from a file not yet fully handed out because it is larger than `chunk_rows`.
struct Leftover {
    /// The batch as the file gave it.
    batch: RecordBatch,
    /// Rows of it already handed out.
    offset: usize,
}

/// The batches of one or several files, one file after the other, as one table.
///
/// Files are opened one at a time as the iteration reaches them. After an error the
/// iterator ends.
pub struct TableReader {
    /// The table's schema (the first file's); every batch is given this schema.
    schema: SchemaRef,
    /// The files, in the order given.
    inputs: Vec<InputFile>,
    /// The most rows a batch may have.
    chunk_rows: usize,
    /// Index in `inputs` of the next file to open.
    next_input_index: usize,
    /// The file being read.
    current: Option<CurrentFile>,
    /// The rest of a batch larger than `chunk_rows`.
    leftover: Option<Leftover>,
    /// Sum of the sizes of the files read to the end, for the progress.
    bytes_of_finished_files: u64,
    /// Sum of the sizes of all files.
    total_bytes: u64,
    /// Set at the end or after an error: the iterator is fused.
    stopped: bool,
}

impl TableReader {
    /// The table's schema (that of the first file).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The sum of the sizes of the input files, for a progress bar.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Approximate progress: the sizes of the files read to the end plus the position in
    /// the current file (for Parquet, its size scaled by the fraction of rows read).
    pub fn bytes_read(&self) -> u64 {
        let in_current_file = match &self.current {
            Some(current) => current.source.bytes_consumed().min(current.input.size),
            None => 0,
        };
        self.bytes_of_finished_files + in_current_file
    }

    /// Hands out up to `chunk_rows` rows of the leftover batch, if any.
    fn take_from_leftover(&mut self) -> Option<RecordBatch> {
        let leftover = self.leftover.as_mut()?;
        let remaining_rows = leftover.batch.num_rows() - leftover.offset;
        let piece_rows = remaining_rows.min(self.chunk_rows);
        let piece = if leftover.offset == 0 && piece_rows == remaining_rows {
            leftover.batch.clone()
        } else {
            leftover.batch.slice(leftover.offset, piece_rows)
        };
        leftover.offset += piece_rows;
        if leftover.offset == leftover.batch.num_rows() {
            self.leftover = None;
        }
        Some(piece)
    }

    /// The next non-empty batch from the files, as stored, or `None` after the last file.
    fn next_stored_batch(&mut self) -> Result<Option<RecordBatch>, TabularError> {
        loop {
            let Some(current) = self.current.as_mut() else {
                let Some(input) = self.inputs.get(self.next_input_index) else {
                    return Ok(None);
                };
                let source = FileSource::open(input, &self.schema, self.chunk_rows)?;
                self.current = Some(CurrentFile {
                    input: input.clone(),
                    source,
                });
                self.next_input_index += 1;
                continue;
            };
            match current.source.next_batch()? {
                Some(batch) if batch.num_rows() == 0 => continue,
                Some(batch) => return with_table_schema(batch, &self.schema, &current.input).map(Some),
                None => {
                    self.bytes_of_finished_files += current.input.size;
                    self.current = None;
                }
            }
        }
    }
}

/// `batch` with the table's schema: the fields agree (checked at opening) but the metadata
/// of a later file may differ.
fn with_table_schema(batch: RecordBatch, schema: &SchemaRef, input: &InputFile) -> Result<RecordBatch, TabularError> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|source| TabularError::Decode {
        path: input.path.clone(),
        format: input.format,
        source,
    })
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch, TabularError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(piece) = self.take_from_leftover() {
            return Some(Ok(piece));
        }
        if self.stopped {
            return None;
        }
        match self.next_stored_batch() {
            Ok(Some(batch)) => {
                self.leftover = Some(Leftover { batch, offset: 0 });
                self.take_from_leftover().map(Ok)
            }
            Ok(None) => {
                self.stopped = true;
                None
            }
            Err(error) => {
                self.stopped = true;
                self.current = None;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{DataType, Float64Type, Int64Type};
    use arrow::ipc::writer::{FileWriter, StreamWriter};

    use super::*;
    use crate::tabular::test_support::{concatenated, read_all, sample_batch, write_with_table_writer};

    fn write_text(path: &Path, text: &str) {
        let mut file = std::fs::File::create(path).expect("create test file");
        file.write_all(text.as_bytes()).expect("write test file");
    }

    fn open_error(paths: &[PathBuf], chunk_rows: usize) -> TabularError {
        match open_inputs(paths, chunk_rows) {
            Ok(_) => panic!("opening {paths:?} should fail"),
            Err(error) => error,
        }
    }

    /// The first error met while reading all of `path`, opened with `chunk_rows`.
    fn first_read_error(path: &Path, chunk_rows: usize) -> TabularError {
        let reader = open_inputs(&[path.to_path_buf()], chunk_rows).expect("open succeeds; decoding fails");
        let mut errors = reader.filter_map(Result::err);
        errors.next().expect("reading should fail")
    }

    /// A CSV file with a header, quoted fields holding commas, quotes and a newline, and an
    /// empty (null) value reads back with inferred types and the exact values.
    #[test]
    fn csv_reads_with_inferred_types_and_quoted_fields() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("people.csv");
        write_text(
            &path,
            "id,name,score\n1,\"Smith, Jane\",1.5\n2,\"say \"\"hi\"\"\nthere\",2\n3,,\n",
        );

        let batches = read_all(&[path], 1000);
        let table = concatenated(&batches);

        assert_eq!(table.num_rows(), 3);
        let schema = table.schema();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Float64);
        let names = table.column(1).as_string::<i32>();
        assert_eq!(names.value(0), "Smith, Jane");
        assert_eq!(names.value(1), "say \"hi\"\nthere");
        assert!(names.is_null(2));
        let ids = table.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 2, 3]);
        let scores = table.column(2).as_primitive::<Float64Type>();
        assert_eq!(scores.value(1), 2.0);
        assert!(scores.is_null(2));
    }

    /// Inference reads every row: a float on the last of 100,000 lines makes the column
    /// Float64, not Int64 (arrow's default sample would have stopped long before).
    #[test]
    fn csv_inference_covers_every_row() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("late_float.csv");
        let mut text = String::from("value\n");
        for value in 0..100_000 {
            text.push_str(&format!("{value}\n"));
        }
        text.push_str("0.5\n");
        write_text(&path, &text);

        let reader = open_inputs(&[path], 65_536).expect("open");
        assert_eq!(reader.schema().field(0).data_type(), &DataType::Float64);
        let rows: usize = reader.map(|batch| batch.expect("batch").num_rows()).sum();
        assert_eq!(rows, 100_001);
    }

    /// Every batch has at most `chunk_rows` rows, for CSV (decoder batches) and for an IPC
    /// file holding one large batch (sliced), and no row is lost or duplicated.
    #[test]
    fn batches_never_exceed_chunk_rows() {
        let directory = tempfile::tempdir().expect("temp dir");
        let csv_path = directory.path().join("thousand.csv");
        let mut text = String::from("n\n");
        for value in 0..1000 {
            text.push_str(&format!("{value}\n"));
        }
        write_text(&csv_path, &text);
        let ipc_path = directory.path().join("thousand.arrow");
        write_with_table_writer(&ipc_path, &[sample_batch(0, 1000)]);

        let csv_sizes: Vec<usize> = read_all(&[csv_path], 300).iter().map(RecordBatch::num_rows).collect();
        assert_eq!(csv_sizes, vec![300, 300, 300, 100]);

        let ipc_batches = read_all(&[ipc_path], 300);
        let ipc_sizes: Vec<usize> = ipc_batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(ipc_sizes, vec![300, 300, 300, 100]);
        assert_eq!(concatenated(&ipc_batches), sample_batch(0, 1000));
    }

    /// Several files with the same fields read as one table, in order, the progress reaching
    /// the sum of their sizes.
    #[test]
    fn several_files_read_as_one_table() {
        let directory = tempfile::tempdir().expect("temp dir");
        let first = directory.path().join("part1.parquet");
        let second = directory.path().join("part2.arrow");
        write_with_table_writer(&first, &[sample_batch(0, 50)]);
        write_with_table_writer(&second, &[sample_batch(50, 70)]);

        let mut reader = open_inputs(&[first, second], 40).expect("open");
        assert_eq!(reader.bytes_read(), 0);
        let mut batches = Vec::new();
        for batch in reader.by_ref() {
            batches.push(batch.expect("batch"));
        }
        assert_eq!(reader.bytes_read(), reader.total_bytes());
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![40, 10, 40, 30]);
        assert_eq!(concatenated(&batches), sample_batch(0, 120));
    }

    /// An Arrow IPC *stream* is read whatever its extension: `.arrows` or `.arrow`, told
    /// apart from the file flavour by its first bytes.
    #[test]
    fn ipc_stream_is_read_under_either_extension() {
        let directory = tempfile::tempdir().expect("temp dir");
        let batch = sample_batch(0, 25);
        for name in ["table.arrows", "stream_named_like_a_file.arrow"] {
            let path = directory.path().join(name);
            let file = std::fs::File::create(&path).expect("create");
            let mut writer = StreamWriter::try_new(file, &batch.schema()).expect("stream writer");
            writer.write(&batch).expect("write");
            writer.finish().expect("finish");

            assert_eq!(concatenated(&read_all(&[path], 10)), batch, "{name}");
        }
    }

    /// An Arrow IPC *file* written by arrow's own writer (not ours) round-trips.
    #[test]
    fn ipc_file_written_by_arrow_is_read() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("table.feather");
        let batch = sample_batch(3, 33);
        let file = std::fs::File::create(&path).expect("create");
        let mut writer = FileWriter::try_new(file, &batch.schema()).expect("file writer");
        writer.write(&batch).expect("write");
        writer.finish().expect("finish");

        assert_eq!(concatenated(&read_all(&[path], 1000)), batch);
    }

    /// Two files whose second field differs in type: the error names both files, the
    /// position and both versions of the field.
    #[test]
    fn schema_mismatch_names_both_files_and_the_field() {
        let directory = tempfile::tempdir().expect("temp dir");
        let first = directory.path().join("first.csv");
        let second = directory.path().join("second.csv");
        write_text(&first, "id,price\n1,10\n");
        write_text(&second, "id,price\n2,10.5\n");

        let message = open_error(&[first.clone(), second.clone()], 10).to_string();

        assert!(message.contains(&first.display().to_string()), "{message}");
        assert!(message.contains(&second.display().to_string()), "{message}");
        assert!(message.contains("field 2 is price: Int64 (nullable)"), "{message}");
        assert!(message.contains("price: Float64 (nullable)"), "{message}");
    }

    /// A value that does not parse as its column's type (an impossible date, which looks
    /// like a date to inference) is reported at its file line: the header is line 1, and a
    /// quoted field spanning two lines before it counts as two. The bad record is in the
    /// third batch, so the line is not relative to a batch.
    #[test]
    fn csv_bad_value_names_its_file_line() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("dates.csv");
        write_text(
            &path,
            "id,day,note\n\
             1,2024-01-01,plain\n\
             2,2024-01-02,\"two\nlines\"\n\
             3,2024-01-03,x\n\
             4,2024-01-04,x\n\
             5,2024-02-30,x\n\
             6,2024-01-06,x\n",
        );

        let error = first_read_error(&path, 2);
        let message = error.to_string();

        assert!(matches!(error, TabularError::CsvRecord { line: 7, .. }), "{message}");
        assert_eq!(
            message,
            format!(
                "{}, line 7: value \"2024-02-30\" in column \"day\" is not a valid Date32",
                path.display()
            )
        );
    }

    /// A record with too few fields is reported at its file line with both counts, also
    /// with Windows line endings.
    #[test]
    fn csv_short_line_names_its_file_line() {
        let directory = tempfile::tempdir().expect("temp dir");
        for (name, line_end) in [("short_unix.csv", "\n"), ("short_windows.csv", "\r\n")] {
            let path = directory.path().join(name);
            let lines = ["a,b,c", "1,2,3", "4,5,6", "7,8,9", "10,11", "12,13,14"];
            write_text(&path, &(lines.join(line_end) + line_end));

            let error = first_read_error(&path, 3);
            let message = error.to_string();

            assert!(matches!(error, TabularError::CsvRecord { line: 5, .. }), "{message}");
            assert_eq!(
                message,
                format!(
                    "{}, line 5: expected 3 fields (as in the header) but found 2",
                    path.display()
                )
            );
        }
    }

    /// A record with too many fields on the last line, without a trailing newline, is
    /// reported at its line.
    #[test]
    fn csv_long_last_line_names_its_file_line() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("long.csv");
        write_text(&path, "a,b\n1,2\n3,4,5,6");

        let message = first_read_error(&path, 100).to_string();

        assert_eq!(
            message,
            format!(
                "{}, line 3: expected 2 fields (as in the header) but found 4",
                path.display()
            )
        );
    }

    /// An empty CSV file and a header-only one are errors that say why.
    #[test]
    fn csv_without_rows_is_an_error() {
        let directory = tempfile::tempdir().expect("temp dir");
        let empty = directory.path().join("empty.csv");
        let header_only = directory.path().join("header_only.csv");
        write_text(&empty, "");
        write_text(&header_only, "a,b\n");

        assert!(matches!(open_error(&[empty], 10), TabularError::CsvNoHeader { .. }));
        let message = open_error(&[header_only], 10).to_string();
        assert!(
            message.contains("header_only.csv has a header but no rows"),
            "{message}"
        );
    }

    /// A missing file: the error names the path and carries the OS error.
    #[test]
    fn missing_file_names_the_path_and_the_os_error() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("absent.parquet");

        let message = open_error(std::slice::from_ref(&path), 10).to_string();

        assert!(
            message.starts_with(&format!("cannot open {}: ", path.display())),
            "{message}"
        );
        assert!(message.contains("No such file or directory"), "{message}");
    }

    /// A file whose content is not what its extension says is rejected with its name.
    #[test]
    fn text_posing_as_parquet_or_arrow_is_rejected() {
        let directory = tempfile::tempdir().expect("temp dir");
        for name in ["text.parquet", "text.arrow"] {
            let path = directory.path().join(name);
            write_text(&path, "id,name\n1,not binary at all\n");

            let error = open_error(std::slice::from_ref(&path), 10);
            let message = error.to_string();

            assert!(
                matches!(error, TabularError::Parquet { .. } | TabularError::NotThisFormat { .. }),
                "{message}"
            );
            assert!(
                message.starts_with(&format!("{} is not a", path.display())),
                "{message}"
            );
        }
    }

    /// `chunk_rows == 0` and an empty list of files are refused before any file is opened.
    #[test]
    fn zero_chunk_rows_and_no_inputs_are_errors() {
        assert!(matches!(
            open_error(&[PathBuf::from("x.csv")], 0),
            TabularError::ZeroChunkRows
        ));
        assert!(matches!(open_error(&[], 10), TabularError::NoInputs));
    }

    /// The reader can be moved to a blocking thread.
    #[test]
    fn table_reader_is_send() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<TableReader>();
    }
}
