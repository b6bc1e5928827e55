//! Reading a task's arguments by position, with errors that name the operation and
//! the parameter, and [`Builtin`], the one `Operation` impl the built-ins share.

use arrow::record_batch::RecordBatch;
use cairn_client::{Literal, OpSignature, ParamKind, ParamSpec};

use super::{OpContext, OpError, OpValue, Operation};

/// A built-in operation: its signature and a plain function. (One struct rather than
/// a type per operation: the built-ins differ only in these.)
pub(crate) struct Builtin {
    /// The name tasks use.
    pub name: &'static str,
    /// The parameters, in order.
    pub params: Vec<ParamSpec>,
    /// Whether the last parameter repeats.
    pub variadic: bool,
    /// The operation itself.
    pub run: fn(&Args<'_>, &OpContext) -> Result<RecordBatch, OpError>,
    /// See [`Operation::is_light`].
    pub light: bool,
}

impl Builtin {
    /// A built-in with fixed parameters.
    pub fn new(
        name: &'static str,
        params: Vec<ParamSpec>,
        run: fn(&Args<'_>, &OpContext) -> Result<RecordBatch, OpError>,
    ) -> Builtin {
        Builtin {
            name,
            params,
            variadic: false,
            run,
            light: false,
        }
    }

    /// A built-in whose last parameter repeats.
    pub fn variadic(
        name: &'static str,
        params: Vec<ParamSpec>,
        run: fn(&Args<'_>, &OpContext) -> Result<RecordBatch, OpError>,
    ) -> Builtin {
        Builtin {
            name,
            params,
            variadic: true,
            run,
            light: false,
        }
    }

    /// Marks the built-in light (see [`Operation::is_light`]).
    pub fn light(self) -> Builtin {
        Builtin { light: true, ..self }
    }
}

impl Operation for Builtin {
    fn signature(&self) -> OpSignature {
        OpSignature {
            name: self.name.to_string(),
            params: self.params.clone(),
            variadic: self.variadic,
        }
    }

    fn run(&self, args: Vec<OpValue>, context: &OpContext) -> Result<RecordBatch, OpError> {
        (self.run)(
            &Args {
                op: self.name,
                values: &args,
            },
            context,
        )
    }

    fn is_light(&self) -> bool {
        self.light
    }
}

/// Shorthand for the parameter lists of the built-ins.
pub(crate) fn required(name: &str, kind: ParamKind) -> ParamSpec {
    ParamSpec::required(name, kind)
}

/// Shorthand for the parameter lists of the built-ins.
pub(crate) fn optional(name: &str, kind: ParamKind) -> ParamSpec {
    ParamSpec::optional(name, kind)
}

/// A task's arguments as one operation reads them. The registry has already checked
/// them against the signature, but every accessor still returns an error rather than
/// assume it (an operation may be called directly, as the tests do).
pub(crate) struct Args<'a> {
    /// The operation's name, for errors.
    pub op: &'static str,
    /// The arguments, in order.
    pub values: &'a [OpValue],
}

impl<'a> Args<'a> {
    /// The argument at `index`, or `None` if it was left out or given as null (how an
    /// optional parameter is skipped).
    pub fn get(&self, index: usize) -> Option<&'a OpValue> {
        match self.values.get(index) {
            None | Some(OpValue::Literal(Literal::Null)) => None,
            Some(value) => Some(value),
        }
    }

    /// The argument at `index`, which must be there.
    pub fn value(&self, index: usize, param: &str) -> Result<&'a OpValue, OpError> {
        self.get(index)
            .ok_or_else(|| self.invalid(param, "missing (not given, or null)"))
    }

    /// The data argument at `index`.
    pub fn data(&self, index: usize, param: &str) -> Result<&'a RecordBatch, OpError> {
        match self.value(index, param)? {
            OpValue::Data(batch) => Ok(batch),
            other => Err(self.wrong_kind(param, "data", &other.kind_name())),
        }
    }

    /// The data arguments from `index` on (a variadic parameter); a list among them
    /// counts as its items. At least one is required.
    pub fn data_from(&self, index: usize, param: &str) -> Result<Vec<&'a RecordBatch>, OpError> {
        let mut batches = Vec::new();
        for (offset, value) in self.values.iter().enumerate().skip(index) {
            let name = format!("{param}[{}]", offset - index);
            match value {
                OpValue::Data(batch) => batches.push(batch),
                OpValue::List(items) => {
                    for item in items {
                        match item {
                            OpValue::Data(batch) => batches.push(batch),
                            other => {
                                return Err(self.wrong_kind(
                                    &name,
                                    "data",
                                    &format!("a list holding {}", other.kind_name()),
                                ))
                            }
                        }
                    }
                }
                other => return Err(self.wrong_kind(&name, "data", &other.kind_name())),
            }
        }
        if batches.is_empty() {
            return Err(self.wrong_kind(param, "at least one data value", "none"));
        }
        Ok(batches)
    }

    /// The literal at `index`, which must be there.
    fn literal(&self, index: usize, param: &str, expected: &str) -> Result<&'a Literal, OpError> {
        match self.value(index, param)? {
            OpValue::Literal(literal) => Ok(literal),
            other => Err(self.wrong_kind(param, expected, &other.kind_name())),
        }
    }

    /// The integer at `index`.
    pub fn int(&self, index: usize, param: &str) -> Result<i64, OpError> {
        match self.literal(index, param, "an int")? {
            Literal::Int(value) => Ok(*value),
            other => Err(self.wrong_kind(param, "an int", other.kind_name())),
        }
    }

    /// The integer at `index`, if given.
    pub fn opt_int(&self, index: usize, param: &str) -> Result<Option<i64>, OpError> {
        match self.get(index) {
            None => Ok(None),
            Some(_) => self.int(index, param).map(Some),
        }
    }

    /// The integer at `index` as a count or position: it must not be negative.
    pub fn count(&self, index: usize, param: &str) -> Result<usize, OpError> {
        let value = self.int(index, param)?;
        self.non_negative(value, param)
    }

    /// The count at `index`, if given.
    pub fn opt_count(&self, index: usize, param: &str) -> Result<Option<usize>, OpError> {
        match self.opt_int(index, param)? {
            None => Ok(None),
            Some(value) => self.non_negative(value, param).map(Some),
        }
    }

    fn non_negative(&self, value: i64, param: &str) -> Result<usize, OpError> {
        usize::try_from(value).map_err(|_| self.invalid(param, format!("must not be negative, given {value}")))
    }

    /// The number (int or float literal) at `index`.
    pub fn number(&self, index: usize, param: &str) -> Result<&'a Literal, OpError> {
        match self.literal(index, param, "a number")? {
            literal @ (Literal::Int(_) | Literal::Float(_)) => Ok(literal),
            other => Err(self.wrong_kind(param, "a number", other.kind_name())),
        }
    }

    /// The string at `index`.
    pub fn str(&self, index: usize, param: &str) -> Result<&'a str, OpError> {
        match self.literal(index, param, "a string")? {
            Literal::Str(text) => Ok(text),
            other => Err(self.wrong_kind(param, "a string", other.kind_name())),
        }
    }

    /// The string at `index`, if given.
    pub fn opt_str(&self, index: usize, param: &str) -> Result<Option<&'a str>, OpError> {
        match self.get(index) {
            None => Ok(None),
            Some(_) => self.str(index, param).map(Some),
        }
    }

    /// An [`OpError::InvalidArgument`] for this operation.
    pub fn invalid(&self, param: &str, reason: impl Into<String>) -> OpError {
        OpError::InvalidArgument {
            op: self.op.to_string(),
            param: param.to_string(),
            reason: reason.into(),
        }
    }

    fn wrong_kind(&self, param: &str, expected: &str, given: &str) -> OpError {
        OpError::WrongArgumentKind {
            op: self.op.to_string(),
            param: param.to_string(),
            expected: expected.to_string(),
            given: given.to_string(),
        }
    }
}
