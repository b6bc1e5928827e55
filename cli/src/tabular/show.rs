//! Showing a table or a schema to a person in a terminal.

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::util::pretty::{pretty_format_batches, pretty_format_batches_with_schema};

use super::error::TabularError;
use super::schema_check::describe_field;

/// A readable table (arrow's pretty printer) of the first `n` rows of `batches`, followed by a
/// line `… N more rows` when `total_rows` (the rows in the whole table, which `batches` may
/// only begin) exceeds the rows shown.
pub fn format_head(batches: &[RecordBatch], n: usize, total_rows: u64) -> Result<String, TabularError> {
    let mut head_batches = Vec::new();
    let mut rows_shown = 0_usize;
    for batch in batches {
        let rows_wanted = n - rows_shown;
        if rows_wanted == 0 {
            break;
        }
        let rows_taken = rows_wanted.min(batch.num_rows());
        if rows_taken == 0 {
            continue;
        }
        head_batches.push(batch.slice(0, rows_taken));
        rows_shown += rows_taken;
    }
    let table = match batches.first() {
        // With the schema, a table without rows still shows its column names.
        Some(first_batch) => {
            pretty_format_batches_with_schema(first_batch.schema(), &head_batches).map(|table| table.to_string())
        }
        None => pretty_format_batches(&[]).map(|table| table.to_string()),
    }
    .map_err(|source| TabularError::Display { source })?;
    let mut text = table;
    let rows_hidden = total_rows.saturating_sub(rows_shown as u64);
    if rows_hidden > 0 {
        let noun = if rows_hidden == 1 { "row" } else { "rows" };
        text.push_str(&format!("\n… {rows_hidden} more {noun}"));
    }
    Ok(text)
}

/// A schema as one line per field: `name: type (nullable)`, or `name: type` for a field that
/// cannot hold nulls.
pub fn format_schema(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|field| describe_field(field))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabular::test_support::{sample_batch, sample_schema};

    /// The head shows exactly `n` rows taken across batches, then how many rows were left out.
    #[test]
    fn head_shows_n_rows_then_the_rest_count() {
        let batches = [sample_batch(0, 2), sample_batch(2, 5)];

        let text = format_head(&batches, 4, 1000).expect("format");

        let lines: Vec<&str> = text.lines().collect();
        // Border, header, border, 4 rows, border, the "more rows" line.
        assert_eq!(lines.len(), 9, "{text}");
        assert!(
            lines[1].contains("id") && lines[1].contains("name") && lines[1].contains("score"),
            "{text}"
        );
        assert!(lines[6].starts_with("| 3 "), "{text}");
        assert!(text.contains("name 1, \"quoted\""), "{text}");
        assert_eq!(lines[8], "… 996 more rows");
    }

    /// When everything is shown there is no "more rows" line; a single hidden row is "1 more row".
    #[test]
    fn head_counts_hidden_rows_exactly() {
        let batches = [sample_batch(0, 3)];

        assert!(!format_head(&batches, 10, 3).expect("format").contains("more"));
        assert!(format_head(&batches, 2, 3).expect("format").ends_with("\n… 1 more row"));
    }

    /// A head of zero rows still shows the column names.
    #[test]
    fn empty_head_shows_the_columns() {
        let text = format_head(&[sample_batch(0, 3)], 0, 3).expect("format");

        assert!(text.contains("| id | name | score |"), "{text}");
        assert!(text.ends_with("… 3 more rows"), "{text}");
    }

    /// The schema is shown one field a line, nullability spelled out.
    #[test]
    fn schema_lines_name_type_and_nullability() {
        assert_eq!(
            format_schema(&sample_schema()),
            "id: Int64\nname: Utf8 (nullable)\nscore: Float64 (nullable)"
        );
    }
}
