//! Rows checked against the endpoint's schema, as a request's records are:
//! a value that does not fit its field rejects its own row, with a reason,
//! and never the rest of the chunk.

use polars::chunked_array::cast::CastOptions;
use polars::prelude::{BooleanChunked, ChunkFull, DataFrame};

use super::read::ROW;
use super::ScoreError;
use crate::schema::Schema;

/// A chunk split into rows fit for the handler and rows rejected.
pub struct Checked {
    /// The fit rows, every column kept, the schema's fields cast to their types.
    pub valid: DataFrame,
    /// `(row number, reason)` of each rejected row.
    pub rejects: Vec<(u64, String)>,
}

pub fn check(schema: &Schema, mut chunk: DataFrame) -> Result<Checked, ScoreError> {
    let height = chunk.height();
    let mut reasons: Vec<Option<String>> = Vec::new();
    for field in schema.fields() {
        let column = chunk.column(&field.name).map_err(|_| ScoreError::MissingColumn(field.name.clone()))?.clone();
        let target = field.ty.dtype();
        let cast = if column.dtype() == &target {
            column.clone()
        } else {
            column.cast_with_options(&target, CastOptions::NonStrict).map_err(|e| {
                ScoreError::Format(format!(
                    "column '{}' ({}) cannot be read as {}: {e}",
                    field.name,
                    column.dtype(),
                    field.ty
                ))
            })?
        };
        let was_null = column.is_null();
        let is_null = cast.is_null();
        let unparsed = &is_null & &!&was_null;
        let missing = if field.nullable { BooleanChunked::full("".into(), false, height) } else { was_null };
        let bad = &unparsed | &missing;
        if bad.any() {
            if reasons.is_empty() {
                reasons = vec![None; height];
            }
            for (i, flag) in bad.iter().enumerate() {
                if flag != Some(true) || reasons[i].is_some() {
                    continue;
                }
                reasons[i] = Some(if missing.get(i) == Some(true) {
                    format!("field '{}': missing value", field.name)
                } else {
                    let value = column.get(i).map(|v| v.to_string()).unwrap_or_default();
                    format!("field '{}': cannot read {value} as {}", field.name, field.ty)
                });
            }
        }
        chunk.replace(&field.name, cast)?;
    }
    if reasons.is_empty() {
        return Ok(Checked { valid: chunk, rejects: Vec::new() });
    }
    let rows = chunk.column(ROW)?.u64()?.clone();
    let mut rejects = Vec::new();
    let keep: BooleanChunked = reasons
        .into_iter()
        .enumerate()
        .map(|(i, reason)| match reason {
            Some(reason) => {
                rejects.push((rows.get(i).unwrap_or_default(), reason));
                false
            }
            None => true,
        })
        .collect();
    Ok(Checked { valid: chunk.filter(&keep)?, rejects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType, Numeric};
    use polars::prelude::{IntoColumn, NamedFrom, Series};

    #[test]
    fn a_bad_value_rejects_only_its_row_with_the_reason() {
        let schema = Schema::new(vec![
            Field::new("x", FieldType::Number(Numeric::F64)),
            Field::new("y", FieldType::Number(Numeric::F64)).nullable(),
        ])
        .unwrap();
        let chunk = DataFrame::new_infer_height(vec![
            Series::new("x".into(), &[Some("1.5"), Some("abc"), None, Some("2")]).into_column(),
            Series::new("y".into(), &[Some("1"), Some("2"), Some("3"), None]).into_column(),
            Series::new(ROW.into(), &[10u64, 11, 12, 13]).into_column(),
        ])
        .unwrap();
        let checked = check(&schema, chunk).unwrap();
        assert_eq!(checked.valid.height(), 2);
        assert_eq!(checked.rejects[0].0, 11);
        assert!(checked.rejects[0].1.contains("cannot read") && checked.rejects[0].1.contains("abc"));
        assert_eq!(checked.rejects[1], (12, "field 'x': missing value".to_string()));
        let x = checked.valid.column("x").unwrap().f64().unwrap().clone();
        assert_eq!(x.iter().collect::<Vec<_>>(), vec![Some(1.5), Some(2.0)]);
    }
}
