//! A TypeScript handler's result, as the TypeScript layer normalises it,
//! into the core's [`Predictions`].
//!
//! The shape (see `src/output.ts`):
//! `{ error?: string, stack?: string, single: boolean, columns: NativeColumn[] }`
//! where a column is `{ name, kind, data?, strings?, offsets?, nulls? }` and
//! `kind` is `num` (any typed array), `int` (a Float64Array of integers),
//! `bool` (a Uint8Array of 0/1), `str`, `json` (JSON texts) or `list` (flat
//! `data` cut by `offsets`).

use napi::bindgen_prelude::*;
use napi::sys;
use polars::prelude::*;
use polars_arrow::array::ListArray;
use polars_arrow::bitmap::Bitmap;
use polars_arrow::offset::OffsetsBuffer;
use redesmyn::{HandlerError, Predictions};

pub struct NativeOutput(pub std::result::Result<Predictions, HandlerError>);

impl FromNapiValue for NativeOutput {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let obj = unsafe { Object::from_napi_value(env, value)? };
        if let Some(message) = obj.get::<String>("error")? {
            let mut error = HandlerError::new(message);
            if let Some(stack) = obj.get::<String>("stack")? {
                error = error.with_detail(stack);
            }
            return Ok(NativeOutput(Err(error)));
        }
        let single = obj.get::<bool>("single")?.unwrap_or(true);
        let columns: Vec<Object> = obj.get("columns")?.unwrap_or_default();
        let series = columns.iter().map(column).collect::<Result<Vec<_>>>()?;
        let predictions = if single {
            let s = series.into_iter().next().ok_or_else(|| bad("the handler returned no column"))?;
            Predictions::Column(s)
        } else {
            let height = series.first().map_or(0, |s| s.len());
            if let Some(s) = series.iter().find(|s| s.len() != height) {
                return Ok(NativeOutput(Err(HandlerError::new(format!(
                    "output column '{}' has {} rows, the others {height}",
                    s.name(),
                    s.len()
                )))));
            }
            let columns = series.into_iter().map(Series::into_column).collect();
            Predictions::Columns(DataFrame::new(height, columns).map_err(crate::to_js::to_napi)?)
        };
        Ok(NativeOutput(Ok(predictions)))
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}

fn column(obj: &Object) -> Result<Series> {
    let name: PlSmallStr = obj.get::<String>("name")?.unwrap_or_default().into();
    let kind = obj.get::<String>("kind")?.ok_or_else(|| bad("output column without a kind"))?;
    let validity =
        obj.get::<TypedArray>("nulls")?.map(|mask| Bitmap::from_iter(mask.arraybuffer.iter().map(|&null| null == 0)));
    let series = match kind.as_str() {
        "str" | "json" => {
            let strings: Vec<Option<String>> = obj.get("strings")?.unwrap_or_default();
            if kind == "str" {
                Series::new(name, strings)
            } else {
                let bytes: Vec<Option<&[u8]>> = strings.iter().map(|s| s.as_deref().map(str::as_bytes)).collect();
                Series::new(name, bytes)
            }
        }
        "list" => {
            let data = obj.get::<TypedArray>("data")?.ok_or_else(|| bad("list column without data"))?;
            let offsets = obj.get::<TypedArray>("offsets")?.ok_or_else(|| bad("list column without offsets"))?;
            let values = typed_to_series(PlSmallStr::EMPTY, &data, "num")?;
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
        "num" | "int" | "bool" => {
            let data = obj.get::<TypedArray>("data")?.ok_or_else(|| bad("output column without data"))?;
            typed_to_series(name, &data, &kind)?
        }
        other => return Err(bad(format!("unknown output column kind '{other}'"))),
    };
    match validity {
        Some(v) if v.len() == series.len() => with_validity(series, v),
        Some(_) => Err(bad("null mask length differs from the column")),
        None => Ok(series),
    }
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

fn typed_to_series(name: PlSmallStr, data: &TypedArray, kind: &str) -> Result<Series> {
    let bytes: &[u8] = &data.arraybuffer;
    Ok(match (kind, data.typed_array_type) {
        ("bool", _) => Series::new(name, bytes.iter().map(|&b| b != 0).collect::<Vec<bool>>()),
        ("int", TypedArrayType::Float64) => {
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
