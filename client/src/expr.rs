//! [`Expr`]: a small, serialisable expression over the columns of one Arrow batch —
//! the predicate of a `filter` task and the new columns of a `with_columns` task. The
//! client builds it, sends it as JSON inside a string literal, and a worker evaluates
//! it element-wise with Arrow's compute kernels (`cairn_worker::ops`).
//!
//! ```
//! use cairn_client::{col, lit, Expr};
//!
//! // Keep the rows whose point lies within 10 of the origin and has a positive weight.
//! let predicate = col("x").hypot(col("y")).lt(10).and(col("weight").gt(0.0));
//! let json = predicate.to_json();
//! assert_eq!(Expr::from_json(&json)?, predicate);
//! assert_eq!(predicate.columns(), ["x", "y", "weight"]);
//! assert_eq!(predicate.to_string(), "((hypot(x, y) < 10) and (weight > 0.0))");
//! # Ok::<(), cairn_client::ExprError>(())
//! ```
//!
//! # JSON format
//!
//! The format is stable: workers of one version read what clients of another write.
//! Every expression is a JSON object with exactly one key naming its kind:
//!
//! | expression | JSON |
//! |---|---|
//! | column | `{"column": "x"}` |
//! | literal | `{"literal": 3}` (see below) |
//! | binary | `{"binary": {"op": "lt", "left": <expr>, "right": <expr>}}` |
//! | unary | `{"unary": {"op": "sqrt", "input": <expr>}}` |
//! | cast | `{"cast": {"input": <expr>, "to": "float64"}}` |
//!
//! Binary operators ([`BinaryOp`]): `add sub mul div rem eq ne lt le gt ge and or pow
//! hypot atan2`. Unary operators ([`UnaryOp`]): `neg not is_null is_not_null abs sqrt
//! exp ln log10 sin cos tan floor ceil round`. Cast targets ([`CastType`]): `int64
//! float64 bool utf8`.
//!
//! A literal ([`Literal`]) is written as plain JSON where JSON can say it: `null`,
//! `true`/`false`, an integer (`3`, an `Int`), a number with a fraction or exponent
//! (`3.0`, `1e9`, a `Float`), a string (`"Alice"`, a `Str`). What plain JSON cannot say
//! is an object: `{"float": "NaN"}` (also `"Infinity"`, `"-Infinity"`, or any number,
//! for an explicit float), `{"int": 3}`, `{"bytes": [0, 255]}`.
//!
//! Unknown keys are errors, not ignored, so a typo never changes an expression's meaning.
//!
//! Several named expressions (the columns of `with_columns`) are a JSON array of
//! `{"name": …, "expr": …}` objects ([`named_exprs_to_json`]) or, equivalently, one
//! object mapping each name to its expression, in order ([`named_exprs_from_json`]).
//!
//! # Layout
//!
//! - [`Expr`], its builders ([`col`], [`lit`], the methods and `+ - * / %`, unary `-`
//!   and `!`), [`Expr::columns`], [`Expr::to_json`] / [`Expr::from_json`].
//! - [`BinaryOp`], [`UnaryOp`], [`CastType`]: the operators and their wire names.
//! - [`IntoLiteral`]: what [`lit`] accepts.
//! - [`named_exprs_to_json`], [`named_exprs_from_json`]: lists of named expressions.
//! - [`ExprError`]: why a JSON text is not an expression.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value as Json};

use crate::Literal;

/// An expression over the columns of one batch, evaluated element-wise.
///
/// Build one with [`col`], [`lit`] and the operator methods; send it with
/// [`Expr::to_json`]; read it back with [`Expr::from_json`].
///
/// ```
/// use cairn_client::{col, lit, Expr};
/// let ratio = (col("a") + 1) / col("b").cast(cairn_client::CastType::Float64);
/// assert_eq!(Expr::from_json(&ratio.to_json())?, ratio);
/// # Ok::<(), cairn_client::ExprError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The column of this name.
    Column(String),
    /// The same value in every row.
    Literal(Literal),
    /// `left op right`, row by row.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
    },
    /// `op(input)`, row by row.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        input: Box<Expr>,
    },
    /// `input` converted to another type (Arrow's `cast` kernel; a value that does not
    /// fit is an error, never a silent wrap).
    Cast {
        /// The value to convert.
        input: Box<Expr>,
        /// The type to convert to.
        to: CastType,
    },
}

/// A binary operator of [`Expr::Binary`].
///
/// Arithmetic (`add sub mul div rem`) keeps the operands' type when they agree and
/// widens to `int64`/`float64` when they do not; integer overflow and integer division
/// by zero are errors. `pow`, `hypot` and `atan2` always give `float64`. Comparisons
/// give booleans; `and`/`or` follow SQL's three-valued logic.
///
/// ```
/// use cairn_client::BinaryOp;
/// assert_eq!(BinaryOp::parse("hypot"), Some(BinaryOp::Hypot));
/// assert_eq!(BinaryOp::Le.name(), "le");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (integer division for integers).
    Div,
    /// `a % b`, the remainder with the sign of `a`.
    Rem,
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
    /// Logical and (SQL: `false and null` is `false`).
    And,
    /// Logical or (SQL: `true or null` is `true`).
    Or,
    /// `a` to the power `b`, as `float64`.
    Pow,
    /// `sqrt(a² + b²)` without intermediate overflow, as `float64`.
    Hypot,
    /// The angle of the point `(b, a)`, i.e. `atan2(y = a, x = b)`, as `float64`.
    Atan2,
}

impl BinaryOp {
    /// Every binary operator, in the order of the documentation.
    ///
    /// ```
    /// assert_eq!(cairn_client::BinaryOp::ALL.len(), 16);
    /// ```
    pub const ALL: [BinaryOp; 16] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Pow,
        BinaryOp::Hypot,
        BinaryOp::Atan2,
    ];

    /// The operator's name in JSON.
    ///
    /// ```
    /// assert_eq!(cairn_client::BinaryOp::Atan2.name(), "atan2");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Rem => "rem",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Pow => "pow",
            BinaryOp::Hypot => "hypot",
            BinaryOp::Atan2 => "atan2",
        }
    }

    /// Parses [`BinaryOp::name`].
    ///
    /// ```
    /// assert_eq!(cairn_client::BinaryOp::parse("plus"), None);
    /// ```
    pub fn parse(name: &str) -> Option<BinaryOp> {
        BinaryOp::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The infix symbol used by [`Expr`]'s `Display`, or `None` for the operators
    /// shown as functions (`pow`, `hypot`, `atan2`).
    ///
    /// ```
    /// use cairn_client::BinaryOp;
    /// assert_eq!(BinaryOp::Ne.symbol(), Some("!="));
    /// assert_eq!(BinaryOp::Hypot.symbol(), None);
    /// ```
    pub fn symbol(self) -> Option<&'static str> {
        match self {
            BinaryOp::Add => Some("+"),
            BinaryOp::Sub => Some("-"),
            BinaryOp::Mul => Some("*"),
            BinaryOp::Div => Some("/"),
            BinaryOp::Rem => Some("%"),
            BinaryOp::Eq => Some("=="),
            BinaryOp::Ne => Some("!="),
            BinaryOp::Lt => Some("<"),
            BinaryOp::Le => Some("<="),
            BinaryOp::Gt => Some(">"),
            BinaryOp::Ge => Some(">="),
            BinaryOp::And => Some("and"),
            BinaryOp::Or => Some("or"),
            BinaryOp::Pow | BinaryOp::Hypot | BinaryOp::Atan2 => None,
        }
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A unary operator of [`Expr::Unary`].
///
/// `neg`, `abs`, `floor`, `ceil` and `round` keep integers as integers (`floor` etc.
/// are then the identity); `sqrt exp ln log10 sin cos tan` always give `float64`
/// (`sqrt(-1)` is NaN, as in IEEE 754); `not` needs a boolean; `is_null` and
/// `is_not_null` take anything and are never null themselves.
///
/// ```
/// use cairn_client::UnaryOp;
/// assert_eq!(UnaryOp::parse("log10"), Some(UnaryOp::Log10));
/// assert_eq!(UnaryOp::IsNotNull.name(), "is_not_null");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    /// `-a` (overflow of the most negative integer is an error).
    Neg,
    /// Logical not (`not null` is null).
    Not,
    /// Whether the value is null.
    IsNull,
    /// Whether the value is not null.
    IsNotNull,
    /// `|a|`.
    Abs,
    /// The square root.
    Sqrt,
    /// `e^a`.
    Exp,
    /// The natural logarithm.
    Ln,
    /// The base-10 logarithm.
    Log10,
    /// The sine (radians).
    Sin,
    /// The cosine (radians).
    Cos,
    /// The tangent (radians).
    Tan,
    /// The largest integer not above `a`.
    Floor,
    /// The smallest integer not below `a`.
    Ceil,
    /// The nearest integer, halves away from zero.
    Round,
}

impl UnaryOp {
    /// Every unary operator, in the order of the documentation.
    ///
    /// ```
    /// assert_eq!(cairn_client::UnaryOp::ALL.len(), 15);
    /// ```
    pub const ALL: [UnaryOp; 15] = [
        UnaryOp::Neg,
        UnaryOp::Not,
        UnaryOp::IsNull,
        UnaryOp::IsNotNull,
        UnaryOp::Abs,
        UnaryOp::Sqrt,
        UnaryOp::Exp,
        UnaryOp::Ln,
        UnaryOp::Log10,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tan,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
    ];

    /// The operator's name in JSON.
    ///
    /// ```
    /// assert_eq!(cairn_client::UnaryOp::Sqrt.name(), "sqrt");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Not => "not",
            UnaryOp::IsNull => "is_null",
            UnaryOp::IsNotNull => "is_not_null",
            UnaryOp::Abs => "abs",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Exp => "exp",
            UnaryOp::Ln => "ln",
            UnaryOp::Log10 => "log10",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tan => "tan",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
        }
    }

    /// Parses [`UnaryOp::name`].
    ///
    /// ```
    /// assert_eq!(cairn_client::UnaryOp::parse("square"), None);
    /// ```
    pub fn parse(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for UnaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The target type of [`Expr::Cast`].
///
/// ```
/// use cairn_client::CastType;
/// assert_eq!(CastType::parse("float64"), Some(CastType::Float64));
/// assert_eq!(CastType::Utf8.name(), "utf8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CastType {
    /// 64-bit signed integers (Arrow `Int64`).
    Int64,
    /// 64-bit floats (Arrow `Float64`).
    Float64,
    /// Booleans (Arrow `Boolean`).
    Bool,
    /// UTF-8 text (Arrow `Utf8`).
    Utf8,
}

impl CastType {
    /// Every cast target.
    ///
    /// ```
    /// assert_eq!(cairn_client::CastType::ALL.len(), 4);
    /// ```
    pub const ALL: [CastType; 4] = [CastType::Int64, CastType::Float64, CastType::Bool, CastType::Utf8];

    /// The type's name in JSON.
    ///
    /// ```
    /// assert_eq!(cairn_client::CastType::Int64.name(), "int64");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            CastType::Int64 => "int64",
            CastType::Float64 => "float64",
            CastType::Bool => "bool",
            CastType::Utf8 => "utf8",
        }
    }

    /// Parses [`CastType::name`].
    ///
    /// ```
    /// assert_eq!(cairn_client::CastType::parse("double"), None);
    /// ```
    pub fn parse(name: &str) -> Option<CastType> {
        CastType::ALL.into_iter().find(|to| to.name() == name)
    }
}

impl fmt::Display for CastType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a text is not an [`Expr`] (or not a list of named expressions).
///
/// ```
/// let error = cairn_client::Expr::from_json(r#"{"column": 3}"#).expect_err("an error");
/// assert_eq!(error.to_string(), "malformed expression at $.column: expected a string, found 3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The text is not JSON at all (or nests deeper than `serde_json` allows, 128).
    #[error("expression is not valid JSON: {message}")]
    Json {
        /// `serde_json`'s description, with line and column.
        message: String,
    },
    /// The text is JSON but not an expression.
    #[error("malformed expression at {path}: {reason}")]
    Malformed {
        /// Where in the JSON document, as `$.binary.left.column`, `$[2].expr`…
        path: String,
        /// What is wrong there.
        reason: String,
    },
}

/// The column `name`.
///
/// ```
/// let x = cairn_client::col("x");
/// assert_eq!(x, cairn_client::Expr::Column("x".to_string()));
/// ```
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A literal: the same value in every row. Takes integers, floats, booleans, text, or
/// a [`Literal`].
///
/// ```
/// use cairn_client::{lit, Expr, Literal};
/// assert_eq!(lit(3), Expr::Literal(Literal::Int(3)));
/// assert_eq!(lit(2.5), Expr::Literal(Literal::Float(2.5)));
/// assert_eq!(lit("Alice"), Expr::Literal(Literal::Str("Alice".to_string())));
/// ```
pub fn lit(value: impl IntoLiteral) -> Expr {
    Expr::Literal(value.into_literal())
}

/// What [`lit`] accepts: Rust values that have a [`Literal`] form.
///
/// (A trait of its own rather than `Into<Literal>` so that `lit(3)`, an `i32`, works.)
///
/// ```
/// use cairn_client::{IntoLiteral, Literal};
/// assert_eq!(7_u32.into_literal(), Literal::Int(7));
/// ```
pub trait IntoLiteral {
    /// The literal form of `self`.
    fn into_literal(self) -> Literal;
}

impl IntoLiteral for Literal {
    fn into_literal(self) -> Literal {
        self
    }
}

impl IntoLiteral for i64 {
    fn into_literal(self) -> Literal {
        Literal::Int(self)
    }
}

impl IntoLiteral for i32 {
    fn into_literal(self) -> Literal {
        Literal::Int(i64::from(self))
    }
}

impl IntoLiteral for u32 {
    fn into_literal(self) -> Literal {
        Literal::Int(i64::from(self))
    }
}

impl IntoLiteral for f64 {
    fn into_literal(self) -> Literal {
        Literal::Float(self)
    }
}

impl IntoLiteral for f32 {
    fn into_literal(self) -> Literal {
        Literal::Float(f64::from(self))
    }
}

impl IntoLiteral for bool {
    fn into_literal(self) -> Literal {
        Literal::Bool(self)
    }
}

impl IntoLiteral for &str {
    fn into_literal(self) -> Literal {
        Literal::Str(self.to_string())
    }
}

impl IntoLiteral for String {
    fn into_literal(self) -> Literal {
        Literal::Str(self)
    }
}

/// Numbers and booleans stand for literals wherever an [`Expr`] is expected, so
/// `col("x").lt(3)` means `col("x").lt(lit(3))`. (Text does not: it could as well
/// mean a column; write [`lit`] or [`col`].)
macro_rules! literal_into_expr {
    ($($rust_type:ty),*) => {$(
        impl From<$rust_type> for Expr {
            fn from(value: $rust_type) -> Expr {
                lit(value)
            }
        }
    )*};
}

literal_into_expr!(i64, i32, u32, f64, f32, bool, Literal);

/// Generates the builder methods of one binary operator.
///
/// `add`, `sub`, `mul`, `div`, `rem` (and unary `neg`, `not`) share their names with
/// the `std::ops` traits, which [`Expr`] implements too; the inherent methods let
/// `col("x").add(1)` work without importing the trait, hence the `allow`.
macro_rules! binary_builders {
    ($($(#[$doc:meta])* $method:ident => $op:ident;)*) => {$(
        $(#[$doc])*
        #[allow(clippy::should_implement_trait)]
        pub fn $method(self, other: impl Into<Expr>) -> Expr {
            Expr::binary(BinaryOp::$op, self, other)
        }
    )*};
}

/// Generates the builder methods of one unary operator.
macro_rules! unary_builders {
    ($($(#[$doc:meta])* $method:ident => $op:ident;)*) => {$(
        $(#[$doc])*
        #[allow(clippy::should_implement_trait)]
        pub fn $method(self) -> Expr {
            Expr::unary(UnaryOp::$op, self)
        }
    )*};
}

impl Expr {
    /// `left op right`.
    ///
    /// ```
    /// use cairn_client::{col, BinaryOp, Expr};
    /// assert_eq!(Expr::binary(BinaryOp::Pow, col("x"), 2), col("x").pow(2));
    /// ```
    pub fn binary(op: BinaryOp, left: impl Into<Expr>, right: impl Into<Expr>) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(left.into()),
            right: Box::new(right.into()),
        }
    }

    /// `op(input)`.
    ///
    /// ```
    /// use cairn_client::{col, Expr, UnaryOp};
    /// assert_eq!(Expr::unary(UnaryOp::Sqrt, col("x")), col("x").sqrt());
    /// ```
    pub fn unary(op: UnaryOp, input: impl Into<Expr>) -> Expr {
        Expr::Unary {
            op,
            input: Box::new(input.into()),
        }
    }

    binary_builders! {
        /// `self + other` (also the `+` operator).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").add(1), col("x") + 1);
        /// ```
        add => Add;
        /// `self - other` (also the `-` operator).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").sub(col("y")), col("x") - col("y"));
        /// ```
        sub => Sub;
        /// `self * other` (also the `*` operator).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").mul(2.0), col("x") * 2.0);
        /// ```
        mul => Mul;
        /// `self / other` (also the `/` operator; integer division for integers).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").div(2), col("x") / 2);
        /// ```
        div => Div;
        /// `self % other` (also the `%` operator).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").rem(2), col("x") % 2);
        /// ```
        rem => Rem;
        /// `self == other`.
        ///
        /// ```
        /// use cairn_client::{col, lit};
        /// assert_eq!(col("name").eq(lit("Alice")).to_string(), r#"(name == "Alice")"#);
        /// ```
        eq => Eq;
        /// `self != other`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").ne(0).to_string(), "(x != 0)");
        /// ```
        ne => Ne;
        /// `self < other`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").lt(3).to_string(), "(x < 3)");
        /// ```
        lt => Lt;
        /// `self <= other`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").le(3).to_string(), "(x <= 3)");
        /// ```
        le => Le;
        /// `self > other`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").gt(3).to_string(), "(x > 3)");
        /// ```
        gt => Gt;
        /// `self >= other`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").ge(3).to_string(), "(x >= 3)");
        /// ```
        ge => Ge;
        /// `self and other` (SQL three-valued logic).
        ///
        /// ```
        /// use cairn_client::col;
        /// let inside = col("x").gt(0).and(col("x").lt(1));
        /// assert_eq!(inside.to_string(), "((x > 0) and (x < 1))");
        /// ```
        and => And;
        /// `self or other` (SQL three-valued logic).
        ///
        /// ```
        /// use cairn_client::col;
        /// let outside = col("x").lt(0).or(col("x").gt(1));
        /// assert_eq!(outside.to_string(), "((x < 0) or (x > 1))");
        /// ```
        or => Or;
        /// `self` to the power `other`, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").pow(2).to_string(), "pow(x, 2)");
        /// ```
        pow => Pow;
        /// `sqrt(self² + other²)`, as `float64`.
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").hypot(col("y")).to_string(), "hypot(x, y)");
        /// ```
        hypot => Hypot;
        /// `atan2(self, other)`: the angle of the point `(other, self)`, as `float64`.
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("y").atan2(col("x")).to_string(), "atan2(y, x)");
        /// ```
        atan2 => Atan2;
    }

    unary_builders! {
        /// `-self` (also the unary `-` operator).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("x").neg(), -col("x"));
        /// ```
        neg => Neg;
        /// Logical not (also the `!` operator).
        ///
        /// ```
        /// use cairn_client::col;
        /// assert_eq!(col("ok").not(), !col("ok"));
        /// ```
        not => Not;
        /// Whether `self` is null.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").is_null().to_string(), "is_null(x)");
        /// ```
        is_null => IsNull;
        /// Whether `self` is not null.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").is_not_null().to_string(), "is_not_null(x)");
        /// ```
        is_not_null => IsNotNull;
        /// `|self|`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").abs().to_string(), "abs(x)");
        /// ```
        abs => Abs;
        /// The square root, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").sqrt().to_string(), "sqrt(x)");
        /// ```
        sqrt => Sqrt;
        /// `e^self`, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").exp().to_string(), "exp(x)");
        /// ```
        exp => Exp;
        /// The natural logarithm, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").ln().to_string(), "ln(x)");
        /// ```
        ln => Ln;
        /// The base-10 logarithm, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").log10().to_string(), "log10(x)");
        /// ```
        log10 => Log10;
        /// The sine, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("t").sin().to_string(), "sin(t)");
        /// ```
        sin => Sin;
        /// The cosine, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("t").cos().to_string(), "cos(t)");
        /// ```
        cos => Cos;
        /// The tangent, as `float64`.
        ///
        /// ```
        /// assert_eq!(cairn_client::col("t").tan().to_string(), "tan(t)");
        /// ```
        tan => Tan;
        /// Rounds down (integers are unchanged).
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").floor().to_string(), "floor(x)");
        /// ```
        floor => Floor;
        /// Rounds up (integers are unchanged).
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").ceil().to_string(), "ceil(x)");
        /// ```
        ceil => Ceil;
        /// Rounds to the nearest integer, halves away from zero (integers are unchanged).
        ///
        /// ```
        /// assert_eq!(cairn_client::col("x").round().to_string(), "round(x)");
        /// ```
        round => Round;
    }

    /// `self` converted to `to`.
    ///
    /// ```
    /// use cairn_client::{col, CastType};
    /// assert_eq!(col("n").cast(CastType::Float64).to_string(), "cast(n as float64)");
    /// ```
    pub fn cast(self, to: CastType) -> Expr {
        Expr::Cast {
            input: Box::new(self),
            to,
        }
    }

    /// The columns the expression reads, each once, in first-mention order.
    ///
    /// ```
    /// use cairn_client::col;
    /// let expr = (col("b") + col("a")) * col("b");
    /// assert_eq!(expr.columns(), ["b", "a"]);
    /// ```
    pub fn columns(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        let mut columns = Vec::new();
        // Depth-first, left before right, without recursion (a long chain of `+`
        // built in a loop must not overflow the stack).
        let mut pending = vec![self];
        while let Some(expr) = pending.pop() {
            match expr {
                Expr::Column(name) => {
                    if seen.insert(name.as_str()) {
                        columns.push(name.as_str());
                    }
                }
                Expr::Literal(_) => {}
                Expr::Binary { left, right, .. } => {
                    pending.push(right);
                    pending.push(left);
                }
                Expr::Unary { input, .. } | Expr::Cast { input, .. } => pending.push(input),
            }
        }
        columns
    }

    /// The expression in its JSON format (module docs, "JSON format").
    ///
    /// ```
    /// use cairn_client::col;
    /// assert_eq!(
    ///     col("x").lt(3).to_json(),
    ///     r#"{"binary":{"left":{"column":"x"},"op":"lt","right":{"literal":3}}}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// Reads the JSON format back.
    ///
    /// ```
    /// use cairn_client::{col, Expr};
    /// let expr = Expr::from_json(r#"{"unary": {"op": "sqrt", "input": {"column": "x"}}}"#)?;
    /// assert_eq!(expr, col("x").sqrt());
    /// assert!(Expr::from_json(r#"{"unary": {"op": "square", "input": {"column": "x"}}}"#).is_err());
    /// # Ok::<(), cairn_client::ExprError>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Expr, ExprError> {
        let value: Json = serde_json::from_str(text).map_err(|error| ExprError::Json {
            message: error.to_string(),
        })?;
        Expr::from_json_value(&value, &mut JsonPath::root())
    }

    /// The expression as a `serde_json` value (what [`Expr::to_json`] prints).
    ///
    /// ```
    /// let value = cairn_client::col("x").to_json_value();
    /// assert_eq!(value["column"], "x");
    /// ```
    pub fn to_json_value(&self) -> Json {
        let (kind, body) = match self {
            Expr::Column(name) => ("column", Json::String(name.clone())),
            Expr::Literal(literal) => ("literal", literal_to_json(literal)),
            Expr::Binary { op, left, right } => (
                "binary",
                json_object([
                    ("op", Json::String(op.name().to_string())),
                    ("left", left.to_json_value()),
                    ("right", right.to_json_value()),
                ]),
            ),
            Expr::Unary { op, input } => (
                "unary",
                json_object([
                    ("op", Json::String(op.name().to_string())),
                    ("input", input.to_json_value()),
                ]),
            ),
            Expr::Cast { input, to } => (
                "cast",
                json_object([
                    ("input", input.to_json_value()),
                    ("to", Json::String(to.name().to_string())),
                ]),
            ),
        };
        json_object([(kind, body)])
    }

    /// Reads an expression from a `serde_json` value, naming in errors where in the
    /// document a problem is.
    fn from_json_value(value: &Json, path: &mut JsonPath) -> Result<Expr, ExprError> {
        let (kind, body) = single_key(value, path)?;
        path.push_key(kind);
        let expr = match kind {
            "column" => Expr::Column(expect_str(body, path)?.to_string()),
            "literal" => Expr::Literal(literal_from_json(body, path)?),
            "binary" => {
                let fields = expect_fields(body, path, &["op", "left", "right"])?;
                let op_name = field_str(fields, "op", path)?;
                let op = BinaryOp::parse(op_name).ok_or_else(|| {
                    path.with_key("op", |path| {
                        path.malformed(format!(
                            "unknown binary operator {op_name:?} (expected one of {})",
                            names(BinaryOp::ALL.iter().map(|op| op.name()))
                        ))
                    })
                })?;
                let left = field_expr(fields, "left", path)?;
                let right = field_expr(fields, "right", path)?;
                Expr::binary(op, left, right)
            }
            "unary" => {
                let fields = expect_fields(body, path, &["op", "input"])?;
                let op_name = field_str(fields, "op", path)?;
                let op = UnaryOp::parse(op_name).ok_or_else(|| {
                    path.with_key("op", |path| {
                        path.malformed(format!(
                            "unknown unary operator {op_name:?} (expected one of {})",
                            names(UnaryOp::ALL.iter().map(|op| op.name()))
                        ))
                    })
                })?;
                Expr::unary(op, field_expr(fields, "input", path)?)
            }
            "cast" => {
                let fields = expect_fields(body, path, &["input", "to"])?;
                let to_name = field_str(fields, "to", path)?;
                let to = CastType::parse(to_name).ok_or_else(|| {
                    path.with_key("to", |path| {
                        path.malformed(format!(
                            "unknown cast type {to_name:?} (expected one of {})",
                            names(CastType::ALL.iter().map(|to| to.name()))
                        ))
                    })
                })?;
                field_expr(fields, "input", path)?.cast(to)
            }
            other => {
                path.pop();
                return Err(path.malformed(format!(
                    "unknown expression kind {other:?} (expected column, literal, binary, unary or cast)"
                )));
            }
        };
        path.pop();
        Ok(expr)
    }
}

impl fmt::Display for Expr {
    /// A readable form for logs and errors (not parsed back; JSON is the exchange
    /// format).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(name) => f.write_str(name),
            Expr::Literal(literal) => match literal {
                Literal::Null => f.write_str("null"),
                Literal::Bool(value) => write!(f, "{value}"),
                Literal::Int(value) => write!(f, "{value}"),
                Literal::Float(value) => write!(f, "{value:?}"),
                Literal::Str(value) => write!(f, "{value:?}"),
                Literal::Bytes(value) => write!(f, "bytes{value:?}"),
            },
            Expr::Binary { op, left, right } => match op.symbol() {
                Some(symbol) => write!(f, "({left} {symbol} {right})"),
                None => write!(f, "{op}({left}, {right})"),
            },
            Expr::Unary {
                op: UnaryOp::Neg,
                input,
            } => write!(f, "-{input}"),
            Expr::Unary {
                op: UnaryOp::Not,
                input,
            } => write!(f, "not {input}"),
            Expr::Unary { op, input } => write!(f, "{op}({input})"),
            Expr::Cast { input, to } => write!(f, "cast({input} as {to})"),
        }
    }
}

impl Serialize for Expr {
    /// The JSON format of the module docs, inside any serde format.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Expr, D::Error> {
        let value = Json::deserialize(deserializer)?;
        Expr::from_json_value(&value, &mut JsonPath::root()).map_err(D::Error::custom)
    }
}

/// Generates an `std::ops` operator impl that builds the [`Expr`].
macro_rules! operator_impls {
    ($($trait_name:ident :: $method:ident => $op:ident;)*) => {$(
        impl<T: Into<Expr>> std::ops::$trait_name<T> for Expr {
            type Output = Expr;
            fn $method(self, other: T) -> Expr {
                Expr::binary(BinaryOp::$op, self, other)
            }
        }
    )*};
}

operator_impls! {
    Add::add => Add;
    Sub::sub => Sub;
    Mul::mul => Mul;
    Div::div => Div;
    Rem::rem => Rem;
}

impl std::ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::unary(UnaryOp::Neg, self)
    }
}

impl std::ops::Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr::unary(UnaryOp::Not, self)
    }
}

/// Named expressions (the `exprs` argument of the `with_columns` operation) as JSON:
/// an array of `{"name": …, "expr": …}` objects, in order.
///
/// ```
/// use cairn_client::{col, named_exprs_from_json, named_exprs_to_json};
/// let json = named_exprs_to_json(&[("r", col("x").hypot(col("y"))), ("x2", col("x") * 2)]);
/// let back = named_exprs_from_json(&json)?;
/// assert_eq!(back[0], ("r".to_string(), col("x").hypot(col("y"))));
/// assert_eq!(back[1].0, "x2");
/// # Ok::<(), cairn_client::ExprError>(())
/// ```
pub fn named_exprs_to_json(columns: &[(&str, Expr)]) -> String {
    let items = columns
        .iter()
        .map(|(name, expr)| json_object([("name", Json::String(name.to_string())), ("expr", expr.to_json_value())]))
        .collect();
    Json::Array(items).to_string()
}

/// Reads named expressions: an array of `{"name": …, "expr": …}` objects, or one JSON
/// object mapping names to expressions (its order is kept). A name given twice is an
/// error.
///
/// ```
/// use cairn_client::{col, named_exprs_from_json};
/// let columns = named_exprs_from_json(
///     r#"{"z": {"column": "a"}, "b": {"unary": {"op": "abs", "input": {"column": "a"}}}}"#,
/// )?;
/// assert_eq!(columns, [("z".to_string(), col("a")), ("b".to_string(), col("a").abs())]);
/// assert!(named_exprs_from_json(r#"[{"name": "z", "expr": {"column": "a"}}, {"name": "z", "expr": {"column": "b"}}]"#).is_err());
/// # Ok::<(), cairn_client::ExprError>(())
/// ```
pub fn named_exprs_from_json(text: &str) -> Result<Vec<(String, Expr)>, ExprError> {
    let OrderedNamedJson(raw) = serde_json::from_str(text).map_err(|error| ExprError::Json {
        message: error.to_string(),
    })?;
    let mut path = JsonPath::root();
    let mut seen = BTreeSet::new();
    let mut columns = Vec::with_capacity(raw.len());
    for (index, entry) in raw.into_iter().enumerate() {
        let (name, expr) = match entry {
            RawNamed::Keyed { name, expr } => {
                path.push_key(&name);
                let expr = Expr::from_json_value(&expr, &mut path)?;
                path.pop();
                (name, expr)
            }
            RawNamed::Item(item) => {
                path.push_index(index);
                let fields = expect_fields(&item, &path, &["name", "expr"])?;
                let name = field_str(fields, "name", &mut path)?.to_string();
                let expr = field_expr(fields, "expr", &mut path)?;
                path.pop();
                (name, expr)
            }
        };
        if !seen.insert(name.clone()) {
            return Err(path.malformed(format!("column {name:?} is named twice")));
        }
        columns.push((name, expr));
    }
    Ok(columns)
}

/// One entry of a named-expression list before its expression is checked.
enum RawNamed {
    /// From the object form: the key and its value.
    Keyed { name: String, expr: Json },
    /// From the array form: one `{"name", "expr"}` object.
    Item(Json),
}

/// The named-expression JSON with its order kept: `serde_json`'s `Map` sorts keys
/// (the workspace does not enable `preserve_order`), so the object form is read
/// entry by entry here.
struct OrderedNamedJson(Vec<RawNamed>);

impl<'de> Deserialize<'de> for OrderedNamedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;

        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = OrderedNamedJson;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object of name: expression, or an array of {\"name\", \"expr\"} objects")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedNamedJson, A::Error> {
                let mut entries = Vec::new();
                while let Some((name, expr)) = map.next_entry::<String, Json>()? {
                    entries.push(RawNamed::Keyed { name, expr });
                }
                Ok(OrderedNamedJson(entries))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderedNamedJson, A::Error> {
                let mut entries = Vec::new();
                while let Some(item) = seq.next_element::<Json>()? {
                    entries.push(RawNamed::Item(item));
                }
                Ok(OrderedNamedJson(entries))
            }
        }

        deserializer.deserialize_any(OrderedVisitor)
    }
}

/// Where the reader is in a JSON document, for error messages (`$.binary.left`).
struct JsonPath {
    /// The segments, each `.key` or `[index]`.
    segments: Vec<String>,
}

impl JsonPath {
    fn root() -> JsonPath {
        JsonPath { segments: Vec::new() }
    }

    fn push_key(&mut self, key: &str) {
        self.segments.push(format!(".{key}"));
    }

    fn push_index(&mut self, index: usize) {
        self.segments.push(format!("[{index}]"));
    }

    fn pop(&mut self) {
        self.segments.pop();
    }

    /// Runs `inside` with `key` pushed, then pops it.
    fn with_key<T>(&mut self, key: &str, inside: impl FnOnce(&mut JsonPath) -> T) -> T {
        self.push_key(key);
        let result = inside(self);
        self.pop();
        result
    }

    fn malformed(&self, reason: String) -> ExprError {
        ExprError::Malformed {
            path: format!("${}", self.segments.concat()),
            reason,
        }
    }
}

/// An object from `(key, value)` pairs.
fn json_object<const N: usize>(entries: [(&str, Json); N]) -> Json {
    Json::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect::<Map<_, _>>(),
    )
}

/// `a, b, c` for error messages.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// A short description of a JSON value for error messages (`3`, `"x"`, `an object`).
fn describe(value: &Json) -> String {
    match value {
        Json::Object(_) => "an object".to_string(),
        Json::Array(_) => "an array".to_string(),
        other => {
            let text = other.to_string();
            if text.chars().count() > 40 {
                format!("{}…", text.chars().take(40).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// The one key of an expression object and its value.
fn single_key<'a>(value: &'a Json, path: &JsonPath) -> Result<(&'a str, &'a Json), ExprError> {
    let Json::Object(object) = value else {
        return Err(path.malformed(format!("expected an expression object, found {}", describe(value))));
    };
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some((kind, body)), None) => Ok((kind.as_str(), body)),
        (None, _) => Err(path.malformed("an expression object needs exactly one key, found none".to_string())),
        (Some(_), Some(_)) => Err(path.malformed(format!(
            "an expression object needs exactly one key, found {}",
            names(object.keys().map(String::as_str))
        ))),
    }
}

fn expect_str<'a>(value: &'a Json, path: &JsonPath) -> Result<&'a str, ExprError> {
    value
        .as_str()
        .ok_or_else(|| path.malformed(format!("expected a string, found {}", describe(value))))
}

/// The object at `path`, which must have exactly the keys `expected`.
fn expect_fields<'a>(value: &'a Json, path: &JsonPath, expected: &[&str]) -> Result<&'a Map<String, Json>, ExprError> {
    let Json::Object(fields) = value else {
        return Err(path.malformed(format!(
            "expected an object with keys {}, found {}",
            names(expected.iter().copied()),
            describe(value)
        )));
    };
    if let Some(unknown) = fields.keys().find(|key| !expected.contains(&key.as_str())) {
        return Err(path.malformed(format!(
            "unknown key {unknown:?} (expected {})",
            names(expected.iter().copied())
        )));
    }
    if let Some(missing) = expected.iter().find(|key| !fields.contains_key(**key)) {
        return Err(path.malformed(format!("missing key {missing:?}")));
    }
    Ok(fields)
}

fn field_str<'a>(fields: &'a Map<String, Json>, key: &str, path: &mut JsonPath) -> Result<&'a str, ExprError> {
    let value = fields.get(key).unwrap_or(&Json::Null);
    path.with_key(key, |path| expect_str(value, path))
}

fn field_expr(fields: &Map<String, Json>, key: &str, path: &mut JsonPath) -> Result<Expr, ExprError> {
    let value = fields.get(key).unwrap_or(&Json::Null);
    path.with_key(key, |path| Expr::from_json_value(value, path))
}

/// A literal's JSON form (module docs): plain JSON where JSON can say it.
fn literal_to_json(literal: &Literal) -> Json {
    match literal {
        Literal::Null => Json::Null,
        Literal::Bool(value) => Json::Bool(*value),
        Literal::Int(value) => Json::Number(Number::from(*value)),
        Literal::Float(value) => match Number::from_f64(*value) {
            Some(number) => Json::Number(number),
            // JSON has no NaN or infinities; serde_json would write `null`.
            None => json_object([("float", Json::String(non_finite_name(*value).to_string()))]),
        },
        Literal::Str(value) => Json::String(value.clone()),
        Literal::Bytes(bytes) => json_object([(
            "bytes",
            Json::Array(bytes.iter().map(|byte| Json::Number(Number::from(*byte))).collect()),
        )]),
    }
}

fn non_finite_name(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn literal_from_json(value: &Json, path: &mut JsonPath) -> Result<Literal, ExprError> {
    match value {
        Json::Null => Ok(Literal::Null),
        Json::Bool(value) => Ok(Literal::Bool(*value)),
        Json::String(text) => Ok(Literal::Str(text.clone())),
        Json::Number(number) => number_literal(number, path),
        Json::Array(_) => {
            Err(path.malformed("a literal cannot be an array (bytes are {\"bytes\": [...]})".to_string()))
        }
        Json::Object(_) => {
            let (kind, body) = single_key(value, path).map_err(|_| {
                path.malformed("a literal object needs exactly one key: float, int or bytes".to_string())
            })?;
            path.push_key(kind);
            let literal = match (kind, body) {
                ("float", Json::Number(number)) => match number.as_f64() {
                    Some(float) => Literal::Float(float),
                    None => return Err(path.malformed(format!("{number} is not a float"))),
                },
                ("float", Json::String(text)) => match text.as_str() {
                    "NaN" => Literal::Float(f64::NAN),
                    "Infinity" => Literal::Float(f64::INFINITY),
                    "-Infinity" => Literal::Float(f64::NEG_INFINITY),
                    other => {
                        return Err(path.malformed(format!(
                            "expected \"NaN\", \"Infinity\" or \"-Infinity\", found {other:?}"
                        )))
                    }
                },
                ("int", Json::Number(number)) => match number.as_i64() {
                    Some(int) => Literal::Int(int),
                    None => return Err(path.malformed(format!("{number} is not a 64-bit signed integer"))),
                },
                ("bytes", Json::Array(items)) => {
                    let mut bytes = Vec::with_capacity(items.len());
                    for (index, item) in items.iter().enumerate() {
                        let byte = item.as_u64().and_then(|int| u8::try_from(int).ok()).ok_or_else(|| {
                            path.malformed(format!("item {index} is {}, not a byte (0 to 255)", describe(item)))
                        })?;
                        bytes.push(byte);
                    }
                    Literal::Bytes(bytes)
                }
                (other, body) => {
                    return Err(path.malformed(format!(
                        "unknown literal form {other:?} with {} (expected float, int or bytes)",
                        describe(body)
                    )))
                }
            };
            path.pop();
            Ok(literal)
        }
    }
}

/// An integer is an `Int` (if it fits), anything written with a fraction or an
/// exponent a `Float`.
fn number_literal(number: &Number, path: &JsonPath) -> Result<Literal, ExprError> {
    if let Some(int) = number.as_i64() {
        return Ok(Literal::Int(int));
    }
    if number.is_u64() {
        return Err(path.malformed(format!(
            "{number} does not fit a 64-bit signed integer (write {{\"float\": {number}}} for a float)"
        )));
    }
    match number.as_f64() {
        Some(float) => Ok(Literal::Float(float)),
        None => Err(path.malformed(format!("{number} is not a number Cairn can hold"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operator and every literal form survives a JSON round trip, so what a
    /// client sends is what a worker evaluates.
    #[test]
    fn every_operator_and_literal_round_trips_through_json() {
        let mut exprs = Vec::new();
        for op in BinaryOp::ALL {
            exprs.push(Expr::binary(op, col("a"), lit(2)));
        }
        for op in UnaryOp::ALL {
            exprs.push(Expr::unary(op, col("a")));
        }
        for to in CastType::ALL {
            exprs.push(col("a").cast(to));
        }
        for literal in [
            Literal::Null,
            Literal::Bool(true),
            Literal::Int(i64::MIN),
            Literal::Int(i64::MAX),
            Literal::Float(3.0),
            Literal::Float(-0.0),
            Literal::Float(1e300),
            Literal::Float(f64::INFINITY),
            Literal::Float(f64::NEG_INFINITY),
            Literal::Str("Alice \"the\" ünïcode".to_string()),
            Literal::Bytes(vec![0, 7, 255]),
        ] {
            exprs.push(Expr::Literal(literal));
        }
        for expr in exprs {
            let json = expr.to_json();
            assert_eq!(Expr::from_json(&json), Ok(expr.clone()), "{json}");
            // And through serde, as a field of another document.
            let embedded = serde_json::to_string(&vec![expr.clone()]).expect("serialises");
            let back: Vec<Expr> = serde_json::from_str(&embedded).expect("deserialises");
            assert_eq!(back, [expr]);
        }
    }

    /// NaN is not equal to itself, so it gets its own check: it must not become `null`.
    #[test]
    fn nan_literal_stays_a_float() {
        let json = lit(f64::NAN).to_json();
        assert_eq!(json, r#"{"literal":{"float":"NaN"}}"#);
        let Ok(Expr::Literal(Literal::Float(value))) = Expr::from_json(&json) else {
            panic!("not a float literal: {json}");
        };
        assert!(value.is_nan());
    }

    /// The documented format is the wire format: a hand-written document parses.
    #[test]
    fn hand_written_json_parses() {
        let text = r#"{"binary": {"op": "and",
            "left": {"binary": {"op": "lt", "left": {"unary": {"op": "sqrt", "input": {"column": "x"}}}, "right": {"literal": 3.5}}},
            "right": {"unary": {"op": "is_not_null", "input": {"cast": {"input": {"column": "y"}, "to": "int64"}}}}}}"#;
        let expected = col("x")
            .sqrt()
            .lt(3.5)
            .and(col("y").cast(CastType::Int64).is_not_null());
        assert_eq!(Expr::from_json(text), Ok(expected));
        assert_eq!(
            Expr::from_json(r#"{"literal": {"int": 5}}"#),
            Ok(lit(5)),
            "the explicit int form"
        );
        assert_eq!(Expr::from_json(r#"{"literal": {"float": 5}}"#), Ok(lit(5.0)));
    }

    /// Errors say where the problem is, so a user can fix a hand-written document.
    #[test]
    fn malformed_json_names_the_place() {
        let cases = [
            ("not json", "expression is not valid JSON"),
            (
                "[]",
                "malformed expression at $: expected an expression object, found an array",
            ),
            (
                "{}",
                "malformed expression at $: an expression object needs exactly one key, found none",
            ),
            (
                r#"{"column": "x", "literal": 1}"#,
                "exactly one key, found column, literal",
            ),
            (r#"{"col": "x"}"#, "unknown expression kind \"col\""),
            (
                r#"{"binary": {"op": "plus", "left": {"column": "x"}, "right": {"literal": 1}}}"#,
                "at $.binary.op: unknown binary operator \"plus\"",
            ),
            (
                r#"{"binary": {"op": "add", "left": {"column": "x"}}}"#,
                "at $.binary: missing key \"right\"",
            ),
            (
                r#"{"binary": {"op": "add", "left": {"column": "x"}, "right": {"literal": 1}, "extra": 1}}"#,
                "at $.binary: unknown key \"extra\"",
            ),
            (
                r#"{"binary": {"op": "add", "left": {"column": 1}, "right": {"literal": 1}}}"#,
                "at $.binary.left.column: expected a string, found 1",
            ),
            (
                r#"{"literal": 18446744073709551615}"#,
                "at $.literal: 18446744073709551615 does not fit",
            ),
            (
                r#"{"literal": {"bytes": [1, 256]}}"#,
                "at $.literal.bytes: item 1 is 256, not a byte",
            ),
            (r#"{"literal": [1]}"#, "a literal cannot be an array"),
            (
                r#"{"cast": {"input": {"column": "x"}, "to": "double"}}"#,
                "at $.cast.to: unknown cast type \"double\"",
            ),
        ];
        for (text, expected) in cases {
            let error = Expr::from_json(text).expect_err(text).to_string();
            assert!(
                error.contains(expected),
                "{text}: {error:?} does not contain {expected:?}"
            );
        }
    }

    /// Nesting deeper than serde_json's limit is an error, not a stack overflow.
    #[test]
    fn deep_nesting_is_an_error() {
        let text = format!(
            "{}{{\"column\": \"x\"}}{}",
            r#"{"unary": {"op": "neg", "input": "#.repeat(300),
            "}}".repeat(300)
        );
        assert!(matches!(Expr::from_json(&text), Err(ExprError::Json { .. })));
    }

    /// `columns()` lists each referenced column once, in first-mention order.
    #[test]
    fn columns_are_listed_once_in_order() {
        let expr = col("c")
            .add(col("a"))
            .mul(col("c").hypot(col("b")))
            .lt(lit(1))
            .and(col("a").is_null());
        assert_eq!(expr.columns(), ["c", "a", "b"]);
        assert!(lit(3).columns().is_empty());
    }

    /// The operators build the same trees as the methods.
    #[test]
    fn operator_overloads_match_the_methods() {
        assert_eq!(col("a") + col("b") * 2, col("a").add(col("b").mul(lit(2))));
        assert_eq!(-(col("a") - 1.5) % 3, col("a").sub(1.5).neg().rem(3));
        assert_eq!(!col("ok"), col("ok").not());
        assert_eq!((col("a") / col("b")).to_string(), "(a / b)");
    }

    /// Named expressions keep their order in both JSON forms; a repeated name is refused.
    #[test]
    fn named_exprs_keep_their_order() {
        let columns = [("zeta", col("a")), ("alpha", col("b").sqrt())];
        let parsed = named_exprs_from_json(&named_exprs_to_json(&columns)).expect("round trip");
        assert_eq!(
            parsed,
            [("zeta".to_string(), col("a")), ("alpha".to_string(), col("b").sqrt())]
        );

        let object = r#"{"zeta": {"column": "a"}, "alpha": {"unary": {"op": "sqrt", "input": {"column": "b"}}}}"#;
        assert_eq!(named_exprs_from_json(object).expect("object form"), parsed);

        let error = named_exprs_from_json(r#"[{"name": "a", "expr": {"column": "x"}}, {"name": "b"}]"#)
            .expect_err("missing expr")
            .to_string();
        assert!(error.contains("at $[1]: missing key \"expr\""), "{error}");
        let error = named_exprs_from_json(r#"{"a": {"column": 3}}"#)
            .expect_err("bad expr")
            .to_string();
        assert!(error.contains("at $.a.column"), "{error}");
        assert!(named_exprs_from_json(r#"{"a": {"column": "x"}, "a": {"column": "y"}}"#).is_err());
        assert!(named_exprs_from_json("3").is_err());
    }
}
