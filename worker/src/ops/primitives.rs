//! `inc` and `sleep`: the smallest operations, for tests, benchmarks and examples.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, Scalar};
use arrow::compute::kernels::concat::concat_batches;
use arrow::compute::kernels::numeric;
use arrow::record_batch::RecordBatch;
use cairn_client::{Literal, ParamKind};

use super::args::{required, Args, Builtin};
use super::batch::{arrow_error, is_numeric, literal_batch, nullable_schema, strict_cast};
use super::{OpContext, OpError, OpValue};

/// How often `sleep` looks at the cancellation flag.
const SLEEP_CHECK_INTERVAL: Duration = Duration::from_millis(10);

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![
        Builtin::new("inc", vec![required("x", ParamKind::IntOrData)], inc).light(),
        Builtin::new(
            "sleep",
            vec![required("x", ParamKind::Any), required("ms", ParamKind::Int)],
            sleep,
        ),
    ]
}

/// `inc(x)`: an int gives a `value` batch holding `x + 1` (overflow is an error);
/// data gives the batch with 1 added to every numeric column.
fn inc(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    match args.value(0, "x")? {
        OpValue::Literal(Literal::Int(value)) => {
            let next = value
                .checked_add(1)
                .ok_or_else(|| args.invalid("x", format!("{value} + 1 overflows a 64-bit integer")))?;
            literal_batch(&Literal::Int(next)).map_err(arrow_error(args.op, "building the result"))
        }
        OpValue::Data(batch) => add_one_to_numeric_columns(args.op, batch),
        other => Err(OpError::WrongArgumentKind {
            op: args.op.to_string(),
            param: "x".to_string(),
            expected: ParamKind::IntOrData.name().to_string(),
            given: other.kind_name(),
        }),
    }
}

fn add_one_to_numeric_columns(op: &str, batch: &RecordBatch) -> Result<RecordBatch, OpError> {
    let one: ArrayRef = Arc::new(Int64Array::from(vec![1_i64]));
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        if !is_numeric(field.data_type()) {
            columns.push(column.clone());
            continue;
        }
        let context = || format!("adding 1 to column {:?} of x", field.name());
        let one_of_type = strict_cast(&one, field.data_type()).map_err(arrow_error(op, context()))?;
        let incremented = numeric::add(column, &Scalar::new(one_of_type)).map_err(arrow_error(op, context()))?;
        columns.push(incremented);
    }
    RecordBatch::try_new(nullable_schema(batch.schema_ref()), columns).map_err(arrow_error(op, "building the result"))
}

/// `sleep(x, ms)`: waits `ms` milliseconds, looking at the cancellation flag every
/// 10 ms, then returns `x` (a literal as a `value` batch; a list of data
/// concatenated).
fn sleep(args: &Args<'_>, context: &OpContext) -> Result<RecordBatch, OpError> {
    let value = args.value(0, "x")?;
    let milliseconds = args.count(1, "ms")?;
    let result = as_batch(args, value)?;
    let deadline = u64::try_from(milliseconds)
        .ok()
        .and_then(|milliseconds| Instant::now().checked_add(Duration::from_millis(milliseconds)))
        .ok_or_else(|| args.invalid("ms", format!("{milliseconds} ms is longer than this clock can count")))?;
    loop {
        context.check_cancelled(args.op)?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(result);
        }
        std::thread::sleep((deadline - now).min(SLEEP_CHECK_INTERVAL));
    }
}

/// Any argument as one batch: data as it is, a literal as a `value` batch, a list of
/// data (one schema) concatenated.
fn as_batch(args: &Args<'_>, value: &OpValue) -> Result<RecordBatch, OpError> {
    match value {
        OpValue::Data(batch) => Ok(batch.clone()),
        OpValue::Literal(literal) => literal_batch(literal).map_err(arrow_error(args.op, "building the result")),
        OpValue::List(items) => {
            let batches: Vec<&RecordBatch> = items
                .iter()
                .map(|item| match item {
                    OpValue::Data(batch) => Ok(batch),
                    other => Err(args.invalid("x", format!("a list must hold only data, found {}", other.kind_name()))),
                })
                .collect::<Result<_, _>>()?;
            let Some(first) = batches.first() else {
                return Err(args.invalid("x", "an empty list has no batch to return"));
            };
            concat_batches(first.schema_ref(), batches.iter().copied()).map_err(arrow_error(args.op, "concatenating x"))
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Float32Array, StringArray, UInt8Array};
    use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema, UInt8Type};

    use super::*;
    use crate::ops::OpRegistry;

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    #[test]
    fn inc_of_an_int_is_a_value_batch() {
        let batch = run("inc", vec![OpValue::from(41_i64)]).expect("inc");
        assert_eq!(batch.schema().field(0).name(), "value");
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().values(), &[42]);
        let error = run("inc", vec![OpValue::from(i64::MAX)]).expect_err("overflow");
        assert_eq!(
            error.to_string(),
            "inc: argument x: 9223372036854775807 + 1 overflows a 64-bit integer"
        );
    }

    /// Numeric columns keep their type; other columns pass through.
    #[test]
    fn inc_of_data_adds_one_to_numeric_columns() {
        let schema = Schema::new(vec![
            Field::new("small", DataType::UInt8, false),
            Field::new("f", DataType::Float32, true),
            Field::new("name", DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt8Array::from(vec![1, 2])),
                Arc::new(Float32Array::from(vec![Some(0.5), None])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .expect("batch");
        let result = run("inc", vec![OpValue::Data(batch.clone())]).expect("inc");
        assert_eq!(result.column(0).as_primitive::<UInt8Type>().values(), &[2, 3]);
        assert_eq!(
            result
                .column(1)
                .as_primitive::<Float32Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(1.5), None]
        );
        assert_eq!(result.column(2), batch.column(2));

        let full = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("small", DataType::UInt8, false)])),
            vec![Arc::new(UInt8Array::from(vec![255]))],
        )
        .expect("batch");
        let error = run("inc", vec![OpValue::Data(full)]).expect_err("overflow").to_string();
        assert!(error.starts_with("inc: adding 1 to column \"small\" of x: "), "{error}");
    }

    #[test]
    fn sleep_returns_its_argument_after_the_time() {
        let started = Instant::now();
        let batch = run("sleep", vec![OpValue::from(2.5), OpValue::from(30_i64)]).expect("sleep");
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(
            batch.column(0).as_primitive::<arrow::datatypes::Float64Type>().values(),
            &[2.5]
        );
        let error = run("sleep", vec![OpValue::from(1_i64), OpValue::from(-1_i64)]).expect_err("negative");
        assert_eq!(error.to_string(), "sleep: argument ms: must not be negative, given -1");
    }

    /// A cancelled sleep stops within about one check interval, not at its end.
    #[test]
    fn sleep_stops_when_cancelled() {
        let context = OpContext::new("sleepy");
        let canceller = context.clone();
        let started = Instant::now();
        let cancel = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            canceller.cancel();
        });
        let result =
            OpRegistry::builtins().run("sleep", vec![OpValue::from(1_i64), OpValue::from(60_000_i64)], &context);
        cancel.join().expect("canceller thread");
        assert!(matches!(result, Err(OpError::Cancelled { .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
