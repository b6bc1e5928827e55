//! Row-by-row operations: `filter` and `with_columns` (expressions), `binary` (two
//! aligned batches) and `binary_scalar` (a batch and a number).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::kernels::filter::filter_record_batch;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use cairn_client::{named_exprs_from_json, BinaryOp, Expr, ParamKind};

use super::args::{required, Args, Builtin};
use super::batch::{arrow_error, is_numeric, literal_array};
use super::expr_eval::{apply_binary, as_predicate, evaluate, min_max, EvalError, Operand};
use super::{OpContext, OpError};

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![
        Builtin::new(
            "filter",
            vec![required("x", ParamKind::Data), required("predicate", ParamKind::Str)],
            filter,
        )
        .light(),
        Builtin::new(
            "with_columns",
            vec![required("x", ParamKind::Data), required("exprs", ParamKind::Str)],
            with_columns,
        )
        .light(),
        Builtin::new(
            "binary",
            vec![
                required("a", ParamKind::Data),
                required("b", ParamKind::Data),
                required("op", ParamKind::Str),
            ],
            binary,
        )
        .light(),
        Builtin::new(
            "binary_scalar",
            vec![
                required("a", ParamKind::Data),
                required("value", ParamKind::Number),
                required("op", ParamKind::Str),
            ],
            binary_scalar,
        )
        .light(),
    ]
}

fn evaluation_error(op: &str, param: &str) -> impl FnOnce(EvalError) -> OpError {
    let op = op.to_string();
    let param = param.to_string();
    move |error| OpError::Evaluation {
        op,
        param,
        expr: error.expr,
        reason: error.reason,
    }
}

/// `filter(x, predicate)`: the rows of `x` where the predicate ([`Expr`] JSON) is
/// true; a null drops the row.
fn filter(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "x")?;
    let text = args.str(1, "predicate")?;
    let predicate = Expr::from_json(text).map_err(|source| OpError::InvalidExpression {
        op: args.op.to_string(),
        param: "predicate".to_string(),
        source,
    })?;
    let values = evaluate(&predicate, batch).map_err(evaluation_error(args.op, "predicate"))?;
    let mask = as_predicate(&values).map_err(|reason| OpError::Evaluation {
        op: args.op.to_string(),
        param: "predicate".to_string(),
        expr: predicate.to_string(),
        reason,
    })?;
    filter_record_batch(batch, &mask).map_err(arrow_error(args.op, "filtering x"))
}

/// `with_columns(x, exprs)`: `x` with the named expressions' columns, each evaluated
/// on `x` as given (not on each other's results, so their order does not matter). A
/// name already in `x` replaces that column in place; new names are appended in
/// order.
fn with_columns(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "x")?;
    let text = args.str(1, "exprs")?;
    let named = named_exprs_from_json(text).map_err(|source| OpError::InvalidExpression {
        op: args.op.to_string(),
        param: "exprs".to_string(),
        source,
    })?;
    let mut fields: Vec<Field> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|field| field.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, expr) in &named {
        let values = evaluate(expr, batch).map_err(evaluation_error(args.op, &format!("exprs.{name}")))?;
        let field = Field::new(name, values.data_type().clone(), true);
        match fields.iter().position(|existing| existing.name() == name) {
            Some(index) => {
                fields[index] = field;
                columns[index] = values;
            }
            None => {
                fields.push(field);
                columns.push(values);
            }
        }
    }
    let schema = Schema::new_with_metadata(fields, batch.schema_ref().metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(arrow_error(args.op, "building the result"))
}

/// An operator of `binary` and `binary_scalar`.
#[derive(Debug, Clone, Copy)]
enum ElementOp {
    /// One of the expression operators.
    Expr(BinaryOp),
    /// Element-wise minimum.
    Min,
    /// Element-wise maximum.
    Max,
}

/// The `op` names `binary` and `binary_scalar` take.
const ELEMENT_OPS: &str = "add, sub, mul, div, rem, pow, hypot, atan2, min, max";

impl ElementOp {
    fn parse(args: &Args<'_>, param: &str, name: &str) -> Result<ElementOp, OpError> {
        match name {
            "min" => Ok(ElementOp::Min),
            "max" => Ok(ElementOp::Max),
            _ => match BinaryOp::parse(name) {
                Some(
                    op @ (BinaryOp::Add
                    | BinaryOp::Sub
                    | BinaryOp::Mul
                    | BinaryOp::Div
                    | BinaryOp::Rem
                    | BinaryOp::Pow
                    | BinaryOp::Hypot
                    | BinaryOp::Atan2),
                ) => Ok(ElementOp::Expr(op)),
                _ => Err(args.invalid(
                    param,
                    format!("unknown operator {name:?} (expected one of {ELEMENT_OPS})"),
                )),
            },
        }
    }

    fn apply(self, left: &Operand, right: &Operand) -> Result<Operand, String> {
        match self {
            ElementOp::Expr(op) => apply_binary(op, left, right),
            ElementOp::Min => min_max(true, left, right),
            ElementOp::Max => min_max(false, left, right),
        }
    }
}

/// Replaces each numeric column `name` of `batch` for which `other(name)` gives a
/// right operand (and its text for errors) by `column op right`; other columns are
/// kept.
fn map_numeric_columns(
    args: &Args<'_>,
    batch: &RecordBatch,
    op: ElementOp,
    op_name: &str,
    mut other: impl FnMut(&str) -> Option<(Operand, String)>,
) -> Result<RecordBatch, OpError> {
    let rows = batch.num_rows();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        let right = if is_numeric(field.data_type()) {
            other(field.name())
        } else {
            None
        };
        let Some((right, right_text)) = right else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        };
        let expr = format!("a.{} {op_name} {right_text}", field.name());
        let values = op
            .apply(&Operand::column(column.clone()), &right)
            .and_then(|result| result.into_column(rows).map_err(|error| error.to_string()))
            .map_err(|reason| OpError::Evaluation {
                op: args.op.to_string(),
                param: "a".to_string(),
                expr,
                reason,
            })?;
        fields.push(Field::new(field.name(), values.data_type().clone(), true));
        columns.push(values);
    }
    let schema = Schema::new_with_metadata(fields, batch.schema_ref().metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(arrow_error(args.op, "building the result"))
}

/// `binary(a, b, op)`: `a.col op b.col` for every column numeric in both; `a` and
/// `b` must be aligned (same row count, same column names), other columns come from
/// `a`.
fn binary(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let left = args.data(0, "a")?;
    let right = args.data(1, "b")?;
    let op_name = args.str(2, "op")?;
    let op = ElementOp::parse(args, "op", op_name)?;
    let mismatch = |reason: String| OpError::Mismatch {
        op: args.op.to_string(),
        params: "a and b".to_string(),
        reason,
    };
    if left.num_rows() != right.num_rows() {
        return Err(mismatch(format!(
            "a has {} rows, b has {}",
            left.num_rows(),
            right.num_rows()
        )));
    }
    let left_schema = left.schema();
    let right_schema = right.schema();
    if let Some(field) = left_schema
        .fields()
        .iter()
        .find(|field| right_schema.index_of(field.name()).is_err())
    {
        return Err(mismatch(format!("column {:?} is in a but not in b", field.name())));
    }
    if let Some(field) = right_schema
        .fields()
        .iter()
        .find(|field| left_schema.index_of(field.name()).is_err())
    {
        return Err(mismatch(format!("column {:?} is in b but not in a", field.name())));
    }
    map_numeric_columns(args, left, op, op_name, |name| {
        right
            .column_by_name(name)
            .filter(|column| is_numeric(column.data_type()))
            .map(|column| (Operand::column(column.clone()), format!("b.{name}")))
    })
}

/// `binary_scalar(a, value, op)`: `a.col op value` for every numeric column of `a`.
fn binary_scalar(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "a")?;
    let value = args.number(1, "value")?;
    let op_name = args.str(2, "op")?;
    let op = ElementOp::parse(args, "op", op_name)?;
    let scalar = Operand::scalar(literal_array(value)).ok_or_else(|| args.invalid("value", "not a single value"))?;
    let value_text = cairn_client::lit(value.clone()).to_string();
    map_numeric_columns(args, batch, op, op_name, |_| Some((scalar.clone(), value_text.clone())))
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Float64Type, Int64Type};
    use cairn_client::{col, lit, named_exprs_to_json};

    use super::*;
    use crate::ops::{OpRegistry, OpValue};

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    fn points() -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(3.0), Some(1.0), None, Some(-6.0)])) as ArrayRef,
            ),
            ("y", Arc::new(Int64Array::from(vec![4, 1, 2, 8])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])) as ArrayRef,
            ),
        ])
        .expect("batch")
    }

    fn names(batch: &RecordBatch) -> Vec<String> {
        batch
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect()
    }

    /// Rows where the predicate is null are dropped, like false.
    #[test]
    fn filter_keeps_rows_where_the_predicate_is_true() {
        let predicate = col("x").hypot(col("y")).lt(6).or(col("name").eq(lit("d")));
        let result = run(
            "filter",
            vec![OpValue::Data(points()), OpValue::from(predicate.to_json().as_str())],
        )
        .expect("filter");
        let kept: Vec<&str> = result.column(2).as_string::<i32>().iter().flatten().collect();
        assert_eq!(kept, ["a", "b", "d"], "row c has a null x: hypot is null, dropped");
    }

    #[test]
    fn filter_errors_name_the_argument() {
        let message = |predicate: &str| {
            run("filter", vec![OpValue::Data(points()), OpValue::from(predicate)])
                .expect_err(predicate)
                .to_string()
        };
        assert!(message("{").starts_with("filter: argument predicate: expression is not valid JSON"));
        assert_eq!(
            message(&col("z").gt(1).to_json()),
            "filter: argument predicate: cannot evaluate z: no such column (columns: x, y, name)"
        );
        assert_eq!(
            message(&(col("x") + 1).to_json()),
            "filter: argument predicate: cannot evaluate (x + 1): gives Float64, not booleans"
        );
    }

    /// New columns are appended in order; a name that exists is replaced in place;
    /// every expression sees the input batch.
    #[test]
    fn with_columns_adds_and_replaces() {
        let exprs = named_exprs_to_json(&[
            ("r", col("x").hypot(col("y"))),
            ("y", col("y") * 10),
            ("twice_y", col("y") * 2),
        ]);
        let result = run(
            "with_columns",
            vec![OpValue::Data(points()), OpValue::from(exprs.as_str())],
        )
        .expect("with_columns");
        assert_eq!(names(&result), ["x", "y", "name", "r", "twice_y"]);
        assert_eq!(result.column(1).as_primitive::<Int64Type>().values(), &[40, 10, 20, 80]);
        assert_eq!(
            result.column(4).as_primitive::<Int64Type>().values(),
            &[8, 2, 4, 16],
            "sees the input y"
        );
        assert_eq!(result.column(3).as_primitive::<Float64Type>().value(0), 5.0);

        let error = run(
            "with_columns",
            vec![OpValue::Data(points()), OpValue::from(r#"{"bad": {"column": "name"}, "worse": {"binary": {"op": "add", "left": {"column": "name"}, "right": {"literal": 1}}}}"#)],
        )
        .expect_err("string + int")
        .to_string();
        assert_eq!(
            error,
            "with_columns: argument exprs.worse: cannot evaluate (name + 1): add needs numbers, found Utf8 and Int64"
        );
    }

    #[test]
    fn binary_between_aligned_batches() {
        let a = points();
        let b = RecordBatch::try_from_iter(vec![
            (
                "name",
                Arc::new(StringArray::from(vec!["w", "x", "y", "z"])) as ArrayRef,
            ),
            ("x", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])) as ArrayRef),
            ("y", Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef),
        ])
        .expect("batch");
        let run_op = |op: &str| {
            run(
                "binary",
                vec![OpValue::Data(a.clone()), OpValue::Data(b.clone()), OpValue::from(op)],
            )
        };

        let sum = run_op("add").expect("add");
        assert_eq!(names(&sum), ["x", "y", "name"], "a's column order");
        assert_eq!(
            sum.column(0).as_primitive::<Float64Type>().iter().collect::<Vec<_>>(),
            [Some(4.0), Some(3.0), None, Some(-2.0)]
        );
        assert_eq!(sum.column(1).as_primitive::<Int64Type>().values(), &[5, 3, 5, 12]);
        assert_eq!(sum.column(2), a.column(2), "non-numeric columns come from a");
        let minimum = run_op("min").expect("min");
        assert_eq!(minimum.column(1).as_primitive::<Int64Type>().values(), &[1, 1, 2, 4]);
        let angle = run_op("atan2").expect("atan2");
        assert_eq!(angle.column(1).data_type(), &DataType::Float64);
        assert!(run_op("div").is_ok());
        assert_eq!(
            run_op("concat").expect_err("unknown op").to_string(),
            "binary: argument op: unknown operator \"concat\" (expected one of add, sub, mul, div, rem, pow, hypot, atan2, min, max)"
        );

        let short = a.slice(0, 3);
        let error = run(
            "binary",
            vec![OpValue::Data(short), OpValue::Data(b.clone()), OpValue::from("add")],
        )
        .expect_err("rows");
        assert_eq!(error.to_string(), "binary: a and b do not match: a has 3 rows, b has 4");
        let fewer = b.project(&[0, 1]).expect("project");
        let error = run(
            "binary",
            vec![OpValue::Data(a.clone()), OpValue::Data(fewer), OpValue::from("add")],
        )
        .expect_err("columns");
        assert_eq!(
            error.to_string(),
            "binary: a and b do not match: column \"y\" is in a but not in b"
        );
    }

    #[test]
    fn binary_with_a_scalar() {
        let result = run(
            "binary_scalar",
            vec![OpValue::Data(points()), OpValue::from(2_i64), OpValue::from("pow")],
        )
        .expect("pow");
        assert_eq!(
            result.column(1).as_primitive::<Float64Type>().values(),
            &[16.0, 1.0, 4.0, 64.0]
        );
        let result = run(
            "binary_scalar",
            vec![OpValue::Data(points()), OpValue::from(0.5), OpValue::from("max")],
        )
        .expect("max");
        assert_eq!(
            result
                .column(0)
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(3.0), Some(1.0), None, Some(0.5)]
        );
        assert_eq!(
            result.column(1).as_primitive::<Float64Type>().values(),
            &[4.0, 1.0, 2.0, 8.0]
        );
        let error = run(
            "binary_scalar",
            vec![OpValue::Data(points()), OpValue::from(0_i64), OpValue::from("div")],
        )
        .expect_err("integer division by zero")
        .to_string();
        assert!(
            error.starts_with("binary_scalar: argument a: cannot evaluate a.y div 0: Divide by zero"),
            "{error}"
        );
        let error = run(
            "binary_scalar",
            vec![OpValue::Data(points()), OpValue::from("2"), OpValue::from("add")],
        )
        .expect_err("string");
        assert_eq!(
            error.to_string(),
            "binary_scalar: argument value must be number, given string"
        );
    }
}
