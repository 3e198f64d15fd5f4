//! A TypeScript handler's result, as `src/output.ts` normalises it, into the
//! core's [`Predictions`]. The shape is declared once, here, as typed
//! objects; `binding.d.ts` carries it to TypeScript.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use polars::prelude::*;
use polars_arrow::array::ListArray;
use polars_arrow::bitmap::Bitmap;
use polars_arrow::offset::OffsetsBuffer;
use redesmyn::{HandlerError, Predictions};

/// How an output column travels.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Any typed array, taken as its element type.
    Num,
    /// A Float64Array of whole numbers, written as integers.
    Int,
    /// A Uint8Array of 0/1.
    Bool,
    /// UTF-8 `data` cut into texts by `offsets`.
    Str,
    /// As `Str`, holding JSON texts (values without a column type).
    Json,
    /// Flat `data` cut into rows by `offsets`.
    List,
}

/// One output column.
#[napi(object, object_to_js = false)]
pub struct ColumnOutput<'a> {
    /// The output's name (empty for a single unnamed output).
    pub name: String,
    pub kind: ColumnKind,
    #[napi(
        ts_type = "Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array"
    )]
    pub data: Option<TypedArray<'a>>,
    #[napi(ts_type = "Uint32Array")]
    pub offsets: Option<TypedArray<'a>>,
    /// 1 where the value is null.
    #[napi(ts_type = "Uint8Array")]
    pub nulls: Option<TypedArray<'a>>,
}

/// What a handler's promise resolves with: an error, or its columns.
#[napi(object, object_to_js = false)]
pub struct HandlerOutput<'a> {
    pub error: Option<String>,
    pub stack: Option<String>,
    /// One unnamed output (the first column) rather than named outputs.
    pub single: Option<bool>,
    pub columns: Option<Vec<ColumnOutput<'a>>>,
}

/// What one pull of a TypeScript streaming handler resolves with: an
/// error, the end of the generator, or a step (chunks as a handler's
/// output, null where a row has nothing, and the rows that end).
#[napi(object, object_to_js = false)]
pub struct StepOutput<'a> {
    pub error: Option<String>,
    pub stack: Option<String>,
    /// The generator is done: every row still open ends.
    pub finished: Option<bool>,
    pub single: Option<bool>,
    pub columns: Option<Vec<ColumnOutput<'a>>>,
    /// Batch rows that end after this step.
    pub ended: Option<Vec<u32>>,
}

/// A step once read on the Node thread: `Ok(None)` when the generator is done.
pub struct NativeStep(pub std::result::Result<Option<redesmyn::Step>, HandlerError>);

impl FromNapiValue for NativeStep {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: called by napi with a live env and value on the Node thread.
        let output = unsafe { StepOutput::from_napi_value(env, value)? };
        if output.error.is_none() && output.finished == Some(true) {
            return Ok(NativeStep(Ok(None)));
        }
        let ended = output.ended.unwrap_or_default().into_iter().map(|r| r as usize).collect();
        let chunks = match output.columns {
            None if output.error.is_none() => None,
            columns => {
                let handler_output =
                    HandlerOutput { error: output.error, stack: output.stack, single: output.single, columns };
                match predictions(handler_output)? {
                    Ok(p) => Some(p),
                    Err(e) => return Ok(NativeStep(Err(e))),
                }
            }
        };
        Ok(NativeStep(Ok(Some(redesmyn::Step { chunks, ended }))))
    }
}

/// A handler's result once read on the Node thread: only Rust data, ready
/// to travel back to the batcher.
pub struct NativeOutput(pub std::result::Result<Predictions, HandlerError>);

impl FromNapiValue for NativeOutput {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: called by napi with a live env and value on the Node thread.
        let output = unsafe { HandlerOutput::from_napi_value(env, value)? };
        predictions(output).map(NativeOutput)
    }
}

fn predictions(output: HandlerOutput<'_>) -> Result<std::result::Result<Predictions, HandlerError>> {
    if let Some(message) = output.error {
        let mut error = HandlerError::new(message);
        if let Some(stack) = output.stack {
            error = error.with_detail(stack);
        }
        return Ok(Err(error));
    }
    let single = output.single.unwrap_or(true);
    let series = output.columns.unwrap_or_default().iter().map(column).collect::<Result<Vec<_>>>()?;
    let predictions = if single {
        let s = series.into_iter().next().ok_or_else(|| bad("the handler returned no column"))?;
        Predictions::Column(s)
    } else {
        let height = series.first().map_or(0, |s| s.len());
        if let Some(s) = series.iter().find(|s| s.len() != height) {
            return Ok(Err(HandlerError::new(format!(
                "output column '{}' has {} rows, the others {height}",
                s.name(),
                s.len()
            ))));
        }
        let columns = series.into_iter().map(Series::into_column).collect();
        Predictions::Columns(DataFrame::new(height, columns).map_err(crate::to_js::to_napi)?)
    };
    Ok(Ok(predictions))
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}

fn column(column: &ColumnOutput<'_>) -> Result<Series> {
    let name: PlSmallStr = column.name.as_str().into();
    let validity = column.nulls.as_ref().map(|mask| Bitmap::from_iter(mask.arraybuffer.iter().map(|&null| null == 0)));
    let series = match column.kind {
        ColumnKind::Str => Series::new(name, texts(column)?),
        ColumnKind::Json => Series::new(name, texts(column)?.into_iter().map(str::as_bytes).collect::<Vec<_>>()),
        ColumnKind::List => {
            let data = column.data.as_ref().ok_or_else(|| bad("list column without data"))?;
            let offsets = column.offsets.as_ref().ok_or_else(|| bad("list column without offsets"))?;
            let values = typed_to_series(PlSmallStr::EMPTY, data, ColumnKind::Num)?;
            let offsets: Vec<i64> = copy::<u32>(&offsets.arraybuffer).into_iter().map(i64::from).collect();
            let item = values.dtype().clone();
            let arrow_item = item.to_arrow(CompatLevel::newest());
            let dtype = polars_arrow::datatypes::ArrowDataType::LargeList(Box::new(
                polars_arrow::datatypes::Field::new("item".into(), arrow_item, true),
            ));
            let offsets = OffsetsBuffer::try_from(offsets).map_err(|e| bad(format!("bad list offsets: {e}")))?;
            let chunk = values.rechunk().chunks()[0].clone();
            let list = ListArray::<i64>::try_new(dtype, offsets, chunk, None).map_err(crate::to_js::to_napi)?;
            // SAFETY: the arrow list was built for exactly this logical dtype.
            unsafe {
                Series::from_chunks_and_dtype_unchecked(name, vec![list.boxed()], &DataType::List(Box::new(item)))
            }
        }
        kind @ (ColumnKind::Num | ColumnKind::Int | ColumnKind::Bool) => {
            let data = column.data.as_ref().ok_or_else(|| bad("output column without data"))?;
            typed_to_series(name, data, kind)?
        }
    };
    match validity {
        Some(v) if v.len() == series.len() => with_validity(series, v),
        Some(_) => Err(bad("null mask length differs from the column")),
        None => Ok(series),
    }
}

/// The texts of a `Str` or `Json` column: its UTF-8 `data` cut at `offsets`.
fn texts<'c>(column: &'c ColumnOutput<'_>) -> Result<Vec<&'c str>> {
    let data = column.data.as_ref().ok_or_else(|| bad("text column without data"))?;
    let offsets = column.offsets.as_ref().ok_or_else(|| bad("text column without offsets"))?;
    let text = std::str::from_utf8(&data.arraybuffer).map_err(|e| bad(format!("text column is not UTF-8: {e}")))?;
    let offsets = copy::<u32>(&offsets.arraybuffer);
    offsets.windows(2).map(|w| text.get(w[0] as usize..w[1] as usize).ok_or_else(|| bad("bad text offsets"))).collect()
}

fn with_validity(series: Series, validity: Bitmap) -> Result<Series> {
    let chunk = series.rechunk().chunks()[0].with_validity(Some(validity));
    // SAFETY: same dtype as the series the chunk came from.
    Ok(unsafe { Series::from_chunks_and_dtype_unchecked(series.name().clone(), vec![chunk], series.dtype()) })
}

/// Copies a typed array into a new vector (the view may be unaligned).
fn copy<T: Copy + Default>(bytes: &[u8]) -> Vec<T> {
    let n = bytes.len() / std::mem::size_of::<T>();
    let mut out = vec![T::default(); n];
    // SAFETY: `out` has room for exactly `n * size_of::<T>()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), n * std::mem::size_of::<T>())
    };
    out
}

fn typed_to_series(name: PlSmallStr, data: &TypedArray<'_>, kind: ColumnKind) -> Result<Series> {
    let bytes: &[u8] = &data.arraybuffer;
    Ok(match (kind, data.typed_array_type) {
        (ColumnKind::Bool, _) => Series::new(name, bytes.iter().map(|&b| b != 0).collect::<Vec<bool>>()),
        (ColumnKind::Int, TypedArrayType::Float64) => {
            Series::new(name, copy::<f64>(bytes).into_iter().map(|v| v as i64).collect::<Vec<i64>>())
        }
        (_, TypedArrayType::Float64) => Series::new(name, copy::<f64>(bytes)),
        (_, TypedArrayType::Float32) => Series::new(name, copy::<f32>(bytes)),
        (_, TypedArrayType::Int8) => Series::new(name, copy::<i8>(bytes)),
        (_, TypedArrayType::Int16) => Series::new(name, copy::<i16>(bytes)),
        (_, TypedArrayType::Int32) => Series::new(name, copy::<i32>(bytes)),
        (_, TypedArrayType::BigInt64) => Series::new(name, copy::<i64>(bytes)),
        (_, TypedArrayType::Uint8 | TypedArrayType::Uint8Clamped) => Series::new(name, bytes.to_vec()),
        (_, TypedArrayType::Uint16) => Series::new(name, copy::<u16>(bytes)),
        (_, TypedArrayType::Uint32) => Series::new(name, copy::<u32>(bytes)),
        (_, TypedArrayType::BigUint64) => Series::new(name, copy::<u64>(bytes)),
        (_, other) => return Err(bad(format!("unsupported typed array {}", other.as_ref()))),
    })
}
