//! Reading one CSV file: schema inference over the whole file, then decoding in batches
//! while keeping track of where each batch starts, so that an error names the right line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::csv::reader::{Decoder, Format};
use arrow::csv::ReaderBuilder;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

use super::csv_diagnosis::{locate_first_bad_record, RecordPosition};
use super::error::TabularError;

/// Infers the schema of a CSV file with a header row from all of its records.
///
/// Inference reads the whole file (a float on the last line must not leave the column an
/// integer), accepting records with the wrong number of fields: those are reported by the
/// decoding pass, which knows how to name their line. A file without a header is an error,
/// and so is a header without rows (every column would be typed `Null`).
pub(super) fn infer_csv_schema(path: &Path) -> Result<SchemaRef, TabularError> {
    let file = File::open(path).map_err(|source| TabularError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let inference_format = Format::default().with_header(true).with_truncated_rows(true);
    let (schema, records_read) = inference_format
        .infer_schema(BufReader::new(file), None)
        .map_err(|source| TabularError::CsvInference {
            path: path.to_path_buf(),
            source,
        })?;
    if schema.fields().is_empty() {
        return Err(TabularError::CsvNoHeader {
            path: path.to_path_buf(),
        });
    }
    if records_read == 0 {
        return Err(TabularError::CsvNoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(Arc::new(schema))
}

/// Decodes a CSV file into batches of the schema inferred beforehand.
///
/// Drives arrow's push decoder itself (rather than `arrow::csv::Reader`) so that it knows the
/// byte offset and line where each batch starts; arrow's own error messages count lines
/// relative to the data rows and ignore newlines inside quoted fields.
pub(super) struct CsvSource {
    /// The file, for error messages and for re-reading it when diagnosing an error.
    path: PathBuf,
    /// The inferred schema, which the diagnosis needs to re-decode single records.
    schema: SchemaRef,
    /// The open file.
    reader: BufReader<File>,
    /// Arrow's decoder, configured to skip the header and to emit `chunk_rows`-row batches.
    decoder: Decoder,
    /// Bytes handed to the decoder so far: the progress, and the offset of the next batch.
    bytes_consumed: u64,
    /// `\n` bytes among them, to turn the next batch's offset into a line number.
    newlines_consumed: u64,
    /// Where the batch being decoded starts, for the diagnosis of a decoding error.
    batch_start: RecordPosition,
    /// Set once the decoder has flushed its last batch.
    finished: bool,
}

impl CsvSource {
    /// Opens `path` for decoding with `schema` (from [`infer_csv_schema`]) in batches of `chunk_rows`.
    pub(super) fn open(path: &Path, schema: SchemaRef, chunk_rows: usize) -> Result<CsvSource, TabularError> {
        let file = File::open(path).map_err(|source| TabularError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let decoder = ReaderBuilder::new(schema.clone())
            .with_header(true)
            .with_batch_size(chunk_rows)
            .build_decoder();
        Ok(CsvSource {
            path: path.to_path_buf(),
            schema,
            reader: BufReader::new(file),
            decoder,
            bytes_consumed: 0,
            newlines_consumed: 0,
            batch_start: RecordPosition {
                offset: 0,
                line: 1,
                header_ahead: true,
            },
            finished: false,
        })
    }

    /// Bytes of the file decoded so far.
    pub(super) fn bytes_consumed(&self) -> u64 {
        self.bytes_consumed
    }

    /// The next batch of at most `chunk_rows` rows, or `None` at the end of the file.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>, TabularError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(source) => {
                    return Err(TabularError::Read {
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            // An empty buffer tells the decoder that the input has ended, which completes a
            // last record that has no trailing newline.
            let decoded = match self.decoder.decode(buffer) {
                Ok(decoded) => decoded,
                Err(arrow_error) => return Err(self.diagnose(arrow_error)),
            };
            let newlines = count_newlines(&buffer[..decoded]);
            self.reader.consume(decoded);
            self.bytes_consumed += decoded as u64;
            self.newlines_consumed += newlines;
            let batch_is_full = self.decoder.capacity() == 0;
            if decoded == 0 || batch_is_full {
                break;
            }
        }
        match self.decoder.flush() {
            Ok(Some(batch)) => {
                self.batch_start = RecordPosition {
                    offset: self.bytes_consumed,
                    line: self.newlines_consumed + 1,
                    header_ahead: false,
                };
                Ok(Some(batch))
            }
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(arrow_error) => Err(self.diagnose(arrow_error)),
        }
    }

    /// Turns arrow's error about the current batch into one naming the file line of the bad record.
    fn diagnose(&mut self, arrow_error: ArrowError) -> TabularError {
        // The decoder's state is unusable after an error: the reader stops here.
        self.finished = true;
        match locate_first_bad_record(&self.path, &self.schema, self.batch_start) {
            Ok(Some(bad_record)) => TabularError::CsvRecord {
                path: self.path.clone(),
                line: bad_record.line,
                problem: bad_record.problem,
            },
            Ok(None) | Err(_) => TabularError::CsvDecode {
                path: self.path.clone(),
                near_line: self.batch_start.line,
                source: arrow_error,
            },
        }
    }
}

/// The number of `\n` bytes in `bytes` (a `\r\n` line ending counts once, a lone `\r` not at all).
pub(super) fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&byte| byte == b'\n').count() as u64
}
