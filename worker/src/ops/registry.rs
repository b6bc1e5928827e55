//! [`OpRegistry`]: the operations a worker can run, by name; checks a task's
//! arguments against the operation's signature before running it.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use cairn_client::{Literal, OpSignature, ParamKind, ParamSpec};

use super::{
    elementwise, grid, grid_reduce, io, netcdf, primitives, reduce, regrid, shape, OpContext, OpError, OpValue,
    Operation,
};

/// The operations a worker can run, by name.
///
/// ```
/// use cairn_worker::ops::OpRegistry;
/// let registry = OpRegistry::builtins();
/// assert!(registry.get("read_csv").is_some());
/// let names: Vec<String> = registry.signatures().into_iter().map(|signature| signature.name).collect();
/// assert!(names.windows(2).all(|pair| pair[0] < pair[1]), "sorted by name");
/// ```
#[derive(Clone, Default)]
pub struct OpRegistry {
    /// By name; a `BTreeMap` so that [`OpRegistry::signatures`] is in a stable order
    /// (the schedulers compare what workers advertise).
    operations: BTreeMap<String, Arc<dyn Operation>>,
}

impl fmt::Debug for OpRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpRegistry")
            .field("operations", &self.operations.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OpRegistry {
    /// A registry with no operations.
    ///
    /// ```
    /// assert!(cairn_worker::ops::OpRegistry::empty().signatures().is_empty());
    /// ```
    pub fn empty() -> OpRegistry {
        OpRegistry::default()
    }

    /// A registry with every built-in operation (the table in [`crate::ops`]).
    ///
    /// ```
    /// let registry = cairn_worker::ops::OpRegistry::builtins();
    /// assert!(registry.get("inc").is_some() && registry.get("agg_finalize").is_some());
    /// ```
    pub fn builtins() -> OpRegistry {
        let mut registry = OpRegistry::empty();
        let families = [
            primitives::builtins(),
            io::builtins(),
            netcdf::builtins(),
            elementwise::builtins(),
            reduce::builtins(),
            shape::builtins(),
            grid::builtins(),
            grid_reduce::builtins(),
            regrid::builtins(),
        ];
        for operation in families.into_iter().flatten() {
            let name = operation.name;
            let signature = operation.signature();
            debug_assert!(
                check_signature(&signature).is_ok(),
                "built-in {name} has a bad signature"
            );
            // Built-in names are distinct (a test checks it); a clash would drop one.
            registry.operations.insert(name.to_string(), Arc::new(operation));
        }
        registry
    }

    /// Adds `operation`; an operation of the same name, or a signature that breaks the
    /// rules (a required parameter after an optional one, an empty name, variadic
    /// without parameters), is refused.
    ///
    /// ```
    /// use arrow::record_batch::RecordBatch;
    /// use cairn_client::OpSignature;
    /// use cairn_worker::ops::{OpContext, OpError, OpRegistry, OpValue, Operation};
    ///
    /// /// Another operation called `inc`.
    /// struct MyInc;
    ///
    /// impl Operation for MyInc {
    ///     fn signature(&self) -> OpSignature {
    ///         OpSignature { name: "inc".into(), params: vec![], variadic: false }
    ///     }
    ///     fn run(&self, _args: Vec<OpValue>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    ///         unimplemented!("never registered")
    ///     }
    /// }
    ///
    /// let mut registry = OpRegistry::builtins();
    /// let error = registry.register(MyInc).expect_err("an error");
    /// assert_eq!(error.to_string(), r#"operation "inc" is already registered"#);
    /// ```
    pub fn register(&mut self, operation: impl Operation) -> Result<(), OpError> {
        let signature = operation.signature();
        check_signature(&signature)?;
        if self.operations.contains_key(&signature.name) {
            return Err(OpError::DuplicateOperation { name: signature.name });
        }
        self.operations.insert(signature.name, Arc::new(operation));
        Ok(())
    }

    /// The operation called `name`.
    ///
    /// ```
    /// assert!(cairn_worker::ops::OpRegistry::builtins().get("no_such_op").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<Arc<dyn Operation>> {
        self.operations.get(name).cloned()
    }

    /// Whether the operation called `name` is light (see [`Operation::is_light`]).
    ///
    /// ```
    /// let registry = cairn_worker::ops::OpRegistry::builtins();
    /// assert!(registry.is_light("inc") && !registry.is_light("read_csv") && !registry.is_light("no_such_op"));
    /// ```
    pub fn is_light(&self, name: &str) -> bool {
        self.operations.get(name).is_some_and(|operation| operation.is_light())
    }

    /// Every operation's signature, sorted by name: what a worker advertises.
    ///
    /// ```
    /// let signatures = cairn_worker::ops::OpRegistry::builtins().signatures();
    /// let concat = signatures.iter().find(|signature| signature.name == "concat").expect("built in");
    /// assert!(concat.variadic);
    /// ```
    pub fn signatures(&self) -> Vec<OpSignature> {
        self.operations
            .values()
            .map(|operation| operation.signature())
            .collect()
    }

    /// Runs operation `name` on `args`: checks them against its signature first (an
    /// unknown name, a wrong count or kind is an error, never a panic), refuses to
    /// start a cancelled task, and turns a panic inside the operation into
    /// [`OpError::Panicked`].
    ///
    /// ```
    /// use cairn_worker::ops::{OpContext, OpRegistry, OpValue};
    /// let registry = OpRegistry::builtins();
    /// let error = registry.run("head", vec![], &OpContext::new("t")).expect_err("an error");
    /// assert_eq!(error.to_string(), "head: takes 2 arguments (x, n), given 0 argument(s)");
    /// ```
    pub fn run(&self, name: &str, args: Vec<OpValue>, context: &OpContext) -> Result<RecordBatch, OpError> {
        let operation = self
            .operations
            .get(name)
            .ok_or_else(|| OpError::UnknownOperation { name: name.to_string() })?;
        check_args(&operation.signature(), &args)?;
        context.check_cancelled(name)?;
        match catch_unwind(AssertUnwindSafe(|| operation.run(args, context))) {
            Ok(result) => result,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_string());
                Err(OpError::Panicked {
                    op: name.to_string(),
                    message,
                })
            }
        }
    }
}

/// The rules every signature follows, so that [`check_args`] can match arguments to
/// parameters by position.
fn check_signature(signature: &OpSignature) -> Result<(), OpError> {
    let invalid = |reason: &str| OpError::InvalidSignature {
        op: signature.name.clone(),
        reason: reason.to_string(),
    };
    if signature.name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if signature.variadic && signature.params.is_empty() {
        return Err(invalid("variadic without parameters"));
    }
    let first_optional = signature.params.iter().position(|param| param.optional);
    if let Some(first_optional) = first_optional {
        if let Some(required) = signature.params[first_optional..].iter().find(|param| !param.optional) {
            return Err(invalid(&format!(
                "required parameter {} comes after an optional one",
                required.name
            )));
        }
    }
    Ok(())
}

/// `N arguments (a, b)`, `1 to 3 arguments (path, start, end)`, `at least 1 argument
/// (parts…)` — for [`OpError::WrongArgumentCount`].
fn describe_arity(signature: &OpSignature) -> String {
    let required = signature.params.iter().filter(|param| !param.optional).count();
    let total = signature.params.len();
    let mut names: Vec<String> = signature.params.iter().map(|param| param.name.clone()).collect();
    if signature.variadic {
        if let Some(last) = names.last_mut() {
            last.push('…');
        }
    }
    let plural = |count: usize| if count == 1 { "argument" } else { "arguments" };
    let count = if signature.variadic {
        format!("at least {required} {}", plural(required))
    } else if required == total {
        format!("{total} {}", plural(total))
    } else {
        format!("{required} to {total} arguments")
    };
    format!("{count} ({})", names.join(", "))
}

/// Checks `args` against `signature`: the count, then each argument's kind.
pub(crate) fn check_args(signature: &OpSignature, args: &[OpValue]) -> Result<(), OpError> {
    let required = signature.params.iter().filter(|param| !param.optional).count();
    let too_many = !signature.variadic && args.len() > signature.params.len();
    if args.len() < required || too_many {
        return Err(OpError::WrongArgumentCount {
            op: signature.name.clone(),
            expected: describe_arity(signature),
            given: args.len(),
        });
    }
    let last = signature.params.len().saturating_sub(1);
    for (index, value) in args.iter().enumerate() {
        let Some(param) = signature.params.get(index.min(last)) else {
            break;
        };
        let repeats = signature.variadic && index >= last;
        let name = if repeats {
            format!("{}[{}]", param.name, index - last)
        } else {
            param.name.clone()
        };
        if !accepts(param, repeats, value) {
            return Err(OpError::WrongArgumentKind {
                op: signature.name.clone(),
                param: name,
                expected: param.kind.name().to_string(),
                given: value.kind_name(),
            });
        }
    }
    Ok(())
}

/// Whether `value` fits `param`. A null literal skips an optional parameter; in the
/// repeating position of a variadic signature, a list of data fits a data parameter.
fn accepts(param: &ParamSpec, repeats: bool, value: &OpValue) -> bool {
    let is_data_list = |items: &[OpValue]| items.iter().all(|item| matches!(item, OpValue::Data(_)));
    match (param.kind, value) {
        (_, OpValue::Literal(Literal::Null)) if param.optional => true,
        (ParamKind::Any, _) => true,
        (ParamKind::Data, OpValue::Data(_)) => true,
        (ParamKind::Data, OpValue::List(items)) => repeats && is_data_list(items),
        (ParamKind::DataList, OpValue::List(items)) => is_data_list(items),
        (ParamKind::Int, OpValue::Literal(Literal::Int(_))) => true,
        (ParamKind::Number, OpValue::Literal(Literal::Int(_) | Literal::Float(_))) => true,
        (ParamKind::Str, OpValue::Literal(Literal::Str(_))) => true,
        (ParamKind::Bool, OpValue::Literal(Literal::Bool(_))) => true,
        (ParamKind::IntOrData, OpValue::Literal(Literal::Int(_)) | OpValue::Data(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::ops::args::Builtin;

    fn int(value: i64) -> OpValue {
        OpValue::from(value)
    }

    /// The built-ins have distinct names (`builtins()` would silently drop a clash)
    /// and valid signatures.
    #[test]
    fn builtin_names_are_distinct_and_signatures_valid() {
        let families = [
            primitives::builtins(),
            io::builtins(),
            netcdf::builtins(),
            elementwise::builtins(),
            reduce::builtins(),
            shape::builtins(),
            grid::builtins(),
            grid_reduce::builtins(),
            regrid::builtins(),
        ];
        let mut names = BTreeSet::new();
        for operation in families.into_iter().flatten() {
            assert!(names.insert(operation.name), "{} twice", operation.name);
            check_signature(&operation.signature()).expect("valid signature");
        }
        let expected = [
            "agg_combine",
            "agg_finalize",
            "agg_partial",
            "binary",
            "binary_scalar",
            "concat",
            "count",
            "filter",
            "grid_binary",
            "grid_combine",
            "grid_finalize",
            "grid_map",
            "grid_partial",
            "grid_sel",
            "head",
            "inc",
            "max",
            "min",
            "read_arrow",
            "read_csv",
            "read_netcdf",
            "read_parquet",
            "regrid",
            "select",
            "sleep",
            "slice",
            "sum",
            "with_columns",
        ];
        assert_eq!(names.into_iter().collect::<Vec<_>>(), expected);
        assert_eq!(OpRegistry::builtins().signatures().len(), expected.len());
    }

    /// Wrong counts and kinds are errors that name the operation and the parameter.
    #[test]
    fn arguments_are_checked_against_the_signature() {
        let registry = OpRegistry::builtins();
        let context = OpContext::new("t");
        let message = |name: &str, args: Vec<OpValue>| registry.run(name, args, &context).expect_err(name).to_string();

        assert_eq!(message("nope", vec![]), "unknown operation \"nope\"");
        assert_eq!(message("inc", vec![]), "inc: takes 1 argument (x), given 0 argument(s)");
        assert_eq!(
            message("inc", vec![int(1), int(2)]),
            "inc: takes 1 argument (x), given 2 argument(s)"
        );
        assert_eq!(
            message("read_csv", vec![]),
            "read_csv: takes 1 to 3 arguments (path, start, end), given 0 argument(s)"
        );
        assert_eq!(
            message("sum", vec![]),
            "sum: takes at least 1 argument (parts…), given 0 argument(s)"
        );
        assert_eq!(
            message("read_csv", vec![int(3)]),
            "read_csv: argument path must be string, given int"
        );
        assert_eq!(
            message("sum", vec![OpValue::List(vec![int(1)])]),
            "sum: argument parts[0] must be data, given list of 1"
        );
        assert_eq!(
            message("head", vec![OpValue::from("x"), int(1)]),
            "head: argument x must be data, given string"
        );
    }

    /// A null literal skips an optional parameter.
    #[test]
    fn null_skips_an_optional_parameter() {
        let signature = OpSignature {
            name: "read_csv".to_string(),
            params: vec![
                ParamSpec::required("path", ParamKind::Str),
                ParamSpec::optional("start", ParamKind::Int),
                ParamSpec::optional("end", ParamKind::Int),
            ],
            variadic: false,
        };
        let args = [OpValue::from("a.csv"), OpValue::Literal(Literal::Null), int(10)];
        check_args(&signature, &args).expect("null for start");
        let args = [OpValue::Literal(Literal::Null)];
        assert!(check_args(&signature, &args).is_err(), "null for a required parameter");
    }

    /// Registering checks the name and the signature's rules.
    #[test]
    fn register_refuses_duplicates_and_bad_signatures() {
        fn nothing(_: &crate::ops::args::Args<'_>, _: &OpContext) -> Result<RecordBatch, OpError> {
            Ok(RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty())))
        }
        let mut registry = OpRegistry::builtins();
        let error = registry
            .register(Builtin::new("inc", vec![], nothing))
            .expect_err("duplicate");
        assert_eq!(error.to_string(), "operation \"inc\" is already registered");
        let error = registry
            .register(Builtin::new(
                "bad",
                vec![
                    ParamSpec::optional("a", ParamKind::Int),
                    ParamSpec::required("b", ParamKind::Int),
                ],
                nothing,
            ))
            .expect_err("required after optional");
        assert!(error
            .to_string()
            .contains("required parameter b comes after an optional one"));
        assert!(registry.register(Builtin::variadic("bad", vec![], nothing)).is_err());
        registry
            .register(Builtin::new("nothing", vec![], nothing))
            .expect("new name");
        assert!(registry.run("nothing", vec![], &OpContext::new("t")).is_ok());
    }

    /// A panic inside an operation becomes an error; the caller's thread survives.
    #[test]
    fn a_panicking_operation_is_an_error() {
        fn explode(_: &crate::ops::args::Args<'_>, _: &OpContext) -> Result<RecordBatch, OpError> {
            panic!("boom")
        }
        let mut registry = OpRegistry::empty();
        registry
            .register(Builtin::new("explode", vec![], explode))
            .expect("registers");
        let error = registry
            .run("explode", vec![], &OpContext::new("t"))
            .expect_err("panics");
        assert!(
            matches!(error, OpError::Panicked { ref message, .. } if message == "boom"),
            "{error}"
        );
    }

    /// A cancelled task does not start.
    #[test]
    fn a_cancelled_task_does_not_start() {
        let registry = OpRegistry::builtins();
        let context = OpContext::new("inc-7");
        context.cancel();
        let error = registry.run("inc", vec![int(1)], &context).expect_err("cancelled");
        assert_eq!(error.to_string(), "inc: task inc-7 was cancelled");
        assert!(error.is_retryable());
    }
}
