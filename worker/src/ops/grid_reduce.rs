//! Reductions of gridded chunks along the row dimension, per grid cell, as a tree:
//! `grid_partial` on each chunk → `grid_combine`… → `grid_finalize`.
//!
//! Nulls (missing values) are skipped, as numpy's nan-functions skip the NaNs that
//! xarray reads missing values as; a NaN that is not null is a value, and makes its
//! cell's statistics NaN. A cell with no value gives null (every statistic but
//! `count`, which is 0); a variance with `count ≤ ddof` is null.
//!
//! # The partial state
//!
//! One row (`grid_combine` and `grid_finalize` also accept several rows, each a state,
//! e.g. partial states concatenated). Schema metadata:
//!
//! - `cairn.grid`: the input's [`GridMeta`] JSON, unchanged;
//! - [`PARTIAL_MARKER`] (`cairn.grid_partial`): which statistics the state keeps,
//!   `moments`, `minmax` or `all`.
//!
//! Columns, the lists with one item per grid cell (C order, as the chunk's values):
//!
//! | column | type | holds |
//! |---|---|---|
//! | `coord_min`, `coord_max` | `Float64` (null: no rows seen) | the row coordinate's range seen: the finalized chunk's coordinate is its midpoint |
//! | `count` | `FixedSizeList<UInt32>` | the non-null values seen per cell (always kept) |
//! | `mean` | `FixedSizeList<Float64>` | their mean (0 where count is 0) — `moments`, `all` |
//! | `m2` | `FixedSizeList<Float64>` | the sum of squared deviations from it — `moments`, `all` |
//! | `min`, `max` | `FixedSizeList<` the values' type `>` (null where count is 0) | the extremes — `minmax`, `all` |
//!
//! A partial is 20 bytes per cell for `moments` (12 for `minmax` of `Float32`): about
//! the size of one row of the chunk.
//!
//! Within a chunk the mean and `m2` take two passes (the mean, then the deviations
//! from it, whose sum corrects the first pass's rounding), row by row with the cells
//! innermost so that the loops vectorise; states combine with Chan, Golub and
//! LeVeque's pairwise update, as `agg_combine` does for tables.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, PrimitiveArray, RecordBatch, UInt32Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Schema, UInt32Type};
use cairn_client::grid::{AttrValue, GridMeta, GRID_METADATA_KEY};
use cairn_client::ParamKind;

use super::args::{optional, required, Args, Builtin};
use super::batch::arrow_error;
use super::grid::{flat_values, grid_arg, grid_result, Flat, Real};
use super::{OpContext, OpError};

/// The schema metadata key marking a `grid_partial` state; its value is the
/// statistics kept (`moments`, `minmax`, `all`).
pub(crate) const PARTIAL_MARKER: &str = "cairn.grid_partial";

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![
        Builtin::new(
            "grid_partial",
            vec![required("x", ParamKind::Data), optional("stats", ParamKind::Str)],
            grid_partial,
        )
        .light(),
        Builtin::variadic("grid_combine", vec![required("parts", ParamKind::Data)], grid_combine).light(),
        Builtin::new(
            "grid_finalize",
            vec![
                required("part", ParamKind::Data),
                required("stat", ParamKind::Str),
                optional("ddof", ParamKind::Int),
            ],
            grid_finalize,
        )
        .light(),
    ]
}

/// Which statistics a partial state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stats {
    /// `count`, `mean`, `m2`.
    Moments,
    /// `count`, `min`, `max`.
    MinMax,
    /// All five.
    All,
}

impl Stats {
    fn parse(name: &str) -> Result<Stats, String> {
        match name {
            "moments" => Ok(Stats::Moments),
            "minmax" => Ok(Stats::MinMax),
            "all" => Ok(Stats::All),
            other => Err(format!("unknown stats {other:?} (expected moments, minmax or all)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stats::Moments => "moments",
            Stats::MinMax => "minmax",
            Stats::All => "all",
        }
    }

    fn moments(self) -> bool {
        matches!(self, Stats::Moments | Stats::All)
    }

    fn minmax(self) -> bool {
        matches!(self, Stats::MinMax | Stats::All)
    }
}

/// A partial state in memory (the module docs' columns). `mean`/`m2` are empty
/// unless the stats keep moments, `min`/`max` unless they keep extremes (where
/// `count` is 0 their values mean nothing).
#[derive(Debug, Clone)]
struct State {
    meta: GridMeta,
    stats: Stats,
    /// The type of `min` and `max` (the values' type).
    value_type: DataType,
    /// The least row coordinate seen (+∞ if none).
    coord_min: f64,
    /// The greatest (−∞ if none).
    coord_max: f64,
    count: Vec<u32>,
    mean: Vec<f64>,
    m2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

impl State {
    /// A state with nothing seen.
    fn empty(meta: GridMeta, stats: Stats, value_type: DataType) -> State {
        let cells = meta.cells();
        let sized = |keep: bool, fill: f64| if keep { vec![fill; cells] } else { Vec::new() };
        State {
            stats,
            value_type,
            coord_min: f64::INFINITY,
            coord_max: f64::NEG_INFINITY,
            count: vec![0; cells],
            mean: sized(stats.moments(), 0.0),
            m2: sized(stats.moments(), 0.0),
            min: sized(stats.minmax(), f64::INFINITY),
            max: sized(stats.minmax(), f64::NEG_INFINITY),
            meta,
        }
    }

    /// Adds `other` (same grid and stats) to this state: Chan et al.'s update of the
    /// moments. `Err` names the first cell whose count overflows.
    fn merge(&mut self, other: &State) -> Result<(), String> {
        self.coord_min = self.coord_min.min(other.coord_min);
        self.coord_max = self.coord_max.max(other.coord_max);
        let moments = self.stats.moments();
        let minmax = self.stats.minmax();
        for cell in 0..self.count.len() {
            let (left, right) = (self.count[cell], other.count[cell]);
            if right == 0 {
                continue;
            }
            let total = left
                .checked_add(right)
                .ok_or_else(|| format!("the count of cell {cell} overflows UInt32"))?;
            if moments {
                if left == 0 {
                    self.mean[cell] = other.mean[cell];
                    self.m2[cell] = other.m2[cell];
                } else {
                    let (left, right, total) = (f64::from(left), f64::from(right), f64::from(total));
                    let delta = other.mean[cell] - self.mean[cell];
                    self.mean[cell] += delta * right / total;
                    self.m2[cell] += other.m2[cell] + delta * delta * left * right / total;
                }
            }
            if minmax {
                if left == 0 {
                    self.min[cell] = other.min[cell];
                    self.max[cell] = other.max[cell];
                } else {
                    self.min[cell] = nan_min(self.min[cell], other.min[cell]);
                    self.max[cell] = nan_max(self.max[cell], other.max[cell]);
                }
            }
            self.count[cell] = total;
        }
        Ok(())
    }
}

/// The lesser, NaN if either is (numpy's `minimum`).
#[inline]
fn nan_min<R: Real>(a: R, b: R) -> R {
    if b < a || b.is_nan() {
        b
    } else {
        a
    }
}

/// The greater, NaN if either is.
#[inline]
fn nan_max<R: Real>(a: R, b: R) -> R {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

// ---------------------------------------------------------------------------------
// grid_partial
// ---------------------------------------------------------------------------------

/// `grid_partial(x, stats?)`: the partial state of a gridded chunk.
fn grid_partial(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let x = grid_arg(args, 0, "x")?;
    let stats = match args.opt_str(1, "stats")? {
        None => Stats::Moments,
        Some(name) => Stats::parse(name).map_err(|reason| args.invalid("stats", reason))?,
    };
    let rows = x.rows();
    if u32::try_from(rows).is_err() {
        return Err(args.invalid("x", format!("{rows} rows: more than a partial state counts (UInt32)")));
    }
    let flat = flat_values(args, "x", &x)?;
    let mut state = State::empty(x.meta().clone(), stats, flat.data_type());
    for &coord in x.row_coord() {
        state.coord_min = state.coord_min.min(coord);
        state.coord_max = state.coord_max.max(coord);
    }
    match &flat {
        Flat::F32(values) => accumulate(&mut state, values.values(), values.nulls(), rows),
        Flat::F64(values) => accumulate(&mut state, values.values(), values.nulls(), rows),
    }
    state_batch(args, &state)
}

/// Cells reduced together: every row of a block of this many cells, so that the
/// accumulators (a few arrays of this length) stay in cache while the rows stream by.
const BLOCK: usize = 1024;

/// Fills the empty `state` from `rows` rows of `values` (C order).
fn accumulate<R: Real>(state: &mut State, values: &[R], nulls: Option<&NullBuffer>, rows: usize) {
    let cells = state.count.len();
    if cells == 0 || rows == 0 || values.len() < rows * cells {
        return;
    }
    let nulls = nulls.filter(|nulls| nulls.null_count() > 0);
    let moments = state.stats.moments();
    let minmax = state.stats.minmax();
    let width = BLOCK.min(cells);
    let mut mask = vec![false; width];
    let mut sums = vec![0.0_f64; width];
    let mut deviations = vec![0.0_f64; width];
    let mut squares = vec![0.0_f64; width];
    let mut low = vec![R::INFINITY; width];
    let mut high = vec![-R::INFINITY; width];
    for start in (0..cells).step_by(BLOCK) {
        let end = cells.min(start + BLOCK);
        let width = end - start;
        let mask = &mut mask[..width];
        let count = &mut state.count[start..end];
        let row_values = |row: usize| &values[row * cells + start..row * cells + end];

        // Pass 1: counts, sums (→ first means), extremes.
        let sums = &mut sums[..width];
        let low = &mut low[..width];
        let high = &mut high[..width];
        sums.fill(0.0);
        low.fill(R::INFINITY);
        high.fill(-R::INFINITY);
        let mut full_rows = 0_u32;
        for row in 0..rows {
            let row_values = row_values(row);
            if row_mask(mask, nulls, row * cells + start) {
                for (count, &ok) in count.iter_mut().zip(mask.iter()) {
                    *count += u32::from(ok);
                }
                if moments {
                    for ((sum, &value), &ok) in sums.iter_mut().zip(row_values).zip(mask.iter()) {
                        *sum += if ok { value.to_f64() } else { 0.0 };
                    }
                }
                if minmax {
                    for (((low, high), &value), &ok) in
                        low.iter_mut().zip(high.iter_mut()).zip(row_values).zip(mask.iter())
                    {
                        if ok {
                            *low = nan_min(*low, value);
                            *high = nan_max(*high, value);
                        }
                    }
                }
            } else {
                full_rows += 1;
                if moments {
                    for (sum, &value) in sums.iter_mut().zip(row_values) {
                        *sum += value.to_f64();
                    }
                }
                if minmax {
                    for ((low, high), &value) in low.iter_mut().zip(high.iter_mut()).zip(row_values) {
                        *low = nan_min(*low, value);
                        *high = nan_max(*high, value);
                    }
                }
            }
        }
        for count in count.iter_mut() {
            *count += full_rows;
        }
        if minmax {
            for (target, value) in state.min[start..end].iter_mut().zip(low.iter()) {
                *target = value.to_f64();
            }
            for (target, value) in state.max[start..end].iter_mut().zip(high.iter()) {
                *target = value.to_f64();
            }
        }
        if !moments {
            continue;
        }

        // Pass 2: deviations from the first means; their sum corrects the mean.
        let first_means = sums;
        for (mean, &count) in first_means.iter_mut().zip(count.iter()) {
            *mean = if count > 0 { *mean / f64::from(count) } else { 0.0 };
        }
        let deviations = &mut deviations[..width];
        let squares = &mut squares[..width];
        deviations.fill(0.0);
        squares.fill(0.0);
        for row in 0..rows {
            let row_values = row_values(row);
            if row_mask(mask, nulls, row * cells + start) {
                for ((((deviation, square), &mean), &value), &ok) in deviations
                    .iter_mut()
                    .zip(squares.iter_mut())
                    .zip(first_means.iter())
                    .zip(row_values)
                    .zip(mask.iter())
                {
                    let delta = if ok { value.to_f64() - mean } else { 0.0 };
                    *deviation += delta;
                    *square += delta * delta;
                }
            } else {
                for (((deviation, square), &mean), &value) in deviations
                    .iter_mut()
                    .zip(squares.iter_mut())
                    .zip(first_means.iter())
                    .zip(row_values)
                {
                    let delta = value.to_f64() - mean;
                    *deviation += delta;
                    *square += delta * delta;
                }
            }
        }
        for cell in 0..width {
            if count[cell] == 0 {
                continue;
            }
            let n = f64::from(count[cell]);
            let (deviation, square) = (deviations[cell], squares[cell]);
            state.mean[start + cell] = first_means[cell] + deviation / n;
            let m2 = square - deviation * deviation / n;
            // Rounding can leave a tiny negative; NaN (from NaN data) stays.
            state.m2[start + cell] = if m2 < 0.0 { 0.0 } else { m2 };
        }
    }
}

/// Fills `mask` with the validity of the `mask.len()` values from value `start` and
/// returns `true` if one is null; `false` (mask untouched) if every value is there.
/// Reads the validity 64 bits at a time.
fn row_mask(mask: &mut [bool], nulls: Option<&NullBuffer>, start: usize) -> bool {
    let Some(nulls) = nulls else {
        return false;
    };
    let bits = nulls.inner().slice(start, mask.len());
    if bits.count_set_bits() == mask.len() {
        return false;
    }
    let chunks = bits.bit_chunks();
    for (slots, word) in mask.chunks_mut(64).zip(chunks.iter_padded()) {
        for (shift, slot) in slots.iter_mut().enumerate() {
            *slot = (word >> shift) & 1 == 1;
        }
    }
    true
}

/// `values` as a `FixedSizeList` of one row of `cells` items.
fn list_column<T: ArrowPrimitiveType>(
    cells: i32,
    values: PrimitiveArray<T>,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    let item = Arc::new(Field::new("item", T::DATA_TYPE, true));
    Ok(Arc::new(FixedSizeListArray::try_new(
        item,
        cells,
        Arc::new(values),
        None,
    )?))
}

/// The 1-row batch of a state (module docs).
fn state_batch(args: &Args<'_>, state: &State) -> Result<RecordBatch, OpError> {
    let cells = i32::try_from(state.count.len())
        .map_err(|_| args.invalid("x", "too many cells per row for a partial state"))?;
    let building = arrow_error(args.op, "building the partial state");
    let coord = |value: f64| Arc::new(Float64Array::from(vec![value.is_finite().then_some(value)])) as ArrayRef;
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("coord_min", coord(state.coord_min)),
        ("coord_max", coord(state.coord_max)),
    ];
    let result = (|| {
        columns.push(("count", list_column(cells, UInt32Array::from(state.count.clone()))?));
        if state.stats.moments() {
            columns.push(("mean", list_column(cells, Float64Array::from(state.mean.clone()))?));
            columns.push(("m2", list_column(cells, Float64Array::from(state.m2.clone()))?));
        }
        if state.stats.minmax() {
            let seen = NullBuffer::from(state.count.iter().map(|&count| count > 0).collect::<Vec<bool>>());
            for (name, extremes) in [("min", &state.min), ("max", &state.max)] {
                let column = if state.value_type == DataType::Float32 {
                    let values: Vec<f32> = extremes.iter().map(|&value| value as f32).collect();
                    list_column(cells, Float32Array::new(values.into(), Some(seen.clone())))?
                } else {
                    list_column(cells, Float64Array::new(extremes.clone().into(), Some(seen.clone())))?
                };
                columns.push((name, column));
            }
        }
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, column)| Field::new(*name, column.data_type().clone(), name.starts_with("coord")))
            .collect();
        let metadata = HashMap::from([
            (GRID_METADATA_KEY.to_string(), state.meta.to_json()),
            (PARTIAL_MARKER.to_string(), state.stats.name().to_string()),
        ]);
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        RecordBatch::try_new(schema, columns.iter().map(|(_, column)| column.clone()).collect())
    })();
    result.map_err(building)
}

// ---------------------------------------------------------------------------------
// Reading and combining states
// ---------------------------------------------------------------------------------

/// The values of row `row` of list column `name` (already checked to be a
/// `FixedSizeList` of `T` with `cells` items), as `f64`.
fn list_row<T: ArrowPrimitiveType>(batch: &RecordBatch, name: &str, row: usize) -> Option<Vec<f64>>
where
    T::Native: Real,
{
    let list = batch.column_by_name(name)?.as_fixed_size_list_opt()?;
    let items = list.value(row);
    let values = items.as_primitive_opt::<T>()?;
    Some(values.values().iter().map(|value| value.to_f64()).collect())
}

/// The states (one per row) of the partial-state batch `batch` (argument `param`),
/// with its grid, stats and value type.
fn read_states(args: &Args<'_>, param: &str, batch: &RecordBatch) -> Result<(State, Vec<State>), OpError> {
    let invalid = |reason: String| args.invalid(param, reason);
    let metadata = batch.schema_ref().metadata();
    let Some(stats) = metadata.get(PARTIAL_MARKER) else {
        let what = if metadata.contains_key(GRID_METADATA_KEY) {
            "a gridded chunk"
        } else {
            "data"
        };
        return Err(invalid(format!(
            "{what}, not a grid_partial state (no {PARTIAL_MARKER} metadata): make partial states with grid_partial"
        )));
    };
    let stats =
        Stats::parse(stats).map_err(|reason| invalid(format!("malformed {PARTIAL_MARKER} metadata: {reason}")))?;
    let meta = match GridMeta::of_schema(batch.schema_ref()) {
        Some(Ok(meta)) => meta,
        Some(Err(error)) => return Err(invalid(error.to_string())),
        None => {
            return Err(invalid(format!(
                "a grid_partial state without {GRID_METADATA_KEY} metadata"
            )))
        }
    };
    let cells = meta.cells();
    let item_type = |name: &str| -> Result<DataType, OpError> {
        let column = batch.column_by_name(name).ok_or_else(|| {
            invalid(format!(
                "the partial state ({} stats) has no column {name}",
                stats.name()
            ))
        })?;
        match column.data_type() {
            DataType::FixedSizeList(item, size) if usize::try_from(*size).ok() == Some(cells) => {
                Ok(item.data_type().clone())
            }
            other => Err(invalid(format!(
                "column {name} is {other}, expected a FixedSizeList of {cells} items"
            ))),
        }
    };
    let expect = |name: &str, expected: &[DataType]| -> Result<DataType, OpError> {
        let found = item_type(name)?;
        if expected.contains(&found) {
            Ok(found)
        } else {
            Err(invalid(format!("column {name} holds {found}, expected {expected:?}")))
        }
    };
    for name in ["coord_min", "coord_max"] {
        match batch.column_by_name(name).map(|column| column.data_type()) {
            Some(DataType::Float64) => {}
            _ => return Err(invalid(format!("the partial state has no Float64 column {name}"))),
        }
    }
    expect("count", &[DataType::UInt32])?;
    if stats.moments() {
        expect("mean", &[DataType::Float64])?;
        expect("m2", &[DataType::Float64])?;
    }
    let floats = [DataType::Float32, DataType::Float64];
    let value_type = if stats.minmax() {
        let min = expect("min", &floats)?;
        let max = expect("max", &floats)?;
        if min != max {
            return Err(invalid(format!("column min holds {min} but max {max}")));
        }
        min
    } else {
        DataType::Float64
    };
    let template = State::empty(meta, stats, value_type.clone());
    let malformed = |name: &str| invalid(format!("column {name} is malformed"));
    let coord = |name: &str, row: usize| -> Option<f64> {
        let column = batch.column_by_name(name)?.as_primitive_opt::<Float64Type>()?;
        column.is_valid(row).then(|| column.value(row))
    };
    let mut states = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut state = template.clone();
        state.coord_min = coord("coord_min", row).unwrap_or(f64::INFINITY);
        state.coord_max = coord("coord_max", row).unwrap_or(f64::NEG_INFINITY);
        let counts = batch
            .column_by_name("count")
            .and_then(|column| column.as_fixed_size_list_opt())
            .map(|list| list.value(row))
            .ok_or_else(|| malformed("count"))?;
        let counts = counts
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| malformed("count"))?;
        state.count = counts.values().to_vec();
        if stats.moments() {
            state.mean = list_row::<Float64Type>(batch, "mean", row).ok_or_else(|| malformed("mean"))?;
            state.m2 = list_row::<Float64Type>(batch, "m2", row).ok_or_else(|| malformed("m2"))?;
        }
        if stats.minmax() {
            let read = |name: &str| match value_type {
                DataType::Float32 => list_row::<Float32Type>(batch, name, row),
                _ => list_row::<Float64Type>(batch, name, row),
            };
            state.min = read("min").ok_or_else(|| malformed("min"))?;
            state.max = read("max").ok_or_else(|| malformed("max"))?;
        }
        states.push(state);
    }
    Ok((template, states))
}

/// Every state of every part combined: the parts must keep the same stats of the
/// same variable on aligned grids.
fn combine_parts(args: &Args<'_>, parts: &[&RecordBatch], single: Option<&str>) -> Result<State, OpError> {
    let name = |index: usize| single.map_or_else(|| format!("parts[{index}]"), str::to_string);
    let mut combined: Option<State> = None;
    for (index, part) in parts.iter().enumerate() {
        let (template, states) = read_states(args, &name(index), part)?;
        let total = match combined.as_mut() {
            None => combined.insert(template),
            Some(total) => {
                let mismatch = |reason: String| OpError::Mismatch {
                    op: args.op.to_string(),
                    params: format!("parts[0] and parts[{index}]"),
                    reason,
                };
                if template.stats != total.stats {
                    return Err(mismatch(format!(
                        "parts[0] keeps stats {} but parts[{index}] keeps {} (ask grid_partial for the same stats)",
                        total.stats.name(),
                        template.stats.name()
                    )));
                }
                if template.meta.variable != total.meta.variable {
                    return Err(mismatch(format!(
                        "parts[0] is a partial state of {} but parts[{index}] of {}",
                        total.meta.variable, template.meta.variable
                    )));
                }
                total
                    .meta
                    .check_aligned(&template.meta)
                    .map_err(|error| mismatch(error.to_string()))?;
                if template.value_type == DataType::Float64 {
                    total.value_type = DataType::Float64;
                }
                total
            }
        };
        for state in &states {
            total
                .merge(state)
                .map_err(|reason| args.invalid(&name(index), reason))?;
        }
    }
    combined.ok_or_else(|| args.invalid("parts", "no partial states"))
}

/// `grid_combine(parts…)`: the partial states combined into one.
fn grid_combine(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let parts = args.data_from(0, "parts")?;
    let state = combine_parts(args, &parts, None)?;
    state_batch(args, &state)
}

// ---------------------------------------------------------------------------------
// grid_finalize
// ---------------------------------------------------------------------------------

/// A statistic `grid_finalize` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    Count,
    Mean,
    Var(u32),
    Std(u32),
    Min,
    Max,
    Sum,
}

impl Stat {
    /// Whether the state's stats have what this statistic needs.
    fn available(self, stats: Stats) -> bool {
        match self {
            Stat::Count => true,
            Stat::Mean | Stat::Var(_) | Stat::Std(_) | Stat::Sum => stats.moments(),
            Stat::Min | Stat::Max => stats.minmax(),
        }
    }

    /// The `stats` of `grid_partial` that keep what this statistic needs.
    fn needs(self) -> &'static str {
        match self {
            Stat::Min | Stat::Max => "\"minmax\" or \"all\"",
            _ => "\"moments\" (the default) or \"all\"",
        }
    }

    /// The CF `cell_methods` word.
    fn cell_method(self) -> Option<&'static str> {
        match self {
            Stat::Count => None,
            Stat::Mean => Some("mean"),
            Stat::Var(_) => Some("variance"),
            Stat::Std(_) => Some("standard_deviation"),
            Stat::Min => Some("minimum"),
            Stat::Max => Some("maximum"),
            Stat::Sum => Some("sum"),
        }
    }

    /// The statistic of one cell, `None` if it has none.
    #[inline]
    fn of_cell(self, state: &State, cell: usize) -> Option<f64> {
        let count = state.count[cell];
        let variance = |ddof: u32| (count > ddof).then(|| state.m2[cell] / f64::from(count - ddof));
        match self {
            Stat::Count => Some(f64::from(count)),
            _ if count == 0 => None,
            Stat::Mean => Some(state.mean[cell]),
            Stat::Sum => Some(state.mean[cell] * f64::from(count)),
            Stat::Var(ddof) => variance(ddof),
            Stat::Std(ddof) => variance(ddof).map(f64::sqrt),
            Stat::Min => Some(state.min[cell]),
            Stat::Max => Some(state.max[cell]),
        }
    }
}

const STATS: &str = "count, mean, var, std, min, max, sum";

/// `grid_finalize(part, stat, ddof?)`: a 1-row gridded chunk of the statistic.
fn grid_finalize(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let part = args.data(0, "part")?;
    let name = args.str(1, "stat")?;
    let ddof = args.opt_count(2, "ddof")?;
    let ddof_u32 = |value: Option<usize>| {
        let value = value.unwrap_or(0);
        u32::try_from(value).map_err(|_| args.invalid("ddof", format!("{value} is more than any count")))
    };
    let stat = match (name, ddof) {
        ("var", ddof) => Stat::Var(ddof_u32(ddof)?),
        ("std", ddof) => Stat::Std(ddof_u32(ddof)?),
        ("count" | "mean" | "min" | "max" | "sum", Some(_)) => {
            return Err(args.invalid("ddof", format!("only var and std take ddof, not {name}")));
        }
        ("count", None) => Stat::Count,
        ("mean", None) => Stat::Mean,
        ("min", None) => Stat::Min,
        ("max", None) => Stat::Max,
        ("sum", None) => Stat::Sum,
        (other, _) => {
            return Err(args.invalid("stat", format!("unknown statistic {other:?} (expected one of {STATS})")));
        }
    };
    let state = combine_parts(args, &[part], Some("part"))?;
    if !stat.available(state.stats) {
        return Err(args.invalid(
            "stat",
            format!(
                "{name} needs a partial state made with grid_partial stats {}, this one keeps {}",
                stat.needs(),
                state.stats.name()
            ),
        ));
    }
    let cells = state.count.len();
    let mut values = Vec::with_capacity(cells);
    let mut valid = Vec::with_capacity(cells);
    for cell in 0..cells {
        let value = stat.of_cell(&state, cell);
        values.push(value.unwrap_or(0.0));
        valid.push(value.is_some());
    }
    let nulls = Some(NullBuffer::from(valid)).filter(|nulls| nulls.null_count() > 0);
    let coord = if state.coord_min <= state.coord_max {
        state.coord_min + (state.coord_max - state.coord_min) / 2.0
    } else {
        f64::NAN
    };
    let mut meta = state.meta.clone();
    finalized_attrs(&mut meta, stat);
    grid_result::<f64>(args, &meta, &[coord], values, nulls)
}

/// The variable's attributes after reducing along the row dimension: the CF
/// `cell_methods` entry appended, `units` squared for a variance and `1` for a count
/// (whose standard name gets CF's `number_of_observations` modifier).
fn finalized_attrs(meta: &mut GridMeta, stat: Stat) {
    let attrs = &mut meta.attrs;
    if let Some(method) = stat.cell_method() {
        let entry = format!("{}: {method}", meta.row_dim);
        let methods = match attrs.get("cell_methods").and_then(AttrValue::as_text) {
            Some(existing) if !existing.trim().is_empty() => format!("{} {entry}", existing.trim_end()),
            _ => entry,
        };
        attrs.insert("cell_methods".to_string(), AttrValue::Text(methods));
    }
    match stat {
        Stat::Var(_) => {
            if let Some(units) = attrs.get("units").and_then(AttrValue::as_text).map(str::to_string) {
                attrs.insert("units".to_string(), AttrValue::Text(format!("({units})2")));
            }
        }
        Stat::Count => {
            attrs.insert("units".to_string(), AttrValue::from("1"));
            if let Some(name) = attrs
                .get("standard_name")
                .and_then(AttrValue::as_text)
                .map(str::to_string)
            {
                attrs.insert(
                    "standard_name".to_string(),
                    AttrValue::Text(format!("{name} number_of_observations")),
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::grid::options;
    use crate::ops::{OpRegistry, OpValue};
    use cairn_client::grid::{Coord, GridBatch};

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    fn data(batch: &RecordBatch) -> OpValue {
        OpValue::Data(batch.clone())
    }

    fn meta(cells: usize) -> GridMeta {
        let mut meta = GridMeta::new(
            "t2m",
            "time",
            vec![Coord::new("site", (0..cells).map(|i| i as f64).collect())],
        );
        meta.attrs.insert("units".into(), AttrValue::from("K"));
        meta.attrs
            .insert("standard_name".into(), AttrValue::from("air_temperature"));
        meta.attrs.insert("cell_methods".into(), AttrValue::from("area: mean"));
        meta
    }

    fn partial(batch: &RecordBatch, stats: &str) -> RecordBatch {
        run("grid_partial", vec![data(batch), OpValue::from(stats)]).expect("partial")
    }

    fn finalize(part: &RecordBatch, stat: &str) -> RecordBatch {
        run("grid_finalize", vec![data(part), OpValue::from(stat)]).expect(stat)
    }

    fn finalize_ddof(part: &RecordBatch, stat: &str, ddof: i64) -> RecordBatch {
        run(
            "grid_finalize",
            vec![data(part), OpValue::from(stat), OpValue::from(ddof)],
        )
        .expect(stat)
    }

    /// Three rows of two cells, one null: every statistic by hand.
    #[test]
    fn statistics_by_hand() {
        let x = meta(2)
            .batch(
                &[0.0, 6.0, 24.0],
                vec![Some(1.0), None, Some(2.0), Some(5.0), Some(6.0), Some(7.0)],
            )
            .expect("batch");
        let state = partial(&x, "all");
        let names: Vec<&str> = state
            .schema_ref()
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        assert_eq!(names, ["coord_min", "coord_max", "count", "mean", "m2", "min", "max"]);
        assert_eq!(state.num_rows(), 1);
        assert_eq!(state.schema_ref().metadata()[PARTIAL_MARKER], "all");

        let count = finalize(&state, "count");
        assert_eq!(options(&count), [Some(3.0), Some(2.0)]);
        let count_meta = GridBatch::new(&count).expect("grid").meta().clone();
        assert_eq!(count_meta.attrs["units"], AttrValue::from("1"));
        assert_eq!(count_meta.attrs["cell_methods"], AttrValue::from("area: mean"));
        let mean = finalize(&state, "mean");
        assert_eq!(options(&mean), [Some(3.0), Some(6.0)]);
        let grid = GridBatch::new(&mean).expect("grid");
        assert_eq!(grid.row_coord(), &[12.0], "the middle of 0 and 24");
        assert_eq!(grid.meta().variable, "t2m");
        assert_eq!(grid.value_type(), DataType::Float64);
        assert_eq!(
            grid.meta().attrs["cell_methods"],
            AttrValue::from("area: mean time: mean")
        );
        assert_eq!(grid.meta().attrs["units"], AttrValue::from("K"));
        assert_eq!(options(&finalize(&state, "sum")), [Some(9.0), Some(12.0)]);
        assert_eq!(options(&finalize(&state, "min")), [Some(1.0), Some(5.0)]);
        assert_eq!(options(&finalize(&state, "max")), [Some(6.0), Some(7.0)]);
        let var = finalize(&state, "var");
        assert_eq!(options(&var), [Some(14.0 / 3.0), Some(1.0)]);
        let var_meta = GridBatch::new(&var).expect("grid").meta().clone();
        assert_eq!(var_meta.attrs["units"], AttrValue::from("(K)2"));
        assert_eq!(
            var_meta.attrs["cell_methods"],
            AttrValue::from("area: mean time: variance")
        );
        assert_eq!(options(&finalize_ddof(&state, "var", 1)), [Some(7.0), Some(2.0)]);
        assert_eq!(
            options(&finalize_ddof(&state, "std", 1)),
            [Some(7.0_f64.sqrt()), Some(2.0_f64.sqrt())]
        );
        assert_eq!(
            options(&finalize_ddof(&state, "var", 2)),
            [Some(14.0), None],
            "count ≤ ddof"
        );
        let std = finalize(&state, "std");
        assert_eq!(
            GridBatch::new(&std).expect("grid").meta().attrs["cell_methods"],
            AttrValue::from("area: mean time: standard_deviation")
        );

        // Cells with every value missing: null, count 0; no rows at all: NaN coordinate.
        let missing = meta(2).batch(&[3.0], vec![None, Some(1.0)]).expect("batch");
        let state = partial(&missing, "all");
        assert_eq!(options(&finalize(&state, "mean")), [None, Some(1.0)]);
        assert_eq!(options(&finalize(&state, "min")), [None, Some(1.0)]);
        assert_eq!(options(&finalize(&state, "count")), [Some(0.0), Some(1.0)]);
        assert_eq!(options(&finalize(&state, "sum")), [None, Some(1.0)]);
        let empty = partial(&missing.slice(0, 0), "moments");
        let mean = finalize(&empty, "mean");
        assert!(GridBatch::new(&mean).expect("grid").row_coord()[0].is_nan());
        assert_eq!(options(&mean), [None, None]);
    }

    /// A deterministic generator: uniform in [0, 1).
    fn uniform(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Random data around 1e3 with nulls (cell 0 all missing, cell 1 one value),
    /// split into partials of uneven sizes combined as different trees: every
    /// statistic matches a direct two-pass f64 computation to 1e-9 relative.
    #[test]
    fn trees_of_partials_match_a_two_pass_computation() {
        let (rows, cells) = (61, 40);
        let mut seed = 7_u64;
        let values: Vec<Option<f64>> = (0..rows * cells)
            .map(|index| {
                let (row, cell) = (index / cells, index % cells);
                let value = 1e3 + 10.0 * uniform(&mut seed) + cell as f64;
                let missing = cell == 0 || (cell == 1 && row != 17) || (cell > 1 && uniform(&mut seed) < 0.2);
                (!missing).then_some(value)
            })
            .collect();
        let coord: Vec<f64> = (0..rows).map(|row| row as f64 * 6.0).collect();
        let grid = meta(cells);
        for float32 in [false, true] {
            let values: Vec<Option<f64>> = if float32 {
                values.iter().map(|v| v.map(|v| f64::from(v as f32))).collect()
            } else {
                values.clone()
            };
            let batch = if float32 {
                grid.batch(&coord, values.iter().map(|v| v.map(|v| v as f32)).collect())
                    .expect("batch")
            } else {
                grid.batch_of::<Float64Type>(&coord, Float64Array::from(values.clone()))
                    .expect("batch")
            };
            // The direct computation, per cell.
            let per_cell: Vec<Vec<f64>> = (0..cells)
                .map(|cell| (0..rows).filter_map(|row| values[row * cells + cell]).collect())
                .collect();
            let two_pass = |cell: usize, ddof: usize| -> (Option<f64>, Option<f64>) {
                let seen = &per_cell[cell];
                if seen.is_empty() {
                    return (None, None);
                }
                let n = seen.len() as f64;
                let mean = seen.iter().sum::<f64>() / n;
                let m2: f64 = seen.iter().map(|v| (v - mean) * (v - mean)).sum();
                (Some(mean), (seen.len() > ddof).then(|| m2 / (seen.len() - ddof) as f64))
            };

            let bounds = [0, 1, 5, 5, 18, 30, 44, 61];
            let parts: Vec<RecordBatch> = bounds
                .windows(2)
                .map(|w| partial(&batch.slice(w[0], w[1] - w[0]), "all"))
                .collect();
            let flat = run("grid_combine", parts.iter().map(data).collect()).expect("flat");
            let mut chain = parts[0].clone();
            for part in &parts[1..] {
                chain = run("grid_combine", vec![data(&chain), data(part)]).expect("chain");
            }
            let pairs: Vec<RecordBatch> = parts
                .chunks(2)
                .map(|pair| run("grid_combine", vec![OpValue::List(pair.iter().map(data).collect())]).expect("pair"))
                .collect();
            let balanced = run("grid_combine", pairs.iter().map(data).collect()).expect("balanced");
            let whole = partial(&batch, "all");
            for (shape, state) in [
                ("flat", &flat),
                ("chain", &chain),
                ("balanced", &balanced),
                ("whole", &whole),
            ] {
                let mean = options(&finalize(state, "mean"));
                let var = options(&finalize(state, "var"));
                let var1 = options(&finalize_ddof(state, "var", 1));
                let count = options(&finalize(state, "count"));
                let min = options(&finalize(state, "min"));
                let max = options(&finalize(state, "max"));
                let sum = options(&finalize(state, "sum"));
                let close = |got: Option<f64>, want: Option<f64>, what: &str, cell: usize| match (got, want) {
                    (Some(got), Some(want)) => assert!(
                        (got - want).abs() <= 1e-9 * want.abs(),
                        "{shape} {what}[{cell}] {got} vs {want} (f32 {float32})"
                    ),
                    (got, want) => assert_eq!(got, want, "{shape} {what}[{cell}]"),
                };
                for cell in 0..cells {
                    let (want_mean, want_var) = two_pass(cell, 0);
                    close(mean[cell], want_mean, "mean", cell);
                    close(var[cell], want_var, "var", cell);
                    close(var1[cell], two_pass(cell, 1).1, "var1", cell);
                    let seen = &per_cell[cell];
                    assert_eq!(count[cell], Some(seen.len() as f64));
                    close(sum[cell], (!seen.is_empty()).then(|| seen.iter().sum()), "sum", cell);
                    let low = seen.iter().copied().reduce(f64::min);
                    let high = seen.iter().copied().reduce(f64::max);
                    assert_eq!(min[cell], low, "{shape} min[{cell}]");
                    assert_eq!(max[cell], high, "{shape} max[{cell}]");
                }
                assert_eq!(var[0], None);
                assert!(var[1].is_some() && var1[1].is_none(), "one value: var 0, var1 null");
                let coord = GridBatch::new(&finalize(state, "mean")).expect("grid").row_coord()[0];
                assert_eq!(coord, 180.0);
            }
        }
    }

    /// Values around 1e9 with a spread of ±50 keep their variance across partials
    /// (a sum of squares would lose it all). (The means are `f64`s, so at 1e9 they
    /// are kept to 1e-7: with a spread of only 1, a 1e-9 match needs larger parts.)
    #[test]
    fn large_offsets_keep_their_variance() {
        let rows = 10_000;
        let mut seed = 3_u64;
        let values: Vec<f64> = (0..rows).map(|_| 1e9 + 100.0 * uniform(&mut seed) - 50.0).collect();
        let grid = meta(1);
        let batch = grid
            .batch_of::<Float64Type>(&vec![0.0; rows], Float64Array::from(values.clone()))
            .expect("batch");
        let parts: Vec<RecordBatch> = (0..20)
            .map(|i| partial(&batch.slice(i * 500, 500), "moments"))
            .collect();
        let combined = run("grid_combine", parts.iter().map(data).collect()).expect("combine");
        let n = rows as f64;
        let mean = values.iter().sum::<f64>() / n;
        let want = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let got = options(&finalize(&combined, "var"))[0].expect("var");
        assert!(((got - want) / want).abs() < 1e-9, "{got} vs {want}");
        let naive = values.iter().map(|v| v * v).sum::<f64>() / n - mean * mean;
        assert!(((naive - want) / want).abs() > 1e-3, "naive {naive} vs {want}");
    }

    /// Grids wider than a block of cells: every block, the last one partial.
    #[test]
    fn blocks_of_cells_cover_the_grid() {
        let (rows, cells) = (5, 2 * BLOCK + 300);
        let mut seed = 11_u64;
        let values: Vec<Option<f32>> = (0..rows * cells)
            .map(|_| {
                let value = (uniform(&mut seed) * 100.0) as f32;
                (uniform(&mut seed) > 0.1).then_some(value)
            })
            .collect();
        let batch = meta(cells)
            .batch(&[0.0, 1.0, 2.0, 3.0, 4.0], values.clone())
            .expect("batch");
        let state = partial(&batch, "all");
        let mean = options(&finalize(&state, "mean"));
        let max = options(&finalize(&state, "max"));
        let var = options(&finalize(&state, "var"));
        for cell in 0..cells {
            let seen: Vec<f64> = (0..rows)
                .filter_map(|row| values[row * cells + cell].map(f64::from))
                .collect();
            if seen.is_empty() {
                assert_eq!((mean[cell], max[cell]), (None, None));
                continue;
            }
            let n = seen.len() as f64;
            let want = seen.iter().sum::<f64>() / n;
            let got = mean[cell].expect("mean");
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "mean[{cell}] {got} vs {want}"
            );
            let want_var = seen.iter().map(|v| (v - want) * (v - want)).sum::<f64>() / n;
            let got_var = var[cell].expect("var");
            assert!((got_var - want_var).abs() <= 1e-9 * want_var.max(1e-9), "var[{cell}]");
            assert_eq!(max[cell], seen.iter().copied().reduce(f64::max));
        }
    }

    #[test]
    fn reduction_errors_say_what_is_wrong() {
        let x = meta(2).batch(&[0.0], vec![Some(1.0), Some(2.0)]).expect("batch");
        let message = |name: &str, args: Vec<OpValue>| run(name, args).expect_err(name).to_string();
        let moments = partial(&x, "moments");
        let minmax = partial(&x, "minmax");
        assert_eq!(
            message("grid_finalize", vec![data(&moments), OpValue::from("max")]),
            "grid_finalize: argument stat: max needs a partial state made with grid_partial stats \"minmax\" or \"all\", this one keeps moments"
        );
        assert_eq!(
            message("grid_finalize", vec![data(&minmax), OpValue::from("var")]),
            "grid_finalize: argument stat: var needs a partial state made with grid_partial stats \"moments\" (the default) or \"all\", this one keeps minmax"
        );
        assert_eq!(options(&finalize(&minmax, "count")), [Some(1.0), Some(1.0)]);
        assert_eq!(
            message("grid_finalize", vec![data(&moments), OpValue::from("median")]),
            "grid_finalize: argument stat: unknown statistic \"median\" (expected one of count, mean, var, std, min, max, sum)"
        );
        assert_eq!(
            message(
                "grid_finalize",
                vec![data(&moments), OpValue::from("mean"), OpValue::from(1_i64)]
            ),
            "grid_finalize: argument ddof: only var and std take ddof, not mean"
        );
        assert_eq!(
            message(
                "grid_finalize",
                vec![data(&moments), OpValue::from("var"), OpValue::from(-1_i64)]
            ),
            "grid_finalize: argument ddof: must not be negative, given -1"
        );
        assert_eq!(
            message("grid_partial", vec![data(&x), OpValue::from("median")]),
            "grid_partial: argument stats: unknown stats \"median\" (expected moments, minmax or all)"
        );
        assert_eq!(
            message("grid_combine", vec![data(&moments), data(&minmax)]),
            "grid_combine: parts[0] and parts[1] do not match: parts[0] keeps stats moments but parts[1] keeps minmax (ask grid_partial for the same stats)"
        );
        assert_eq!(
            message("grid_combine", vec![data(&moments), data(&x)]),
            "grid_combine: argument parts[1]: a gridded chunk, not a grid_partial state (no cairn.grid_partial metadata): make partial states with grid_partial"
        );
        assert_eq!(
            message("grid_finalize", vec![data(&x), OpValue::from("mean")]),
            "grid_finalize: argument part: a gridded chunk, not a grid_partial state (no cairn.grid_partial metadata): make partial states with grid_partial"
        );
        let mut other_grid = meta(2);
        other_grid.inner[0].values = vec![0.0, 5.0];
        let y = other_grid.batch(&[0.0], vec![Some(1.0), Some(2.0)]).expect("batch");
        assert_eq!(
            message("grid_combine", vec![data(&moments), data(&partial(&y, "moments"))]),
            "grid_combine: parts[0] and parts[1] do not match: grids of t2m and t2m do not line up: site[1] is 1 in t2m but 5 in t2m"
        );
        let table = RecordBatch::try_from_iter(vec![("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)])
            .expect("batch");
        assert_eq!(
            message("grid_partial", vec![data(&table)]),
            "grid_partial: argument x: the data is not gridded: its schema has no cairn.grid metadata"
        );
        assert_eq!(
            message("grid_binary", vec![data(&moments), data(&x), OpValue::from("add")]),
            "grid_binary: argument a: this is a grid_partial state (stats moments), not a gridded chunk: finalize it with grid_finalize"
        );
        let broken = moments.project(&[0, 1, 2, 3]).expect("no m2");
        assert_eq!(
            message("grid_finalize", vec![data(&broken), OpValue::from("mean")]),
            "grid_finalize: argument part: the partial state (moments stats) has no column m2"
        );
    }
}
