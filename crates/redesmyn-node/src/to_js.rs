//! A batch as JavaScript sees it: `{ length, columns, nulls, params }`.
//!
//! Numeric columns become typed arrays over the batch's own Arrow buffers
//! (an external ArrayBuffer that keeps the column alive until JavaScript
//! collects it): no copy, for columns of 16 KiB and more; smaller ones are
//! copied into an ordinary ArrayBuffer, which V8 collects for less. 64-bit integers become BigInt64Array /
//! BigUint64Array. Lists and fixed-size arrays become arrays of typed-array
//! views over one buffer. Booleans become a Uint8Array of 0/1, strings an
//! array of strings; `nulls[name]` is a Uint8Array (1 = null) present only
//! when the column has nulls in this batch.

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::{check_status, sys, Env};
use polars::prelude::*;
use polars_arrow::array::Array as _;
use redesmyn::Params;

/// The shape of the batch object `batch_to_js` builds, declared so that
/// binding.d.ts names it (`BatchView`) for the TypeScript layer; the object
/// itself is built by hand, zero-copy, below.
#[napi_derive::napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares a type for binding.d.ts; the object is built by hand")]
pub struct BatchView {
    pub length: u32,
    /// Column name → typed array, array of strings, or array of typed arrays.
    #[napi(ts_type = "Record<string, unknown>")]
    pub columns: (),
    /// Column name → Uint8Array (1 = null), for columns with nulls in this batch.
    #[napi(ts_type = "Record<string, Uint8Array>")]
    pub nulls: (),
    pub params: std::collections::HashMap<String, String>,
    /// The batch's model in the TypeScript model map, with a model cache.
    pub model_id: Option<f64>,
    /// The batch span's W3C `traceparent`, when a request in it is traced.
    pub traceparent: Option<String>,
}

pub struct JsBatch {
    pub frame: DataFrame,
    pub params: std::sync::Arc<Params>,
    /// The id of the batch's model in the JavaScript model map, if any.
    pub model_id: Option<f64>,
    /// The batch span's W3C `traceparent`, when a request in it is traced.
    pub traceparent: Option<String>,
}

/// Raw `napi_value` wrapper so values built with `sys` calls can be set on
/// objects and passed as call arguments.
pub struct RawValue(sys::napi_value);

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

pub fn batch_to_js(env: &Env, batch: JsBatch) -> Result<RawValue> {
    let mut out = Object::new(env)?;
    out.set("length", batch.frame.height() as u32)?;
    let mut columns = Object::new(env)?;
    let mut nulls = Object::new(env)?;
    for column in batch.frame.columns() {
        let series = column.as_materialized_series();
        let name = series.name().as_str();
        columns.set(name, RawValue(series_to_js(env, series)?))?;
        if series.null_count() > 0 {
            let mask: Vec<u8> = series.is_null().iter().map(|v| u8::from(v == Some(true))).collect();
            nulls.set(name, Uint8Array::new(mask))?;
        }
    }
    out.set("columns", columns)?;
    out.set("nulls", nulls)?;
    let mut params = Object::new(env)?;
    for (k, v) in batch.params.iter() {
        params.set(k, v)?;
    }
    out.set("params", params)?;
    if let Some(id) = batch.model_id {
        out.set("modelId", id)?;
    }
    if let Some(traceparent) = batch.traceparent {
        out.set("traceparent", traceparent)?;
    }
    // SAFETY: `env` is the live env of this callback, on the Node thread.
    Ok(RawValue(unsafe { Object::to_napi_value(env.raw(), out)? }))
}

fn series_to_js(env: &Env, series: &Series) -> Result<sys::napi_value> {
    match series.dtype() {
        DataType::Boolean => {
            let values: Vec<u8> = series.bool().map_err(to_napi)?.iter().map(|b| b.unwrap_or(false) as u8).collect();
            // SAFETY: `env` is the live env of this callback, on the Node thread.
            unsafe { Uint8Array::to_napi_value(env.raw(), Uint8Array::new(values)) }
        }
        DataType::String => {
            let ca = series.str().map_err(to_napi)?;
            let mut array = env.create_array(ca.len() as u32)?;
            for (i, v) in ca.iter().enumerate() {
                array.set(i as u32, v)?;
            }
            // SAFETY: `env` is the live env of this callback, on the Node thread.
            unsafe { Array::to_napi_value(env.raw(), array) }
        }
        DataType::List(_) => {
            let ca = series.list().map_err(to_napi)?;
            let arr = ca.downcast_iter().next().ok_or_else(|| empty_chunks(series))?;
            let offsets = arr.offsets().as_slice();
            let bounds = (0..arr.len()).map(|i| (offsets[i] as usize, offsets[i + 1] as usize, arr.is_valid(i)));
            let values = Series::from_arrow(PlSmallStr::EMPTY, arr.values().clone()).map_err(to_napi)?;
            views_to_js(env, &values, bounds)
        }
        DataType::Array(_, width) => {
            let width = *width;
            let ca = series.array().map_err(to_napi)?;
            let arr = ca.downcast_iter().next().ok_or_else(|| empty_chunks(series))?;
            let bounds = (0..arr.len()).map(|i| (i * width, (i + 1) * width, arr.is_valid(i)));
            let values = Series::from_arrow(PlSmallStr::EMPTY, arr.values().clone()).map_err(to_napi)?;
            views_to_js(env, &values, bounds)
        }
        _ => {
            let (buffer, kind, len) = numeric_buffer(env, series)?;
            typed_array(env, kind, len, buffer, 0)
        }
    }
}

/// One external ArrayBuffer over a numeric series' values, its typed-array
/// kind and element count.
fn numeric_buffer(env: &Env, series: &Series) -> Result<(sys::napi_value, i32, usize)> {
    macro_rules! view {
        ($ca:expr, $kind:expr) => {{
            let ca = $ca.map_err(to_napi)?;
            let arr = ca.downcast_iter().next().ok_or_else(|| empty_chunks(series))?;
            let values = arr.values().as_slice();
            let buffer = external_buffer(env, series.clone(), values.as_ptr().cast(), std::mem::size_of_val(values))?;
            Ok((buffer, $kind, values.len()))
        }};
    }
    use sys::TypedarrayType as T;
    match series.dtype() {
        DataType::Int8 => view!(series.i8(), T::int8_array),
        DataType::Int16 => view!(series.i16(), T::int16_array),
        DataType::Int32 => view!(series.i32(), T::int32_array),
        DataType::Int64 => view!(series.i64(), T::bigint64_array),
        DataType::UInt8 => view!(series.u8(), T::uint8_array),
        DataType::UInt16 => view!(series.u16(), T::uint16_array),
        DataType::UInt32 => view!(series.u32(), T::uint32_array),
        DataType::UInt64 => view!(series.u64(), T::biguint64_array),
        DataType::Float32 => view!(series.f32(), T::float32_array),
        DataType::Float64 => view!(series.f64(), T::float64_array),
        other => {
            Err(Error::new(Status::InvalidArg, format!("column '{}' has unsupported dtype {other}", series.name())))
        }
    }
}

/// An array of typed-array views (`null` for null rows) over one buffer.
fn views_to_js(
    env: &Env,
    values: &Series,
    bounds: impl Iterator<Item = (usize, usize, bool)>,
) -> Result<sys::napi_value> {
    let (buffer, kind, _) = numeric_buffer(env, values)?;
    let size = element_size(kind);
    let bounds: Vec<_> = bounds.collect();
    let mut array = env.create_array(bounds.len() as u32)?;
    for (i, (start, end, valid)) in bounds.into_iter().enumerate() {
        if valid {
            array.set(i as u32, RawValue(typed_array(env, kind, end - start, buffer, start * size)?))?;
        } else {
            array.set(i as u32, Null)?;
        }
    }
    // SAFETY: `env` is the live env of this callback, on the Node thread.
    unsafe { Array::to_napi_value(env.raw(), array) }
}

fn element_size(kind: i32) -> usize {
    use sys::TypedarrayType as T;
    match kind {
        T::int8_array | T::uint8_array => 1,
        T::int16_array | T::uint16_array => 2,
        T::int32_array | T::uint32_array | T::float32_array => 4,
        _ => 8,
    }
}

fn typed_array(
    env: &Env,
    kind: i32,
    len: usize,
    buffer: sys::napi_value,
    byte_offset: usize,
) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    check_status!(
        // SAFETY: a live env; `buffer` is an ArrayBuffer holding `len` elements of `kind` from `byte_offset`.
        unsafe { sys::napi_create_typedarray(env.raw(), kind, len, buffer, byte_offset, &mut out) },
        "could not create a typed array"
    )?;
    Ok(out)
}

unsafe extern "C" fn release_series(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<Series>` leaked by `external_buffer`, released exactly once, here.
    drop(unsafe { Box::from_raw(hint.cast::<Series>()) });
}

/// Columns smaller than this are copied into an ordinary ArrayBuffer rather
/// than shared: an external buffer costs V8 a finalizer and a global handle
/// that every garbage collection must visit, which for the small batches of
/// light traffic costs far more than copying a few kilobytes.
const COPY_BELOW: usize = 16 << 10;

/// An ArrayBuffer over `len` bytes at `data`, which `keep` owns. JavaScript
/// holds `keep` until it collects the buffer. Small (and empty) data is
/// copied instead: V8 must never see two external buffers at one address,
/// and small ones cost more to collect than to copy.
fn external_buffer(env: &Env, keep: Series, data: *const u8, len: usize) -> Result<sys::napi_value> {
    if len < COPY_BELOW {
        return copied_buffer(env, data, len);
    }
    let mut out = ptr::null_mut();
    let hint = Box::into_raw(Box::new(keep));
    // SAFETY: `data` stays valid for `len` bytes while `hint` (the Series owning it)
    // lives; JavaScript calls `release_series` with `hint` once it collects the buffer.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            data as *mut c_void,
            len,
            Some(release_series),
            hint.cast(),
            &mut out,
        )
    };
    if status == sys::Status::napi_ok {
        return Ok(out);
    }
    // Runtimes without external buffers (or any failure): copy instead.
    // SAFETY: napi refused the buffer, so it never took `hint`: it is still ours to free.
    drop(unsafe { Box::from_raw(hint) });
    copied_buffer(env, data, len)
}

/// A new ArrayBuffer holding a copy of the `len` bytes at `data`.
fn copied_buffer(env: &Env, data: *const u8, len: usize) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    let mut copy = ptr::null_mut();
    check_status!(
        // SAFETY: a live env and valid out-pointers.
        unsafe { sys::napi_create_arraybuffer(env.raw(), len, &mut copy, &mut out) },
        "could not create an ArrayBuffer"
    )?;
    if len > 0 {
        // SAFETY: `data` holds `len` bytes; the new buffer `copy` has room for `len` and does not overlap it.
        unsafe { ptr::copy_nonoverlapping(data, copy.cast::<u8>(), len) };
    }
    Ok(out)
}

fn empty_chunks(series: &Series) -> Error {
    Error::new(Status::GenericFailure, format!("column '{}' has no data", series.name()))
}

pub fn to_napi(e: PolarsError) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}
