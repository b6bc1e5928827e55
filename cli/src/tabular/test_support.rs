//! Helpers shared by the tests of this module: sample tables and files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::read::open_inputs;
use super::write::TableWriter;

/// The schema of [`sample_batch`]: a non-nullable id, a nullable name and a nullable score.
pub(super) fn sample_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]))
}

/// `rows` rows starting at id `first_id`, with a null name every seventh row and names that
/// need CSV quoting (commas, quotes).
pub(super) fn sample_batch(first_id: i64, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (0..rows as i64).map(|offset| first_id + offset).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|id| (id % 7 != 0).then(|| format!("name {id}, \"quoted\"")))
        .collect();
    let scores: Vec<Option<f64>> = ids.iter().map(|id| Some(*id as f64 * 0.5)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(Float64Array::from(scores)),
    ];
    RecordBatch::try_new(sample_schema(), columns).expect("sample batch matches its schema")
}

/// Writes `batches` to `path` with [`TableWriter`] and returns the rows written.
pub(super) fn write_with_table_writer(path: &Path, batches: &[RecordBatch]) -> u64 {
    let schema = batches
        .first()
        .map(|batch| batch.schema())
        .unwrap_or_else(sample_schema);
    let mut writer = TableWriter::create(path, schema).expect("create writer");
    for batch in batches {
        writer.write(batch).expect("write batch");
    }
    writer.finish().expect("finish writer")
}

/// Reads `paths` back in chunks of `chunk_rows` and returns the batches.
pub(super) fn read_all(paths: &[PathBuf], chunk_rows: usize) -> Vec<RecordBatch> {
    open_inputs(paths, chunk_rows)
        .expect("open inputs")
        .collect::<Result<Vec<_>, _>>()
        .expect("read every batch")
}

/// All `batches` as one batch, to compare contents regardless of chunking.
pub(super) fn concatenated(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches
        .first()
        .map(|batch| batch.schema())
        .unwrap_or_else(sample_schema);
    concat_batches(&schema, batches).expect("batches share a schema")
}
