//! Frames and columns as Arrow C streams, without copying their buffers.
//!
//! A batch leaves as one stream of struct arrays (one per chunk, the record
//! batches `polars.DataFrame(stream)` reads); predictions come back as one
//! stream per column (`Series.__arrow_c_stream__()`). Only pointers to the
//! buffers cross; whoever holds an exported array keeps its buffers alive
//! through the stream's release callbacks.

use polars::prelude::*;
use polars_arrow::array::{Array, StructArray};
use polars_arrow::datatypes::{ArrowDataType, Field as ArrowField};
use polars_arrow::ffi::{export_iterator, ArrowArrayStream, ArrowArrayStreamReader};

/// The frame as an Arrow C stream of struct arrays. Columns whose chunks do
/// not line up are rechunked first (the only case that copies).
pub fn export_frame(mut frame: DataFrame) -> ArrowArrayStream {
    frame.align_chunks();
    let compat = CompatLevel::newest();
    let batches: Vec<_> = frame.iter_chunks(compat, false).collect();
    let fields: Vec<ArrowField> = match batches.first() {
        Some(batch) => batch.schema().iter_values().cloned().collect(),
        None => frame.columns().iter().map(|c| c.dtype().to_arrow_field(c.name().clone(), compat)).collect(),
    };
    let dtype = ArrowDataType::Struct(fields);
    let arrays: Vec<PolarsResult<Box<dyn Array>>> = batches
        .into_iter()
        .map(|batch| {
            let height = batch.height();
            StructArray::try_new(dtype.clone(), height, batch.into_arrays(), None).map(|a| a.boxed())
        })
        .collect();
    export_iterator(Box::new(arrays.into_iter()), ArrowField::new(PlSmallStr::EMPTY, dtype, false))
}

/// A column from a stream produced by `Series.__arrow_c_stream__()`.
///
/// `stream` must come from a producer of the Arrow C stream interface (the
/// bridge hands over only streams made by polars' `__arrow_c_stream__`):
/// the reader trusts the schema and arrays it yields.
pub fn import_column(name: &str, stream: ArrowArrayStream) -> PolarsResult<Series> {
    // SAFETY: `stream` is owned (moved out of the bridge's capsule, so no one
    // else reads or releases it) and was made by polars'
    // `Series.__arrow_c_stream__`, which keeps the stream interface's
    // invariants and yields a schema in the C data interface, as `try_new`
    // requires; the reader owns and releases it.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream))? };
    let mut field = reader.field().clone();
    field.name = name.into();
    let mut chunks = Vec::new();
    // SAFETY: the same producer yields arrays in the C data interface of the
    // schema read above, as `next` requires.
    while let Some(array) = unsafe { reader.next() } {
        chunks.push(array?);
    }
    if chunks.is_empty() {
        return Ok(Series::new_empty(field.name.clone(), &DataType::from_arrow_field(&field)));
    }
    Series::try_from((&field, chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reimport_frame(stream: ArrowArrayStream) -> Vec<Series> {
        // SAFETY: `stream` is owned and was made by polars' `export_iterator`
        // (through `export_frame`), a producer keeping the stream interface.
        let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream)).unwrap() };
        let mut columns: Vec<Vec<Box<dyn Array>>> = Vec::new();
        let ArrowDataType::Struct(fields) = reader.field().dtype().clone() else { panic!("not a struct stream") };
        // SAFETY: the same producer yields arrays of the schema read above.
        while let Some(array) = unsafe { reader.next() } {
            let array = array.unwrap();
            let array = array.as_any().downcast_ref::<StructArray>().unwrap();
            for (i, child) in array.values().iter().enumerate() {
                if columns.len() <= i {
                    columns.push(Vec::new());
                }
                columns[i].push(child.clone());
            }
        }
        fields.iter().zip(columns).map(|(f, chunks)| Series::try_from((f, chunks)).unwrap()).collect()
    }

    #[test]
    fn a_frame_crosses_as_record_batches_sharing_its_buffers() {
        let a = Series::new("a".into(), (0..1000).map(|i| i as f64).collect::<Vec<_>>());
        let before = a.f64().unwrap().downcast_iter().next().unwrap().values().as_ptr();
        let frame = DataFrame::new_infer_height(vec![
            a.into(),
            Series::new("s".into(), (0..1000).map(|i| format!("row {i}")).collect::<Vec<_>>()).into(),
        ])
        .unwrap();
        let columns = reimport_frame(export_frame(frame));
        assert_eq!(columns[0].name().as_str(), "a");
        let after = columns[0].f64().unwrap().downcast_iter().next().unwrap().values().as_ptr();
        assert_eq!(before, after, "the float buffer is the same memory on both sides");
        assert_eq!(columns[1].str().unwrap().get(999), Some("row 999"));
    }

    #[test]
    fn a_batch_of_several_requests_crosses_chunk_by_chunk() {
        let mut frame = DataFrame::new_infer_height(vec![Series::new("x".into(), [1.0f64, 2.0]).into()]).unwrap();
        frame
            .vstack_mut(&DataFrame::new_infer_height(vec![Series::new("x".into(), [3.0f64]).into()]).unwrap())
            .unwrap();
        let columns = reimport_frame(export_frame(frame));
        assert_eq!(columns[0].n_chunks(), 2);
        assert_eq!(columns[0].f64().unwrap().into_no_null_iter().collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_column_stream_becomes_a_series_with_the_given_name() {
        let series = Series::new("ignored".into(), [1i64, 2, 3]);
        let arrays: Vec<PolarsResult<Box<dyn Array>>> = series.chunks().iter().map(|a| Ok(a.clone())).collect();
        let field = series.dtype().to_arrow_field("ignored".into(), CompatLevel::newest());
        let stream = export_iterator(Box::new(arrays.into_iter()), field);
        let back = import_column("predictions", stream).unwrap();
        assert_eq!(back.name().as_str(), "predictions");
        assert_eq!(back.i64().unwrap().into_no_null_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
