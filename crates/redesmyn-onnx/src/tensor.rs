//! Batches to tensors and back. The batch dimension is the first: a batch of
//! N rows becomes tensors of N rows.
//!
//! Inputs bind to the schema in one of two ways, chosen at registration:
//! - **by name**: every model input is named after a schema field; a scalar
//!   field gives an `[N]` (or `[N, 1]`) tensor, an `array<T, k>` field `[N, k]`;
//! - **as one matrix**: a model with a single input of shape `[N, F]` gets
//!   every schema field side by side, in schema order (an array field
//!   contributes its `k` items), so `F` must be the schema's total width.
//!
//! Values are cast to the element type the model declares (FP32, FP64,
//! INT32, INT64). Outputs come back as columns named after the graph's
//! outputs: `[N]` or `[N, 1]` is a scalar per row, `[N, k]` an array of `k`
//! (trailing dimensions are flattened), a string tensor a string per row.

use std::borrow::Cow;

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType};
use polars::prelude::*;
use polars_arrow::array::{Array, FixedSizeListArray, PrimitiveArray};
use redesmyn::{FieldType, Predictions, Schema};

use crate::error::OnnxError;

/// An input or output of the model, named as in the graph, with its V2
/// datatype (`FP32`, `INT64`, `BYTES`, ...) and shape (`-1` for a dynamic
/// dimension, the batch dimension first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub(crate) ty: TensorElementType,
}

/// The element types inputs are built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    F32,
    F64,
    I32,
    I64,
}

pub(crate) fn input_kind(ty: TensorElementType) -> Option<InputKind> {
    match ty {
        TensorElementType::Float32 => Some(InputKind::F32),
        TensorElementType::Float64 => Some(InputKind::F64),
        TensorElementType::Int32 => Some(InputKind::I32),
        TensorElementType::Int64 => Some(InputKind::I64),
        _ => None,
    }
}

/// One model input and the schema fields (name, width) that fill it.
#[derive(Debug, Clone)]
struct InputPlan {
    name: String,
    kind: InputKind,
    /// 1 for an `[N]` input, 2 for `[N, F]`.
    rank: usize,
    fields: Vec<(String, usize)>,
    width: usize,
}

/// How a schema's rows feed a model's inputs (see the module doc).
#[derive(Debug, Clone)]
pub struct Binding {
    inputs: Vec<InputPlan>,
}

fn field_width(name: &str, ty: FieldType) -> Result<usize, String> {
    match ty {
        FieldType::Bool | FieldType::Number(_) => Ok(1),
        FieldType::Array(_, k) => Ok(k),
        FieldType::Str => Err(format!("field '{name}' is a string; ONNX inputs are built from numbers")),
        FieldType::List(_) => {
            Err(format!("field '{name}' is a variable-length list; use a fixed-size array field for an ONNX input"))
        }
    }
}

fn fixed(d: i64) -> Option<usize> {
    usize::try_from(d).ok().filter(|_| d >= 0)
}

pub(crate) fn bind(inputs: &[TensorInfo], schema: &Schema) -> Result<Binding, String> {
    let fields = schema.fields();
    let shown = |names: &mut dyn Iterator<Item = &str>| names.collect::<Vec<_>>().join(", ");
    let by_name = inputs.iter().all(|i| fields.iter().any(|f| f.name == i.name));
    let groups: Vec<(&TensorInfo, Vec<&redesmyn::Field>)> = if by_name && !inputs.is_empty() {
        inputs.iter().map(|i| (i, fields.iter().filter(|f| f.name == i.name).collect())).collect()
    } else if inputs.len() == 1 {
        vec![(&inputs[0], fields.iter().collect())]
    } else {
        return Err(format!(
            "the model has inputs {} but the schema has fields {}: name the fields after the inputs, \
             or export the model with one [N, F] input",
            shown(&mut inputs.iter().map(|i| i.name.as_str())),
            shown(&mut fields.iter().map(|f| f.name.as_str())),
        ));
    };
    let mut plans = Vec::with_capacity(groups.len());
    for (input, group) in groups {
        let kind = input_kind(input.ty).ok_or_else(|| format!("input '{}' is {}", input.name, input.datatype))?;
        let fields: Vec<(String, usize)> =
            group.iter().map(|f| Ok((f.name.clone(), field_width(&f.name, f.ty)?))).collect::<Result<_, String>>()?;
        let width: usize = fields.iter().map(|(_, w)| w).sum();
        let names = shown(&mut fields.iter().map(|(n, _)| n.as_str()));
        let rank = input.shape.len();
        match rank {
            1 if width == 1 => {}
            1 => {
                return Err(format!(
                    "input '{}' takes one value per row but the schema's fields ({names}) give {width}",
                    input.name
                ))
            }
            2 => {
                if let Some(f) = fixed(input.shape[1]).filter(|&f| f != width) {
                    return Err(format!(
                        "input '{}' takes {f} features per row but the schema's fields ({names}) give {width}",
                        input.name
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "input '{}' has shape {:?}; only [N] and [N, F] inputs are fed from a schema",
                    input.name, input.shape
                ))
            }
        }
        plans.push(InputPlan { name: input.name.clone(), kind, rank, fields, width });
    }
    Ok(Binding { inputs: plans })
}

/// `rows × width` values of `T`, row-major, from the plan's columns.
fn matrix<P>(frame: &DataFrame, plan: &InputPlan, rows: usize) -> Result<Vec<P::Native>, OnnxError>
where
    P: PolarsNumericType,
{
    let dtype = P::get_static_dtype();
    let mut out = vec![P::Native::default(); rows * plan.width];
    let mut offset = 0;
    for (name, w) in &plan.fields {
        let column = frame.column(name).map_err(|e| OnnxError::Run(e.to_string()))?;
        let series = column.as_materialized_series();
        if series.null_count() > 0 {
            return Err(OnnxError::Run(format!("field '{name}' has a null; ONNX inputs cannot hold nulls")));
        }
        let cast_error = |e: PolarsError| OnnxError::Run(format!("field '{name}': {e}"));
        let values = match series.dtype() {
            DataType::Array(..) => {
                let inner = series.array().map_err(cast_error)?.get_inner();
                inner.cast(&dtype).map_err(cast_error)?
            }
            _ => series.cast(&dtype).map_err(cast_error)?,
        };
        let ca = values.unpack::<P>().map_err(cast_error)?;
        if ca.null_count() > 0 {
            return Err(OnnxError::Run(format!("field '{name}' does not fit the model's input type")));
        }
        for (j, v) in ca.into_no_null_iter().enumerate() {
            let (row, item) = (j / w, j % w);
            if row < rows {
                out[row * plan.width + offset + item] = v;
            }
        }
        offset += w;
    }
    Ok(out)
}

fn input_value(frame: &DataFrame, plan: &InputPlan, rows: usize) -> Result<DynValue, OnnxError> {
    let shape: Vec<i64> = if plan.rank == 1 { vec![rows as i64] } else { vec![rows as i64, plan.width as i64] };
    let run_error = |e: ort::Error| OnnxError::Run(format!("input '{}': {e}", plan.name));
    Ok(match plan.kind {
        InputKind::F32 => {
            Tensor::from_array((shape, matrix::<Float32Type>(frame, plan, rows)?)).map_err(run_error)?.into_dyn()
        }
        InputKind::F64 => {
            Tensor::from_array((shape, matrix::<Float64Type>(frame, plan, rows)?)).map_err(run_error)?.into_dyn()
        }
        InputKind::I32 => {
            Tensor::from_array((shape, matrix::<Int32Type>(frame, plan, rows)?)).map_err(run_error)?.into_dyn()
        }
        InputKind::I64 => {
            Tensor::from_array((shape, matrix::<Int64Type>(frame, plan, rows)?)).map_err(run_error)?.into_dyn()
        }
    })
}

/// Runs one batch: frame → input tensors → session → prediction columns.
pub(crate) fn run(
    session: &mut Session,
    outputs: &[String],
    frame: &DataFrame,
    binding: &Binding,
) -> Result<Predictions, OnnxError> {
    let rows = frame.height();
    let mut feeds: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = Vec::with_capacity(binding.inputs.len());
    for plan in &binding.inputs {
        feeds.push((Cow::Owned(plan.name.clone()), SessionInputValue::from(input_value(frame, plan, rows)?)));
    }
    let results = session.run(feeds).map_err(|e| OnnxError::Run(format!("onnxruntime: {e}")))?;
    let mut columns = Vec::with_capacity(outputs.len());
    for name in outputs {
        let value = results.get(name).ok_or_else(|| OnnxError::Run(format!("output '{name}' is missing")))?;
        columns.push(output_series(name, value, rows)?);
    }
    if columns.len() == 1 {
        Ok(Predictions::Column(columns.remove(0)))
    } else {
        let columns: Vec<Column> = columns.into_iter().map(Column::from).collect();
        DataFrame::new(rows, columns).map(Predictions::Columns).map_err(|e| OnnxError::Run(e.to_string()))
    }
}

/// The number of items per row of an output of `shape` with `rows` rows.
fn row_width(name: &str, shape: &[i64], rows: usize) -> Result<usize, OnnxError> {
    match shape.first() {
        Some(&n) if n as usize == rows => Ok(shape[1..].iter().map(|&d| d.max(0) as usize).product()),
        _ => Err(OnnxError::Run(format!(
            "output '{name}' has shape {shape:?}, not {rows} rows: only outputs batched along the first dimension are served"
        ))),
    }
}

fn numeric_series<P>(name: &str, data: &[P::Native], shape: &[i64], rows: usize) -> Result<Series, OnnxError>
where
    P: PolarsNumericType,
{
    let width = row_width(name, shape, rows)?;
    let ca = ChunkedArray::<P>::from_slice(name.into(), data);
    if width == 1 {
        return Ok(ca.into_series());
    }
    let arrow_item = P::get_static_dtype().to_arrow(CompatLevel::newest());
    let items: Box<dyn Array> =
        PrimitiveArray::<P::Native>::new(arrow_item.clone(), data.to_vec().into(), None).boxed();
    let array = FixedSizeListArray::new(arrow_item.to_fixed_size_list(width, true), rows, items, None).boxed();
    let dtype = DataType::Array(Box::new(P::get_static_dtype()), width);
    // SAFETY: the arrow array is a fixed-size list of `width` items of P's
    // arrow type with `rows * width` values, exactly the logical `dtype`.
    Ok(unsafe { Series::from_chunks_and_dtype_unchecked(name.into(), vec![array], &dtype) })
}

fn output_series(name: &str, value: &DynValue, rows: usize) -> Result<Series, OnnxError> {
    let err = |e: ort::Error| OnnxError::Run(format!("output '{name}': {e}"));
    let ty = match value.dtype() {
        ort::value::ValueType::Tensor { ty, .. } => *ty,
        other => return Err(OnnxError::Run(format!("output '{name}' is {other}, not a tensor"))),
    };
    match ty {
        TensorElementType::Float32 => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
            numeric_series::<Float32Type>(name, data, shape, rows)
        }
        TensorElementType::Float64 => {
            let (shape, data) = value.try_extract_tensor::<f64>().map_err(err)?;
            numeric_series::<Float64Type>(name, data, shape, rows)
        }
        TensorElementType::Int32 => {
            let (shape, data) = value.try_extract_tensor::<i32>().map_err(err)?;
            numeric_series::<Int32Type>(name, data, shape, rows)
        }
        TensorElementType::Int64 => {
            let (shape, data) = value.try_extract_tensor::<i64>().map_err(err)?;
            numeric_series::<Int64Type>(name, data, shape, rows)
        }
        TensorElementType::Bool => {
            let (shape, data) = value.try_extract_tensor::<bool>().map_err(err)?;
            match row_width(name, shape, rows)? {
                1 => Ok(Series::new(name.into(), data)),
                _ => Err(OnnxError::Run(format!("output '{name}': boolean outputs are served one per row"))),
            }
        }
        TensorElementType::String => {
            let (shape, data) = value.try_extract_strings().map_err(err)?;
            match row_width(name, shape, rows)? {
                1 => Ok(Series::new(name.into(), data)),
                _ => Err(OnnxError::Run(format!("output '{name}': string outputs are served one per row"))),
            }
        }
        other => Err(OnnxError::Run(format!("output '{name}' has element type {other:?}, which is not served"))),
    }
}
