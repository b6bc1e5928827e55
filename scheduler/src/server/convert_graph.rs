//! Conversions between task-graph types and their protobuf messages.

use cairn_proto::v1 as pb;

use super::error::ServerError;
use crate::graph::{Arg, Literal, OpSignature, ParamKind, ParamSpec, TaskKey, TaskSpec};

/// How deeply argument lists may nest (a guard against a stack overflow).
const MAX_ARG_DEPTH: usize = 16;

fn invalid(reason: String) -> ServerError {
    ServerError::InvalidRequest { reason }
}

/// A task key from the wire.
pub fn task_key(text: &str) -> Result<TaskKey, ServerError> {
    TaskKey::parse(text).map_err(|error| invalid(error.to_string()))
}

fn literal(literal: pb::Literal) -> Literal {
    use pb::literal::Value;
    match literal.value {
        None | Some(Value::Null(_)) => Literal::Null,
        Some(Value::BoolValue(value)) => Literal::Bool(value),
        Some(Value::IntValue(value)) => Literal::Int(value),
        Some(Value::FloatValue(value)) => Literal::Float(value),
        Some(Value::StrValue(value)) => Literal::Str(value),
        Some(Value::BytesValue(value)) => Literal::Bytes(value),
    }
}

fn arg(task: &str, arg: pb::TaskArg, depth: usize) -> Result<Arg, ServerError> {
    use pb::task_arg::Arg as Wire;
    if depth > MAX_ARG_DEPTH {
        return Err(invalid(format!(
            "task '{task}': arguments nest deeper than {MAX_ARG_DEPTH} lists"
        )));
    }
    match arg.arg {
        None => Err(invalid(format!("task '{task}': an argument is empty"))),
        Some(Wire::Literal(value)) => Ok(Arg::Literal(literal(value))),
        Some(Wire::Task(key)) => Ok(Arg::Task(
            TaskKey::parse(&key).map_err(|error| invalid(format!("task '{task}': {error}")))?,
        )),
        Some(Wire::Chunk(key)) => Ok(Arg::Chunk(key)),
        Some(Wire::List(list)) => Ok(Arg::List(
            list.items
                .into_iter()
                .map(|item| self::arg(task, item, depth + 1))
                .collect::<Result<_, _>>()?,
        )),
    }
}

/// A task from the wire.
pub fn task_spec(task: pb::TaskSpec) -> Result<TaskSpec, ServerError> {
    let key = TaskKey::parse(&task.key).map_err(|error| invalid(error.to_string()))?;
    if task.op.is_empty() {
        return Err(invalid(format!("task '{key}' names no operation")));
    }
    let args = task
        .args
        .into_iter()
        .map(|value| arg(key.as_str(), value, 0))
        .collect::<Result<_, _>>()?;
    Ok(TaskSpec { key, op: task.op, args })
}

fn literal_to_wire(value: &Literal) -> pb::Literal {
    use pb::literal::Value;
    let value = match value {
        Literal::Null => Value::Null(true),
        Literal::Bool(value) => Value::BoolValue(*value),
        Literal::Int(value) => Value::IntValue(*value),
        Literal::Float(value) => Value::FloatValue(*value),
        Literal::Str(value) => Value::StrValue(value.clone()),
        Literal::Bytes(value) => Value::BytesValue(value.clone()),
    };
    pb::Literal { value: Some(value) }
}

fn arg_to_wire(value: &Arg) -> pb::TaskArg {
    use pb::task_arg::Arg as Wire;
    let arg = match value {
        Arg::Literal(literal) => Wire::Literal(literal_to_wire(literal)),
        Arg::Task(key) => Wire::Task(key.to_string()),
        Arg::Chunk(key) => Wire::Chunk(key.clone()),
        Arg::List(items) => Wire::List(pb::TaskArgList {
            items: items.iter().map(arg_to_wire).collect(),
        }),
    };
    pb::TaskArg { arg: Some(arg) }
}

/// A task for the wire.
pub fn task_to_wire(task: &TaskSpec) -> pb::TaskSpec {
    pb::TaskSpec {
        key: task.key.to_string(),
        op: task.op.clone(),
        args: task.args.iter().map(arg_to_wire).collect(),
    }
}

/// An operation signature from a worker's hello. Unknown parameter kinds are
/// taken as "any" (a newer worker may know kinds this scheduler does not).
pub fn signature(signature: pb::OpSignature) -> OpSignature {
    OpSignature {
        name: signature.name,
        params: signature
            .params
            .into_iter()
            .map(|param| ParamSpec {
                name: param.name,
                kind: ParamKind::parse(&param.kind).unwrap_or(ParamKind::Any),
                optional: param.optional,
            })
            .collect(),
        variadic: signature.variadic,
    }
}

/// An operation signature for the wire.
pub fn signature_to_wire(signature: &OpSignature) -> pb::OpSignature {
    pb::OpSignature {
        name: signature.name.clone(),
        params: signature
            .params
            .iter()
            .map(|param| pb::ParamSpec {
                name: param.name.clone(),
                kind: param.kind.name().to_string(),
                optional: param.optional,
            })
            .collect(),
        variadic: signature.variadic,
    }
}
