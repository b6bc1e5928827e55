//! Small helpers over Arrow batches shared by the operation families: which types
//! count as numeric, scalar results as `value` batches, finding columns, strict casts.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::compute::kernels::cast::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use cairn_client::Literal;

use super::OpError;

/// The column name of a scalar result: a 1-row batch with one column `value`.
pub const VALUE_COLUMN: &str = "value";

/// Integer types (signed and unsigned): accumulated as `Int64`.
pub(crate) fn is_integer(data_type: &DataType) -> bool {
    data_type.is_integer()
}

/// Float types: accumulated as `Float64`.
pub(crate) fn is_float(data_type: &DataType) -> bool {
    data_type.is_floating()
}

/// The types the numeric operations (`inc`, `binary`, reductions) work on: integers
/// and floats. Decimals, dates and the rest pass through them unchanged.
pub(crate) fn is_numeric(data_type: &DataType) -> bool {
    is_integer(data_type) || is_float(data_type)
}

/// A 1-element array holding `literal`.
pub(crate) fn literal_array(literal: &Literal) -> ArrayRef {
    match literal {
        Literal::Null => new_null_array(&DataType::Null, 1),
        Literal::Bool(value) => Arc::new(BooleanArray::from(vec![*value])),
        Literal::Int(value) => Arc::new(Int64Array::from(vec![*value])),
        Literal::Float(value) => Arc::new(Float64Array::from(vec![*value])),
        Literal::Str(value) => Arc::new(StringArray::from(vec![value.as_str()])),
        Literal::Bytes(value) => Arc::new(BinaryArray::from(vec![value.as_slice()])),
    }
}

/// A batch with the one column `value` holding `array` (a scalar result when
/// `array` has one element).
pub(crate) fn value_batch(array: ArrayRef) -> Result<RecordBatch, ArrowError> {
    let nullable = array.null_count() > 0 || array.data_type() == &DataType::Null;
    let field = Field::new(VALUE_COLUMN, array.data_type().clone(), nullable);
    RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array])
}

/// `literal` as a scalar result: a 1-row `value` batch.
pub(crate) fn literal_batch(literal: &Literal) -> Result<RecordBatch, ArrowError> {
    value_batch(literal_array(literal))
}

/// The column names of `schema`, comma-separated, for error messages.
pub(crate) fn column_names(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|field| field.name().as_str()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The index of column `name` in the data argument `param`.
pub(crate) fn find_column(op: &str, param: &str, batch: &RecordBatch, name: &str) -> Result<usize, OpError> {
    batch.schema_ref().index_of(name).map_err(|_| OpError::MissingColumn {
        op: op.to_string(),
        param: param.to_string(),
        column: name.to_string(),
        available: column_names(batch.schema_ref()),
    })
}

/// Wraps an Arrow error with the operation and what was being computed.
pub(crate) fn arrow_error(op: &str, context: impl Into<String>) -> impl FnOnce(ArrowError) -> OpError {
    let op = op.to_string();
    let context = context.into();
    move |source| OpError::Arrow { op, context, source }
}

/// Arrow's `cast`, but a value that does not fit is an error instead of a null.
pub(crate) fn strict_cast(array: &dyn Array, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(array, to, &options)
}

/// `schema` with every field nullable: the schema of a computed result, whose
/// columns may hold nulls the inputs did not.
pub(crate) fn nullable_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| field.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Parses a list of column names: a JSON array of strings (`["a", "b"]`) or
/// comma-separated text (`a, b`; spaces around names are dropped). Names must be
/// non-empty and distinct.
pub(crate) fn parse_column_list(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim();
    let names: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|error| format!("not a JSON list of column names: {error}"))?
    } else {
        trimmed.split(',').map(|name| name.trim().to_string()).collect()
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        if name.is_empty() {
            return Err(format!("an empty column name in {text:?}"));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("column {name:?} is listed twice"));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_are_json_or_comma_separated() {
        assert_eq!(parse_column_list("a, b ,c").expect("commas"), ["a", "b", "c"]);
        assert_eq!(parse_column_list(r#"["a,b", "c"]"#).expect("json"), ["a,b", "c"]);
        assert!(parse_column_list("a,,b")
            .expect_err("empty")
            .contains("empty column name"));
        assert!(parse_column_list("a,a").expect_err("twice").contains("listed twice"));
        assert!(parse_column_list("[1]")
            .expect_err("not strings")
            .contains("not a JSON list"));
    }

    #[test]
    fn literals_become_one_row_value_batches() {
        let batch = literal_batch(&Literal::Int(7)).expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema().field(0).name(), VALUE_COLUMN);
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        let null = literal_batch(&Literal::Null).expect("null batch");
        assert_eq!(null.column(0).data_type(), &DataType::Null);
    }
}
