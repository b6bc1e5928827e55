//! The vocabulary of task graphs shared by clients and workers: literal arguments and
//! operation signatures. (The scheduler has its own copy of these types in
//! `cairn_scheduler::graph`; the protobuf messages connect the two.)

use serde::{Deserialize, Serialize};

/// A literal argument of a task.
///
/// ```
/// use cairn_client::Literal;
/// let path = Literal::from("data/accounts.0.csv");
/// assert_eq!(path.kind_name(), "string");
/// assert_eq!(Literal::from(3_i64), Literal::Int(3));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text (paths, column names, serialised expressions…).
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl Literal {
    /// The literal's kind as users read it in errors.
    ///
    /// ```
    /// assert_eq!(cairn_client::Literal::Float(1.5).kind_name(), "float");
    /// ```
    pub fn kind_name(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Bool(_) => "bool",
            Literal::Int(_) => "int",
            Literal::Float(_) => "float",
            Literal::Str(_) => "string",
            Literal::Bytes(_) => "bytes",
        }
    }
}

impl From<i64> for Literal {
    fn from(value: i64) -> Literal {
        Literal::Int(value)
    }
}

impl From<f64> for Literal {
    fn from(value: f64) -> Literal {
        Literal::Float(value)
    }
}

impl From<bool> for Literal {
    fn from(value: bool) -> Literal {
        Literal::Bool(value)
    }
}

impl From<&str> for Literal {
    fn from(value: &str) -> Literal {
        Literal::Str(value.to_string())
    }
}

impl From<String> for Literal {
    fn from(value: String) -> Literal {
        Literal::Str(value)
    }
}

/// The kind of value an operation's parameter takes.
///
/// ```
/// use cairn_client::ParamKind;
/// assert_eq!(ParamKind::parse("data"), Some(ParamKind::Data));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamKind {
    /// Anything.
    Any,
    /// Arrow data: another task's result or a chunk of a published dataset.
    Data,
    /// A list of Arrow data (task results or chunks).
    DataList,
    /// An integer literal.
    Int,
    /// A float or integer literal.
    Number,
    /// A string literal.
    Str,
    /// A boolean literal.
    Bool,
    /// An integer literal, or Arrow data holding numbers (e.g. `inc`).
    IntOrData,
}

impl ParamKind {
    /// The name used on the wire and in errors.
    ///
    /// ```
    /// assert_eq!(cairn_client::ParamKind::DataList.name(), "list of data");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Any => "any",
            ParamKind::Data => "data",
            ParamKind::DataList => "list of data",
            ParamKind::Int => "int",
            ParamKind::Number => "number",
            ParamKind::Str => "string",
            ParamKind::Bool => "bool",
            ParamKind::IntOrData => "int or data",
        }
    }

    /// Parses [`ParamKind::name`].
    ///
    /// ```
    /// assert_eq!(cairn_client::ParamKind::parse("nonsense"), None);
    /// ```
    pub fn parse(text: &str) -> Option<ParamKind> {
        [
            ParamKind::Any,
            ParamKind::Data,
            ParamKind::DataList,
            ParamKind::Int,
            ParamKind::Number,
            ParamKind::Str,
            ParamKind::Bool,
            ParamKind::IntOrData,
        ]
        .into_iter()
        .find(|kind| kind.name() == text)
    }
}

/// One parameter of an operation.
///
/// ```
/// use cairn_client::{ParamKind, ParamSpec};
/// let path = ParamSpec::required("path", ParamKind::Str);
/// assert!(!path.optional);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Its name, for error messages.
    pub name: String,
    /// What it accepts.
    pub kind: ParamKind,
    /// Whether it may be left out (only trailing parameters may be).
    pub optional: bool,
}

impl ParamSpec {
    /// A parameter that must be given.
    ///
    /// ```
    /// let x = cairn_client::ParamSpec::required("x", cairn_client::ParamKind::Data);
    /// assert_eq!(x.name, "x");
    /// ```
    pub fn required(name: &str, kind: ParamKind) -> ParamSpec {
        ParamSpec {
            name: name.to_string(),
            kind,
            optional: false,
        }
    }

    /// A trailing parameter that may be left out.
    ///
    /// ```
    /// let end = cairn_client::ParamSpec::optional("end", cairn_client::ParamKind::Int);
    /// assert!(end.optional);
    /// ```
    pub fn optional(name: &str, kind: ParamKind) -> ParamSpec {
        ParamSpec {
            name: name.to_string(),
            kind,
            optional: true,
        }
    }
}

/// What an operation accepts: its parameters in order; with `variadic`, the last one
/// repeats any number of times (at least once unless optional).
///
/// ```
/// use cairn_client::{OpSignature, ParamKind, ParamSpec};
/// let inc = OpSignature {
///     name: "inc".to_string(),
///     params: vec![ParamSpec::required("x", ParamKind::IntOrData)],
///     variadic: false,
/// };
/// assert_eq!(inc.params.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpSignature {
    /// The operation's name.
    pub name: String,
    /// Its parameters.
    pub params: Vec<ParamSpec>,
    /// Whether the last parameter repeats.
    pub variadic: bool,
}

/// A literal from the wire (for workers).
#[doc(hidden)]
pub fn literal_from_wire(literal: cairn_proto::v1::Literal) -> Literal {
    use cairn_proto::v1::literal::Value;
    match literal.value {
        None | Some(Value::Null(_)) => Literal::Null,
        Some(Value::BoolValue(value)) => Literal::Bool(value),
        Some(Value::IntValue(value)) => Literal::Int(value),
        Some(Value::FloatValue(value)) => Literal::Float(value),
        Some(Value::StrValue(value)) => Literal::Str(value),
        Some(Value::BytesValue(value)) => Literal::Bytes(value),
    }
}

/// An operation signature for the wire (for workers' hello).
#[doc(hidden)]
pub fn signature_to_wire(signature: &OpSignature) -> cairn_proto::v1::OpSignature {
    cairn_proto::v1::OpSignature {
        name: signature.name.clone(),
        params: signature
            .params
            .iter()
            .map(|param| cairn_proto::v1::ParamSpec {
                name: param.name.clone(),
                kind: param.kind.name().to_string(),
                optional: param.optional,
            })
            .collect(),
        variadic: signature.variadic,
    }
}
