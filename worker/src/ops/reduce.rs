//! Reductions that combine in a tree: each takes any number of parts and gives one
//! row, and feeding results back in gives the same answer as reducing everything at
//! once.
//!
//! - `sum`, `min`, `max`: a 1-row batch per numeric column. Integer columns
//!   accumulate as `Int64` (checked: an overflow is an error, never a wrapped
//!   total), floats as `Float64`; a column that is a float in any part is a float.
//! - `count`: the non-null values per column. A count result carries the schema
//!   metadata [`COUNT_MARKER`] = `count`, and a part so marked adds its counts instead
//!   of counting its one row, so `count` of counts is the total count.
//! - `agg_partial` → `agg_combine`… → `agg_finalize`: mean, variance and standard
//!   deviation that stay accurate when combined. A partial state holds, per column
//!   `c`: `c.count` (`Int64`), `c.sum` (`Int64` or `Float64`), `c.mean` and `c.m2`
//!   (`Float64`: the mean and the sum of squared deviations from it), `c.min`,
//!   `c.max`. Within a part the mean and `m2` are computed in two passes (with the
//!   rounding error of the first pass corrected); parts are combined with Chan,
//!   Golub and LeVeque's pairwise update, so values around 1e9 with a spread of 1
//!   keep their variance (a sum of squares would lose it all).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatchOptions, Scalar};
use arrow::compute::kernels::{aggregate, numeric};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use cairn_client::ParamKind;

use super::args::{optional, required, Args, Builtin};
use super::batch::{arrow_error, find_column, is_float, is_integer, is_numeric, parse_column_list, strict_cast};
use super::{OpContext, OpError};

/// The schema metadata key that marks a `count` result (its value is `count`), so
/// that `count` over count results adds them up.
pub const COUNT_MARKER: &str = "cairn.reduction";

/// The value of [`COUNT_MARKER`] on a count result.
const COUNT_MARKER_VALUE: &str = "count";

/// The suffixes of a partial state's columns, in their order.
const STATE_SUFFIXES: [&str; 6] = ["count", "sum", "mean", "m2", "min", "max"];

pub(crate) fn builtins() -> Vec<Builtin> {
    let parts = || vec![required("parts", ParamKind::Data)];
    vec![
        Builtin::variadic("sum", parts(), sum).light(),
        Builtin::variadic("count", parts(), count).light(),
        Builtin::variadic("min", parts(), min).light(),
        Builtin::variadic("max", parts(), max).light(),
        Builtin::new(
            "agg_partial",
            vec![required("x", ParamKind::Data), optional("columns", ParamKind::Str)],
            agg_partial,
        )
        .light(),
        Builtin::variadic("agg_combine", parts(), agg_combine).light(),
        Builtin::new(
            "agg_finalize",
            vec![
                required("part", ParamKind::Data),
                required("stat", ParamKind::Str),
                optional("ddof", ParamKind::Int),
            ],
            agg_finalize,
        )
        .light(),
    ]
}

/// How a numeric column accumulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accumulator {
    /// Integers, as `Int64` (exact, overflow checked).
    Int,
    /// Floats, as `Float64`.
    Float,
}

impl Accumulator {
    fn of(data_type: &DataType) -> Option<Accumulator> {
        if is_integer(data_type) {
            Some(Accumulator::Int)
        } else if is_float(data_type) {
            Some(Accumulator::Float)
        } else {
            None
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Accumulator::Int => DataType::Int64,
            Accumulator::Float => DataType::Float64,
        }
    }
}

/// One accumulated number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    /// An `Int64` accumulator's value.
    Int(i64),
    /// A `Float64` accumulator's value.
    Float(f64),
}

impl Number {
    fn zero(accumulator: Accumulator) -> Number {
        match accumulator {
            Accumulator::Int => Number::Int(0),
            Accumulator::Float => Number::Float(0.0),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(value) => value as f64,
            Number::Float(value) => value,
        }
    }

    /// `self + other`; `None` on integer overflow.
    fn checked_add(self, other: Number) -> Option<Number> {
        match (self, other) {
            (Number::Int(left), Number::Int(right)) => left.checked_add(right).map(Number::Int),
            (left, right) => Some(Number::Float(left.as_f64() + right.as_f64())),
        }
    }

    /// The lesser (`minimum`) or greater of two; floats in IEEE total order, as
    /// Arrow's `min`/`max` kernels.
    fn pick(minimum: bool, left: Option<Number>, right: Option<Number>) -> Option<Number> {
        let (left, right) = match (left, right) {
            (None, other) | (other, None) => return other,
            (Some(left), Some(right)) => (left, right),
        };
        let ordering = match (left, right) {
            (Number::Int(left), Number::Int(right)) => left.cmp(&right),
            (left, right) => left.as_f64().total_cmp(&right.as_f64()),
        };
        let left_wins = if minimum { ordering.is_le() } else { ordering.is_ge() };
        Some(if left_wins { left } else { right })
    }
}

/// A numeric column of `batch` as its accumulator type.
fn accumulator_column(
    op: &str,
    param: &str,
    name: &str,
    column: &ArrayRef,
    accumulator: Accumulator,
) -> Result<ArrayRef, OpError> {
    strict_cast(column, &accumulator.data_type()).map_err(arrow_error(op, format!("column {name:?} of {param}")))
}

/// One 1-element array holding `value` (null if `None`).
fn number_array(accumulator: Accumulator, value: Option<Number>) -> ArrayRef {
    match accumulator {
        Accumulator::Int => Arc::new(Int64Array::from(vec![match value {
            Some(Number::Int(value)) => Some(value),
            Some(Number::Float(value)) => Some(value as i64),
            None => None,
        }])),
        Accumulator::Float => Arc::new(Float64Array::from(vec![value.map(Number::as_f64)])),
    }
}

/// A 1-row batch of the given columns (also with no columns at all).
fn one_row(
    op: &str,
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
    metadata: HashMap<String, String>,
) -> Result<RecordBatch, OpError> {
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
    let options = RecordBatchOptions::new().with_row_count(Some(1));
    RecordBatch::try_new_with_options(schema, columns, &options).map_err(arrow_error(op, "building the result"))
}

fn part_name(index: usize) -> String {
    format!("parts[{index}]")
}

/// The numeric columns every part shares, by name in the first part's order, and how
/// each accumulates (a float in any part makes it a float). Parts must agree on which
/// columns are numeric.
fn shared_numeric_columns(op: &str, parts: &[&RecordBatch]) -> Result<Vec<(String, Accumulator)>, OpError> {
    let numeric_names = |batch: &RecordBatch| -> Vec<String> {
        batch
            .schema_ref()
            .fields()
            .iter()
            .filter(|field| is_numeric(field.data_type()))
            .map(|field| field.name().clone())
            .collect()
    };
    let Some(first) = parts.first() else {
        return Ok(Vec::new());
    };
    let names = numeric_names(first);
    let mut columns: Vec<(String, Accumulator)> = Vec::with_capacity(names.len());
    for name in names {
        columns.push((name, Accumulator::Int));
    }
    for (index, part) in parts.iter().enumerate() {
        let part_names = numeric_names(part);
        let mismatch = |reason: String| OpError::Mismatch {
            op: op.to_string(),
            params: format!("parts[0] and {}", part_name(index)),
            reason,
        };
        if let Some(missing) = columns.iter().find(|(name, _)| !part_names.contains(name)) {
            return Err(mismatch(format!(
                "numeric column {:?} is not in {}",
                missing.0,
                part_name(index)
            )));
        }
        if let Some(extra) = part_names
            .iter()
            .find(|name| !columns.iter().any(|(known, _)| known == *name))
        {
            return Err(mismatch(format!(
                "numeric column {extra:?} of {} is not in parts[0]",
                part_name(index)
            )));
        }
        for (name, accumulator) in &mut columns {
            let is_float_here = part
                .schema_ref()
                .field_with_name(name)
                .map(|field| is_float(field.data_type()))
                .unwrap_or(false);
            if is_float_here {
                *accumulator = Accumulator::Float;
            }
        }
    }
    Ok(columns)
}

/// `sum(parts…)`: one row, the total of each numeric column.
fn sum(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let parts = args.data_from(0, "parts")?;
    let columns = shared_numeric_columns(args.op, &parts)?;
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, accumulator) in columns {
        let mut total = Number::zero(accumulator);
        for (index, part) in parts.iter().enumerate() {
            let param = part_name(index);
            let column = find_column(args.op, &param, part, &name).map(|at| part.column(at))?;
            let values = accumulator_column(args.op, &param, &name, column, accumulator)?;
            let part_sum = sum_of(&values, accumulator)
                .map_err(arrow_error(args.op, format!("sum of column {name:?} of {param}")))?;
            total = total.checked_add(part_sum).ok_or_else(|| OpError::Arrow {
                op: args.op.to_string(),
                context: format!("sum of column {name:?} over parts[0..={index}]"),
                source: ArrowError::ArithmeticOverflow("the sum does not fit Int64".to_string()),
            })?;
        }
        fields.push(Field::new(&name, accumulator.data_type(), false));
        arrays.push(number_array(accumulator, Some(total)));
    }
    one_row(args.op, fields, arrays, HashMap::new())
}

/// The sum of an accumulator column (0 when it has no values).
fn sum_of(values: &ArrayRef, accumulator: Accumulator) -> Result<Number, ArrowError> {
    let type_error = || ArrowError::CastError(format!("expected {} values", accumulator.data_type()));
    Ok(match accumulator {
        Accumulator::Int => {
            let ints = values.as_primitive_opt::<Int64Type>().ok_or_else(type_error)?;
            Number::Int(aggregate::sum_checked(ints)?.unwrap_or(0))
        }
        Accumulator::Float => {
            let floats = values.as_primitive_opt::<Float64Type>().ok_or_else(type_error)?;
            Number::Float(aggregate::sum(floats).unwrap_or(0.0))
        }
    })
}

/// The least or greatest value of an accumulator column (`None` when it has none).
fn extreme_of(minimum: bool, values: &ArrayRef, accumulator: Accumulator) -> Result<Option<Number>, ArrowError> {
    let type_error = || ArrowError::CastError(format!("expected {} values", accumulator.data_type()));
    Ok(match accumulator {
        Accumulator::Int => {
            let ints = values.as_primitive_opt::<Int64Type>().ok_or_else(type_error)?;
            let value = if minimum {
                aggregate::min(ints)
            } else {
                aggregate::max(ints)
            };
            value.map(Number::Int)
        }
        Accumulator::Float => {
            let floats = values.as_primitive_opt::<Float64Type>().ok_or_else(type_error)?;
            let value = if minimum {
                aggregate::min(floats)
            } else {
                aggregate::max(floats)
            };
            value.map(Number::Float)
        }
    })
}

/// `min(parts…)` / `max(parts…)`: one row, the extreme of each numeric column.
fn extremes(args: &Args<'_>, minimum: bool) -> Result<RecordBatch, OpError> {
    let parts = args.data_from(0, "parts")?;
    let columns = shared_numeric_columns(args.op, &parts)?;
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, accumulator) in columns {
        let mut best = None;
        for (index, part) in parts.iter().enumerate() {
            let param = part_name(index);
            let column = find_column(args.op, &param, part, &name).map(|at| part.column(at))?;
            let values = accumulator_column(args.op, &param, &name, column, accumulator)?;
            let part_best = extreme_of(minimum, &values, accumulator).map_err(arrow_error(
                args.op,
                format!("{} of column {name:?} of {param}", args.op),
            ))?;
            best = Number::pick(minimum, best, part_best);
        }
        fields.push(Field::new(&name, accumulator.data_type(), true));
        arrays.push(number_array(accumulator, best));
    }
    one_row(args.op, fields, arrays, HashMap::new())
}

fn min(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    extremes(args, true)
}

fn max(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    extremes(args, false)
}

fn is_count_result(batch: &RecordBatch) -> bool {
    batch.schema_ref().metadata().get(COUNT_MARKER).map(String::as_str) == Some(COUNT_MARKER_VALUE)
}

/// `count(parts…)`: one row, the non-null values of each column (of every type); a
/// part that is a count result contributes the counts it holds.
fn count(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let parts = args.data_from(0, "parts")?;
    let Some(first) = parts.first() else {
        return Err(args.invalid("parts", "no data"));
    };
    let names: Vec<String> = first
        .schema_ref()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let mut totals = vec![0_i64; names.len()];
    for (index, part) in parts.iter().enumerate() {
        let param = part_name(index);
        if part.num_columns() != names.len() {
            return Err(OpError::Mismatch {
                op: args.op.to_string(),
                params: format!("parts[0] and {param}"),
                reason: format!(
                    "parts[0] has {} columns, {param} has {}",
                    names.len(),
                    part.num_columns()
                ),
            });
        }
        let counted = is_count_result(part);
        for (name, total) in names.iter().zip(totals.iter_mut()) {
            let column = find_column(args.op, &param, part, name).map(|at| part.column(at))?;
            let part_count = if counted {
                let values = accumulator_column(args.op, &param, name, column, Accumulator::Int)?;
                match sum_of(&values, Accumulator::Int).map_err(arrow_error(
                    args.op,
                    format!("adding the counts of column {name:?} of {param}"),
                ))? {
                    Number::Int(value) => value,
                    Number::Float(value) => value as i64,
                }
            } else {
                (column.len() - column.logical_null_count()) as i64
            };
            *total = total
                .checked_add(part_count)
                .ok_or_else(|| args.invalid("parts", format!("the count of column {name:?} overflows Int64")))?;
        }
    }
    let fields = names
        .iter()
        .map(|name| Field::new(name, DataType::Int64, false))
        .collect();
    let arrays = totals
        .iter()
        .map(|total| Arc::new(Int64Array::from(vec![*total])) as ArrayRef)
        .collect();
    let metadata = HashMap::from([(COUNT_MARKER.to_string(), COUNT_MARKER_VALUE.to_string())]);
    one_row(args.op, fields, arrays, metadata)
}

/// The partial state of one column: enough to combine and finalize.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Moments {
    /// Non-null values seen.
    count: i64,
    /// Their sum, exact for integers.
    sum: Number,
    /// Their mean (0 when there are none).
    mean: f64,
    /// The sum of squared deviations from `mean` (0 when there are none).
    m2: f64,
    /// The least value, if any.
    min: Option<Number>,
    /// The greatest value, if any.
    max: Option<Number>,
}

impl Moments {
    /// The state of one accumulator column: two passes over it (the mean, then the
    /// deviations from it, whose sum corrects the mean's rounding error).
    fn of_column(values: &ArrayRef, accumulator: Accumulator) -> Result<Moments, ArrowError> {
        let count = (values.len() - values.logical_null_count()) as i64;
        let sum = sum_of(values, accumulator)?;
        let min = extreme_of(true, values, accumulator)?;
        let max = extreme_of(false, values, accumulator)?;
        if count == 0 {
            return Ok(Moments {
                count,
                sum,
                mean: 0.0,
                m2: 0.0,
                min,
                max,
            });
        }
        let floats = strict_cast(values, &DataType::Float64)?;
        let n = count as f64;
        let first_mean = sum.as_f64() / n;
        let mean_scalar = Scalar::new(Float64Array::from(vec![first_mean]));
        let deviations = numeric::sub(&floats, &mean_scalar)?;
        let squares = numeric::mul(&deviations, &deviations)?;
        let sum_of_deviations = sum_of(&deviations, Accumulator::Float)?.as_f64();
        let sum_of_squares = sum_of(&squares, Accumulator::Float)?.as_f64();
        let m2 = sum_of_squares - sum_of_deviations * sum_of_deviations / n;
        Ok(Moments {
            count,
            sum,
            mean: first_mean + sum_of_deviations / n,
            // Rounding can leave a tiny negative; NaN (from NaN or infinite data) stays.
            m2: if m2 < 0.0 { 0.0 } else { m2 },
            min,
            max,
        })
    }

    /// Both states as one (Chan, Golub, LeVeque: the means' difference weighted by
    /// the counts); `None` if the integer sum or the count overflows.
    fn combine(self, other: Moments) -> Option<Moments> {
        let count = self.count.checked_add(other.count)?;
        let sum = self.sum.checked_add(other.sum)?;
        let min = Number::pick(true, self.min, other.min);
        let max = Number::pick(false, self.max, other.max);
        let (mean, m2) = if other.count == 0 {
            (self.mean, self.m2)
        } else if self.count == 0 {
            (other.mean, other.m2)
        } else {
            let (left_count, right_count, total) = (self.count as f64, other.count as f64, count as f64);
            let delta = other.mean - self.mean;
            (
                self.mean + delta * right_count / total,
                self.m2 + other.m2 + delta * delta * left_count * right_count / total,
            )
        };
        Some(Moments {
            count,
            sum,
            mean,
            m2,
            min,
            max,
        })
    }
}

/// A column of a partial state: its original name, how it accumulates, and where
/// its six state columns are.
#[derive(Debug, Clone, PartialEq)]
struct StateColumn {
    /// The original column's name (`x` for `x.count`…).
    name: String,
    /// The type of its `sum`, `min` and `max`.
    accumulator: Accumulator,
    /// The indices of `count, sum, mean, m2, min, max` in the state batch.
    indices: [usize; 6],
}

/// The layout of a partial state's schema, or why it is not one.
fn state_layout(schema: &Schema) -> Result<Vec<StateColumn>, String> {
    let mut columns: Vec<(String, [Option<usize>; 6])> = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        let parsed = field.name().rsplit_once('.').and_then(|(name, suffix)| {
            STATE_SUFFIXES
                .iter()
                .position(|known| *known == suffix)
                .map(|slot| (name, slot))
        });
        let Some((name, slot)) = parsed else {
            return Err(format!(
                "column {:?} is not part of an agg_partial state (<column>.count, .sum, .mean, .m2, .min, .max)",
                field.name()
            ));
        };
        let position = match columns.iter().position(|(known, _)| known == name) {
            Some(position) => position,
            None => {
                columns.push((name.to_string(), [None; 6]));
                columns.len() - 1
            }
        };
        let slots = &mut columns[position].1;
        if slots[slot].is_some() {
            return Err(format!("column {:?} appears twice", field.name()));
        }
        slots[slot] = Some(index);
    }
    let mut layout = Vec::with_capacity(columns.len());
    for (name, slots) in columns {
        let mut indices = [0_usize; 6];
        for (slot, index) in slots.iter().enumerate() {
            indices[slot] = index.ok_or_else(|| format!("column {name:?} has no {name}.{}", STATE_SUFFIXES[slot]))?;
        }
        let type_of = |slot: usize| schema.field(indices[slot]).data_type();
        let accumulator = match type_of(1) {
            DataType::Int64 => Accumulator::Int,
            DataType::Float64 => Accumulator::Float,
            other => return Err(format!("{name}.sum is {other}, expected Int64 or Float64")),
        };
        let expected = [
            DataType::Int64,
            accumulator.data_type(),
            DataType::Float64,
            DataType::Float64,
            accumulator.data_type(),
            accumulator.data_type(),
        ];
        for (slot, expected) in expected.iter().enumerate() {
            if type_of(slot) != expected {
                return Err(format!(
                    "{name}.{} is {}, expected {expected}",
                    STATE_SUFFIXES[slot],
                    type_of(slot)
                ));
            }
        }
        layout.push(StateColumn {
            name,
            accumulator,
            indices,
        });
    }
    Ok(layout)
}

/// The state of `column` in row `row` of a partial-state batch.
fn read_state(batch: &RecordBatch, column: &StateColumn, row: usize) -> Result<Moments, String> {
    let array = |slot: usize| batch.column(column.indices[slot]);
    let missing = |slot: usize| format!("{}.{} is null in row {row}", column.name, STATE_SUFFIXES[slot]);
    let wrong_type = |slot: usize| format!("{}.{} has the wrong type", column.name, STATE_SUFFIXES[slot]);
    let int = |slot: usize| -> Result<Option<i64>, String> {
        let values = array(slot)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| wrong_type(slot))?;
        Ok(values.is_valid(row).then(|| values.value(row)))
    };
    let float = |slot: usize| -> Result<Option<f64>, String> {
        let values = array(slot)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| wrong_type(slot))?;
        Ok(values.is_valid(row).then(|| values.value(row)))
    };
    let number = |slot: usize| -> Result<Option<Number>, String> {
        Ok(match column.accumulator {
            Accumulator::Int => int(slot)?.map(Number::Int),
            Accumulator::Float => float(slot)?.map(Number::Float),
        })
    };
    let count = int(0)?.ok_or_else(|| missing(0))?;
    if count < 0 {
        return Err(format!("{}.count is negative in row {row}", column.name));
    }
    Ok(Moments {
        count,
        sum: number(1)?.ok_or_else(|| missing(1))?,
        mean: float(2)?.ok_or_else(|| missing(2))?,
        m2: float(3)?.ok_or_else(|| missing(3))?,
        min: number(4)?,
        max: number(5)?,
    })
}

/// Every row of every part combined, per state column. The parts must share one
/// state schema.
fn combine_states(args: &Args<'_>, parts: &[&RecordBatch]) -> Result<Vec<(StateColumn, Moments)>, OpError> {
    let Some(first) = parts.first() else {
        return Err(args.invalid("parts", "no data"));
    };
    let param = if parts.len() == 1 && args.op == "agg_finalize" {
        "part".to_string()
    } else {
        part_name(0)
    };
    let layout = state_layout(first.schema_ref()).map_err(|reason| args.invalid(&param, reason))?;
    let mut combined: Vec<(StateColumn, Moments)> = layout
        .into_iter()
        .map(|column| {
            let empty = Moments {
                count: 0,
                sum: Number::zero(column.accumulator),
                mean: 0.0,
                m2: 0.0,
                min: None,
                max: None,
            };
            (column, empty)
        })
        .collect();
    let first_fields = first.schema_ref().fields();
    for (index, part) in parts.iter().enumerate() {
        let same_schema = part.schema_ref().fields().len() == first_fields.len()
            && part
                .schema_ref()
                .fields()
                .iter()
                .zip(first_fields.iter())
                .all(|(field, known)| field.name() == known.name() && field.data_type() == known.data_type());
        if !same_schema {
            return Err(OpError::Mismatch {
                op: args.op.to_string(),
                params: format!("parts[0] and {}", part_name(index)),
                reason: "they are not partial states of the same columns".to_string(),
            });
        }
        for row in 0..part.num_rows() {
            for (column, state) in &mut combined {
                let other = read_state(part, column, row).map_err(|reason| args.invalid(&part_name(index), reason))?;
                *state = state.combine(other).ok_or_else(|| {
                    args.invalid(
                        &part_name(index),
                        format!("the sum or count of column {:?} overflows Int64", column.name),
                    )
                })?;
            }
        }
    }
    Ok(combined)
}

/// A 1-row partial-state batch.
fn state_batch(op: &str, states: &[(String, Accumulator, Moments)]) -> Result<RecordBatch, OpError> {
    let mut fields = Vec::with_capacity(states.len() * 6);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(states.len() * 6);
    for (name, accumulator, state) in states {
        let data_type = accumulator.data_type();
        fields.push(Field::new(format!("{name}.count"), DataType::Int64, false));
        arrays.push(Arc::new(Int64Array::from(vec![state.count])));
        fields.push(Field::new(format!("{name}.sum"), data_type.clone(), false));
        arrays.push(number_array(*accumulator, Some(state.sum)));
        fields.push(Field::new(format!("{name}.mean"), DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(vec![state.mean])));
        fields.push(Field::new(format!("{name}.m2"), DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(vec![state.m2])));
        fields.push(Field::new(format!("{name}.min"), data_type.clone(), true));
        arrays.push(number_array(*accumulator, state.min));
        fields.push(Field::new(format!("{name}.max"), data_type, true));
        arrays.push(number_array(*accumulator, state.max));
    }
    one_row(op, fields, arrays, HashMap::new())
}

/// `agg_partial(x, columns?)`: the partial state of each numeric column of `x` (or
/// of the named ones, which must be numeric).
fn agg_partial(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "x")?;
    let names = match args.opt_str(1, "columns")? {
        Some(text) => parse_column_list(text).map_err(|reason| args.invalid("columns", reason))?,
        None => batch
            .schema_ref()
            .fields()
            .iter()
            .filter(|field| is_numeric(field.data_type()))
            .map(|field| field.name().clone())
            .collect(),
    };
    let mut states = Vec::with_capacity(names.len());
    for name in names {
        let column = batch.column(find_column(args.op, "x", batch, &name)?);
        let Some(accumulator) = Accumulator::of(column.data_type()) else {
            return Err(OpError::ColumnType {
                op: args.op.to_string(),
                param: "x".to_string(),
                column: name,
                found: column.data_type().to_string(),
                expected: "an integer or float type".to_string(),
            });
        };
        let values = accumulator_column(args.op, "x", &name, column, accumulator)?;
        let state =
            Moments::of_column(&values, accumulator).map_err(arrow_error(args.op, format!("column {name:?} of x")))?;
        states.push((name, accumulator, state));
    }
    state_batch(args.op, &states)
}

/// `agg_combine(parts…)`: the partial states combined into one.
fn agg_combine(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let parts = args.data_from(0, "parts")?;
    let combined = combine_states(args, &parts)?;
    let states: Vec<(String, Accumulator, Moments)> = combined
        .into_iter()
        .map(|(column, state)| (column.name, column.accumulator, state))
        .collect();
    state_batch(args.op, &states)
}

/// A statistic `agg_finalize` computes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Statistic {
    Sum,
    Count,
    Mean,
    /// The variance with this many degrees of freedom subtracted from the count.
    Var(u32),
    /// The standard deviation, likewise.
    Std(u32),
    Min,
    Max,
}

/// `agg_finalize(part, stat, ddof?)`: one row, one column per original column,
/// holding `stat`.
fn agg_finalize(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let part = args.data(0, "part")?;
    let stat_name = args.str(1, "stat")?;
    let ddof = args.opt_count(2, "ddof")?;
    let ddof_u32 = |value: usize| {
        u32::try_from(value)
            .map_err(|_| args.invalid("ddof", format!("{value} is more degrees of freedom than any count")))
    };
    let statistic = match (stat_name, ddof) {
        ("var", ddof) => Statistic::Var(ddof_u32(ddof.unwrap_or(0))?),
        ("std", ddof) => Statistic::Std(ddof_u32(ddof.unwrap_or(0))?),
        ("var1", None | Some(1)) => Statistic::Var(1),
        ("std1", None | Some(1)) => Statistic::Std(1),
        ("var1" | "std1", Some(other)) => {
            return Err(args.invalid("ddof", format!("stat {stat_name} means ddof 1, given {other}")));
        }
        ("sum" | "count" | "mean" | "min" | "max", Some(_)) => {
            return Err(args.invalid("ddof", format!("only var and std take ddof, not {stat_name}")));
        }
        ("sum", None) => Statistic::Sum,
        ("count", None) => Statistic::Count,
        ("mean", None) => Statistic::Mean,
        ("min", None) => Statistic::Min,
        ("max", None) => Statistic::Max,
        (other, _) => {
            return Err(args.invalid(
                "stat",
                format!(
                    "unknown statistic {other:?} (expected one of sum, count, mean, var, std, var1, std1, min, max)"
                ),
            ));
        }
    };
    let combined = combine_states(args, &[part])?;
    let mut fields = Vec::with_capacity(combined.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(combined.len());
    for (column, state) in combined {
        let variance = |ddof: u32| {
            let freedom = state.count - i64::from(ddof);
            (freedom > 0).then(|| state.m2 / freedom as f64)
        };
        let (data_type, array): (DataType, ArrayRef) = match statistic {
            Statistic::Sum => (
                column.accumulator.data_type(),
                number_array(column.accumulator, Some(state.sum)),
            ),
            Statistic::Count => (DataType::Int64, Arc::new(Int64Array::from(vec![state.count]))),
            Statistic::Mean => {
                let mean = (state.count > 0).then_some(state.mean);
                (DataType::Float64, Arc::new(Float64Array::from(vec![mean])))
            }
            Statistic::Var(ddof) => (DataType::Float64, Arc::new(Float64Array::from(vec![variance(ddof)]))),
            Statistic::Std(ddof) => {
                let deviation = variance(ddof).map(f64::sqrt);
                (DataType::Float64, Arc::new(Float64Array::from(vec![deviation])))
            }
            Statistic::Min => (
                column.accumulator.data_type(),
                number_array(column.accumulator, state.min),
            ),
            Statistic::Max => (
                column.accumulator.data_type(),
                number_array(column.accumulator, state.max),
            ),
        };
        fields.push(Field::new(&column.name, data_type, array.null_count() > 0));
        arrays.push(array);
    }
    one_row(args.op, fields, arrays, HashMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{OpRegistry, OpValue, VALUE_COLUMN};
    use arrow::array::{Float32Array, Int32Array, StringArray};

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    fn data(batches: &[RecordBatch]) -> Vec<OpValue> {
        batches.iter().cloned().map(OpValue::Data).collect()
    }

    fn floats_batch(name: &str, values: Vec<f64>) -> RecordBatch {
        RecordBatch::try_from_iter(vec![(name, Arc::new(Float64Array::from(values)) as ArrayRef)]).expect("batch")
    }

    fn float_at(batch: &RecordBatch, name: &str) -> Option<f64> {
        let column = batch.column_by_name(name).expect("column");
        let values = column.as_primitive::<Float64Type>();
        values.is_valid(0).then(|| values.value(0))
    }

    fn int_at(batch: &RecordBatch, name: &str) -> Option<i64> {
        let column = batch.column_by_name(name).expect("column");
        let values = column.as_primitive::<Int64Type>();
        values.is_valid(0).then(|| values.value(0))
    }

    /// The tree sum of 100,000 `inc` results: sums of sums of `value` batches.
    #[test]
    fn tree_sum_of_a_hundred_thousand_incs() {
        let registry = OpRegistry::builtins();
        let context = OpContext::new("t");
        let mut level: Vec<RecordBatch> = (0..100_000_i64)
            .map(|index| registry.run("inc", vec![OpValue::from(index)], &context).expect("inc"))
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(100)
                .map(|group| registry.run("sum", data(group), &context).expect("sum"))
                .collect();
        }
        let total = &level[0];
        assert_eq!(total.schema().field(0).name(), VALUE_COLUMN);
        assert_eq!(int_at(total, VALUE_COLUMN), Some((1..=100_000_i64).sum()));
    }

    /// The mean and variance of a million values around 1e9, combined from 100
    /// partials in a tree, match a two-pass computation over all of them to 1e-9
    /// relative (a naive sum of squares would be off by orders of magnitude).
    #[test]
    fn combined_variance_matches_two_pass_to_1e_9() {
        // A deterministic spread of ±50 around 1e9 (a linear congruential generator).
        let mut state = 42_u64;
        let values: Vec<f64> = (0..1_000_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1e9 + (state >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 50.0
            })
            .collect();
        let n = values.len() as f64;
        let mean: f64 = values.iter().sum::<f64>() / n;
        let variance: f64 = values.iter().map(|value| (value - mean) * (value - mean)).sum::<f64>() / n;

        let partials: Vec<RecordBatch> = values
            .chunks(10_000)
            .map(|chunk| run("agg_partial", vec![OpValue::Data(floats_batch("v", chunk.to_vec()))]).expect("partial"))
            .collect();
        assert_eq!(partials.len(), 100);
        // A tree: groups of 7, then everything.
        let level: Vec<RecordBatch> = partials
            .chunks(7)
            .map(|group| run("agg_combine", data(group)).expect("combine"))
            .collect();
        let combined = run("agg_combine", data(&level)).expect("combine");
        let finalize = |stat: &str| {
            let batch = run(
                "agg_finalize",
                vec![OpValue::Data(combined.clone()), OpValue::from(stat)],
            )
            .expect("finalize");
            float_at(&batch, "v").expect("a value")
        };
        let relative = |got: f64, want: f64| ((got - want) / want).abs();
        assert!(
            relative(finalize("mean"), mean) < 1e-9,
            "mean {} vs {mean}",
            finalize("mean")
        );
        assert!(
            relative(finalize("var"), variance) < 1e-9,
            "var {} vs {variance}",
            finalize("var")
        );
        assert!(relative(finalize("std"), variance.sqrt()) < 1e-9);
        let var1 = finalize("var1");
        assert!(relative(var1, variance * n / (n - 1.0)) < 1e-9);
        // The naive formula E[x²] − E[x]² loses every digit here: the reason for Chan.
        let naive = values.iter().map(|value| value * value).sum::<f64>() / n - mean * mean;
        assert!(relative(naive, variance) > 1e-3, "naive {naive} vs {variance}");
    }

    /// Partial states hold count, sum (exact for integers), mean, m2, min, max per
    /// column; finalize gives every statistic; nulls are not values.
    #[test]
    fn partial_combine_finalize_statistics() {
        let first = RecordBatch::try_from_iter(vec![
            (
                "i",
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
            ),
            ("f", Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
        ])
        .expect("batch");
        let second = RecordBatch::try_from_iter(vec![
            ("i", Arc::new(Int32Array::from(vec![Some(8)])) as ArrayRef),
            ("f", Arc::new(Float32Array::from(vec![-1.0])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec!["d"])) as ArrayRef),
        ])
        .expect("batch");
        let partial = |batch: &RecordBatch| run("agg_partial", vec![OpValue::Data(batch.clone())]).expect("partial");
        let state = partial(&first);
        let names: Vec<&str> = state
            .schema_ref()
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "i.count", "i.sum", "i.mean", "i.m2", "i.min", "i.max", "f.count", "f.sum", "f.mean", "f.m2", "f.min",
                "f.max"
            ]
        );
        assert_eq!(int_at(&state, "i.count"), Some(2));
        assert_eq!(int_at(&state, "i.sum"), Some(4));
        assert_eq!(float_at(&state, "i.m2"), Some(2.0));

        let combined = run(
            "agg_combine",
            vec![OpValue::Data(state), OpValue::Data(partial(&second))],
        )
        .expect("combine");
        let finalize = |stat: &str| {
            run(
                "agg_finalize",
                vec![OpValue::Data(combined.clone()), OpValue::from(stat)],
            )
            .expect(stat)
        };
        assert_eq!(int_at(&finalize("sum"), "i"), Some(12));
        assert_eq!(int_at(&finalize("count"), "i"), Some(3));
        assert_eq!(float_at(&finalize("mean"), "i"), Some(4.0));
        let close = |got: Option<f64>, want: f64| got.is_some_and(|got| (got - want).abs() < 1e-12 * want.abs());
        assert!(close(float_at(&finalize("var"), "i"), 26.0 / 3.0));
        assert!(close(float_at(&finalize("var1"), "i"), 13.0));
        assert_eq!(int_at(&finalize("min"), "i"), Some(1));
        assert_eq!(int_at(&finalize("max"), "i"), Some(8));
        assert_eq!(float_at(&finalize("max"), "f"), Some(2.5));
        assert_eq!(float_at(&finalize("sum"), "f"), Some(3.5));
        let with_ddof = run(
            "agg_finalize",
            vec![
                OpValue::Data(combined.clone()),
                OpValue::from("std"),
                OpValue::from(1_i64),
            ],
        )
        .expect("ddof");
        assert!(close(float_at(&with_ddof, "i"), 13.0_f64.sqrt()));
        let too_few = run(
            "agg_finalize",
            vec![
                OpValue::Data(combined.clone()),
                OpValue::from("var"),
                OpValue::from(3_i64),
            ],
        )
        .expect("ddof 3");
        assert_eq!(float_at(&too_few, "i"), None, "count − ddof ≤ 0 gives null");

        let only = run("agg_partial", vec![OpValue::Data(first.clone()), OpValue::from("f")]).expect("named columns");
        assert_eq!(only.num_columns(), 6);
        // An empty batch: count 0, mean null, min null.
        let empty = partial(&first.slice(0, 0));
        let mean = run(
            "agg_finalize",
            vec![OpValue::Data(empty.clone()), OpValue::from("mean")],
        )
        .expect("mean");
        assert_eq!(float_at(&mean, "i"), None);
        let sum = run("agg_finalize", vec![OpValue::Data(empty), OpValue::from("sum")]).expect("sum");
        assert_eq!(int_at(&sum, "i"), Some(0));
    }

    #[test]
    fn reduction_bad_inputs_are_errors() {
        let batch = floats_batch("v", vec![1.0, 2.0]);
        let message = |name: &str, args: Vec<OpValue>| run(name, args).expect_err(name).to_string();
        assert_eq!(
            message("agg_partial", vec![OpValue::Data(batch.clone()), OpValue::from("w")]),
            "agg_partial: argument x has no column \"w\" (its columns: v)"
        );
        let strings =
            RecordBatch::try_from_iter(vec![("s", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)]).expect("batch");
        assert_eq!(
            message("agg_partial", vec![OpValue::Data(strings.clone()), OpValue::from("s")]),
            "agg_partial: argument x: column \"s\" is Utf8, expected an integer or float type"
        );
        assert_eq!(
            message("agg_combine", vec![OpValue::Data(batch.clone())]),
            "agg_combine: argument parts[0]: column \"v\" is not part of an agg_partial state (<column>.count, .sum, .mean, .m2, .min, .max)"
        );
        let state = run("agg_partial", vec![OpValue::Data(batch.clone())]).expect("partial");
        let other = run("agg_partial", vec![OpValue::Data(floats_batch("w", vec![1.0]))]).expect("partial");
        assert_eq!(
            message("agg_combine", vec![OpValue::Data(state.clone()), OpValue::Data(other)]),
            "agg_combine: parts[0] and parts[1] do not match: they are not partial states of the same columns"
        );
        let broken = state.project(&[0, 1, 2, 3, 4]).expect("no max");
        assert_eq!(
            message("agg_finalize", vec![OpValue::Data(broken), OpValue::from("mean")]),
            "agg_finalize: argument part: column \"v\" has no v.max"
        );
        assert!(message(
            "agg_finalize",
            vec![OpValue::Data(state.clone()), OpValue::from("median")]
        )
        .contains("unknown statistic \"median\""));
        assert_eq!(
            message(
                "agg_finalize",
                vec![
                    OpValue::Data(state.clone()),
                    OpValue::from("var1"),
                    OpValue::from(0_i64)
                ]
            ),
            "agg_finalize: argument ddof: stat var1 means ddof 1, given 0"
        );
        assert_eq!(
            message("sum", vec![OpValue::Data(batch.clone()), OpValue::Data(strings)]),
            "sum: parts[0] and parts[1] do not match: numeric column \"v\" is not in parts[1]"
        );
        let big = RecordBatch::try_from_iter(vec![("value", Arc::new(Int64Array::from(vec![i64::MAX])) as ArrayRef)])
            .expect("batch");
        let error = message("sum", vec![OpValue::Data(big.clone()), OpValue::Data(big)]);
        assert!(
            error.starts_with("sum: sum of column \"value\" over parts[0..=1]: "),
            "{error}"
        );
    }

    /// sum, min, max and count work as trees: reducing results equals reducing all.
    #[test]
    fn direct_reductions_combine_in_a_tree() {
        let parts: Vec<RecordBatch> = (0..6)
            .map(|index| {
                RecordBatch::try_from_iter(vec![
                    (
                        "n",
                        Arc::new(Int32Array::from(vec![Some(index), None, Some(10 * index)])) as ArrayRef,
                    ),
                    (
                        "x",
                        Arc::new(Float64Array::from(vec![index as f64 / 4.0, -1.0, 2.0])) as ArrayRef,
                    ),
                    (
                        "s",
                        Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
                    ),
                ])
                .expect("batch")
            })
            .collect();
        for op in ["sum", "min", "max", "count"] {
            let flat = run(op, data(&parts)).expect(op);
            let halves: Vec<RecordBatch> = parts.chunks(3).map(|half| run(op, data(half)).expect(op)).collect();
            let tree = run(op, data(&halves)).expect(op);
            assert_eq!(tree, flat, "{op}");
            // A list argument counts as its items.
            let listed = run(op, vec![OpValue::List(data(&parts))]).expect(op);
            assert_eq!(listed, flat, "{op} over a list");
        }
        let total = run("sum", data(&parts)).expect("sum");
        assert_eq!(int_at(&total, "n"), Some(11 * 15));
        assert_eq!(float_at(&total, "x"), Some(15.0 / 4.0 - 6.0 + 12.0));
        assert!(total.column_by_name("s").is_none(), "only numeric columns are summed");
        let counted = run("count", data(&parts)).expect("count");
        assert_eq!(int_at(&counted, "n"), Some(12));
        assert_eq!(int_at(&counted, "x"), Some(18));
        assert_eq!(int_at(&counted, "s"), Some(12));
        assert_eq!(float_at(&run("min", data(&parts)).expect("min"), "x"), Some(-1.0));
        assert_eq!(int_at(&run("max", data(&parts)).expect("max"), "n"), Some(50));
    }
}
