//! Operations that change a batch's shape, not its values: `select` (columns),
//! `concat` (batches one after another), `head` and `slice` (rows).

use std::sync::Arc;

use arrow::compute::kernels::concat::concat_batches;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use cairn_client::ParamKind;

use super::args::{required, Args, Builtin};
use super::batch::{arrow_error, column_names, find_column, parse_column_list};
use super::{OpContext, OpError};

pub(crate) fn builtins() -> Vec<Builtin> {
    vec![
        Builtin::new(
            "select",
            vec![required("x", ParamKind::Data), required("columns", ParamKind::Str)],
            select,
        )
        .light(),
        Builtin::variadic("concat", vec![required("parts", ParamKind::Data)], concat).light(),
        Builtin::new(
            "head",
            vec![required("x", ParamKind::Data), required("n", ParamKind::Int)],
            head,
        )
        .light(),
        Builtin::new(
            "slice",
            vec![
                required("x", ParamKind::Data),
                required("offset", ParamKind::Int),
                required("length", ParamKind::Int),
            ],
            slice,
        )
        .light(),
    ]
}

/// `select(x, columns)`: the named columns of `x`, in the order named
/// (comma-separated, or a JSON list for names with commas).
fn select(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "x")?;
    let names = parse_column_list(args.str(1, "columns")?).map_err(|reason| args.invalid("columns", reason))?;
    let indices = names
        .iter()
        .map(|name| find_column(args.op, "x", batch, name))
        .collect::<Result<Vec<_>, _>>()?;
    batch
        .project(&indices)
        .map_err(arrow_error(args.op, "selecting the columns of x"))
}

/// `concat(parts…)`: the parts one after another. They must have the same column
/// names and types in the same order; a column nullable in any part is nullable in
/// the result.
fn concat(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let parts = args.data_from(0, "parts")?;
    let Some(first) = parts.first() else {
        return Err(args.invalid("parts", "no data"));
    };
    let first_schema = first.schema();
    let mut nullable: Vec<bool> = first_schema.fields().iter().map(|field| field.is_nullable()).collect();
    for (index, part) in parts.iter().enumerate().skip(1) {
        let schema = part.schema();
        let mismatch = |reason: String| OpError::Mismatch {
            op: args.op.to_string(),
            params: format!("parts[0] and parts[{index}]"),
            reason,
        };
        if schema.fields().len() != first_schema.fields().len() {
            return Err(mismatch(format!(
                "parts[0] has columns ({}), parts[{index}] has ({})",
                column_names(&first_schema),
                column_names(&schema)
            )));
        }
        for (position, (field, known)) in schema.fields().iter().zip(first_schema.fields().iter()).enumerate() {
            if field.name() != known.name() || field.data_type() != known.data_type() {
                return Err(mismatch(format!(
                    "column {position} is {:?}: {} in parts[0] but {:?}: {} in parts[{index}]",
                    known.name(),
                    known.data_type(),
                    field.name(),
                    field.data_type()
                )));
            }
            nullable[position] |= field.is_nullable();
        }
    }
    let fields: Vec<_> = first_schema
        .fields()
        .iter()
        .zip(&nullable)
        .map(|(field, nullable)| field.as_ref().clone().with_nullable(*nullable))
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(fields, first_schema.metadata().clone()));
    // Rebuild each part on the unified schema (only nullability may differ).
    let rebuilt = parts
        .iter()
        .map(|part| RecordBatch::try_new(schema.clone(), part.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(arrow_error(args.op, "unifying the parts' schemas"))?;
    concat_batches(&schema, &rebuilt).map_err(arrow_error(args.op, "concatenating the parts"))
}

/// `head(x, n)`: the first `n` rows (all of them if there are fewer).
fn head(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "x")?;
    let n = args.count(1, "n")?;
    Ok(batch.slice(0, n.min(batch.num_rows())))
}

/// `slice(x, offset, length)`: `length` rows from `offset`, clamped to the rows
/// there are (an offset past the end gives no rows).
fn slice(args: &Args<'_>, _context: &OpContext) -> Result<RecordBatch, OpError> {
    let batch = args.data(0, "x")?;
    let offset = args.count(1, "offset")?.min(batch.num_rows());
    let length = args.count(2, "length")?.min(batch.num_rows() - offset);
    Ok(batch.slice(offset, length))
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type};

    use super::*;
    use crate::ops::{OpRegistry, OpValue};

    fn run(name: &str, args: Vec<OpValue>) -> Result<RecordBatch, OpError> {
        OpRegistry::builtins().run(name, args, &OpContext::new("t"))
    }

    fn table(ids: Vec<i64>) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|id| format!("n{id}")).collect();
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("name", Arc::new(StringArray::from(names)) as ArrayRef),
        ])
        .expect("batch")
    }

    fn ids(batch: &RecordBatch) -> Vec<i64> {
        batch.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn select_picks_and_orders_columns() {
        let result = run(
            "select",
            vec![OpValue::Data(table(vec![1, 2])), OpValue::from("name, id")],
        )
        .expect("select");
        assert_eq!(result.schema().field(0).name(), "name");
        let result = run(
            "select",
            vec![OpValue::Data(table(vec![1])), OpValue::from(r#"["id"]"#)],
        )
        .expect("json list");
        assert_eq!(result.num_columns(), 1);
        let error = run("select", vec![OpValue::Data(table(vec![1])), OpValue::from("id,age")]).expect_err("missing");
        assert_eq!(
            error.to_string(),
            "select: argument x has no column \"age\" (its columns: id, name)"
        );
        let error = run("select", vec![OpValue::Data(table(vec![1])), OpValue::from("id,id")]).expect_err("twice");
        assert_eq!(
            error.to_string(),
            "select: argument columns: column \"id\" is listed twice"
        );
    }

    #[test]
    fn concat_joins_parts_of_one_schema() {
        let result = run(
            "concat",
            vec![
                OpValue::Data(table(vec![1, 2])),
                OpValue::Data(table(vec![])),
                OpValue::Data(table(vec![3])),
            ],
        )
        .expect("concat");
        assert_eq!(ids(&result), [1, 2, 3]);

        let other = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        ])
        .expect("batch");
        let error = run("concat", vec![OpValue::Data(table(vec![1])), OpValue::Data(other)]).expect_err("types");
        assert_eq!(
            error.to_string(),
            "concat: parts[0] and parts[1] do not match: column 0 is \"id\": Int64 in parts[0] but \"id\": Float64 in parts[1]"
        );
        let narrow = table(vec![1]).project(&[0]).expect("project");
        let error = run("concat", vec![OpValue::Data(table(vec![1])), OpValue::Data(narrow)]).expect_err("columns");
        assert_eq!(
            error.to_string(),
            "concat: parts[0] and parts[1] do not match: parts[0] has columns (id, name), parts[1] has (id)"
        );

        // Nullability may differ: the result is nullable where any part is.
        let with_nullability = |nullable: bool, ids: Vec<i64>| {
            let fields = vec![
                Field::new("id", DataType::Int64, nullable),
                Field::new("name", DataType::Utf8, nullable),
            ];
            RecordBatch::try_new(Arc::new(Schema::new(fields)), table(ids).columns().to_vec()).expect("batch")
        };
        let parts = vec![
            OpValue::Data(with_nullability(false, vec![9])),
            OpValue::Data(with_nullability(true, vec![4])),
        ];
        let result = run("concat", parts).expect("concat");
        assert!(result.schema().field(0).is_nullable());
        assert_eq!(ids(&result), [9, 4]);
    }

    #[test]
    fn head_and_slice_clamp_to_the_rows_there_are() {
        let batch = table((0..10).collect());
        let head = |n: i64| run("head", vec![OpValue::Data(batch.clone()), OpValue::from(n)]);
        assert_eq!(ids(&head(3).expect("head")), [0, 1, 2]);
        assert_eq!(head(50).expect("head").num_rows(), 10);
        assert_eq!(
            head(-1).expect_err("negative").to_string(),
            "head: argument n: must not be negative, given -1"
        );

        let slice = |offset: i64, length: i64| {
            run(
                "slice",
                vec![
                    OpValue::Data(batch.clone()),
                    OpValue::from(offset),
                    OpValue::from(length),
                ],
            )
        };
        assert_eq!(ids(&slice(4, 3).expect("slice")), [4, 5, 6]);
        assert_eq!(ids(&slice(8, 5).expect("slice")), [8, 9]);
        assert_eq!(slice(20, 5).expect("slice").num_rows(), 0);
        assert!(slice(0, -5).is_err());
    }
}
