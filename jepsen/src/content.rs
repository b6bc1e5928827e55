//! The data workload's datasets: deterministic Arrow batches generated from a seed,
//! and the checksum that says whether what a client read back is exactly what was
//! published.
//!
//! A dataset of [`DataSpec`] `{seed, chunks, rows_per_chunk, plus}` has
//! `chunks × rows_per_chunk` rows; row `g` (counted across chunks) is
//! `(id, x, label)` = `(h >> 2 + plus, ((h >> 40) mod 10⁶) / 4 + plus, "r<g>-<h mod 2¹⁶>")`
//! with `h = splitmix64(seed, g)`: an `Int64`, a `Float64` (quarters: exact, so
//! adding 1 is exact) and a `Utf8` column. `plus` is what `inc` adds to every
//! numeric column of a derived dataset.
//!
//! The checksum is FNV-1a (64 bits) over every value in row order: the id's and the
//! float's 8 little-endian bytes, the label's length (4 bytes) and bytes. It is
//! computed two independent ways: [`expected`] from the generator's values alone,
//! [`of_batches`] from the Arrow arrays read back — so a read that drops, repeats,
//! reorders or alters a row, or returns another schema, does not match.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};

use crate::history::{Content, DataSpec};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over a stream of bytes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(FNV_OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn row(&mut self, id: i64, x: f64, label: &str) {
        self.bytes(&id.to_le_bytes());
        self.bytes(&x.to_bits().to_le_bytes());
        self.bytes(&(label.len() as u32).to_le_bytes());
        self.bytes(label.as_bytes());
    }
}

fn splitmix64(seed: u64, index: u64) -> u64 {
    let mut z = seed
        ^ index
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(0x6a09_e667_f3bc_c909);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Row `g` of a dataset generated from `seed` with `plus` added.
fn row(seed: u64, g: u64, plus: i64) -> (i64, f64, String) {
    let h = splitmix64(seed, g);
    let id = (h >> 2) as i64 + plus;
    let x = ((h >> 40) % 1_000_000) as f64 * 0.25 + plus as f64;
    (id, x, format!("r{g}-{:04x}", h & 0xffff))
}

/// The schema every generated dataset has.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
        Field::new("label", DataType::Utf8, false),
    ]))
}

/// The dataset's chunks as record batches (one per chunk).
pub fn batches(spec: &DataSpec) -> anyhow::Result<Vec<RecordBatch>> {
    let schema = schema();
    let per_chunk = u64::from(spec.rows_per_chunk);
    (0..u64::from(spec.chunks))
        .map(|chunk| {
            let rows: Vec<(i64, f64, String)> = (chunk * per_chunk..(chunk + 1) * per_chunk)
                .map(|g| row(spec.seed, g, spec.plus))
                .collect();
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)));
            let xs: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1)));
            let labels: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2.as_str())));
            Ok(RecordBatch::try_new(schema.clone(), vec![ids, xs, labels])?)
        })
        .collect()
}

/// The content the dataset must read back as, from the generator alone.
pub fn expected(spec: &DataSpec) -> Content {
    let mut fnv = Fnv::new();
    let rows = u64::from(spec.chunks) * u64::from(spec.rows_per_chunk);
    for g in 0..rows {
        let (id, x, label) = row(spec.seed, g, spec.plus);
        fnv.row(id, x, &label);
    }
    Content {
        rows,
        chunks: u64::from(spec.chunks),
        checksum: format!("{:016x}", fnv.0),
    }
}

/// The content of batches read back. Batches whose columns are not
/// `(Int64, Float64, Utf8)` (nullability aside) get a checksum of their schema
/// instead, which matches no generated dataset; a null value hashes as a marker.
pub fn of_batches(batches: &[RecordBatch]) -> Content {
    let mut fnv = Fnv::new();
    let mut rows = 0u64;
    for batch in batches {
        rows += batch.num_rows() as u64;
        let types: Vec<&DataType> = batch.schema_ref().fields().iter().map(|f| f.data_type()).collect();
        if types != [&DataType::Int64, &DataType::Float64, &DataType::Utf8] {
            fnv.bytes(b"unexpected schema:");
            fnv.bytes(batch.schema_ref().to_string().as_bytes());
            continue;
        }
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let xs = batch.column(1).as_primitive::<Float64Type>();
        let labels = batch.column(2).as_string::<i32>();
        for i in 0..batch.num_rows() {
            if ids.is_null(i) || xs.is_null(i) || labels.is_null(i) {
                fnv.bytes(b"\xffnull");
                continue;
            }
            fnv.row(ids.value(i), xs.value(i), labels.value(i));
        }
    }
    Content {
        rows,
        chunks: batches.len() as u64,
        checksum: format!("{:016x}", fnv.0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(seed: u64, plus: i64) -> DataSpec {
        DataSpec {
            seed,
            chunks: 3,
            rows_per_chunk: 50,
            plus,
            replicas: 2,
            source: None,
        }
    }

    #[test]
    fn generated_batches_read_back_as_expected() {
        let spec = spec(7, 0);
        let batches = batches(&spec).unwrap();
        assert_eq!(batches.len(), 3);
        assert_eq!(of_batches(&batches), expected(&spec));
        // Chunking does not matter to the checksum, only to the chunk count.
        let whole = arrow::compute::concat_batches(&schema(), &batches).unwrap();
        let read = of_batches(&[whole]);
        assert_eq!((read.rows, &read.checksum), (150, &expected(&spec).checksum));
        assert_eq!(read.chunks, 1);
    }

    #[test]
    fn any_change_is_seen() {
        let spec = spec(7, 0);
        let batches = batches(&spec).unwrap();
        let good = expected(&spec);
        // A chunk missing, a row missing, chunks swapped, another seed, one added.
        assert_ne!(of_batches(&batches[..2]), good);
        let short = vec![batches[0].clone(), batches[1].slice(0, 49), batches[2].clone()];
        assert_ne!(of_batches(&short).checksum, good.checksum);
        let swapped = vec![batches[1].clone(), batches[0].clone(), batches[2].clone()];
        assert_ne!(of_batches(&swapped).checksum, good.checksum);
        assert_ne!(expected(&self::spec(8, 0)).checksum, good.checksum);
        assert_ne!(expected(&self::spec(7, 1)).checksum, good.checksum);
    }

    #[test]
    fn inc_of_every_numeric_column_is_plus_one() {
        // What the worker's `inc` does to a batch: 1 added to every numeric column.
        let source = batches(&spec(9, 0)).unwrap();
        let incremented: Vec<RecordBatch> = source
            .iter()
            .map(|batch| {
                let ids = batch.column(0).as_primitive::<Int64Type>();
                let xs = batch.column(1).as_primitive::<Float64Type>();
                let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.values().iter().map(|v| v + 1)));
                let xs: ArrayRef = Arc::new(Float64Array::from_iter_values(xs.values().iter().map(|v| v + 1.0)));
                RecordBatch::try_new(schema(), vec![ids, xs, batch.column(2).clone()]).unwrap()
            })
            .collect();
        assert_eq!(of_batches(&incremented), expected(&spec(9, 1)));
    }

    #[test]
    fn another_schema_never_matches() {
        let other = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1_i64])) as ArrayRef)]).unwrap();
        let content = of_batches(&[other]);
        assert_eq!(content.rows, 1);
        assert_ne!(content.checksum, expected(&spec(1, 0)).checksum);
    }
}
