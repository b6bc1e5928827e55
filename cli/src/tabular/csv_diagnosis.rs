//! Finding the record, and its line, behind a CSV decoding error.
//!
//! Arrow decodes a CSV file a batch at a time and its errors give a line number that is
//! relative to the data rows (a type error) or counts records rather than lines. When a
//! batch fails, this module re-reads the file from the start of that batch one record at a
//! time, counting the newlines it passes (including those inside quoted fields), until it
//! meets the record arrow rejects; then it works out what is wrong with it. It runs only on
//! the error path, so its slowness (one decoder call per record) does not matter.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::csv::reader::Decoder;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

use super::csv_source::count_newlines;
use super::error::CsvProblem;

/// A place in a CSV file where a record (or the header) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordPosition {
    /// Byte offset in the file.
    pub(super) offset: u64,
    /// 1-based line number of that offset: one more than the `\n` bytes before it.
    pub(super) line: u64,
    /// Whether the header row comes next (only at the start of the file), to be skipped.
    pub(super) header_ahead: bool,
}

/// The first record that arrow rejects, located.
#[derive(Debug)]
pub(super) struct BadRecord {
    /// 1-based line on which the record starts, the header being line 1.
    pub(super) line: u64,
    /// What is wrong with it.
    pub(super) problem: CsvProblem,
}

/// Re-reads `path` from `start` record by record with `schema` and returns the first record
/// that does not decode, or `None` if every record decodes (the caller then falls back to
/// arrow's own message).
pub(super) fn locate_first_bad_record(
    path: &Path,
    schema: &SchemaRef,
    start: RecordPosition,
) -> io::Result<Option<BadRecord>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start.offset))?;
    let mut reader = BufReader::new(file);
    let mut line_of_next_byte = start.line;

    if start.header_ahead {
        // The header only names the columns; as text it always decodes.
        let mut header_decoder = single_record_decoder(&all_text_schema(schema), None);
        match read_one_record(&mut reader, &mut header_decoder)? {
            OneRecord::Decoded { bytes } => line_of_next_byte += count_newlines(&bytes),
            OneRecord::End | OneRecord::Unparsable { .. } | OneRecord::Malformed { .. } => return Ok(None),
        }
    }

    let mut decoder = single_record_decoder(schema, None);
    loop {
        match read_one_record(&mut reader, &mut decoder)? {
            OneRecord::End => return Ok(None),
            OneRecord::Decoded { bytes } => line_of_next_byte += count_newlines(&bytes),
            OneRecord::Unparsable { bytes, error } => {
                let line = line_of_next_byte + scan_record_shape(Cursor::new(&bytes))?.leading_newlines;
                let problem = explain_unparsable_record(&bytes, schema, error);
                return Ok(Some(BadRecord { line, problem }));
            }
            OneRecord::Malformed {
                bytes_before_error,
                error,
            } => {
                // The reader still holds the bytes of the failed call: together with those
                // already taken they hold the whole record.
                let shape = scan_record_shape(Cursor::new(bytes_before_error).chain(&mut reader))?;
                let expected = schema.fields().len();
                let problem = if shape.fields == expected {
                    CsvProblem::Undecodable { source: error }
                } else {
                    CsvProblem::WrongFieldCount {
                        expected,
                        found: shape.fields,
                    }
                };
                return Ok(Some(BadRecord {
                    line: line_of_next_byte + shape.leading_newlines,
                    problem,
                }));
            }
        }
    }
}

/// The outcome of feeding the decoder one record.
enum OneRecord {
    /// No record is left (only blank lines, if anything).
    End,
    /// The record decoded; `bytes` are those it spanned (leading blank lines included).
    Decoded {
        /// The bytes consumed for the record.
        bytes: Vec<u8>,
    },
    /// The record was split into the right number of fields, but a value does not parse.
    Unparsable {
        /// The bytes of the record, leading blank lines included.
        bytes: Vec<u8>,
        /// Arrow's error.
        error: ArrowError,
    },
    /// The decoder rejected the record while splitting it (the number of fields is wrong).
    Malformed {
        /// The bytes taken before the failing call; the rest are still in the reader.
        bytes_before_error: Vec<u8>,
        /// Arrow's error.
        error: ArrowError,
    },
}

/// A decoder without header that emits one record per batch, optionally of one column only.
fn single_record_decoder(schema: &SchemaRef, only_column: Option<usize>) -> Decoder {
    let builder = ReaderBuilder::new(schema.clone()).with_header(false).with_batch_size(1);
    match only_column {
        Some(column) => builder.with_projection(vec![column]).build_decoder(),
        None => builder.build_decoder(),
    }
}

/// Feeds `decoder` (built with a batch size of 1) until it has one record, and flushes it.
fn read_one_record(reader: &mut BufReader<File>, decoder: &mut Decoder) -> io::Result<OneRecord> {
    let mut bytes = Vec::new();
    loop {
        let buffer = reader.fill_buf()?;
        let decoded = match decoder.decode(buffer) {
            Ok(decoded) => decoded,
            Err(error) => {
                return Ok(OneRecord::Malformed {
                    bytes_before_error: bytes,
                    error,
                })
            }
        };
        bytes.extend_from_slice(&buffer[..decoded]);
        reader.consume(decoded);
        if decoded == 0 || decoder.capacity() == 0 {
            break;
        }
    }
    Ok(match decoder.flush() {
        Ok(None) => OneRecord::End,
        Ok(Some(_)) => OneRecord::Decoded { bytes },
        Err(error) => OneRecord::Unparsable { bytes, error },
    })
}

/// Says which value of a record that arrow could split but not parse is at fault.
fn explain_unparsable_record(record_bytes: &[u8], schema: &SchemaRef, error: ArrowError) -> CsvProblem {
    if std::str::from_utf8(record_bytes).is_err() {
        return CsvProblem::InvalidUtf8;
    }
    let text_schema = all_text_schema(schema);
    for (column_index, field) in schema.fields().iter().enumerate() {
        if decode_single_record(schema, column_index, record_bytes).is_ok() {
            continue;
        }
        let value = decode_single_record(&text_schema, column_index, record_bytes)
            .ok()
            .flatten()
            .and_then(|batch| first_text_value(&batch))
            .unwrap_or_default();
        return CsvProblem::BadValue {
            column: field.name().clone(),
            value,
            expected_type: field.data_type().clone(),
        };
    }
    CsvProblem::Undecodable { source: error }
}

/// Decodes column `column_index` of the single record in `record_bytes`.
fn decode_single_record(
    schema: &SchemaRef,
    column_index: usize,
    record_bytes: &[u8],
) -> Result<Option<RecordBatch>, ArrowError> {
    let mut decoder = single_record_decoder(schema, Some(column_index));
    decoder.decode(record_bytes)?;
    // End of input: completes a record that had no trailing newline.
    decoder.decode(&[])?;
    decoder.flush()
}

/// The value in the first row of the first column, a string column.
fn first_text_value(batch: &RecordBatch) -> Option<String> {
    let column = batch.columns().first()?.as_string_opt::<i32>()?;
    if column.is_empty() || column.is_null(0) {
        return Some(String::new());
    }
    Some(column.value(0).to_string())
}

/// `schema` with every column read as nullable text, which any well-formed record decodes to.
fn all_text_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| Field::new(field.name(), DataType::Utf8, true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// What a quote-aware scan sees of the record at the start of `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordShape {
    /// `\n` bytes before the record's first byte (the end of a `\r\n`, blank lines).
    leading_newlines: u64,
    /// Fields in the record: unquoted commas plus one.
    fields: usize,
}

/// Scans the record at the start of `bytes` (after blank lines) up to its unquoted line end.
///
/// Used only to describe a record arrow rejected: a quote toggles the quoted state wherever it
/// appears, which is exact for well-formed quoting (`""` inside quotes toggles twice).
fn scan_record_shape(bytes: impl Read) -> io::Result<RecordShape> {
    let mut shape = RecordShape {
        leading_newlines: 0,
        fields: 1,
    };
    let mut record_started = false;
    let mut inside_quotes = false;
    for byte in BufReader::new(bytes).bytes() {
        let byte = byte?;
        if !record_started {
            match byte {
                b'\n' => {
                    shape.leading_newlines += 1;
                    continue;
                }
                b'\r' => continue,
                _ => record_started = true,
            }
        }
        match byte {
            b'"' => inside_quotes = !inside_quotes,
            b',' if !inside_quotes => shape.fields += 1,
            b'\n' | b'\r' if !inside_quotes => break,
            _ => {}
        }
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape scan skips the rest of a `\r\n` and blank lines, and ignores quoted commas
    /// and newlines.
    #[test]
    fn record_shape_counts_unquoted_commas_after_blank_lines() {
        let shape = scan_record_shape(Cursor::new(b"\n\r\na,\"b,\nc\",d\ne,f\n".as_slice())).expect("scan");
        assert_eq!(
            shape,
            RecordShape {
                leading_newlines: 2,
                fields: 3
            }
        );
    }
}
