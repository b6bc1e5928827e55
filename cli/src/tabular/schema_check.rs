//! Comparing the fields of two schemas, as the inputs of one table must agree.

use arrow::datatypes::{Field, Schema};

/// The first position at which two schemas' fields differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldDifference {
    /// 1-based position of the field.
    pub(super) position: usize,
    /// The field in the first schema as `name: type (nullable)`, or `absent`.
    pub(super) first_field: String,
    /// The field in the other schema, likewise.
    pub(super) other_field: String,
}

/// The first field that differs in name, type or nullability, or `None` if all agree.
///
/// Schema and field metadata are ignored: Parquet and IPC writers add their own, and they do
/// not change what the batches hold.
pub(super) fn first_field_difference(first: &Schema, other: &Schema) -> Option<FieldDifference> {
    let field_count = first.fields().len().max(other.fields().len());
    (0..field_count).find_map(|index| {
        let first_field = first.fields().get(index);
        let other_field = other.fields().get(index);
        let same = match (first_field, other_field) {
            (Some(first_field), Some(other_field)) => fields_agree(first_field, other_field),
            _ => false,
        };
        if same {
            return None;
        }
        Some(FieldDifference {
            position: index + 1,
            first_field: first_field.map_or_else(|| "absent".to_string(), |field| describe_field(field)),
            other_field: other_field.map_or_else(|| "absent".to_string(), |field| describe_field(field)),
        })
    })
}

/// Whether two fields have the same name, type and nullability.
fn fields_agree(first: &Field, other: &Field) -> bool {
    first.name() == other.name() && first.data_type() == other.data_type() && first.is_nullable() == other.is_nullable()
}

/// A field as `name: type (nullable)`, or `name: type` when it cannot hold nulls.
pub(super) fn describe_field(field: &Field) -> String {
    if field.is_nullable() {
        format!("{}: {} (nullable)", field.name(), field.data_type())
    } else {
        format!("{}: {}", field.name(), field.data_type())
    }
}

/// The fields of a schema on one line, for error messages.
pub(super) fn describe_fields(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|field| describe_field(field))
        .collect::<Vec<_>>()
        .join(", ")
}
