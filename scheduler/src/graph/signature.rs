//! What an operation accepts, as workers advertise it.

use serde::{Deserialize, Serialize};

/// The kind of value a parameter takes.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Its name, for error messages.
    pub name: String,
    /// What it accepts.
    pub kind: ParamKind,
    /// Whether it may be left out (only trailing parameters may be).
    pub optional: bool,
}

/// What an operation accepts: its parameters in order; with `variadic`, the last one
/// repeats any number of times (at least once unless optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpSignature {
    /// The operation's name.
    pub name: String,
    /// Its parameters.
    pub params: Vec<ParamSpec>,
    /// Whether the last parameter repeats.
    pub variadic: bool,
}
