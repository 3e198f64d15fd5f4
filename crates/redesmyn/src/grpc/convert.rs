//! Protobuf messages to and from the transport-neutral V2 types.
//!
//! Inputs come either all in `raw_input_contents` (one entry per input, the
//! raw layout; what tritonclient always sends) or each in its typed
//! `contents` (INT8/INT16 and UINT8/UINT16 travel widened in `int_contents`
//! / `uint_contents` and are narrowed with a range check). Outputs always go
//! in `raw_output_contents`: tritonclient reads nothing else for numeric
//! outputs, and kserve's client reads it too.

use std::collections::HashMap;

use prost::bytes::Bytes;
use serde_json::Value;

use super::proto::infer_parameter::ParameterChoice;
use super::proto::model_infer_request::InferInputTensor;
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::{InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse};
use crate::v2::wire::{Parameters, RequestOutput};
use crate::v2::{Datatype, InputTensor, OutputTensor, Source, V2Error, Values};

/// A `ModelInfer` request in neutral form.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub model_name: String,
    /// Empty: the current version.
    pub model_version: String,
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<InputTensor>,
    pub outputs: Option<Vec<RequestOutput>>,
    /// The routing key from the call's metadata: keeps an unversioned
    /// request on one version of a model with traffic weights.
    pub routing_key: Option<String>,
    /// The caller's trace context, when tracing is on.
    pub trace: Option<crate::telemetry::TraceHeaders>,
}

pub fn infer_request(request: ModelInferRequest) -> Result<InferRequest, V2Error> {
    let ModelInferRequest { model_name, model_version, id, parameters, inputs, outputs, raw_input_contents } = request;
    if !raw_input_contents.is_empty() && raw_input_contents.len() != inputs.len() {
        return Err(V2Error::Malformed(format!(
            "raw_input_contents has {} entries for {} inputs; send every input raw or none",
            raw_input_contents.len(),
            inputs.len()
        )));
    }
    let mut tensors: Vec<InputTensor> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        if tensors.iter().any(|t| t.name == input.name) {
            return Err(V2Error::DuplicateInput(input.name));
        }
        let InferInputTensor { name, datatype, shape, contents, .. } = input;
        let tensor = match raw_input_contents.get(index) {
            Some(raw) => InputTensor::new(name, &datatype, &shape, Source::Raw(raw))?,
            None => {
                let source = match (Datatype::parse(&datatype), contents) {
                    (Some(dt), Some(contents)) if dt.is_supported() => {
                        Source::Values(typed_values(&name, dt, contents)?)
                    }
                    // Unknown or unsupported datatypes are reported by `new`.
                    _ => Source::Missing,
                };
                InputTensor::new(name, &datatype, &shape, source)?
            }
        };
        tensors.push(tensor);
    }
    let outputs = (!outputs.is_empty()).then(|| {
        outputs
            .into_iter()
            .map(|o| RequestOutput {
                name: o.name,
                parameters: (!o.parameters.is_empty()).then(|| parameters_to_json(&o.parameters)),
            })
            .collect()
    });
    Ok(InferRequest {
        model_name,
        model_version,
        id: (!id.is_empty()).then_some(id),
        parameters: parameters_to_json(&parameters),
        inputs: tensors,
        outputs,
        routing_key: None,
        trace: None,
    })
}

/// The typed contents field of `datatype`, narrowed where the wire widens.
fn typed_values(input: &str, datatype: Datatype, c: InferTensorContents) -> Result<Values, V2Error> {
    fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>>(
        input: &str,
        v: Vec<S>,
        ty: Datatype,
    ) -> Result<Vec<T>, V2Error> {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| {
                T::try_from(x).map_err(|_| V2Error::BadData {
                    input: input.into(),
                    reason: format!("element {i}: {x} is out of range for {ty}"),
                })
            })
            .collect()
    }
    Ok(match datatype {
        Datatype::Bool => Values::Bool(c.bool_contents),
        Datatype::I8 => Values::I8(narrow(input, c.int_contents, datatype)?),
        Datatype::I16 => Values::I16(narrow(input, c.int_contents, datatype)?),
        Datatype::I32 => Values::I32(c.int_contents),
        Datatype::I64 => Values::I64(c.int64_contents),
        Datatype::U8 => Values::U8(narrow(input, c.uint_contents, datatype)?),
        Datatype::U16 => Values::U16(narrow(input, c.uint_contents, datatype)?),
        Datatype::U32 => Values::U32(c.uint_contents),
        Datatype::U64 => Values::U64(c.uint64_contents),
        Datatype::F32 => Values::F32(c.fp32_contents),
        Datatype::F64 => Values::F64(c.fp64_contents),
        Datatype::Bytes => Values::Bytes(c.bytes_contents.into_iter().map(|b| b.to_vec()).collect()),
        Datatype::F16 | Datatype::Bf16 => {
            return Err(V2Error::UnsupportedDatatype { input: input.into(), datatype: datatype.to_string() })
        }
    })
}

/// What the response carries besides its outputs.
#[derive(Debug, Clone, Default)]
pub struct ResponseMeta {
    pub model_name: String,
    pub model_version: String,
    pub id: String,
    pub parameters: Parameters,
}

/// Outputs as raw contents, in order.
pub fn infer_response(meta: ResponseMeta, outputs: Vec<OutputTensor>) -> ModelInferResponse {
    let mut tensors = Vec::with_capacity(outputs.len());
    let mut raw = Vec::with_capacity(outputs.len());
    for output in outputs {
        raw.push(Bytes::from(output.values.to_raw()));
        tensors.push(InferOutputTensor {
            name: output.name,
            datatype: output.values.datatype().as_str().into(),
            shape: output.shape,
            parameters: HashMap::new(),
            contents: None,
        });
    }
    ModelInferResponse {
        model_name: meta.model_name,
        model_version: meta.model_version,
        id: meta.id,
        parameters: json_to_parameters(&meta.parameters),
        outputs: tensors,
        raw_output_contents: raw,
    }
}

pub fn parameters_to_json(parameters: &HashMap<String, InferParameter>) -> Parameters {
    parameters
        .iter()
        .map(|(k, v)| {
            let value = match &v.parameter_choice {
                Some(ParameterChoice::BoolParam(b)) => Value::Bool(*b),
                Some(ParameterChoice::Int64Param(i)) => Value::from(*i),
                Some(ParameterChoice::Uint64Param(u)) => Value::from(*u),
                Some(ParameterChoice::DoubleParam(d)) => Value::from(*d),
                Some(ParameterChoice::StringParam(s)) => Value::String(s.clone()),
                None => Value::Null,
            };
            (k.clone(), value)
        })
        .collect()
}

/// JSON parameters as protobuf ones: null is a parameter with no value
/// (as an unset one reads); values with no protobuf form (arrays, objects)
/// are sent as their JSON text.
pub fn json_to_parameters(parameters: &Parameters) -> HashMap<String, InferParameter> {
    parameters
        .iter()
        .map(|(k, v)| {
            let choice = match v {
                Value::Null => return (k.clone(), InferParameter { parameter_choice: None }),
                Value::Bool(b) => ParameterChoice::BoolParam(*b),
                Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), _, _) => ParameterChoice::Int64Param(i),
                    (None, Some(u), _) => ParameterChoice::Uint64Param(u),
                    (_, _, f) => ParameterChoice::DoubleParam(f.unwrap_or(f64::NAN)),
                },
                Value::String(s) => ParameterChoice::StringParam(s.clone()),
                other => ParameterChoice::StringParam(other.to_string()),
            };
            (k.clone(), InferParameter { parameter_choice: Some(choice) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::grpc::proto::model_infer_request::InferRequestedOutputTensor;

    fn tensor(name: &str, datatype: &str, shape: &[i64], contents: Option<InferTensorContents>) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            parameters: HashMap::new(),
            contents,
        }
    }

    fn string_param(s: &str) -> InferParameter {
        InferParameter { parameter_choice: Some(ParameterChoice::StringParam(s.into())) }
    }

    #[test]
    fn raw_inputs_as_tritonclient_sends_them() {
        let x = Values::F32(vec![6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]);
        let s = Values::Bytes(vec![b"a".to_vec()]);
        let request = ModelInferRequest {
            model_name: "iris".into(),
            id: "42".into(),
            parameters: HashMap::from([("run_id".into(), string_param("1"))]),
            inputs: vec![tensor("input-0", "FP32", &[2, 4], None), tensor("s", "BYTES", &[1], None)],
            outputs: vec![InferRequestedOutputTensor { name: "output-0".into(), parameters: HashMap::new() }],
            raw_input_contents: vec![Bytes::from(x.to_raw()), Bytes::from(s.to_raw())],
            ..Default::default()
        };
        // Through the wire and back, as tonic would hand it over.
        let request = ModelInferRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        let r = infer_request(request).unwrap();
        assert_eq!(r.id.as_deref(), Some("42"));
        assert_eq!(r.parameters["run_id"], "1");
        assert_eq!(r.inputs[0].shape, vec![2, 4]);
        assert_eq!(r.inputs[0].values, x);
        assert_eq!(r.inputs[1].values, s);
        assert_eq!(r.outputs.unwrap()[0].name, "output-0");
    }

    #[test]
    fn typed_contents_are_moved_or_narrowed() {
        let contents = |c: InferTensorContents| Some(c);
        let request = ModelInferRequest {
            inputs: vec![
                tensor(
                    "a",
                    "INT8",
                    &[2],
                    contents(InferTensorContents { int_contents: vec![-1, 100], ..Default::default() }),
                ),
                tensor(
                    "b",
                    "FP64",
                    &[1],
                    contents(InferTensorContents { fp64_contents: vec![0.5], ..Default::default() }),
                ),
                tensor(
                    "c",
                    "BOOL",
                    &[1],
                    contents(InferTensorContents { bool_contents: vec![true], ..Default::default() }),
                ),
                tensor(
                    "d",
                    "BYTES",
                    &[1],
                    contents(InferTensorContents {
                        bytes_contents: vec![Bytes::from_static(b"x")],
                        ..Default::default()
                    }),
                ),
            ],
            ..Default::default()
        };
        let r = infer_request(request).unwrap();
        assert_eq!(r.id, None);
        assert_eq!(r.inputs[0].values, Values::I8(vec![-1, 100]));
        assert_eq!(r.inputs[1].values, Values::F64(vec![0.5]));
        assert_eq!(r.inputs[2].values, Values::Bool(vec![true]));
        assert_eq!(r.inputs[3].values, Values::Bytes(vec![b"x".to_vec()]));

        let request = ModelInferRequest {
            inputs: vec![tensor(
                "a",
                "UINT8",
                &[1],
                contents(InferTensorContents { uint_contents: vec![256], ..Default::default() }),
            )],
            ..Default::default()
        };
        assert_eq!(
            infer_request(request).unwrap_err().to_string(),
            "input 'a': element 0: 256 is out of range for UINT8"
        );
    }

    #[test]
    fn bad_requests_are_named() {
        let missing = ModelInferRequest { inputs: vec![tensor("a", "FP32", &[1], None)], ..Default::default() };
        assert!(matches!(infer_request(missing), Err(V2Error::NoData { .. })));
        let unknown = ModelInferRequest { inputs: vec![tensor("a", "FP8", &[1], None)], ..Default::default() };
        assert!(matches!(infer_request(unknown), Err(V2Error::UnknownDatatype { .. })));
        let half = ModelInferRequest {
            inputs: vec![tensor("a", "FP16", &[1], None)],
            raw_input_contents: vec![Bytes::from_static(&[0, 0])],
            ..Default::default()
        };
        assert!(matches!(infer_request(half), Err(V2Error::UnsupportedDatatype { .. })));
        let count = ModelInferRequest {
            inputs: vec![tensor("a", "FP32", &[1], None), tensor("b", "FP32", &[1], None)],
            raw_input_contents: vec![Bytes::from_static(&[0, 0, 0, 0])],
            ..Default::default()
        };
        assert!(infer_request(count).unwrap_err().to_string().contains("1 entries for 2 inputs"));
        let short = ModelInferRequest {
            inputs: vec![tensor("a", "FP32", &[2], None)],
            raw_input_contents: vec![Bytes::from_static(&[0, 0, 0, 0])],
            ..Default::default()
        };
        assert_eq!(
            infer_request(short).unwrap_err().to_string(),
            "input 'a': shape [2] of FP32 takes 8 bytes but 4 were sent"
        );
        let dup = ModelInferRequest {
            inputs: vec![tensor("a", "FP32", &[1], None), tensor("a", "FP32", &[1], None)],
            raw_input_contents: vec![Bytes::from_static(&[0; 4]), Bytes::from_static(&[0; 4])],
            ..Default::default()
        };
        assert_eq!(infer_request(dup).unwrap_err(), V2Error::DuplicateInput("a".into()));
    }

    #[test]
    fn outputs_go_raw_and_round_trip() {
        let outputs = vec![
            OutputTensor { name: "output-0".into(), shape: vec![2], values: Values::I64(vec![1, 1]) },
            OutputTensor { name: "label".into(), shape: vec![1], values: Values::Bytes(vec![b"setosa".to_vec()]) },
        ];
        let meta = ResponseMeta { model_name: "iris".into(), id: "42".into(), ..Default::default() };
        let response = infer_response(meta, outputs.clone());
        let response = ModelInferResponse::decode(response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(response.id, "42");
        assert_eq!(response.outputs[0].datatype, "INT64");
        assert!(response.outputs[0].contents.is_none());
        for (i, output) in outputs.iter().enumerate() {
            let dt = Datatype::parse(&response.outputs[i].datatype).unwrap();
            let back = Values::from_raw(dt, &response.raw_output_contents[i], output.values.len()).unwrap();
            assert_eq!(back, output.values);
        }
    }

    #[test]
    fn parameters_both_ways() {
        let json: Parameters =
            serde_json::from_str(r#"{"b": true, "i": -3, "u": 18446744073709551615, "d": 0.5, "s": "x", "o": [1]}"#)
                .unwrap();
        let proto = json_to_parameters(&json);
        assert_eq!(proto["o"], string_param("[1]"));
        let back = parameters_to_json(&proto);
        for key in ["b", "i", "u", "d", "s"] {
            assert_eq!(back[key], json[key], "{key}");
        }
    }

    /// Found by the `grpc_request` fuzz target: a parameter sent with no
    /// value came back as the string "null".
    #[test]
    fn a_parameter_without_a_value_stays_without_one() {
        let sent = HashMap::from([("k".to_string(), InferParameter { parameter_choice: None })]);
        let json = parameters_to_json(&sent);
        assert_eq!(json.get("k"), Some(&Value::Null));
        assert_eq!(json_to_parameters(&json), sent);
    }
}
