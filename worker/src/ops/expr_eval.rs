//! Evaluates a [`cairn_client::Expr`] on a batch, element-wise, with Arrow's compute
//! kernels: `numeric` for arithmetic, `cmp` for comparisons, `boolean` for logic,
//! `arity::{unary, binary}` for the float math, `cast`, `zip`/`nullif` for `abs` and
//! element-wise min/max.
//!
//! Types: operands of one numeric type keep it; mixed integers widen to `Int64`,
//! anything with a float to `Float64`; strings of different encodings compare as
//! `Utf8`; a null literal takes the other operand's type. Literals stay one-element
//! "scalar" operands until the end (Arrow's `Datum`), so `x + 1` never materialises a
//! column of ones.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, Datum, Int64Array, Scalar, UInt64Array};
use arrow::compute::kernels::arity::{binary, unary};
use arrow::compute::kernels::{boolean, cmp, nullif::nullif, numeric, take::take, zip::zip};
use arrow::datatypes::{DataType, Float64Type};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use cairn_client::{BinaryOp, CastType, Expr, UnaryOp};

use super::batch::{column_names, is_float, is_numeric, literal_array, strict_cast};

/// Why an expression could not be evaluated: the sub-expression that failed and the
/// reason, for [`super::OpError::Evaluation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError {
    /// The failing sub-expression as text (cut to 200 characters).
    pub expr: String,
    /// Why it failed.
    pub reason: String,
}

impl EvalError {
    fn new(expr: &Expr, reason: impl Into<String>) -> EvalError {
        let text = expr.to_string();
        let expr = if text.chars().count() > 200 {
            format!("{}…", text.chars().take(200).collect::<String>())
        } else {
            text
        };
        EvalError {
            expr,
            reason: reason.into(),
        }
    }
}

/// A value during evaluation: a column, or one value standing for every row.
#[derive(Debug, Clone)]
pub(crate) struct Operand {
    /// The values; exactly one when `scalar`.
    array: ArrayRef,
    /// Whether this is one value for every row (a literal, or computed from literals
    /// only).
    scalar: bool,
}

impl Operand {
    /// A column.
    pub fn column(array: ArrayRef) -> Operand {
        Operand { array, scalar: false }
    }

    /// One value for every row; `array` must hold exactly one element (`None`
    /// otherwise).
    pub fn scalar(array: ArrayRef) -> Option<Operand> {
        (array.len() == 1).then_some(Operand { array, scalar: true })
    }

    fn data_type(&self) -> &DataType {
        self.array.data_type()
    }

    fn is_null_type(&self) -> bool {
        self.data_type() == &DataType::Null
    }

    /// Same scalar-ness as `self`, other values.
    fn with_array(&self, array: ArrayRef) -> Operand {
        Operand {
            array,
            scalar: self.scalar,
        }
    }

    /// The operand as a column of `rows` values (a scalar repeated).
    pub fn into_column(self, rows: usize) -> Result<ArrayRef, ArrowError> {
        if !self.scalar {
            return Ok(self.array);
        }
        let zeros = UInt64Array::from(vec![0_u64; rows]);
        take(&self.array, &zeros, None)
    }

    /// The operand cast to `to` (a value that does not fit is an error).
    fn cast(&self, to: &DataType) -> Result<Operand, String> {
        if self.data_type() == to {
            return Ok(self.clone());
        }
        strict_cast(&self.array, to)
            .map(|array| self.with_array(array))
            .map_err(|error| format!("cannot convert {} to {to}: {error}", self.data_type()))
    }
}

/// Calls `kernel` with both operands as Arrow `Datum`s (scalars as `Scalar`).
fn with_datums<R>(left: &Operand, right: &Operand, kernel: impl FnOnce(&dyn Datum, &dyn Datum) -> R) -> R {
    let left_scalar = left.scalar.then(|| Scalar::new(left.array.clone()));
    let right_scalar = right.scalar.then(|| Scalar::new(right.array.clone()));
    let left_datum: &dyn Datum = match &left_scalar {
        Some(scalar) => scalar,
        None => &left.array,
    };
    let right_datum: &dyn Datum = match &right_scalar {
        Some(scalar) => scalar,
        None => &right.array,
    };
    kernel(left_datum, right_datum)
}

/// Evaluates `expr` on `batch`: a column of `batch.num_rows()` values.
pub(crate) fn evaluate(expr: &Expr, batch: &RecordBatch) -> Result<ArrayRef, EvalError> {
    let operand = evaluate_operand(expr, batch)?;
    operand
        .into_column(batch.num_rows())
        .map_err(|error| EvalError::new(expr, error.to_string()))
}

fn evaluate_operand(expr: &Expr, batch: &RecordBatch) -> Result<Operand, EvalError> {
    match expr {
        Expr::Column(name) => match batch.column_by_name(name) {
            Some(column) => Ok(Operand::column(column.clone())),
            None => Err(EvalError::new(
                expr,
                format!("no such column (columns: {})", column_names(batch.schema_ref())),
            )),
        },
        Expr::Literal(literal) => Ok(Operand {
            array: literal_array(literal),
            scalar: true,
        }),
        Expr::Binary { op, left, right } => {
            let left = evaluate_operand(left, batch)?;
            let right = evaluate_operand(right, batch)?;
            apply_binary(*op, &left, &right).map_err(|reason| EvalError::new(expr, reason))
        }
        Expr::Unary { op, input } => {
            let input = evaluate_operand(input, batch)?;
            apply_unary(*op, &input).map_err(|reason| EvalError::new(expr, reason))
        }
        Expr::Cast { input, to } => {
            let input = evaluate_operand(input, batch)?;
            input
                .cast(&cast_target(*to))
                .map_err(|reason| EvalError::new(expr, reason))
        }
    }
}

fn cast_target(to: CastType) -> DataType {
    match to {
        CastType::Int64 => DataType::Int64,
        CastType::Float64 => DataType::Float64,
        CastType::Bool => DataType::Boolean,
        CastType::Utf8 => DataType::Utf8,
    }
}

/// `left op right`, element-wise.
pub(crate) fn apply_binary(op: BinaryOp, left: &Operand, right: &Operand) -> Result<Operand, String> {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => arithmetic(op, left, right),
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            comparison(op, left, right)
        }
        BinaryOp::And | BinaryOp::Or => logical(op, left, right),
        BinaryOp::Pow | BinaryOp::Hypot | BinaryOp::Atan2 => float_binary(op, left, right),
    }
}

/// A null literal takes the other side's type; `None` when both are untyped nulls.
fn coerce_nulls(left: &Operand, right: &Operand) -> Result<Option<(Operand, Operand)>, String> {
    match (left.is_null_type(), right.is_null_type()) {
        (true, true) => Ok(None),
        (true, false) => Ok(Some((left.cast(right.data_type())?, right.clone()))),
        (false, true) => Ok(Some((left.clone(), right.cast(left.data_type())?))),
        (false, false) => Ok(Some((left.clone(), right.clone()))),
    }
}

/// The all-null result of an operation on two untyped nulls.
fn null_result(left: &Operand, right: &Operand, data_type: &DataType) -> Operand {
    let scalar = left.scalar && right.scalar;
    let length = if left.scalar {
        right.array.len()
    } else {
        left.array.len()
    };
    Operand {
        array: new_null_array(data_type, length),
        scalar,
    }
}

/// Both operands in one numeric type: unchanged if they agree, else `Float64` if
/// either is a float, else `Int64`.
fn common_numeric(op: &str, left: &Operand, right: &Operand) -> Result<(Operand, Operand), String> {
    if !is_numeric(left.data_type()) || !is_numeric(right.data_type()) {
        return Err(format!(
            "{op} needs numbers, found {} and {}",
            left.data_type(),
            right.data_type()
        ));
    }
    if left.data_type() == right.data_type() {
        return Ok((left.clone(), right.clone()));
    }
    let common = if is_float(left.data_type()) || is_float(right.data_type()) {
        DataType::Float64
    } else {
        DataType::Int64
    };
    Ok((left.cast(&common)?, right.cast(&common)?))
}

fn arithmetic(op: BinaryOp, left: &Operand, right: &Operand) -> Result<Operand, String> {
    let Some((left, right)) = coerce_nulls(left, right)? else {
        return Ok(null_result(left, right, &DataType::Null));
    };
    let (left, right) = common_numeric(op.name(), &left, &right)?;
    let kernel = match op {
        BinaryOp::Add => numeric::add,
        BinaryOp::Sub => numeric::sub,
        BinaryOp::Mul => numeric::mul,
        BinaryOp::Div => numeric::div,
        _ => numeric::rem,
    };
    let array = with_datums(&left, &right, kernel).map_err(|error| error.to_string())?;
    Ok(Operand {
        array,
        scalar: left.scalar && right.scalar,
    })
}

fn is_string(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn comparison(op: BinaryOp, left: &Operand, right: &Operand) -> Result<Operand, String> {
    let Some((left, right)) = coerce_nulls(left, right)? else {
        return Ok(null_result(left, right, &DataType::Boolean));
    };
    let (left, right) = if is_numeric(left.data_type()) && is_numeric(right.data_type()) {
        common_numeric(op.name(), &left, &right)?
    } else if is_string(left.data_type()) && is_string(right.data_type()) && left.data_type() != right.data_type() {
        (left.cast(&DataType::Utf8)?, right.cast(&DataType::Utf8)?)
    } else if left.data_type() != right.data_type() {
        return Err(format!(
            "cannot compare {} with {}",
            left.data_type(),
            right.data_type()
        ));
    } else {
        (left, right)
    };
    let kernel = match op {
        BinaryOp::Eq => cmp::eq,
        BinaryOp::Ne => cmp::neq,
        BinaryOp::Lt => cmp::lt,
        BinaryOp::Le => cmp::lt_eq,
        BinaryOp::Gt => cmp::gt,
        _ => cmp::gt_eq,
    };
    let array = with_datums(&left, &right, kernel).map_err(|error| error.to_string())?;
    Ok(Operand {
        array: Arc::new(array),
        scalar: left.scalar && right.scalar,
    })
}

/// Both operands as columns of the same length (scalars repeated to the other's
/// length; two scalars stay one element each).
fn aligned(left: &Operand, right: &Operand) -> Result<(ArrayRef, ArrayRef), String> {
    let length = match (left.scalar, right.scalar) {
        (true, false) => right.array.len(),
        _ => left.array.len(),
    };
    let left = left.clone().into_column(length).map_err(|error| error.to_string())?;
    let right = right.clone().into_column(length).map_err(|error| error.to_string())?;
    Ok((left, right))
}

/// An operand as booleans (booleans and untyped nulls only).
fn as_boolean(op: &str, operand: &Operand) -> Result<Operand, String> {
    if operand.is_null_type() {
        return operand.cast(&DataType::Boolean);
    }
    if operand.data_type() != &DataType::Boolean {
        return Err(format!("{op} needs booleans, found {}", operand.data_type()));
    }
    Ok(operand.clone())
}

fn logical(op: BinaryOp, left: &Operand, right: &Operand) -> Result<Operand, String> {
    let left = as_boolean(op.name(), left)?;
    let right = as_boolean(op.name(), right)?;
    let (left_array, right_array) = aligned(&left, &right)?;
    let (Some(left_bools), Some(right_bools)) = (left_array.as_boolean_opt(), right_array.as_boolean_opt()) else {
        return Err(format!("{} needs booleans", op.name()));
    };
    let result = match op {
        BinaryOp::And => boolean::and_kleene(left_bools, right_bools),
        _ => boolean::or_kleene(left_bools, right_bools),
    }
    .map_err(|error| error.to_string())?;
    Ok(Operand {
        array: Arc::new(result),
        scalar: left.scalar && right.scalar,
    })
}

/// An operand as `Float64` (numbers and untyped nulls only).
fn as_float(op: &str, operand: &Operand) -> Result<Operand, String> {
    if !is_numeric(operand.data_type()) && !operand.is_null_type() {
        return Err(format!("{op} needs numbers, found {}", operand.data_type()));
    }
    operand.cast(&DataType::Float64)
}

fn float_binary(op: BinaryOp, left: &Operand, right: &Operand) -> Result<Operand, String> {
    let left = as_float(op.name(), left)?;
    let right = as_float(op.name(), right)?;
    let (left_array, right_array) = aligned(&left, &right)?;
    let (Some(left_floats), Some(right_floats)) = (
        left_array.as_primitive_opt::<Float64Type>(),
        right_array.as_primitive_opt::<Float64Type>(),
    ) else {
        return Err(format!("{} needs numbers", op.name()));
    };
    let function: fn(f64, f64) -> f64 = match op {
        BinaryOp::Pow => f64::powf,
        BinaryOp::Hypot => f64::hypot,
        _ => f64::atan2,
    };
    let result = binary::<Float64Type, Float64Type, _, Float64Type>(left_floats, right_floats, function)
        .map_err(|error| error.to_string())?;
    Ok(Operand {
        array: Arc::new(result),
        scalar: left.scalar && right.scalar,
    })
}

/// The element-wise minimum (or maximum) of two numeric operands; null where either
/// is null.
pub(crate) fn min_max(minimum: bool, left: &Operand, right: &Operand) -> Result<Operand, String> {
    let name = if minimum { "min" } else { "max" };
    let Some((left, right)) = coerce_nulls(left, right)? else {
        return Ok(null_result(left, right, &DataType::Null));
    };
    let (left, right) = common_numeric(name, &left, &right)?;
    let (left_array, right_array) = aligned(&left, &right)?;
    let pick_left = if minimum {
        cmp::lt(&left_array, &right_array)
    } else {
        cmp::gt(&left_array, &right_array)
    }
    .map_err(|error| error.to_string())?;
    let picked = zip(&pick_left, &left_array, &right_array).map_err(|error| error.to_string())?;
    // `zip` reads a null mask as false and would pick `right`; the result is null there.
    let either_null = boolean::is_null(&pick_left).map_err(|error| error.to_string())?;
    let array = nullif(&picked, &either_null).map_err(|error| error.to_string())?;
    Ok(Operand {
        array,
        scalar: left.scalar && right.scalar,
    })
}

/// `op(input)`, element-wise.
pub(crate) fn apply_unary(op: UnaryOp, input: &Operand) -> Result<Operand, String> {
    let error_text = |error: ArrowError| error.to_string();
    match op {
        UnaryOp::IsNull => Ok(input.with_array(Arc::new(boolean::is_null(&input.array).map_err(error_text)?))),
        UnaryOp::IsNotNull => Ok(input.with_array(Arc::new(boolean::is_not_null(&input.array).map_err(error_text)?))),
        UnaryOp::Not => {
            let input = if input.is_null_type() {
                input.cast(&DataType::Boolean)?
            } else {
                input.clone()
            };
            let Some(bools) = input.array.as_boolean_opt() else {
                return Err(format!("not needs booleans, found {}", input.data_type()));
            };
            Ok(input.with_array(Arc::new(boolean::not(bools).map_err(error_text)?)))
        }
        _ if input.is_null_type() => Ok(input.clone()),
        _ if !is_numeric(input.data_type()) => Err(format!("{op} needs numbers, found {}", input.data_type())),
        UnaryOp::Neg => Ok(input.with_array(numeric::neg(&input.array).map_err(error_text)?)),
        UnaryOp::Abs => absolute(input),
        UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round if !is_float(input.data_type()) => Ok(input.clone()),
        UnaryOp::Sqrt
        | UnaryOp::Exp
        | UnaryOp::Ln
        | UnaryOp::Log10
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Tan
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round => {
            let function: fn(f64) -> f64 = match op {
                UnaryOp::Sqrt => f64::sqrt,
                UnaryOp::Exp => f64::exp,
                UnaryOp::Ln => f64::ln,
                UnaryOp::Log10 => f64::log10,
                UnaryOp::Sin => f64::sin,
                UnaryOp::Cos => f64::cos,
                UnaryOp::Tan => f64::tan,
                UnaryOp::Floor => f64::floor,
                UnaryOp::Ceil => f64::ceil,
                _ => f64::round,
            };
            let floats = input.cast(&DataType::Float64)?;
            let Some(values) = floats.array.as_primitive_opt::<Float64Type>() else {
                return Err(format!("{op} needs numbers, found {}", input.data_type()));
            };
            Ok(input.with_array(Arc::new(unary::<Float64Type, _, Float64Type>(values, function))))
        }
    }
}

/// `|x|` in `x`'s own type: `x < 0 ? -x : x` (`zip` over Arrow's `neg`, which
/// refuses to overflow the most negative integer); unsigned integers are unchanged.
fn absolute(input: &Operand) -> Result<Operand, String> {
    let data_type = input.data_type();
    if data_type.is_unsigned_integer() {
        return Ok(input.clone());
    }
    let zero_int: ArrayRef = Arc::new(Int64Array::from(vec![0_i64]));
    let zero = strict_cast(&zero_int, data_type).map_err(|error| error.to_string())?;
    let negative = cmp::lt(&input.array, &Scalar::new(zero)).map_err(|error| error.to_string())?;
    let negated = numeric::neg(&input.array).map_err(|error| error.to_string())?;
    let array = zip(&negative, &negated, &input.array).map_err(|error| error.to_string())?;
    Ok(input.with_array(array))
}

/// A boolean column from a predicate, or why it is not one.
pub(crate) fn as_predicate(array: &ArrayRef) -> Result<BooleanArray, String> {
    if array.data_type() == &DataType::Null {
        return Ok(BooleanArray::new_null(array.len()));
    }
    array
        .as_boolean_opt()
        .cloned()
        .ok_or_else(|| format!("gives {}, not booleans", array.data_type()))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float32Array, Float64Array, Int32Array, StringArray, UInt8Array};
    use arrow::datatypes::{Field, Schema};
    use cairn_client::{col, lit, Literal};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("u", DataType::UInt8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(-3), Some(0), None, Some(4)])),
                Arc::new(Float64Array::from(vec![Some(-1.5), Some(2.0), Some(3.0), None])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None, Some("d")])),
                Arc::new(UInt8Array::from(vec![1, 2, 3, 250])),
            ],
        )
        .expect("test batch")
    }

    fn floats(expr: Expr) -> Vec<Option<f64>> {
        let array = evaluate(&expr, &batch()).expect("evaluates");
        array.as_primitive::<Float64Type>().iter().collect()
    }

    fn bools(expr: Expr) -> Vec<Option<bool>> {
        let array = evaluate(&expr, &batch()).expect("evaluates");
        as_predicate(&array).expect("booleans").iter().collect()
    }

    /// Mixed int and float arithmetic widens to Float64; nulls propagate.
    #[test]
    fn arithmetic_widens_and_propagates_nulls() {
        assert_eq!(floats(col("i") + col("f")), [Some(-4.5), Some(2.0), None, None]);
        let doubled = evaluate(&(col("i") * 2), &batch()).expect("int * int");
        assert_eq!(
            doubled.data_type(),
            &DataType::Int64,
            "Int32 * Int64 literal widens to Int64"
        );
        let kept = evaluate(&(col("i") + col("i")), &batch()).expect("same type");
        assert_eq!(kept.data_type(), &DataType::Int32, "one type is kept");
        assert_eq!(
            floats(lit(1.0) + lit(2)),
            [Some(3.0); 4],
            "a scalar result fills every row"
        );
    }

    /// The float math goes through `arity::{unary, binary}`.
    #[test]
    fn math_functions() {
        assert_eq!(
            floats(col("i").hypot(4)),
            [Some(5.0), Some(4.0), None, Some(4.0 * 2.0_f64.sqrt())]
        );
        assert_eq!(floats(col("f").abs()), [Some(1.5), Some(2.0), Some(3.0), None]);
        assert_eq!(floats(lit(4).sqrt()), [Some(2.0); 4]);
        assert_eq!(floats(col("i").pow(2)), [Some(9.0), Some(0.0), None, Some(16.0)]);
        assert_eq!(floats(col("f").floor()), [Some(-2.0), Some(2.0), Some(3.0), None]);
        assert_eq!(floats(col("f").round()), [Some(-2.0), Some(2.0), Some(3.0), None]);
        let atan = floats(lit(1).atan2(1));
        assert!((atan[0].expect("value") - std::f64::consts::FRAC_PI_4).abs() < 1e-15);
        let abs = evaluate(&col("i").abs(), &batch()).expect("abs");
        assert_eq!(
            abs.as_primitive::<arrow::datatypes::Int32Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(3), Some(0), None, Some(4)]
        );
        let unsigned = evaluate(&col("u").abs(), &batch()).expect("unsigned abs");
        assert_eq!(unsigned.data_type(), &DataType::UInt8);
    }

    /// Comparisons and SQL logic: `false and null` is false, `true or null` is true.
    #[test]
    fn comparisons_and_logic() {
        assert_eq!(bools(col("i").lt(col("f"))), [Some(true), Some(true), None, None]);
        assert_eq!(
            bools(col("s").eq(lit("b"))),
            [Some(false), Some(true), None, Some(false)]
        );
        assert_eq!(
            bools(col("i").gt(0).and(col("f").gt(0))),
            [Some(false), Some(false), None, None]
        );
        assert_eq!(
            bools(col("i").is_null().or(col("f").is_null())),
            [Some(false), Some(false), Some(true), Some(true)]
        );
        assert_eq!(
            bools(col("i").lt(0).or(lit(Literal::Null))),
            [Some(true), None, None, None]
        );
        assert_eq!(bools(!col("i").lt(0)), [Some(false), Some(true), None, Some(true)]);
    }

    /// Element-wise min/max: null where either side is null.
    #[test]
    fn min_max_elementwise() {
        let left = Operand::column(Arc::new(Int32Array::from(vec![Some(1), Some(5), None])));
        let right = Operand::column(Arc::new(Float32Array::from(vec![Some(2.0), Some(3.0), Some(1.0)])));
        let minimum = min_max(true, &left, &right).expect("min");
        assert_eq!(
            minimum.array.as_primitive::<Float64Type>().iter().collect::<Vec<_>>(),
            [Some(1.0), Some(3.0), None]
        );
        let maximum = min_max(false, &left, &right).expect("max");
        assert_eq!(
            maximum.array.as_primitive::<Float64Type>().iter().collect::<Vec<_>>(),
            [Some(2.0), Some(5.0), None]
        );
    }

    /// Bad expressions are errors naming the sub-expression, never panics.
    #[test]
    fn bad_expressions_are_errors() {
        let cases = [
            (col("missing") + 1, "missing", "no such column (columns: i, f, s, u)"),
            (col("s") + 1, "(s + 1)", "add needs numbers, found Utf8 and Int64"),
            (col("s").lt(1), "(s < 1)", "cannot compare Utf8 with Int64"),
            (col("i").and(col("f")), "(i and f)", "and needs booleans"),
            (col("s").sqrt(), "sqrt(s)", "sqrt needs numbers"),
            (!col("i"), "not i", "not needs booleans"),
            (lit(i64::MAX) + 1, "(9223372036854775807 + 1)", "Overflow"),
            (col("i") / 0, "(i / 0)", "Divide by zero"),
            (
                col("s").cast(CastType::Int64),
                "cast(s as int64)",
                "cannot convert Utf8 to Int64",
            ),
        ];
        for (expr, failing, reason) in cases {
            let error = evaluate(&expr, &batch()).expect_err(&expr.to_string());
            assert_eq!(error.expr, failing);
            assert!(error.reason.contains(reason), "{expr}: {error:?}");
        }
        let predicate = evaluate(&(col("i") + 1), &batch()).expect("evaluates");
        assert!(as_predicate(&predicate).is_err());
    }
}
