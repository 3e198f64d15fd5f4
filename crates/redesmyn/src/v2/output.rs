//! Predictions into output tensors, and the REST response body.
//!
//! Naming: a handler that returns one column gives one output, named by the
//! endpoint's first declared output, else [`DEFAULT_OUTPUT`] (`output-0`,
//! KServe's convention); a handler that returns several columns gives one
//! output per column, named by the column. Scalar columns become shape
//! `[N]`; `array<T, k>` columns and lists whose rows all hold k items become
//! `[N, k]`. Strings and binary columns are BYTES. A null float is NaN; any
//! other null cannot be a tensor value and is a server error.
//!
//! The request's `outputs` selects which outputs come back and in which
//! form: `parameters.binary_data` on an output, or the request-level
//! `parameters.binary_data_output`, asks for binary (the body is then the
//! JSON header followed by the binary outputs in order, and the caller sets
//! `Inference-Header-Content-Length` to [`RestBody::header_length`]).

use polars::prelude::*;

use super::error::{names, V2Error};
use super::tensor::Values;
use super::wire::{InferenceResponse, Parameters, RequestOutput, ResponseOutput};
use crate::handler::Predictions;

/// The output name of a single-column prediction when none is declared.
pub const DEFAULT_OUTPUT: &str = "output-0";

#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub values: Values,
}

/// One tensor per prediction column (see the module docs for names).
pub fn outputs_from_predictions(predictions: &Predictions, declared: &[String]) -> Result<Vec<OutputTensor>, V2Error> {
    match predictions {
        Predictions::Column(series) => {
            let name = declared.first().map(String::as_str).unwrap_or(DEFAULT_OUTPUT);
            Ok(vec![series_tensor(name, series)?])
        }
        Predictions::Columns(frame) => {
            frame.columns().iter().map(|c| series_tensor(c.name().as_str(), c.as_materialized_series())).collect()
        }
    }
}

/// The output tensors a model's predictions form, as V2 metadata lists
/// them (the row dimension variable: `-1`); learned from a first answer
/// when the model declares none. Empty when the predictions form no tensor.
pub fn describe(predictions: &Predictions) -> Vec<crate::schema::TensorMetadata> {
    let first = predictions.slice(0, 1.min(predictions.len()));
    outputs_from_predictions(&first, &[])
        .map(|outputs| {
            outputs
                .into_iter()
                .map(|o| {
                    let mut shape = o.shape;
                    if let Some(rows) = shape.first_mut() {
                        *rows = -1;
                    }
                    crate::schema::TensorMetadata { name: o.name, datatype: o.values.datatype().as_str().into(), shape }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn bad(output: &str, reason: impl Into<String>) -> V2Error {
    V2Error::BadOutput { output: output.into(), reason: reason.into() }
}

fn series_tensor(name: &str, series: &Series) -> Result<OutputTensor, V2Error> {
    let rows = series.len();
    let (shape, values) = match series.dtype() {
        DataType::Array(_, width) => {
            let width = *width;
            if series.null_count() > 0 {
                return Err(bad(name, "a row is null; a tensor has no nulls"));
            }
            let ca = series.array().map_err(|e| bad(name, e.to_string()))?;
            // A sliced fixed-size list slices its values too.
            let inner = ca.get_inner();
            (vec![rows as i64, width as i64], flat_values(name, &inner)?)
        }
        DataType::List(inner) => {
            let ca = series.list().map_err(|e| bad(name, e.to_string()))?;
            let empty = Series::new_empty("".into(), inner);
            let mut values = flat_values(name, &empty)?;
            let mut width = None;
            for row in 0..ca.len() {
                let Some(items) = ca.get_as_series(row) else {
                    return Err(bad(name, format!("row {row} is null; a tensor has no nulls")));
                };
                match width {
                    None => width = Some(items.len()),
                    Some(w) if w != items.len() => {
                        return Err(bad(
                            name,
                            format!("rows hold {w} and {} items; a tensor must be rectangular", items.len()),
                        ))
                    }
                    Some(_) => {}
                }
                values.extend(flat_values(name, &items)?).map_err(|_| bad(name, "mixed item types"))?;
            }
            (vec![rows as i64, width.unwrap_or(0) as i64], values)
        }
        _ => (vec![rows as i64], flat_values(name, series)?),
    };
    Ok(OutputTensor { name: name.into(), shape, values })
}

fn flat_values(name: &str, s: &Series) -> Result<Values, V2Error> {
    let polars = |e: PolarsError| bad(name, e.to_string());
    let null = |s: &Series| {
        let row = s.is_null().iter().position(|v| v == Some(true)).unwrap_or(0);
        bad(name, format!("row {row} is null; only float tensors carry missing values (as NaN)"))
    };
    macro_rules! exact {
        ($ca:expr, $var:ident) => {{
            if s.null_count() > 0 {
                return Err(null(s));
            }
            Values::$var($ca.map_err(polars)?.iter().flatten().collect())
        }};
    }
    Ok(match s.dtype() {
        DataType::Boolean => exact!(s.bool(), Bool),
        DataType::Int8 => exact!(s.i8(), I8),
        DataType::Int16 => exact!(s.i16(), I16),
        DataType::Int32 => exact!(s.i32(), I32),
        DataType::Int64 => exact!(s.i64(), I64),
        DataType::UInt8 => exact!(s.u8(), U8),
        DataType::UInt16 => exact!(s.u16(), U16),
        DataType::UInt32 => exact!(s.u32(), U32),
        DataType::UInt64 => exact!(s.u64(), U64),
        DataType::Float32 => Values::F32(s.f32().map_err(polars)?.iter().map(|v| v.unwrap_or(f32::NAN)).collect()),
        DataType::Float64 => Values::F64(s.f64().map_err(polars)?.iter().map(|v| v.unwrap_or(f64::NAN)).collect()),
        DataType::String => {
            if s.null_count() > 0 {
                return Err(null(s));
            }
            Values::Bytes(s.str().map_err(polars)?.iter().flatten().map(|v| v.as_bytes().to_vec()).collect())
        }
        DataType::Binary => {
            if s.null_count() > 0 {
                return Err(null(s));
            }
            Values::Bytes(s.binary().map_err(polars)?.iter().flatten().map(<[u8]>::to_vec).collect())
        }
        other => return Err(bad(name, format!("a {other} column has no tensor datatype"))),
    })
}

/// The outputs to send, each with whether it goes binary. No selection
/// means every output.
pub fn select_outputs(
    outputs: Vec<OutputTensor>,
    requested: Option<&[RequestOutput]>,
    binary_default: bool,
) -> Result<Vec<(OutputTensor, bool)>, V2Error> {
    let requested = match requested {
        Some(r) if !r.is_empty() => r,
        _ => return Ok(outputs.into_iter().map(|o| (o, binary_default)).collect()),
    };
    let mut slots: Vec<Option<OutputTensor>> = outputs.into_iter().map(Some).collect();
    let mut selected = Vec::with_capacity(requested.len());
    for want in requested {
        let Some(index) = slots.iter().position(|s| s.as_ref().is_some_and(|o| o.name == want.name)) else {
            if selected.iter().any(|(o, _): &(OutputTensor, bool)| o.name == want.name) {
                return Err(V2Error::DuplicateOutput(want.name.clone()));
            }
            let available = names(
                slots.iter().flatten().map(|o| o.name.as_str()).chain(selected.iter().map(|(o, _)| o.name.as_str())),
            );
            return Err(V2Error::UnknownOutput { output: want.name.clone(), available });
        };
        let binary = match want.parameters.as_ref() {
            Some(p) => bool_parameter(p, "binary_data")?.unwrap_or(binary_default),
            None => binary_default,
        };
        if let Some(output) = slots[index].take() {
            selected.push((output, binary));
        }
    }
    Ok(selected)
}

/// A boolean parameter, `None` when absent.
pub(crate) fn bool_parameter(parameters: &Parameters, name: &str) -> Result<Option<bool>, V2Error> {
    match parameters.get(name) {
        None => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(V2Error::BadParameter { name: name.into(), reason: format!("expected true or false, found {other}") })
        }
    }
}

/// What the response envelope says besides the outputs.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    pub model_name: &'a str,
    pub model_version: Option<&'a str>,
    pub id: Option<&'a str>,
    pub parameters: Option<&'a Parameters>,
}

/// A REST response body; `header_length` is `Some` when binary outputs
/// follow the JSON header.
#[derive(Debug, Clone, PartialEq)]
pub struct RestBody {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

pub fn encode_rest(meta: ResponseMeta<'_>, selected: &[(OutputTensor, bool)]) -> RestBody {
    let mut binary = Vec::new();
    let mut outputs = Vec::with_capacity(selected.len());
    for (output, as_binary) in selected {
        let (parameters, data) = if *as_binary {
            let before = binary.len();
            output.values.write_raw(&mut binary);
            let mut p = Parameters::new();
            p.insert("binary_data_size".into(), (binary.len() - before).into());
            (Some(p), None)
        } else {
            (None, Some(&output.values))
        };
        outputs.push(ResponseOutput {
            name: &output.name,
            datatype: output.values.datatype().as_str(),
            shape: &output.shape,
            parameters,
            data,
        });
    }
    let response = InferenceResponse {
        model_name: meta.model_name,
        model_version: meta.model_version,
        id: meta.id,
        parameters: meta.parameters,
        outputs,
    };
    // Serialising plain structs, maps of JSON values and numbers cannot fail.
    let mut body = serde_json::to_vec(&response).unwrap_or_default();
    if selected.iter().any(|(_, b)| *b) {
        let header_length = body.len();
        body.extend_from_slice(&binary);
        RestBody { body, header_length: Some(header_length) }
    } else {
        RestBody { body, header_length: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ResponseMeta<'static> {
        ResponseMeta { model_name: "iris", model_version: None, id: Some("r-1"), parameters: None }
    }

    #[test]
    fn one_column_is_output_0_or_the_declared_name() {
        let p = Predictions::Column(Series::new("whatever".into(), [1i64, 1]));
        let out = outputs_from_predictions(&p, &[]).unwrap();
        assert_eq!(
            out,
            vec![OutputTensor { name: "output-0".into(), shape: vec![2], values: Values::I64(vec![1, 1]) }]
        );
        let out = outputs_from_predictions(&p, &["predict".into()]).unwrap();
        assert_eq!(out[0].name, "predict");
    }

    #[test]
    fn several_columns_keep_their_names_and_shapes() {
        let inner = Series::new("".into(), [1.0f32, 2.0]);
        let lists = Series::new("probs".into(), [inner.clone(), inner]);
        let df = DataFrame::new(
            2,
            vec![
                Column::new("label".into(), ["a", "b"]),
                lists.into_column(),
                Column::new("ok".into(), [true, false]),
                Column::new("score".into(), [Some(0.5), None]),
            ],
        )
        .unwrap();
        let out = outputs_from_predictions(&Predictions::Columns(df), &[]).unwrap();
        assert_eq!(out[0].values, Values::Bytes(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(out[1].shape, vec![2, 2]);
        assert_eq!(out[1].values, Values::F32(vec![1.0, 2.0, 1.0, 2.0]));
        assert_eq!(out[2].values, Values::Bool(vec![true, false]));
        match &out[3].values {
            Values::F64(v) => assert!(v[0] == 0.5 && v[1].is_nan()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sliced_array_columns_keep_their_rows() {
        let rows: Vec<Series> = (0..3).map(|r| Series::new("".into(), [2 * r + 1, 2 * r + 2])).collect();
        let s = Series::new("v".into(), rows).cast(&DataType::Array(Box::new(DataType::Int32), 2)).unwrap();
        let out = outputs_from_predictions(&Predictions::Column(s.slice(1, 2)), &[]).unwrap();
        assert_eq!(out[0].shape, vec![2, 2]);
        assert_eq!(out[0].values, Values::I32(vec![3, 4, 5, 6]));
    }

    #[test]
    fn ragged_lists_and_nulls_are_server_errors() {
        let a = Series::new("".into(), [1i64]);
        let b = Series::new("".into(), [1i64, 2]);
        let p = Predictions::Column(Series::new("p".into(), [a, b]));
        let e = outputs_from_predictions(&p, &[]).unwrap_err();
        assert!(!e.is_client_error());
        assert!(e.to_string().contains("rectangular"), "{e}");
        let p = Predictions::Column(Series::new("p".into(), [Some(1i64), None]));
        let e = outputs_from_predictions(&p, &[]).unwrap_err();
        assert!(e.to_string().contains("row 1 is null"), "{e}");
    }

    fn two() -> Vec<OutputTensor> {
        vec![
            OutputTensor { name: "a".into(), shape: vec![2], values: Values::F32(vec![1.0, 2.0]) },
            OutputTensor { name: "b".into(), shape: vec![1], values: Values::Bytes(vec![b"hi".to_vec()]) },
        ]
    }

    #[test]
    fn selection_picks_orders_and_sets_binary() {
        let all = select_outputs(two(), None, false).unwrap();
        assert_eq!(all.len(), 2);
        let want: Vec<RequestOutput> =
            serde_json::from_str(r#"[{"name": "b", "parameters": {"binary_data": true}}, {"name": "a"}]"#).unwrap();
        let picked = select_outputs(two(), Some(&want), false).unwrap();
        assert_eq!((picked[0].0.name.as_str(), picked[0].1), ("b", true));
        assert_eq!((picked[1].0.name.as_str(), picked[1].1), ("a", false));
        let want: Vec<RequestOutput> = serde_json::from_str(r#"[{"name": "c"}]"#).unwrap();
        let e = select_outputs(two(), Some(&want), false).unwrap_err();
        assert_eq!(e.to_string(), "unknown output 'c' (the model returns 'a' and 'b')");
        let want: Vec<RequestOutput> = serde_json::from_str(r#"[{"name": "a"}, {"name": "a"}]"#).unwrap();
        assert_eq!(select_outputs(two(), Some(&want), false).unwrap_err(), V2Error::DuplicateOutput("a".into()));
        let want: Vec<RequestOutput> =
            serde_json::from_str(r#"[{"name": "a", "parameters": {"binary_data": 1}}]"#).unwrap();
        assert!(matches!(select_outputs(two(), Some(&want), false), Err(V2Error::BadParameter { .. })));
    }

    #[test]
    fn json_response_body() {
        let body = encode_rest(meta(), &select_outputs(two(), None, false).unwrap());
        assert_eq!(body.header_length, None);
        assert_eq!(
            String::from_utf8(body.body).unwrap(),
            r#"{"model_name":"iris","id":"r-1","outputs":[{"name":"a","datatype":"FP32","shape":[2],"data":[1.0,2.0]},{"name":"b","datatype":"BYTES","shape":[1],"data":["hi"]}]}"#
        );
    }

    #[test]
    fn binary_response_body_is_header_then_tensors() {
        let body = encode_rest(meta(), &select_outputs(two(), None, true).unwrap());
        let n = body.header_length.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&body.body[..n]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert_eq!(header["outputs"][1]["parameters"]["binary_data_size"], 6);
        assert!(header["outputs"][0].get("data").is_none());
        let mut expected = Vec::new();
        expected.extend_from_slice(&1.0f32.to_le_bytes());
        expected.extend_from_slice(&2.0f32.to_le_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0, b'h', b'i']);
        assert_eq!(&body.body[n..], expected.as_slice());
    }
}
