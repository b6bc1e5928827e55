//! Gridded operations (SPEC §5; the layout is [`cairn_client::grid`]'s): element-wise
//! arithmetic between two aligned gridded chunks (`grid_binary`), with a number or a
//! function (`grid_map`), and selection by coordinate range (`grid_sel`). The
//! reductions along the row dimension are in `grid_reduce.rs`, regridding is in
//! `regrid.rs`; the helpers they share are here.
//!
//! Values are computed in the chunks' own type: two `Float32` chunks give `Float32`
//! (as numpy does), anything with a `Float64` side gives `Float64`. A missing value
//! (a null) on either side gives a missing value; a NaN that is not null is a value
//! and follows IEEE rules (`min`/`max` propagate it, as numpy's `minimum`/`maximum`).
//! The loops run over the flat value slices of the chunks, one monomorphised closure
//! per operator, and the null buffers are combined word by word.

use std::ops::{Add, Div, Mul, Neg, Sub};

use arrow::array::{Array, AsArray, BooleanArray, BooleanBufferBuilder, Float32Array, Float64Array, PrimitiveArray};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{ArrowNativeType, ArrowPrimitiveType, DataType, Float32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use cairn_client::grid::{first_coordinate_difference, AttrValue, Attrs, GridBatch, GridMeta};
use cairn_client::{Literal, ParamKind};

use super::args::{optional, required, Args, Builtin};
use super::batch::arrow_error;
use super::grid_reduce::PARTIAL_MARKER;
use super::{OpContext, OpError};

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![
        Builtin::new(
            "grid_binary",
            vec![
                required("a", ParamKind::Data),
                required("b", ParamKind::Data),
                required("op", ParamKind::Str),
                optional("name", ParamKind::Str),
            ],
            grid_binary,
        )
        .light(),
        Builtin::new(
            "grid_map",
            vec![
                required("x", ParamKind::Data),
                required("op", ParamKind::Str),
                optional("value", ParamKind::Number),
                optional("name", ParamKind::Str),
            ],
            grid_map,
        )
        .light(),
        Builtin::new(
            "grid_sel",
            vec![
                required("x", ParamKind::Data),
                required("dim", ParamKind::Str),
                required("lo", ParamKind::Number),
                required("hi", ParamKind::Number),
            ],
            grid_sel,
        )
        .light(),
    ]
}

// ---------------------------------------------------------------------------------
// Shared helpers (also used by grid_reduce.rs and regrid.rs).
// ---------------------------------------------------------------------------------

/// A float type gridded values come in (`f32`, `f64`): the arithmetic the operations
/// need, statically dispatched.
pub(super) trait Real:
    ArrowNativeType
    + Copy
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The Arrow type holding these values.
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// 0.
    const ZERO: Self;
    /// +∞.
    const INFINITY: Self;
    /// Widens (exact) or keeps.
    fn to_f64(self) -> f64;
    /// Narrows (rounding to nearest) or keeps.
    fn from_f64(value: f64) -> Self;
    /// `self` to the power `exponent`.
    fn powf(self, exponent: Self) -> Self;
    /// `atan2(a[i], b[i])` for every `i`: the angle of (`b[i]`, `a[i]`) in radians
    /// (a whole slice at once, so it can vectorise).
    fn atan2_all(a: &[Self], b: &[Self]) -> Vec<Self>;
    /// √(self² + other²), without overflow.
    fn hypot(self, other: Self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
    /// The absolute value.
    fn abs(self) -> Self;
    /// eˢᵉˡᶠ.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// Radians to degrees.
    fn to_degrees(self) -> Self;
    /// Degrees to radians.
    fn to_radians(self) -> Self;
    /// The Euclidean remainder (in `[0, |divisor|)`).
    fn rem_euclid(self, divisor: Self) -> Self;
    /// Whether this is NaN.
    fn is_nan(self) -> bool;
}

macro_rules! real {
    ($native:ty, $arrow:ty, $hypot:expr, $rem:expr, $atan2_all:expr) => {
        impl Real for $native {
            type Arrow = $arrow;
            const ZERO: Self = 0.0;
            const INFINITY: Self = <$native>::INFINITY;
            #[inline]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            #[inline]
            fn from_f64(value: f64) -> Self {
                value as $native
            }
            #[inline]
            fn powf(self, exponent: Self) -> Self {
                <$native>::powf(self, exponent)
            }
            #[inline]
            fn atan2_all(a: &[Self], b: &[Self]) -> Vec<Self> {
                ($atan2_all)(a, b)
            }
            #[inline]
            fn hypot(self, other: Self) -> Self {
                ($hypot)(self, other)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$native>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$native>::abs(self)
            }
            #[inline]
            fn exp(self) -> Self {
                <$native>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$native>::ln(self)
            }
            #[inline]
            fn to_degrees(self) -> Self {
                <$native>::to_degrees(self)
            }
            #[inline]
            fn to_radians(self) -> Self {
                <$native>::to_radians(self)
            }
            #[inline]
            fn rem_euclid(self, divisor: Self) -> Self {
                let remainder: $native = ($rem)(self, divisor);
                // A tiny negative rounds up to |divisor| itself: that is 0 (mod 360 of
                // -1e-9 is 0, not 360).
                if remainder >= <$native>::abs(divisor) {
                    0.0
                } else {
                    remainder
                }
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$native>::is_nan(self)
            }
        }
    };
}

// f32: hypot in f64, which neither overflows nor loses precision, and vectorises;
// the remainder exact (fmod).
real!(
    f32,
    Float32Type,
    |x: f32, y: f32| {
        let (x, y) = (f64::from(x), f64::from(y));
        (x * x + y * y).sqrt() as f32
    },
    |x: f32, divisor: f32| x.rem_euclid(divisor),
    atan2_f32_all
);
// f64: the plain formula, unless it overflowed or underflowed (then libm's hypot);
// the remainder exact (fmod).
real!(
    f64,
    Float64Type,
    |x: f64, y: f64| {
        let plain = (x * x + y * y).sqrt();
        if plain.is_finite() && plain > 1e-150 {
            plain
        } else {
            x.hypot(y)
        }
    },
    |x: f64, divisor: f64| x.rem_euclid(divisor),
    |a: &[f64], b: &[f64]| zip_map(a, b, f64::atan2)
);

/// `atan2_f32` over slices: one branch-free pass that vectorises (the angle from
/// |y|, |x| by Cephes' polynomial, then the quadrant by selects and the sign of `y`),
/// then libm for the few elements it cannot do (both zero, infinities, NaN).
pub(crate) fn atan2_f32_all(ys: &[f32], xs: &[f32]) -> Vec<f32> {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    let mut out: Vec<f32> = ys
        .iter()
        .zip(xs)
        .map(|(&y, &x)| {
            let (yf, xf) = (f64::from(y), f64::from(x));
            let (ay, ax) = (yf.abs(), xf.abs());
            let t = ay.min(ax) / ay.max(ax);
            let big = t > 0.414_213_562_373_095_1;
            let reduced = (t - 1.0) / (t + 1.0);
            let u = if big { reduced } else { t };
            let z = u * u;
            let poly = ((((8.053_744_495_38e-2 * z - 1.387_768_560_32e-1) * z + 1.997_771_064_78e-1) * z
                - 3.333_294_915_39e-1)
                * z
                * u)
                + u;
            let mut angle = if big { FRAC_PI_4 + poly } else { poly };
            angle = if ay > ax { FRAC_PI_2 - angle } else { angle };
            angle = if xf < 0.0 { PI - angle } else { angle };
            (angle.copysign(yf)) as f32
        })
        .collect();
    // (min/max skip a NaN operand, so a NaN input can give a number above.) Looked for
    // first in a pass without branches, which vectorises: the loop that mends them
    // branches on every element, and took as long as the angles themselves.
    let unusual = |((result, y), x): ((&f32, &f32), &f32)| result.is_nan() | y.is_nan() | x.is_nan();
    let any_unusual = out
        .chunks(4096)
        .zip(ys.chunks(4096).zip(xs.chunks(4096)))
        .any(|(out, (ys, xs))| {
            out.iter()
                .zip(ys)
                .zip(xs)
                .fold(false, |any, element| any | unusual(element))
        });
    if any_unusual {
        for ((result, &y), &x) in out.iter_mut().zip(ys).zip(xs) {
            if unusual(((&*result, &y), &x)) {
                *result = y.atan2(x);
            }
        }
    }
    out
}

/// `atan2(y, x)` of `f32`s, in f64 with Cephes' `atanf` reduction and polynomial
/// (relative error below 2e-7 before rounding, so within an ulp or two of glibc's
/// `atan2f`). glibc's `atan2f` is a scalar call of about 25 ns, and was a quarter of
/// all CPU in the seeds' `wind_variance` (an atan2 per grid value); this is a few ns.
/// Zeros, infinities and NaN take libm's path, for IEEE's special cases.
/// (The reference for `atan2_f32_all`, which the operations use.)
#[cfg(test)]
pub(crate) fn atan2_f32(y: f32, x: f32) -> f32 {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    let (yf, xf) = (f64::from(y), f64::from(x));
    let (ay, ax) = (yf.abs(), xf.abs());
    if ay == 0.0 || ax == 0.0 || !(ay.is_finite() && ax.is_finite()) {
        return y.atan2(x);
    }
    let swap = ay > ax;
    let t = if swap { ax / ay } else { ay / ax };
    // t in (0, 1]: above tan(π/8), atan(t) = π/4 + atan((t - 1) / (t + 1)).
    let (base, t) = if t > 0.414_213_562_373_095_1 {
        (FRAC_PI_4, (t - 1.0) / (t + 1.0))
    } else {
        (0.0, t)
    };
    let z = t * t;
    let mut angle = base
        + ((((8.053_744_495_38e-2 * z - 1.387_768_560_32e-1) * z + 1.997_771_064_78e-1) * z - 3.333_294_915_39e-1)
            * z
            * t
            + t);
    if swap {
        angle = FRAC_PI_2 - angle;
    }
    if xf < 0.0 {
        angle = PI - angle;
    }
    if yf < 0.0 {
        angle = -angle;
    }
    angle as f32
}

/// A gridded chunk's values, flat (every row, C order), in their own type.
#[derive(Debug, Clone)]
pub(super) enum Flat {
    /// `Float32` values.
    F32(Float32Array),
    /// `Float64` values.
    F64(Float64Array),
}

impl Flat {
    /// The values as `Float64` (nulls kept).
    pub(super) fn into_f64(self) -> Float64Array {
        match self {
            Flat::F64(array) => array,
            Flat::F32(array) => array.unary::<_, Float64Type>(f64::from),
        }
    }

    /// Their Arrow type.
    pub(super) fn data_type(&self) -> DataType {
        match self {
            Flat::F32(_) => DataType::Float32,
            Flat::F64(_) => DataType::Float64,
        }
    }
}

/// Argument `param` (the data at `index`) as a gridded chunk.
pub(super) fn grid_arg<'a>(args: &Args<'a>, index: usize, param: &str) -> Result<GridBatch<'a>, OpError> {
    let batch = args.data(index, param)?;
    grid_of(args, batch, param)
}

/// `batch` (argument `param`) as a gridded chunk: the `GridBatch::new` message if it
/// is not one, a hint if it is a `grid_partial` state.
pub(super) fn grid_of<'a>(args: &Args<'_>, batch: &'a RecordBatch, param: &str) -> Result<GridBatch<'a>, OpError> {
    if let Some(stats) = batch.schema_ref().metadata().get(PARTIAL_MARKER) {
        return Err(args.invalid(
            param,
            format!(
                "this is a grid_partial state (stats {stats}), not a gridded chunk: finalize it with grid_finalize"
            ),
        ));
    }
    GridBatch::new(batch).map_err(|error| args.invalid(param, error.to_string()))
}

/// The chunk's values, flat, with the list's own nulls (never there in a well-formed
/// chunk) folded into the values' nulls.
pub(super) fn flat_values(args: &Args<'_>, param: &str, grid: &GridBatch<'_>) -> Result<Flat, OpError> {
    let values = grid.values();
    let list = grid.list();
    let nulls = match list.nulls().filter(|nulls| nulls.null_count() > 0) {
        None => values.nulls().cloned(),
        Some(row_nulls) => {
            let cells = grid.meta().cells();
            let mut rows = BooleanBufferBuilder::new(values.len());
            for row in 0..list.len() {
                rows.append_n(cells, row_nulls.is_valid(row));
            }
            NullBuffer::union(values.nulls(), Some(&NullBuffer::new(rows.finish())))
        }
    };
    let wrong_type = || {
        args.invalid(
            param,
            format!("values of type {} (Float32 or Float64 expected)", values.data_type()),
        )
    };
    Ok(match values.data_type() {
        DataType::Float32 => {
            let array = values.as_primitive_opt::<Float32Type>().ok_or_else(wrong_type)?;
            Flat::F32(Float32Array::try_new(array.values().clone(), nulls).map_err(arrow_error(args.op, param))?)
        }
        DataType::Float64 => {
            let array = values.as_primitive_opt::<Float64Type>().ok_or_else(wrong_type)?;
            Flat::F64(Float64Array::try_new(array.values().clone(), nulls).map_err(arrow_error(args.op, param))?)
        }
        _ => return Err(wrong_type()),
    })
}

/// A gridded chunk of `meta` with row coordinate `coord` and these values (C order,
/// rows one after another).
pub(super) fn grid_result<R: Real>(
    args: &Args<'_>,
    meta: &GridMeta,
    coord: &[f64],
    values: Vec<R>,
    nulls: Option<NullBuffer>,
) -> Result<RecordBatch, OpError> {
    let array = PrimitiveArray::<R::Arrow>::try_new(ScalarBuffer::from(values), nulls)
        .map_err(arrow_error(args.op, "building the result"))?;
    meta.batch_of(coord, array).map_err(|error| OpError::InvalidArgument {
        op: args.op.to_string(),
        param: "(result)".to_string(),
        reason: error.to_string(),
    })
}

/// The number literal at `index` as `f64` (NaN refused).
pub(super) fn number_arg(args: &Args<'_>, index: usize, param: &str) -> Result<f64, OpError> {
    let value = match args.number(index, param)? {
        Literal::Int(value) => *value as f64,
        Literal::Float(value) => *value,
        other => return Err(args.invalid(param, format!("must be a number, given {}", other.kind_name()))),
    };
    if value.is_nan() {
        return Err(args.invalid(param, "must be a number, given NaN"));
    }
    Ok(value)
}

/// A new variable name given as argument `param`: not empty, not the row dimension's.
pub(super) fn check_name(args: &Args<'_>, param: &str, name: &str, meta: &GridMeta) -> Result<(), OpError> {
    if name.is_empty() {
        return Err(args.invalid(param, "the variable name must not be empty"));
    }
    if name == meta.row_dim {
        return Err(args.invalid(
            param,
            format!("{name:?} is the row dimension's name; the variable needs another"),
        ));
    }
    Ok(())
}

/// `f(a[i], b[i])` for every `i`: one monomorphised loop over two slices.
#[inline]
fn zip_map<R: Copy, F: Fn(R, R) -> R>(a: &[R], b: &[R], f: F) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

/// `f(a[i])` for every `i`.
#[inline]
fn map<R: Copy, F: Fn(R) -> R>(a: &[R], f: F) -> Vec<R> {
    a.iter().map(|&x| f(x)).collect()
}

// ---------------------------------------------------------------------------------
// grid_binary
// ---------------------------------------------------------------------------------

/// An element-wise operator between two grids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Hypot,
    Atan2,
    Min,
    Max,
}

const BINARY_OPS: &str = "add, sub, mul, div, pow, hypot, atan2, min, max";

impl BinaryOp {
    fn parse(name: &str) -> Result<BinaryOp, String> {
        Ok(match name {
            "add" => BinaryOp::Add,
            "sub" => BinaryOp::Sub,
            "mul" => BinaryOp::Mul,
            "div" => BinaryOp::Div,
            "pow" => BinaryOp::Pow,
            "hypot" => BinaryOp::Hypot,
            "atan2" => BinaryOp::Atan2,
            "min" => BinaryOp::Min,
            "max" => BinaryOp::Max,
            other => return Err(format!("unknown operator {other:?} (expected one of {BINARY_OPS})")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Hypot => "hypot",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
        }
    }

    /// `a op b` over whole slices.
    fn apply<R: Real>(self, a: &[R], b: &[R]) -> Vec<R> {
        match self {
            BinaryOp::Add => zip_map(a, b, |x, y| x + y),
            BinaryOp::Sub => zip_map(a, b, |x, y| x - y),
            BinaryOp::Mul => zip_map(a, b, |x, y| x * y),
            BinaryOp::Div => zip_map(a, b, |x, y| x / y),
            BinaryOp::Pow => zip_map(a, b, R::powf),
            BinaryOp::Hypot => zip_map(a, b, R::hypot),
            BinaryOp::Atan2 => R::atan2_all(a, b),
            BinaryOp::Min => zip_map(a, b, |x, y| if x < y || x.is_nan() { x } else { y }),
            BinaryOp::Max => zip_map(a, b, |x, y| if x > y || x.is_nan() { x } else { y }),
        }
    }

    /// The result's variable attributes: `units` kept where the operator keeps them
    /// (from `a`), `radians` for `atan2`, nothing else.
    fn attrs(self, a: &Attrs) -> Attrs {
        let mut attrs = Attrs::new();
        match self {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Min | BinaryOp::Max | BinaryOp::Hypot => {
                if let Some(units) = a.get("units") {
                    attrs.insert("units".to_string(), units.clone());
                }
            }
            BinaryOp::Atan2 => {
                attrs.insert("units".to_string(), AttrValue::from("radians"));
            }
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Pow => {}
        }
        attrs
    }
}

/// `grid_binary(a, b, op, name?)`: `a op b` cell by cell, on aligned grids.
fn grid_binary(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let a = grid_arg(args, 0, "a")?;
    let b = grid_arg(args, 1, "b")?;
    let op = BinaryOp::parse(args.str(2, "op")?).map_err(|reason| args.invalid("op", reason))?;
    let mismatch = |reason: String| OpError::Mismatch {
        op: args.op.to_string(),
        params: "a and b".to_string(),
        reason,
    };
    a.meta()
        .check_aligned(b.meta())
        .map_err(|error| mismatch(error.to_string()))?;
    let row_dim = &a.meta().row_dim;
    if a.rows() != b.rows() {
        return Err(mismatch(format!(
            "a has {} rows along {row_dim} but b has {}",
            a.rows(),
            b.rows()
        )));
    }
    let (coord_a, coord_b) = (a.row_coord(), b.row_coord());
    if let Some(index) = first_coordinate_difference(coord_a, coord_b) {
        return Err(mismatch(format!(
            "{row_dim}[{index}] is {} in a but {} in b",
            coord_a[index], coord_b[index]
        )));
    }
    let name = match args.opt_str(3, "name")? {
        Some(name) => name.to_string(),
        None => format!("{}_{}_{}", op.name(), a.meta().variable, b.meta().variable),
    };
    let mut meta = a.meta().clone();
    check_name(args, "name", &name, &meta)?;
    meta.variable = name;
    meta.attrs = op.attrs(&a.meta().attrs);

    match (flat_values(args, "a", &a)?, flat_values(args, "b", &b)?) {
        (Flat::F32(x), Flat::F32(y)) => {
            let values = op.apply(x.values(), y.values());
            grid_result(args, &meta, coord_a, values, NullBuffer::union(x.nulls(), y.nulls()))
        }
        (x, y) => {
            let (x, y) = (x.into_f64(), y.into_f64());
            let values = op.apply(x.values(), y.values());
            grid_result(args, &meta, coord_a, values, NullBuffer::union(x.nulls(), y.nulls()))
        }
    }
}

// ---------------------------------------------------------------------------------
// grid_map
// ---------------------------------------------------------------------------------

/// A function of each value: with a number, or alone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MapOp {
    Add(f64),
    Sub(f64),
    /// `value − x`.
    Rsub(f64),
    Mul(f64),
    Div(f64),
    Pow(f64),
    /// Euclidean remainder.
    Mod(f64),
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Degrees,
    Radians,
}

const MAP_OPS: &str =
    "with a value: add, sub, rsub, mul, div, pow, mod; without: neg, abs, sqrt, exp, log, degrees, radians";

impl MapOp {
    fn parse(name: &str, value: Option<f64>) -> Result<MapOp, (&'static str, String)> {
        let with_value = |make: fn(f64) -> MapOp| match value {
            Some(value) => Ok(make(value)),
            None => Err(("value", format!("op {name} needs a value (ops {MAP_OPS})"))),
        };
        let alone = |op: MapOp| match value {
            None => Ok(op),
            Some(value) => Err((
                "value",
                format!("op {name} takes no value, given {value} (ops {MAP_OPS})"),
            )),
        };
        match name {
            "add" => with_value(MapOp::Add),
            "sub" => with_value(MapOp::Sub),
            "rsub" => with_value(MapOp::Rsub),
            "mul" => with_value(MapOp::Mul),
            "div" => with_value(MapOp::Div),
            "pow" => with_value(MapOp::Pow),
            "mod" => with_value(MapOp::Mod),
            "neg" => alone(MapOp::Neg),
            "abs" => alone(MapOp::Abs),
            "sqrt" => alone(MapOp::Sqrt),
            "exp" => alone(MapOp::Exp),
            "log" => alone(MapOp::Log),
            "degrees" => alone(MapOp::Degrees),
            "radians" => alone(MapOp::Radians),
            other => Err(("op", format!("unknown op {other:?} (ops {MAP_OPS})"))),
        }
    }

    /// The function over a whole slice (the number in the values' type, as numpy).
    fn apply<R: Real>(self, x: &[R]) -> Vec<R> {
        match self {
            MapOp::Add(value) => {
                let value = R::from_f64(value);
                map(x, |v| v + value)
            }
            MapOp::Sub(value) => {
                let value = R::from_f64(value);
                map(x, |v| v - value)
            }
            MapOp::Rsub(value) => {
                let value = R::from_f64(value);
                map(x, |v| value - v)
            }
            MapOp::Mul(value) => {
                let value = R::from_f64(value);
                map(x, |v| v * value)
            }
            MapOp::Div(value) => {
                let value = R::from_f64(value);
                map(x, |v| v / value)
            }
            MapOp::Pow(1.0) => x.to_vec(),
            MapOp::Pow(2.0) => map(x, |v| v * v),
            MapOp::Pow(exponent) => {
                let exponent = R::from_f64(exponent);
                map(x, |v| v.powf(exponent))
            }
            MapOp::Mod(value) => {
                let value = R::from_f64(value);
                map(x, |v| v.rem_euclid(value))
            }
            MapOp::Neg => map(x, |v| -v),
            MapOp::Abs => map(x, R::abs),
            MapOp::Sqrt => map(x, R::sqrt),
            MapOp::Exp => map(x, R::exp),
            MapOp::Log => map(x, R::ln),
            MapOp::Degrees => map(x, R::to_degrees),
            MapOp::Radians => map(x, R::to_radians),
        }
    }
}

/// `grid_map(x, op, value?, name?)`: a function of every value of `x`.
fn grid_map(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let x = grid_arg(args, 0, "x")?;
    let name = args.str(1, "op")?;
    let value = match args.get(2) {
        None => None,
        Some(_) => Some(number_arg(args, 2, "value")?),
    };
    let op = MapOp::parse(name, value).map_err(|(param, reason)| args.invalid(param, reason))?;
    let mut meta = x.meta().clone();
    if let Some(name) = args.opt_str(3, "name")? {
        check_name(args, "name", name, &meta)?;
        meta.variable = name.to_string();
    }
    match op {
        MapOp::Degrees => {
            meta.attrs.insert("units".to_string(), AttrValue::from("degree"));
        }
        MapOp::Radians => {
            meta.attrs.insert("units".to_string(), AttrValue::from("radians"));
        }
        _ => {}
    }
    match flat_values(args, "x", &x)? {
        Flat::F32(values) => {
            let result = op.apply(values.values());
            grid_result(args, &meta, x.row_coord(), result, values.nulls().cloned())
        }
        Flat::F64(values) => {
            let result = op.apply(values.values());
            grid_result(args, &meta, x.row_coord(), result, values.nulls().cloned())
        }
    }
}

// ---------------------------------------------------------------------------------
// grid_sel
// ---------------------------------------------------------------------------------

/// `grid_sel(x, dim, lo, hi)`: the rows (row dimension) or indexes (inner dimension)
/// whose coordinate is within `[lo, hi]` (bounds in either order).
fn grid_sel(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let x = grid_arg(args, 0, "x")?;
    let dim = args.str(1, "dim")?;
    let (first, second) = (number_arg(args, 2, "lo")?, number_arg(args, 3, "hi")?);
    let (lo, hi) = (first.min(second), first.max(second));
    let within = |value: f64| lo <= value && value <= hi;
    let meta = x.meta();
    if dim == meta.row_dim {
        let coord = x.row_coord();
        let kept: Vec<usize> = (0..coord.len()).filter(|&i| within(coord[i])).collect();
        return match (kept.first(), kept.last()) {
            (None, _) | (_, None) => Ok(x.batch().slice(0, 0)),
            (Some(&start), Some(&end)) if end + 1 - start == kept.len() => Ok(x.batch().slice(start, kept.len())),
            _ => {
                let mask = BooleanArray::from(coord.iter().map(|&value| within(value)).collect::<Vec<bool>>());
                filter_record_batch(x.batch(), &mask).map_err(arrow_error(args.op, "selecting the rows of x"))
            }
        };
    }
    let Some((position, coord)) = meta.inner_dim(dim) else {
        return Err(args.invalid(
            "dim",
            format!(
                "{} has no dimension {dim:?} (its dimensions: {})",
                meta.variable,
                meta.dims.join(", ")
            ),
        ));
    };
    let kept: Vec<usize> = (0..coord.len()).filter(|&i| within(coord.values[i])).collect();
    if kept.is_empty() {
        let low = coord.values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = coord.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        return Err(args.invalid(
            "lo",
            format!("no {dim} within [{lo}, {hi}]: the grid covers {dim} from {low} to {high}"),
        ));
    }
    // Runs of consecutive kept indexes: each is one block copy per outer index.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &index in &kept {
        match runs.last_mut() {
            Some((start, length)) if *start + *length == index => *length += 1,
            _ => runs.push((index, 1)),
        }
    }
    let layout = InnerLayout {
        rows: x.rows(),
        outer: meta.inner[..position].iter().map(|coord| coord.len()).product(),
        size: coord.len(),
        stride: meta.inner[position + 1..].iter().map(|coord| coord.len()).product(),
        kept: kept.len(),
    };
    let mut result_meta = meta.clone();
    result_meta.inner[position].values = kept.iter().map(|&i| coord.values[i]).collect();
    match flat_values(args, "x", &x)? {
        Flat::F32(values) => {
            let (selected, nulls) = select_inner(values.values(), values.nulls(), &layout, &runs);
            grid_result(args, &result_meta, x.row_coord(), selected, nulls)
        }
        Flat::F64(values) => {
            let (selected, nulls) = select_inner(values.values(), values.nulls(), &layout, &runs);
            grid_result(args, &result_meta, x.row_coord(), selected, nulls)
        }
    }
}

/// How the values of a selection along one inner dimension lie: per row, `outer`
/// blocks (the dimensions before it) of `size` slabs (its indexes) of `stride`
/// values (the dimensions after it).
struct InnerLayout {
    rows: usize,
    outer: usize,
    size: usize,
    stride: usize,
    kept: usize,
}

/// The values (and nulls) at the kept runs of indexes of the selected dimension, in
/// C order.
fn select_inner<R: Copy>(
    values: &[R],
    nulls: Option<&NullBuffer>,
    layout: &InnerLayout,
    runs: &[(usize, usize)],
) -> (Vec<R>, Option<NullBuffer>) {
    let total = layout.rows * layout.outer * layout.kept * layout.stride;
    let mut selected = Vec::with_capacity(total);
    let mut validity = nulls.map(|_| BooleanBufferBuilder::new(total));
    for block in 0..layout.rows * layout.outer {
        let base = block * layout.size * layout.stride;
        for &(start, length) in runs {
            let from = base + start * layout.stride;
            let to = from + length * layout.stride;
            selected.extend_from_slice(&values[from..to]);
            if let (Some(builder), Some(nulls)) = (validity.as_mut(), nulls) {
                let bits = nulls.inner();
                builder.append_packed_range(bits.offset() + from..bits.offset() + to, bits.values());
            }
        }
    }
    let nulls = validity
        .map(|mut builder| NullBuffer::new(builder.finish()))
        .filter(|nulls| nulls.null_count() > 0);
    (selected, nulls)
}

/// The values of a gridded result as `f64`, missing values as `None` (tests).
#[cfg(test)]
pub(super) fn options(batch: &RecordBatch) -> Vec<Option<f64>> {
    let grid = GridBatch::new(batch).expect("gridded");
    let values = grid.values();
    let nulls = values.nulls().cloned();
    grid.values_f64()
        .into_iter()
        .enumerate()
        .map(|(i, v)| nulls.as_ref().is_none_or(|nulls| nulls.is_valid(i)).then_some(v))
        .collect()
}

#[cfg(test)]
mod atan2_tests {
    use super::atan2_f32;

    #[test]
    fn fast_atan2_is_within_two_ulps_of_the_exact_angle() {
        let mut worst: f64 = 0.0;
        let values: Vec<f32> = (-400..=400)
            .map(|i| i as f32 * 0.037)
            .chain([1e-30, -1e-30, 1e30, -1e30, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY])
            .collect();
        for &y in &values {
            for &x in &values {
                let exact = f64::from(y).atan2(f64::from(x));
                let fast = f64::from(atan2_f32(y, x));
                let ulp = f64::from(f32::EPSILON) * exact.abs().max(1e-30);
                worst = worst.max((fast - exact).abs() / ulp.max(f64::MIN_POSITIVE));
                assert!(
                    (fast - exact).abs() <= 2.0 * ulp + 1e-45,
                    "atan2({y}, {x}) = {fast}, exactly {exact}"
                );
            }
        }
        assert!(atan2_f32(f32::NAN, 1.0).is_nan() && atan2_f32(1.0, f32::NAN).is_nan());
        assert_eq!(atan2_f32(0.0, -1.0), std::f32::consts::PI);
        assert!(worst <= 2.0, "{worst} ulps");
        // The slice version gives the same angles, special values included.
        let (ys, xs): (Vec<f32>, Vec<f32>) = values.iter().flat_map(|&y| values.iter().map(move |&x| (y, x))).unzip();
        let all = super::atan2_f32_all(&ys, &xs);
        for ((&y, &x), &angle) in ys.iter().zip(&xs).zip(&all) {
            let one = atan2_f32(y, x);
            assert!(
                angle == one || (angle.is_nan() && one.is_nan()),
                "atan2({y}, {x}): {angle} vs {one}"
            );
        }
        assert!(super::atan2_f32_all(&[f32::NAN, -0.0], &[1.0, -1.0])
            .iter()
            .zip([f32::NAN, -std::f32::consts::PI])
            .all(|(a, b)| a == &b || (a.is_nan() && b.is_nan())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{OpRegistry, OpValue};
    use arrow::array::ArrayRef;
    use cairn_client::grid::Coord;
    use std::sync::Arc;

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    /// time × latitude(2) × longitude(3), `u` in m s-1 with a standard name.
    fn meta(variable: &str) -> GridMeta {
        let mut meta = GridMeta::new(
            variable,
            "time",
            vec![
                Coord::new("latitude", vec![10.0, 20.0]),
                Coord::new("longitude", vec![0.0, 1.0, 2.0]),
            ],
        );
        meta.attrs.insert("units".into(), AttrValue::from("m s-1"));
        meta.attrs
            .insert("standard_name".into(), AttrValue::from("eastward_wind"));
        meta.attrs.insert("long_name".into(), AttrValue::from("U"));
        meta.row_attrs
            .insert("units".into(), AttrValue::from("hours since 1900-01-01"));
        meta.global_attrs.insert("title".into(), AttrValue::from("test"));
        meta
    }

    fn f32_grid(variable: &str, coord: &[f64], values: Vec<Option<f32>>) -> RecordBatch {
        meta(variable).batch(coord, values).expect("batch")
    }

    fn f64_grid(variable: &str, coord: &[f64], values: Vec<Option<f64>>) -> RecordBatch {
        meta(variable)
            .batch_of::<Float64Type>(coord, Float64Array::from(values))
            .expect("batch")
    }

    fn some(values: &[f32]) -> Vec<Option<f32>> {
        values.iter().copied().map(Some).collect()
    }

    fn data(batch: &RecordBatch) -> OpValue {
        OpValue::Data(batch.clone())
    }

    fn result_meta(batch: &RecordBatch) -> GridMeta {
        GridBatch::new(batch).expect("gridded").meta().clone()
    }

    #[test]
    fn grid_binary_computes_cell_by_cell() {
        let a = f32_grid(
            "u",
            &[0.0, 1.0],
            some(&[3.0, -1.0, 0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]),
        );
        let b = f32_grid(
            "v",
            &[0.0, 1.0],
            vec![
                Some(4.0),
                Some(2.0),
                None,
                Some(0.0),
                Some(-2.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                None,
            ],
        );
        let binary = |op: &str| run("grid_binary", vec![data(&a), data(&b), OpValue::from(op)]).expect(op);
        let hypot = binary("hypot");
        assert_eq!(hypot.schema().field(1).name(), "hypot_u_v");
        let values = options(&hypot);
        assert_eq!(values[0], Some(5.0));
        assert_eq!(values[2], None, "a null in b");
        assert_eq!(values[11], None);
        assert_eq!(values.iter().filter(|v| v.is_none()).count(), 2);
        assert_eq!(GridBatch::new(&hypot).expect("grid").value_type(), DataType::Float32);
        let hypot_meta = result_meta(&hypot);
        assert_eq!(hypot_meta.attrs.len(), 1, "units only: {:?}", hypot_meta.attrs);
        assert_eq!(hypot_meta.attrs["units"], AttrValue::from("m s-1"));
        assert_eq!(hypot_meta.row_attrs, meta("u").row_attrs);
        assert_eq!(hypot_meta.global_attrs, meta("u").global_attrs);
        assert_eq!(hypot_meta.inner, meta("u").inner);
        assert_eq!(GridBatch::new(&hypot).expect("grid").row_coord(), &[0.0, 1.0]);

        assert_eq!(options(&binary("sub"))[..2], [Some(-1.0), Some(-3.0)]);
        assert_eq!(options(&binary("div"))[..2], [Some(0.75), Some(-0.5)]);
        assert_eq!(options(&binary("pow"))[..2], [Some(81.0), Some(1.0)]);
        assert_eq!(
            options(&binary("min"))[..5],
            [Some(3.0), Some(-1.0), None, Some(0.0), Some(-2.0)]
        );
        assert_eq!(options(&binary("max"))[..2], [Some(4.0), Some(2.0)]);
        let mul = binary("mul");
        assert_eq!(options(&mul)[..2], [Some(12.0), Some(-2.0)]);
        assert!(result_meta(&mul).attrs.is_empty(), "mul drops the units");

        // atan2(a as y, b as x) in radians.
        let angle = binary("atan2");
        let values = options(&angle);
        let expected = 3.0_f32.atan2(4.0);
        assert_eq!(values[0], Some(f64::from(expected)));
        assert_eq!(values[1], Some(f64::from((-1.0_f32).atan2(2.0))));
        assert_eq!(result_meta(&angle).attrs["units"], AttrValue::from("radians"));

        // A name, and mixed types give Float64.
        let c = f64_grid("w", &[0.0, 1.0], (0..12).map(|i| Some(f64::from(i) / 4.0)).collect());
        let sum = run(
            "grid_binary",
            vec![data(&a), data(&c), OpValue::from("add"), OpValue::from("total")],
        )
        .expect("add");
        assert_eq!(sum.schema().field(1).name(), "total");
        assert_eq!(GridBatch::new(&sum).expect("grid").value_type(), DataType::Float64);
        assert_eq!(options(&sum)[..3], [Some(3.0), Some(-0.75), Some(0.5)]);
    }

    #[test]
    fn grid_binary_f32_hypot_does_not_overflow() {
        let big = f32_grid("u", &[0.0], some(&[3e30, 3e-30, 0.0, 1.0, 1.0, 1.0]));
        let other = f32_grid("v", &[0.0], some(&[4e30, 4e-30, 0.0, 1.0, 1.0, 1.0]));
        let result = run("grid_binary", vec![data(&big), data(&other), OpValue::from("hypot")]).expect("hypot");
        let values = options(&result);
        assert_eq!(values[0], Some(f64::from(5e30_f32)));
        assert_eq!(values[1], Some(f64::from(5e-30_f32)));
        assert_eq!(values[2], Some(0.0));
        let big = f64_grid(
            "u",
            &[0.0],
            vec![Some(3e300), Some(3e-300), Some(0.0), Some(1.0), None, Some(1.0)],
        );
        let other = f64_grid(
            "v",
            &[0.0],
            vec![Some(4e300), Some(4e-300), Some(0.0), Some(1.0), Some(1.0), None],
        );
        let result = run("grid_binary", vec![data(&big), data(&other), OpValue::from("hypot")]).expect("hypot");
        let values = options(&result);
        assert!((values[0].expect("value") / 5e300 - 1.0).abs() < 1e-15);
        assert!((values[1].expect("value") / 5e-300 - 1.0).abs() < 1e-15);
        assert_eq!(values[4..], [None, None]);
    }

    #[test]
    fn grid_binary_refuses_grids_that_do_not_line_up() {
        let a = f32_grid("u", &[0.0, 1.0], some(&[0.0; 12]));
        let message = |b: &RecordBatch, op: &str| {
            run("grid_binary", vec![data(&a), data(b), OpValue::from(op)])
                .expect_err("mismatch")
                .to_string()
        };
        let mut shifted = meta("v");
        shifted.inner[1].values[2] = 2.5;
        let b = shifted.batch(&[0.0, 1.0], some(&[0.0; 12])).expect("batch");
        assert_eq!(
            message(&b, "add"),
            "grid_binary: a and b do not match: grids of u and v do not line up: longitude[2] is 2 in u but 2.5 in v"
        );
        let b = f32_grid("v", &[0.0], some(&[0.0; 6]));
        assert_eq!(
            message(&b, "add"),
            "grid_binary: a and b do not match: a has 2 rows along time but b has 1"
        );
        let b = f32_grid("v", &[0.0, 2.0], some(&[0.0; 12]));
        assert_eq!(
            message(&b, "add"),
            "grid_binary: a and b do not match: time[1] is 1 in a but 2 in b"
        );
        let b = f32_grid("v", &[0.0, 1.0], some(&[0.0; 12]));
        assert_eq!(
            message(&b, "plus"),
            "grid_binary: argument op: unknown operator \"plus\" (expected one of add, sub, mul, div, pow, hypot, atan2, min, max)"
        );
        let table = RecordBatch::try_from_iter(vec![("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)])
            .expect("batch");
        assert_eq!(
            message(&table, "add"),
            "grid_binary: argument b: the data is not gridded: its schema has no cairn.grid metadata"
        );
        let error = run(
            "grid_binary",
            vec![data(&a), data(&b), OpValue::from("add"), OpValue::from("time")],
        )
        .expect_err("name");
        assert!(error.to_string().contains("row dimension"), "{error}");
    }

    #[test]
    fn grid_map_applies_a_function() {
        let x = f32_grid(
            "u",
            &[0.0],
            vec![Some(-370.0), Some(-90.0), None, Some(0.0), Some(360.0), Some(725.5)],
        );
        // f32 `mod`: far from 0, tiny negatives, a negative divisor.
        let far = f32_grid(
            "u",
            &[0.0],
            vec![
                Some(1_000_000.5),
                Some(-1e-30),
                Some(-720.0),
                Some(359.9),
                Some(-0.0),
                Some(1e-30),
            ],
        );
        let wrapped = run(
            "grid_map",
            vec![data(&far), OpValue::from("mod"), OpValue::from(-360.0)],
        )
        .expect("mod");
        assert_eq!(
            options(&wrapped),
            [
                Some(280.5),
                Some(0.0),
                Some(0.0),
                Some(f64::from(359.9_f32)),
                Some(0.0),
                Some(f64::from(1e-30_f32))
            ]
        );
        let map = |op: &str, value: Option<f64>| {
            let mut args = vec![data(&x), OpValue::from(op)];
            if let Some(value) = value {
                args.push(OpValue::from(value));
            }
            run("grid_map", args).expect(op)
        };
        let direction = map("mod", Some(360.0));
        assert_eq!(
            options(&direction),
            [Some(350.0), Some(270.0), None, Some(0.0), Some(0.0), Some(5.5)]
        );
        assert_eq!(result_meta(&direction).attrs, meta("u").attrs, "attrs kept");
        assert_eq!(options(&map("rsub", Some(1.0)))[..2], [Some(371.0), Some(91.0)]);
        assert_eq!(options(&map("add", Some(0.5)))[..2], [Some(-369.5), Some(-89.5)]);
        assert_eq!(options(&map("mul", Some(2.0)))[..2], [Some(-740.0), Some(-180.0)]);
        assert_eq!(options(&map("div", Some(-10.0)))[..2], [Some(37.0), Some(9.0)]);
        assert_eq!(options(&map("sub", Some(10.0)))[..2], [Some(-380.0), Some(-100.0)]);
        assert_eq!(options(&map("pow", Some(2.0)))[..2], [Some(136_900.0), Some(8100.0)]);
        assert_eq!(options(&map("neg", None))[..2], [Some(370.0), Some(90.0)]);
        assert_eq!(options(&map("abs", None))[..2], [Some(370.0), Some(90.0)]);
        let degrees = map("degrees", None);
        assert_eq!(options(&degrees)[3], Some(0.0));
        assert_eq!(result_meta(&degrees).attrs["units"], AttrValue::from("degree"));
        let radians = map("radians", None);
        assert_eq!(options(&radians)[1], Some(f64::from((-90.0_f32).to_radians())));
        assert_eq!(result_meta(&radians).attrs["units"], AttrValue::from("radians"));
        // Tiny negatives are 0, never 360.
        let tiny = f64_grid(
            "u",
            &[0.0],
            vec![Some(-1e-20), Some(-360.0), Some(359.999), None, None, None],
        );
        let wrapped = run(
            "grid_map",
            vec![data(&tiny), OpValue::from("mod"), OpValue::from(360_i64)],
        )
        .expect("mod");
        assert_eq!(options(&wrapped)[..3], [Some(0.0), Some(0.0), Some(359.999)]);

        let f64s = f64_grid("u", &[0.0], vec![Some(4.0), Some(1.0), None, None, None, Some(0.0)]);
        let root = run(
            "grid_map",
            vec![
                data(&f64s),
                OpValue::from("sqrt"),
                OpValue::Literal(Literal::Null),
                OpValue::from("root"),
            ],
        )
        .expect("sqrt");
        assert_eq!(root.schema().field(1).name(), "root");
        assert_eq!(options(&root)[..3], [Some(2.0), Some(1.0), None]);
        let log = run("grid_map", vec![data(&f64s), OpValue::from("log")]).expect("log");
        assert_eq!(options(&log)[1], Some(0.0));
        let exp = run("grid_map", vec![data(&f64s), OpValue::from("exp")]).expect("exp");
        assert_eq!(options(&exp)[5], Some(1.0));
    }

    #[test]
    fn grid_map_errors_list_the_ops() {
        let x = f32_grid("u", &[0.0], some(&[0.0; 6]));
        let message = |args: Vec<OpValue>| run("grid_map", args).expect_err("error").to_string();
        assert_eq!(
            message(vec![data(&x), OpValue::from("mod")]),
            "grid_map: argument value: op mod needs a value (ops with a value: add, sub, rsub, mul, div, pow, mod; without: neg, abs, sqrt, exp, log, degrees, radians)"
        );
        assert_eq!(
            message(vec![data(&x), OpValue::from("cube")]),
            "grid_map: argument op: unknown op \"cube\" (ops with a value: add, sub, rsub, mul, div, pow, mod; without: neg, abs, sqrt, exp, log, degrees, radians)"
        );
        assert!(message(vec![data(&x), OpValue::from("abs"), OpValue::from(2_i64)]).contains("op abs takes no value"));
        assert!(message(vec![data(&x), OpValue::from("abs"), OpValue::from(f64::NAN)]).contains("NaN"));
        let table = RecordBatch::try_from_iter(vec![("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)])
            .expect("batch");
        assert_eq!(
            message(vec![data(&table), OpValue::from("abs")]),
            "grid_map: argument x: the data is not gridded: its schema has no cairn.grid metadata"
        );
    }

    #[test]
    fn grid_sel_selects_rows_and_inner_ranges() {
        let values: Vec<Option<f32>> = (0..18).map(|i| if i == 4 { None } else { Some(i as f32) }).collect();
        let x = f32_grid("u", &[0.0, 6.0, 12.0], values);
        let sel = |dim: &str, lo: f64, hi: f64| {
            run(
                "grid_sel",
                vec![data(&x), OpValue::from(dim), OpValue::from(lo), OpValue::from(hi)],
            )
        };
        // Rows, bounds in either order, inclusive.
        let rows = sel("time", 12.0, 6.0).expect("rows");
        assert_eq!(GridBatch::new(&rows).expect("grid").row_coord(), &[6.0, 12.0]);
        assert_eq!(options(&rows)[0], Some(6.0));
        assert_eq!(sel("time", 100.0, 200.0).expect("none").num_rows(), 0);
        // Longitude 1..=2 (inclusive): indexes 1 and 2 of each latitude.
        let lon = sel("longitude", 0.5, 2.0).expect("lon");
        let lon_meta = result_meta(&lon);
        assert_eq!(lon_meta.inner[1].values, [1.0, 2.0]);
        assert_eq!(lon_meta.shape(3), [3, 2, 2]);
        let expected: Vec<Option<f64>> = [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17]
            .iter()
            .map(|&i| (i != 4).then_some(f64::from(i)))
            .collect();
        assert_eq!(options(&lon), expected);
        // Latitude 20: the second half of each row.
        let lat = sel("latitude", 20.0, 20.0).expect("lat");
        assert_eq!(result_meta(&lat).inner[0].values, [20.0]);
        let expected: Vec<Option<f64>> = [3, 4, 5, 9, 10, 11, 15, 16, 17]
            .iter()
            .map(|&i| (i != 4).then_some(f64::from(i)))
            .collect();
        assert_eq!(options(&lat), expected);
        // Non-contiguous rows.
        let unordered = f32_grid("u", &[5.0, 50.0, 6.0], some(&[0.0; 18]));
        let picked = run(
            "grid_sel",
            vec![
                data(&unordered),
                OpValue::from("time"),
                OpValue::from(4_i64),
                OpValue::from(7_i64),
            ],
        )
        .expect("filter");
        assert_eq!(GridBatch::new(&picked).expect("grid").row_coord(), &[5.0, 6.0]);

        assert_eq!(
            sel("level", 0.0, 1.0).expect_err("dim").to_string(),
            "grid_sel: argument dim: u has no dimension \"level\" (its dimensions: time, latitude, longitude)"
        );
        assert_eq!(
            sel("latitude", 30.0, 40.0).expect_err("empty").to_string(),
            "grid_sel: argument lo: no latitude within [30, 40]: the grid covers latitude from 10 to 20"
        );
    }

    /// Release-mode timings on an 8 × 721 × 1440 `Float32` chunk (not a test: run
    /// `cargo test --release -p cairn-worker --lib grid -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn grid_micro_timings() {
        use std::time::Instant;
        let (rows, lat, lon) = (8, 721, 1440);
        let meta = GridMeta::new(
            "u",
            "time",
            vec![
                Coord::new("latitude", (0..lat).map(|i| 90.0 - 0.25 * i as f64).collect()),
                Coord::new("longitude", (0..lon).map(|i| 0.25 * i as f64).collect()),
            ],
        );
        let coord: Vec<f64> = (0..rows).map(|row| row as f64).collect();
        let make = |seed: u32, nulls: bool| {
            let values: Vec<Option<f32>> = (0..rows * lat * lon)
                .map(|i| {
                    let v = ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16_777_216.0;
                    (!nulls || i % 97 != 0).then_some(v * 20.0 - 10.0)
                })
                .collect();
            meta.batch(&coord, values).expect("batch")
        };
        let (a, b, with_nulls) = (make(1, false), make(2, false), make(3, true));
        let bytes = rows * lat * lon * 4;
        let time = |label: &str, f: &dyn Fn() -> RecordBatch| {
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let start = Instant::now();
                let result = f();
                best = best.min(start.elapsed().as_secs_f64());
                assert!(result.num_rows() > 0);
            }
            println!(
                "{label:<40} {:>8.2} ms  {:>6.2} GB/s of input",
                best * 1e3,
                bytes as f64 / best / 1e9
            );
        };
        time("grid_binary hypot (f32, no nulls)", &|| {
            run("grid_binary", vec![data(&a), data(&b), OpValue::from("hypot")]).expect("hypot")
        });
        time("grid_binary hypot (f32, 1% nulls)", &|| {
            run("grid_binary", vec![data(&a), data(&with_nulls), OpValue::from("hypot")]).expect("hypot")
        });
        time("grid_binary add (f32)", &|| {
            run("grid_binary", vec![data(&a), data(&b), OpValue::from("add")]).expect("add")
        });
        time("grid_map mod 360 (f32)", &|| {
            run("grid_map", vec![data(&a), OpValue::from("mod"), OpValue::from(360_i64)]).expect("mod")
        });
        time("grid_partial moments (no nulls)", &|| {
            run("grid_partial", vec![data(&a)]).expect("partial")
        });
        time("grid_partial moments (1% nulls)", &|| {
            run("grid_partial", vec![data(&with_nulls)]).expect("partial")
        });
        time("grid_partial all (no nulls)", &|| {
            run("grid_partial", vec![data(&a), OpValue::from("all")]).expect("partial")
        });
        time("regrid 0.25° → 1° (f32)", &|| {
            run(
                "regrid",
                vec![data(&a), OpValue::from("-90:90:1"), OpValue::from("0:359:1")],
            )
            .expect("regrid")
        });
    }

    /// `concat` joins gridded chunks: same schema (coordinate, fixed-size list), the
    /// grid metadata kept, the values one row after another.
    #[test]
    fn concat_joins_gridded_chunks() {
        let first = f32_grid("u", &[0.0, 1.0], (0..12).map(|i| Some(i as f32)).collect());
        let second = f32_grid(
            "u",
            &[2.0],
            vec![Some(12.0), None, Some(14.0), Some(15.0), Some(16.0), Some(17.0)],
        );
        let joined = run("concat", vec![data(&first), data(&second.slice(0, 1))]).expect("concat");
        let grid = GridBatch::new(&joined).expect("still gridded");
        assert_eq!(grid.meta(), &meta("u"));
        assert_eq!(grid.row_coord(), &[0.0, 1.0, 2.0]);
        let values = options(&joined);
        assert_eq!(values.len(), 18);
        assert_eq!(values[11], Some(11.0));
        assert_eq!(values[12], Some(12.0));
        assert_eq!(values[13], None);
        // A sliced part (offset into the values) and a list argument.
        let sliced = run(
            "concat",
            vec![OpValue::List(vec![OpValue::Data(first.slice(1, 1)), data(&second)])],
        )
        .expect("concat");
        assert_eq!(GridBatch::new(&sliced).expect("grid").row_coord(), &[1.0, 2.0]);
        assert_eq!(options(&sliced)[..2], [Some(6.0), Some(7.0)]);
        // Different value types are refused.
        let doubles = f64_grid("u", &[3.0], vec![Some(0.0); 6]);
        assert!(run("concat", vec![data(&first), data(&doubles)]).is_err());
    }
}
