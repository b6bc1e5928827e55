//! [`OpError`]: why an operation did not produce its batch.

use std::path::PathBuf;

use arrow::error::ArrowError;
use cairn_client::ExprError;

/// Why an operation failed. Every message names the operation and, where there is
/// one, the argument, column or file at fault, because it reaches the user who
/// submitted the graph, far from the worker that ran the task.
///
/// Only [`OpError::Cancelled`] and [`OpError::Io`] may succeed on a retry; everything
/// else is a property of the graph or the data ([`OpError::is_retryable`]).
///
/// ```
/// use cairn_worker::ops::OpError;
/// let error = OpError::InvalidArgument {
///     op: "head".to_string(),
///     param: "n".to_string(),
///     reason: "must not be negative, given -1".to_string(),
/// };
/// assert_eq!(error.to_string(), "head: argument n: must not be negative, given -1");
/// assert!(!error.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// No operation of this name is registered.
    #[error("unknown operation {name:?}")]
    UnknownOperation {
        /// The name asked for.
        name: String,
    },
    /// [`crate::ops::OpRegistry::register`] was given a name already taken.
    #[error("operation {name:?} is already registered")]
    DuplicateOperation {
        /// The name registered twice.
        name: String,
    },
    /// An operation's signature breaks the rules (a required parameter after an
    /// optional one, variadic without parameters, an empty name).
    #[error("operation {op:?} has an invalid signature: {reason}")]
    InvalidSignature {
        /// The operation.
        op: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Too few or too many arguments.
    #[error("{op}: takes {expected}, given {given} argument(s)")]
    WrongArgumentCount {
        /// The operation.
        op: String,
        /// What it takes, e.g. `2 to 3 arguments (path, start, end)`.
        expected: String,
        /// How many it was given.
        given: usize,
    },
    /// An argument of the wrong kind (a string where data is needed…).
    #[error("{op}: argument {param} must be {expected}, given {given}")]
    WrongArgumentKind {
        /// The operation.
        op: String,
        /// The parameter's name (with its position for variadic ones: `parts[2]`).
        param: String,
        /// The kind the parameter takes.
        expected: String,
        /// The kind given.
        given: String,
    },
    /// An argument of the right kind with a value the operation cannot use (a
    /// negative count, an unknown op name, a byte range past the end of a file…).
    #[error("{op}: argument {param}: {reason}")]
    InvalidArgument {
        /// The operation.
        op: String,
        /// The parameter's name.
        param: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// An argument that should be an expression (JSON) is not one.
    #[error("{op}: argument {param}: {source}")]
    InvalidExpression {
        /// The operation.
        op: String,
        /// The parameter's name.
        param: String,
        /// Where in the JSON the problem is.
        source: ExprError,
    },
    /// An expression could not be evaluated on the data (a missing column, types
    /// that do not combine, an integer overflow…).
    #[error("{op}: argument {param}: cannot evaluate {expr}: {reason}")]
    Evaluation {
        /// The operation.
        op: String,
        /// The parameter holding the expression.
        param: String,
        /// The (sub-)expression that failed, as text.
        expr: String,
        /// Why.
        reason: String,
    },
    /// A column named by an argument is not in the data.
    #[error("{op}: argument {param} has no column {column:?} (its columns: {available})")]
    MissingColumn {
        /// The operation.
        op: String,
        /// The data argument searched.
        param: String,
        /// The column asked for.
        column: String,
        /// The columns that are there, comma-separated.
        available: String,
    },
    /// A column of a type the operation cannot use.
    #[error("{op}: argument {param}: column {column:?} is {found}, expected {expected}")]
    ColumnType {
        /// The operation.
        op: String,
        /// The data argument.
        param: String,
        /// The column.
        column: String,
        /// Its Arrow type.
        found: String,
        /// What the operation needs.
        expected: String,
    },
    /// Data arguments that must match (same columns, same row count, same schema) do
    /// not.
    #[error("{op}: {params} do not match: {reason}")]
    Mismatch {
        /// The operation.
        op: String,
        /// The arguments compared, e.g. `a and b` or `parts[0] and parts[3]`.
        params: String,
        /// How they differ.
        reason: String,
    },
    /// A file could not be opened or read (missing, permissions, I/O error).
    #[error("{op}: cannot read {}: {source}", .path.display())]
    Io {
        /// The operation.
        op: String,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file was read but is not valid in its format (bad CSV values, not a Parquet
    /// or Arrow IPC file, corrupt pages…).
    #[error("{op}: {} is not a valid {format} file: {reason}", .path.display())]
    MalformedFile {
        /// The operation.
        op: String,
        /// The file.
        path: PathBuf,
        /// `CSV`, `Parquet`, `Arrow IPC`.
        format: &'static str,
        /// The reader's description, with the byte range or row group where known.
        reason: String,
    },
    /// An Arrow kernel refused (overflow, division by zero, a cast that does not fit).
    #[error("{op}: {context}: {source}")]
    Arrow {
        /// The operation.
        op: String,
        /// What was being computed, naming the argument and column.
        context: String,
        /// Arrow's error.
        source: ArrowError,
    },
    /// The task was cancelled while the operation ran.
    #[error("{op}: task {task_key} was cancelled")]
    Cancelled {
        /// The operation.
        op: String,
        /// The task.
        task_key: String,
    },
    /// The operation panicked: a bug in it, reported as an error so that one bad
    /// task does not take the worker down.
    #[error("{op}: panicked (a bug in the operation, please report it): {message}")]
    Panicked {
        /// The operation.
        op: String,
        /// The panic's message.
        message: String,
    },
}

impl OpError {
    /// Whether running the task again might succeed: an I/O error (a file system
    /// hiccup) or a cancellation. Every other error is a property of the graph or
    /// the data and would recur.
    ///
    /// ```
    /// use cairn_worker::ops::OpError;
    /// let cancelled = OpError::Cancelled { op: "sleep".to_string(), task_key: "t1".to_string() };
    /// assert!(cancelled.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, OpError::Io { .. } | OpError::Cancelled { .. })
    }
}
