//! The operation catalogue (SPEC §5): what a worker can run for a task.
//!
//! A task names an operation and gives it arguments; the worker resolves the
//! arguments (other tasks' results and chunks of published datasets arrive as
//! [`OpValue::Data`], literals as [`OpValue::Literal`], lists as [`OpValue::List`]),
//! and [`OpRegistry::run`] checks them against the operation's [`OpSignature`] and
//! runs it. **Every result is one Arrow [`RecordBatch`]**; a scalar result is a 1-row
//! batch with one column named [`VALUE_COLUMN`] (`value`). Operations never panic on
//! bad input: wrong kinds, missing columns, bad paths, malformed files and byte
//! ranges past the end are [`OpError`]s naming the operation, the argument and the
//! column or file (and a panic inside an operation is caught and reported as
//! [`OpError::Panicked`]).
//!
//! ```
//! use cairn_client::Literal;
//! use cairn_worker::ops::{OpContext, OpRegistry, OpValue};
//!
//! let registry = OpRegistry::builtins();
//! let context = OpContext::new("inc-1");
//! let one = registry.run("inc", vec![OpValue::Literal(Literal::Int(41))], &context)?;
//! let total = registry.run("sum", vec![OpValue::Data(one.clone()), OpValue::Data(one)], &context)?;
//! assert_eq!(total.num_rows(), 1);
//! assert_eq!(total.schema().field(0).name(), "value");
//!
//! let error = registry.run("inc", vec![OpValue::Literal(Literal::Str("x".into()))], &context).expect_err("an error");
//! assert_eq!(error.to_string(), "inc: argument x must be int or data, given string");
//! # Ok::<(), cairn_worker::ops::OpError>(())
//! ```
//!
//! # Signatures and arguments
//!
//! Parameters are matched by position. An optional parameter may be left out or
//! given as a null literal. A variadic operation's last parameter repeats (`parts…`
//! below); in that position a list of data counts as its items, so a tree-reduction
//! step may pass its inputs either way. Kinds: `data` is an Arrow batch; `int`,
//! `number` (int or float), `str`, `bool` are literals; `int or data` either;
//! `any` anything.
//!
//! # Built-in operations
//!
//! | operation | parameters | result |
//! |---|---|---|
//! | `inc` | `x: int or data` | an int: a `value` batch holding `x + 1`; data: `x` with 1 added to every numeric column |
//! | `sleep` | `x: any, ms: int` | waits `ms` milliseconds (cancellable, checked every 10 ms), then returns `x` (a literal as a `value` batch, a list of data concatenated) |
//! | `read_csv` | `path: str, start: int?, end: int?` | the lines of the CSV file that start in the byte range `[start, end)` (default: the whole file); `path` is a local path or an `s3://`, `http(s)://` URL, read by byte range; see [`io`] |
//! | `read_parquet` | `path: str, row_group: int?` | one row group of a Parquet file, or all of them (a remote one: its footer and those column chunks only) |
//! | `read_arrow` | `path: str, batch: int?` | one record batch of an Arrow IPC file, or all of them concatenated (a remote one: its footer and those batches only) |
//! | `read_netcdf` | `path: str, variable: str, dim: str?, start: int?, end: int?` | indexes `[start, end)` (default: all) along `dim` (default: the unlimited dimension, else `time`, else the first) of a NetCDF variable, as a gridded chunk ([`cairn_client::grid`]); a local or mounted path |
//! | `filter` | `x: data, predicate: str` | the rows of `x` where the [`cairn_client::Expr`] (JSON) is true (null drops the row) |
//! | `with_columns` | `x: data, exprs: str` | `x` with columns added or replaced: named expressions as JSON ([`cairn_client::named_exprs_to_json`]), each evaluated on `x` |
//! | `select` | `x: data, columns: str` | the named columns of `x`, in that order (comma-separated or a JSON list) |
//! | `binary` | `a: data, b: data, op: str` | `a.col op b.col` for every column numeric in both aligned batches (same rows, same column names); other columns from `a`. `op`: `add sub mul div rem pow hypot atan2 min max` |
//! | `binary_scalar` | `a: data, value: number, op: str` | `a.col op value` for every numeric column of `a`, same `op`s |
//! | `agg_partial` | `x: data, columns: str?` | a 1-row partial state per numeric column (or the named ones): `<col>.count`, `.sum`, `.mean`, `.m2`, `.min`, `.max` |
//! | `agg_combine` | `parts: data…` | the partial states combined (Chan et al.), same schema, 1 row |
//! | `agg_finalize` | `part: data, stat: str, ddof: int?` | 1 row, one column per original column: `sum count mean var std min max` (`var1`/`std1`: `ddof` 1; default 0) |
//! | `sum` | `parts: data…` | 1 row: the sum of each numeric column over all parts (integers as `Int64`, overflow is an error; floats as `Float64`) |
//! | `count` | `parts: data…` | 1 row: the non-null values of each column; a part that is itself a `count` result (schema metadata [`COUNT_MARKER`]) adds its counts, so `count` of counts is a total |
//! | `min`, `max` | `parts: data…` | 1 row: the least / greatest value of each numeric column (`Int64` or `Float64`; null if none) |
//! | `concat` | `parts: data…` | the parts one after another (same column names and types) |
//! | `head` | `x: data, n: int` | the first `n` rows |
//! | `slice` | `x: data, offset: int, length: int` | `length` rows from `offset` (clamped to the rows there are) |
//! | `grid_binary` | `a: data, b: data, op: str, name: str?` | two aligned gridded chunks (same grid, same row coordinates) cell by cell: `add sub mul div pow hypot atan2 min max` (`atan2(a, b)`: `a` as y, radians); variable `name` (default `<op>_<a>_<b>`); `Float32` if both are; a null on either side gives null |
//! | `grid_map` | `x: data, op: str, value: number?, name: str?` | a function of each value of a gridded chunk: with `value` `add sub rsub mul div pow mod` (`rsub`: value − x; `mod`: Euclidean, in `[0, abs(value))`), without `neg abs sqrt exp log degrees radians` |
//! | `grid_sel` | `x: data, dim: str, lo: number, hi: number` | the rows (row dimension) or indexes (inner dimension) of a gridded chunk whose coordinate is within `[lo, hi]` |
//! | `grid_partial` | `x: data, stats: str?` | the 1-row partial state of a reduction along the row dimension, per grid cell: `stats` `moments` (default: count, mean, m2), `minmax` or `all` (layout in `grid_reduce.rs`) |
//! | `grid_combine` | `parts: data…` | partial states of the same stats on aligned grids combined (Chan et al.) |
//! | `grid_finalize` | `part: data, stat: str, ddof: int?` | a 1-row gridded chunk (`Float64`, coordinate the middle of the rows' range): `count mean var std min max sum` per cell, nulls skipped; `cell_methods` and `units` updated |
//! | `regrid` | `x: data, lats: str, lons: str` | each row bilinearly interpolated onto target latitudes/longitudes (JSON arrays or `start:stop:step`); longitudes wrap; outside the source grid is null |
//!
//! "Numeric" means Arrow's integer and float types; other columns pass through the
//! element-wise operations unchanged and are left out of the reductions.
//!
//! # Layout
//!
//! - this file: [`OpValue`], [`OpContext`], the [`Operation`] trait.
//! - [`registry`]: [`OpRegistry`] — names to operations, signature checks, panics caught.
//! - [`error`]: the error type, [`OpError`].
//! - `args.rs`: reading arguments by position; `Builtin`, the shared impl of the built-ins.
//! - `batch.rs`: numeric types, `value` batches, column lookup, strict casts.
//! - `expr_eval.rs`: evaluating a [`cairn_client::Expr`] with Arrow kernels.
//! - `primitives.rs`: `inc`, `sleep`.
//! - [`io`]: `read_csv`, `read_parquet`, `read_arrow`.
//! - `netcdf.rs`: `read_netcdf`.
//! - `elementwise.rs`: `filter`, `with_columns`, `binary`, `binary_scalar`.
//! - `reduce.rs`: `agg_partial`, `agg_combine`, `agg_finalize`, `sum`, `count`, `min`, `max`.
//! - `shape.rs`: `select`, `concat`, `head`, `slice`.
//! - `grid.rs`: gridded chunks ([`cairn_client::grid`]): `grid_binary`, `grid_map`,
//!   `grid_sel`, and the helpers the gridded operations share.
//! - `grid_reduce.rs`: `grid_partial`, `grid_combine`, `grid_finalize` (and the
//!   partial state's layout).
//! - `regrid.rs`: `regrid`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use cairn_client::{Literal, OpSignature};

mod args;
mod batch;
mod elementwise;
pub mod error;
mod expr_eval;
mod grid;
mod grid_reduce;
pub mod io;
mod netcdf;
mod primitives;
mod reduce;
pub mod registry;
mod regrid;
mod shape;

pub use batch::VALUE_COLUMN;
pub use error::OpError;
pub use io::CSV_SCHEMA_SAMPLE_BYTES;
pub use reduce::COUNT_MARKER;
pub use registry::OpRegistry;

/// A resolved argument of a task.
///
/// ```
/// use cairn_worker::ops::OpValue;
/// let value = OpValue::from(3_i64);
/// assert_eq!(value.kind_name(), "int");
/// assert_eq!(OpValue::List(vec![value]).kind_name(), "list of 1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum OpValue {
    /// Arrow data: another task's result or a chunk of a published dataset.
    Data(RecordBatch),
    /// A literal given in the graph.
    Literal(Literal),
    /// Several values as one argument (e.g. the inputs of a tree-reduction step).
    List(Vec<OpValue>),
}

impl OpValue {
    /// The value's kind as users read it in errors: `data (3 rows)`, `int`, `list of 2`.
    ///
    /// ```
    /// use cairn_client::Literal;
    /// use cairn_worker::ops::OpValue;
    /// assert_eq!(OpValue::Literal(Literal::Str("x".into())).kind_name(), "string");
    /// ```
    pub fn kind_name(&self) -> String {
        match self {
            OpValue::Data(batch) => format!("data ({} rows)", batch.num_rows()),
            OpValue::Literal(literal) => literal.kind_name().to_string(),
            OpValue::List(items) => format!("list of {}", items.len()),
        }
    }
}

impl From<RecordBatch> for OpValue {
    fn from(batch: RecordBatch) -> OpValue {
        OpValue::Data(batch)
    }
}

impl From<Literal> for OpValue {
    fn from(literal: Literal) -> OpValue {
        OpValue::Literal(literal)
    }
}

impl From<i64> for OpValue {
    fn from(value: i64) -> OpValue {
        OpValue::Literal(Literal::Int(value))
    }
}

impl From<f64> for OpValue {
    fn from(value: f64) -> OpValue {
        OpValue::Literal(Literal::Float(value))
    }
}

impl From<&str> for OpValue {
    fn from(value: &str) -> OpValue {
        OpValue::Literal(Literal::Str(value.to_string()))
    }
}

impl From<Vec<OpValue>> for OpValue {
    fn from(items: Vec<OpValue>) -> OpValue {
        OpValue::List(items)
    }
}

/// What an operation knows about the task it runs for.
///
/// ```
/// use cairn_worker::ops::OpContext;
/// let context = OpContext::new("read-0");
/// assert!(context.check_cancelled("read_csv").is_ok());
/// context.cancel();
/// assert!(context.check_cancelled("read_csv").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct OpContext {
    /// The task's key, for errors and logs.
    pub task_key: String,
    /// Set when the task is cancelled (its graph was released, or the scheduler
    /// moved it); long operations (`sleep`, the readers) check it and stop with
    /// [`OpError::Cancelled`]. Shared with whoever may cancel the task.
    pub cancelled: Arc<AtomicBool>,
}

impl OpContext {
    /// A context for task `task_key`, not cancelled.
    ///
    /// ```
    /// assert!(!cairn_worker::ops::OpContext::new("t").is_cancelled());
    /// ```
    pub fn new(task_key: impl Into<String>) -> OpContext {
        OpContext {
            task_key: task_key.into(),
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the task has been cancelled.
    ///
    /// ```
    /// let context = cairn_worker::ops::OpContext::new("t");
    /// context.cancel();
    /// assert!(context.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Cancels the task (every clone of this context sees it).
    ///
    /// ```
    /// let context = cairn_worker::ops::OpContext::new("t");
    /// let seen_by_the_operation = context.clone();
    /// context.cancel();
    /// assert!(seen_by_the_operation.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// `Err(OpError::Cancelled)` if the task has been cancelled: what a long
    /// operation calls between steps.
    ///
    /// ```
    /// let context = cairn_worker::ops::OpContext::new("t");
    /// assert!(context.check_cancelled("sleep").is_ok());
    /// ```
    pub fn check_cancelled(&self, op: &str) -> Result<(), OpError> {
        if self.is_cancelled() {
            return Err(OpError::Cancelled {
                op: op.to_string(),
                task_key: self.task_key.clone(),
            });
        }
        Ok(())
    }
}

/// One operation of the catalogue.
///
/// Implement it to add an operation to an [`OpRegistry`]; the registry checks the
/// arguments against [`Operation::signature`] before calling [`Operation::run`].
///
/// ```
/// use arrow::record_batch::RecordBatch;
/// use cairn_client::{OpSignature, ParamKind, ParamSpec};
/// use cairn_worker::ops::{OpContext, OpError, OpRegistry, OpValue, Operation};
///
/// /// Returns its argument unchanged.
/// struct Identity;
///
/// impl Operation for Identity {
///     fn signature(&self) -> OpSignature {
///         OpSignature { name: "identity".into(), params: vec![ParamSpec::required("x", ParamKind::Data)], variadic: false }
///     }
///     fn run(&self, mut args: Vec<OpValue>, _context: &OpContext) -> Result<RecordBatch, OpError> {
///         match args.pop() {
///             Some(OpValue::Data(batch)) => Ok(batch),
///             _ => unreachable!("the registry checked the signature"),
///         }
///     }
/// }
///
/// let mut registry = OpRegistry::empty();
/// registry.register(Identity)?;
/// assert!(registry.run("identity", vec![OpValue::from(1_i64)], &OpContext::new("t")).is_err());
/// # Ok::<(), OpError>(())
/// ```
pub trait Operation: Send + Sync + 'static {
    /// The operation's name and parameters, advertised to the schedulers so they can
    /// refuse a wrong argument before anything runs.
    fn signature(&self) -> OpSignature;

    /// Runs the operation on resolved arguments (already checked against the
    /// signature when called through [`OpRegistry::run`]).
    fn run(&self, args: Vec<OpValue>, context: &OpContext) -> Result<RecordBatch, OpError>;

    /// Whether the operation only computes on its arguments (no file, network or
    /// waiting) in time about proportional to their size. A worker runs such an
    /// operation on small inputs already in its memory on the thread that received the
    /// assignment: handing it to a task thread and its report back would cost more
    /// than the work. `false` unless the operation says so.
    fn is_light(&self) -> bool {
        false
    }
}
