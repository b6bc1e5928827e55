//! Test data: deterministic Arrow tables, written as CSV, Parquet or Arrow IPC files,
//! and comparisons of what comes back.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The schema of [`table`]: an id, a measurement, a label; nullable, as CSV
/// schema inference makes every column.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("value", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]))
}

/// `rows` deterministic rows starting at row `first`.
pub fn table(first: usize, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows).map(|row| row as i64).collect();
    let values: Vec<f64> = ids.iter().map(|id| (*id as f64) * 0.25 - 7.5).collect();
    let labels: Vec<String> = ids.iter().map(|id| format!("station-{}", id % 97)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Float64Array::from(values)),
        Arc::new(StringArray::from(labels)),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|error| panic!("a valid table: {error}"))
}

/// Publishes `batch` as dataset `name`, cut into chunks of `chunk_rows` rows.
pub async fn publish_in_chunks(
    client: &cairn_client::Client,
    name: &str,
    batch: &RecordBatch,
    chunk_rows: usize,
) -> anyhow::Result<()> {
    let options = cairn_client::PublishOptions {
        chunk_rows,
        ..Default::default()
    };
    let batches = futures::stream::iter(vec![Ok::<_, arrow::error::ArrowError>(batch.clone())]);
    client.publish_batches(name, batch.schema(), batches, options).await?;
    Ok(())
}

/// Writes `batch` to `path` as CSV with a header.
pub fn write_csv(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
    writer.write(batch)?;
    Ok(())
}

/// Writes `batch` to `path` as Parquet.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

/// Writes `batch` to `path` as an Arrow IPC file.
pub fn write_arrow(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

/// Reads an Arrow IPC file back into one batch.
pub fn read_arrow(path: &Path) -> anyhow::Result<RecordBatch> {
    let reader = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(path)?, None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Reads a Parquet file back into one batch.
pub fn read_parquet(path: &Path) -> anyhow::Result<RecordBatch> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
    let schema = builder.schema().clone();
    let batches = builder.build()?.collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

/// All `batches` as one batch of `schema`.
pub fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<RecordBatch> {
    Ok(concat_batches(schema, batches)?)
}
