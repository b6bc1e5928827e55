//! Reading one Parquet file in batches.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::error::TabularError;
use super::format::FileFormat;

/// Opens `path` and reads its footer; an error here means a missing file or not Parquet.
fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, TabularError> {
    let file = File::open(path).map_err(|source| TabularError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| TabularError::Parquet {
        path: path.to_path_buf(),
        source,
    })
}

/// The Arrow schema of a Parquet file, from its footer alone.
pub(super) fn parquet_schema(path: &Path) -> Result<SchemaRef, TabularError> {
    Ok(open_builder(path)?.schema().clone())
}

/// Batches of at most `chunk_rows` rows from one Parquet file.
pub(super) struct ParquetSource {
    /// The file, for error messages.
    path: PathBuf,
    /// Parquet's reader, which already cuts batches to `chunk_rows`.
    reader: ParquetRecordBatchReader,
    /// Rows in the file according to its footer: the denominator of the progress.
    total_rows: u64,
    /// Rows returned so far: the numerator of the progress.
    rows_read: u64,
    /// Size of the file, which the progress fraction is scaled to.
    file_size: u64,
}

impl ParquetSource {
    /// Opens `path` for reading in batches of `chunk_rows` rows.
    pub(super) fn open(path: &Path, chunk_rows: usize, file_size: u64) -> Result<ParquetSource, TabularError> {
        let builder = open_builder(path)?;
        let total_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let reader = builder
            .with_batch_size(chunk_rows)
            .build()
            .map_err(|source| TabularError::Parquet {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(ParquetSource {
            path: path.to_path_buf(),
            reader,
            total_rows,
            rows_read: 0,
            file_size,
        })
    }

    /// Approximate bytes done: the file size scaled by the fraction of rows read.
    pub(super) fn bytes_consumed(&self) -> u64 {
        if self.total_rows == 0 {
            return 0;
        }
        let scaled = u128::from(self.file_size) * u128::from(self.rows_read) / u128::from(self.total_rows);
        u64::try_from(scaled).unwrap_or(self.file_size)
    }

    /// The next batch, or `None` at the end of the file.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>, TabularError> {
        match self.reader.next() {
            None => Ok(None),
            Some(Ok(batch)) => {
                self.rows_read += batch.num_rows() as u64;
                Ok(Some(batch))
            }
            Some(Err(source)) => Err(TabularError::Decode {
                path: self.path.clone(),
                format: FileFormat::Parquet,
                source,
            }),
        }
    }
}
