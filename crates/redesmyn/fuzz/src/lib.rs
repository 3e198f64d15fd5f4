//! What the fuzz targets share: a schema drawn from the input's first
//! bytes, so one target covers every field type, nullability and width.
use polars::prelude::*;
use polars_arrow::array::{Array, StructArray};
use polars_arrow::datatypes::{ArrowDataType, Field as ArrowField};
use polars_arrow::ffi::{export_iterator, ArrowArrayStream, ArrowArrayStreamReader};
use redesmyn::schema::{Field, FieldType, Numeric, Schema};

const NUMERICS: [Numeric; 10] = [
    Numeric::I8,
    Numeric::I16,
    Numeric::I32,
    Numeric::I64,
    Numeric::U8,
    Numeric::U16,
    Numeric::U32,
    Numeric::U64,
    Numeric::F32,
    Numeric::F64,
];

/// The field type byte `b` names: every scalar, list and small array type.
pub fn field_type(b: u8) -> FieldType {
    let numeric = NUMERICS[usize::from(b >> 3) % NUMERICS.len()];
    match b % 8 {
        0 => FieldType::Bool,
        1 => FieldType::Str,
        2 => FieldType::List(numeric),
        3 => FieldType::Array(numeric, usize::from(b >> 6) + 1),
        _ => FieldType::Number(numeric),
    }
}

/// Splits `data` into a schema of one to three fields (named `a`, `b`,
/// `c`) and the rest. The first byte gives the field count and which
/// fields are nullable, the next ones their types.
pub fn schema_and_rest(data: &[u8]) -> Option<(Schema, &[u8])> {
    let (&head, rest) = data.split_first()?;
    let count = usize::from(head % 3) + 1;
    if rest.len() < count {
        return None;
    }
    let (types, rest) = rest.split_at(count);
    let fields = types
        .iter()
        .zip(["a", "b", "c"])
        .enumerate()
        .map(|(i, (&t, name))| {
            let field = Field::new(name, field_type(t));
            if head & (8 << i) != 0 {
                field.nullable()
            } else {
                field
            }
        })
        .collect();
    Some((Schema::new(fields).ok()?, rest))
}

/// Two frames hold the same values: same names, types and rows, floats
/// compared by bits (NaN equals NaN), nulls equal nulls.
pub fn same(a: &DataFrame, b: &DataFrame) -> bool {
    a.shape() == b.shape()
        && a.columns().iter().zip(b.columns()).all(|(x, y)| {
            x.name() == y.name()
                && x.dtype() == y.dtype()
                && (0..x.len()).all(|i| format!("{:?}", x.get(i).ok()) == format!("{:?}", y.get(i).ok()))
        })
}

/// Whether a float (alone or in a list or array) is infinite or NaN:
/// records JSON writes those as null.
pub fn has_non_finite(frame: &DataFrame) -> bool {
    frame.columns().iter().any(|c| {
        !matches!(c.dtype(), DataType::String)
            && (0..c.len()).any(|i| {
                let text = format!("{:?}", c.get(i).ok());
                text.contains("inf") || text.contains("NaN")
            })
    })
}

/// A column as the Arrow C stream `Series.__arrow_c_stream__()` makes:
/// one array per chunk.
pub fn column_stream(series: &Series) -> ArrowArrayStream {
    let field = ArrowField::new(series.name().clone(), series.dtype().to_arrow(CompatLevel::newest()), true);
    let chunks: Vec<PolarsResult<Box<dyn Array>>> =
        (0..series.n_chunks()).map(|i| Ok(series.to_arrow(i, CompatLevel::newest()))).collect();
    export_iterator(Box::new(chunks.into_iter()), field)
}

/// Reads a stream of struct arrays (what `export_frame` makes) back into a
/// frame, as `polars.DataFrame(stream)` does on the Python side.
pub fn read_frame_stream(stream: ArrowArrayStream) -> DataFrame {
    // SAFETY: the stream is owned and was made by polars' `export_iterator`,
    // which keeps the C stream interface's invariants.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream)).expect("a stream schema") };
    let ArrowDataType::Struct(fields) = reader.field().dtype().clone() else { panic!("not a struct stream") };
    let mut chunks: Vec<Vec<Box<dyn Array>>> = vec![Vec::new(); fields.len()];
    // SAFETY: the same producer yields arrays of the schema read above.
    while let Some(array) = unsafe { reader.next() } {
        let array = array.expect("an array");
        let array = array.as_any().downcast_ref::<StructArray>().expect("a struct array");
        for (i, child) in array.values().iter().enumerate() {
            chunks[i].push(child.clone());
        }
    }
    let columns: Vec<Column> = fields
        .iter()
        .zip(chunks)
        .map(|(f, chunks)| {
            if chunks.is_empty() {
                Series::new_empty(f.name.clone(), &DataType::from_arrow_field(f)).into()
            } else {
                Series::try_from((f, chunks)).expect("a column").into()
            }
        })
        .collect();
    let height = columns.first().map_or(0, Column::len);
    DataFrame::new(height, columns).expect("a frame")
}
