//! A REST infer body, with the binary tensor extension: when the
//! `Inference-Header-Content-Length` header is present, the body is that
//! many bytes of JSON followed by the binary inputs, in input order, each
//! input with `parameters.binary_data_size` taking its bytes (raw layout:
//! little-endian, BOOL one byte, BYTES length-prefixed). A header length of
//! 0 means the whole body is the raw data of the model's single input.
//! Binary sections go straight into typed buffers, never through JSON.

use super::error::{names, V2Error};
use super::output::bool_parameter;
use super::tensor::{InputTensor, Source};
use super::wire::{InferenceRequest, Parameters, RequestOutput};
use super::Datatype;
use crate::schema::{FieldType, Schema};

/// The header that carries the JSON part's length.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// A parsed and validated REST infer request.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<InputTensor>,
    pub outputs: Option<Vec<RequestOutput>>,
    /// `parameters.binary_data_output`: outputs go binary unless an output
    /// says otherwise.
    pub binary_output: bool,
}

/// Parses a body given the value of [`HEADER_LENGTH`], if any. The schema is
/// needed only for a raw single-input body.
pub fn parse_rest(body: &[u8], header_length: Option<&str>, schema: &Schema) -> Result<RestRequest, V2Error> {
    let (json, mut binary) = match header_length {
        None => (body, None),
        Some(value) => {
            let length: u64 =
                value.trim().parse().map_err(|_| V2Error::BadHeaderLength(value.chars().take(40).collect()))?;
            if length > body.len() as u64 {
                return Err(V2Error::HeaderTooLong { length, body: body.len() });
            }
            if length == 0 {
                return raw_single_input(body, schema);
            }
            let (json, rest) = body.split_at(length as usize);
            (json, Some(rest))
        }
    };
    let request: InferenceRequest<'_> = serde_json::from_slice(json).map_err(|e| V2Error::Malformed(e.to_string()))?;
    let mut inputs: Vec<InputTensor> = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        if inputs.iter().any(|i| i.name == input.name) {
            return Err(V2Error::DuplicateInput(input.name));
        }
        let size = binary_data_size(&input.name, input.parameters.as_ref())?;
        let source = match (size, input.data) {
            (Some(size), _) => {
                let Some(rest) = binary.as_mut() else {
                    return Err(V2Error::BinaryWithoutHeader { input: input.name });
                };
                if size > rest.len() as u64 {
                    return Err(V2Error::BinaryPastBody {
                        input: input.name,
                        size: size as usize,
                        available: rest.len(),
                    });
                }
                let (section, tail) = rest.split_at(size as usize);
                *rest = tail;
                Source::Raw(section)
            }
            (None, Some(data)) => Source::Json(data),
            (None, None) => Source::Missing,
        };
        inputs.push(InputTensor::new(input.name, &input.datatype, &input.shape, source)?);
    }
    if let Some(rest) = binary {
        if !rest.is_empty() {
            return Err(V2Error::TrailingBinary(rest.len()));
        }
    }
    let parameters = request.parameters.unwrap_or_default();
    let binary_output = bool_parameter(&parameters, "binary_data_output")?.unwrap_or(false);
    Ok(RestRequest { id: request.id, parameters, inputs, outputs: request.outputs, binary_output })
}

fn binary_data_size(input: &str, parameters: Option<&Parameters>) -> Result<Option<u64>, V2Error> {
    match parameters.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| V2Error::BadParameter {
            name: "binary_data_size".into(),
            reason: format!("input '{input}': expected a byte count, found {v}"),
        }),
    }
}

/// The whole body is the raw data of the model's only input; its datatype
/// and row width come from the schema.
fn raw_single_input(body: &[u8], schema: &Schema) -> Result<RestRequest, V2Error> {
    let [field] = schema.fields() else {
        return Err(V2Error::RawBodyNeedsOneInput(names(schema.fields().iter().map(|f| f.name.as_str()))));
    };
    let name = field.name.clone();
    let rows_of = |dt: Datatype, width: usize| -> Result<usize, V2Error> {
        let row = dt.size().unwrap_or(1) * width;
        if !body.len().is_multiple_of(row) {
            return Err(V2Error::BadData {
                input: name.clone(),
                reason: format!("a raw body of {} bytes is not a whole number of {dt} rows of {row} bytes", body.len()),
            });
        }
        Ok(body.len() / row)
    };
    let (datatype, shape) = match field.ty {
        FieldType::Bool => (Datatype::Bool, vec![body.len() as i64]),
        FieldType::Number(n) => {
            let dt = Datatype::of_numeric(n);
            (dt, vec![rows_of(dt, 1)? as i64])
        }
        FieldType::Array(n, width) => {
            let dt = Datatype::of_numeric(n);
            (dt, vec![rows_of(dt, width)? as i64, width as i64])
        }
        FieldType::Str => (Datatype::Bytes, vec![count_bytes_elements(body, &name)? as i64]),
        FieldType::List(_) => {
            return Err(V2Error::BadData {
                input: name,
                reason: "a list field has no raw form (its row length is unknown); send a JSON header".into(),
            })
        }
    };
    let input = InputTensor::new(name, datatype.as_str(), &shape, Source::Raw(body))?;
    Ok(RestRequest {
        id: None,
        parameters: Parameters::new(),
        inputs: vec![input],
        outputs: None,
        binary_output: false,
    })
}

fn count_bytes_elements(mut body: &[u8], input: &str) -> Result<usize, V2Error> {
    let mut count = 0;
    while !body.is_empty() {
        let len = match body {
            [a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
            _ => {
                return Err(V2Error::BadData {
                    input: input.into(),
                    reason: format!("BYTES element {count}: the data ends inside its length"),
                })
            }
        };
        if body.len() - 4 < len {
            return Err(V2Error::BadData {
                input: input.into(),
                reason: format!(
                    "BYTES element {count}: length {len} runs past the data ({} bytes left)",
                    body.len() - 4
                ),
            });
        }
        body = &body[4 + len..];
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, Numeric};
    use crate::v2::tensor::Values;

    fn schema() -> Schema {
        Schema::new(vec![Field::new("x", FieldType::Number(Numeric::F32)), Field::new("s", FieldType::Str)]).unwrap()
    }

    /// A body as tritonclient builds it: JSON header, then the tensors.
    fn binary_body(header: &str, tensors: &[&[u8]]) -> (Vec<u8>, String) {
        let mut body = header.as_bytes().to_vec();
        for t in tensors {
            body.extend_from_slice(t);
        }
        (body, header.len().to_string())
    }

    #[test]
    fn json_body_with_id_parameters_and_outputs() {
        let body = br#"{"id": "7", "parameters": {"binary_data_output": true, "run_id": "2"},
            "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]},
                       {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
            "outputs": [{"name": "output-0"}]}"#;
        let r = parse_rest(body, None, &schema()).unwrap();
        assert_eq!(r.id.as_deref(), Some("7"));
        assert!(r.binary_output);
        assert_eq!(r.parameters["run_id"], "2");
        assert_eq!(r.inputs[0].values, Values::F32(vec![1.0, 2.0]));
        assert_eq!(r.outputs.unwrap()[0].name, "output-0");
    }

    #[test]
    fn binary_inputs_are_cut_from_the_body_in_order() {
        let x = Values::F32(vec![1.5, 2.5]).to_raw();
        let s = Values::Bytes(vec![b"hi".to_vec(), b"".to_vec()]).to_raw();
        let header = format!(
            r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"FP32","parameters":{{"binary_data_size":{}}}}},{{"name":"s","shape":[2],"datatype":"BYTES","parameters":{{"binary_data_size":{}}}}}]}}"#,
            x.len(),
            s.len()
        );
        let (body, len) = binary_body(&header, &[&x, &s]);
        let r = parse_rest(&body, Some(&len), &schema()).unwrap();
        assert_eq!(r.inputs[0].values, Values::F32(vec![1.5, 2.5]));
        assert_eq!(r.inputs[1].values, Values::Bytes(vec![b"hi".to_vec(), vec![]]));
        let df = crate::v2::to_frame(&schema(), r.inputs).unwrap();
        assert_eq!(df.column("s").unwrap().str().unwrap().get(0), Some("hi"));
    }

    #[test]
    fn binary_and_json_inputs_mix() {
        let x = Values::F32(vec![3.0]).to_raw();
        let header = r#"{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","data":["j"]},{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let (body, len) = binary_body(header, &[&x]);
        let r = parse_rest(&body, Some(&len), &schema()).unwrap();
        assert_eq!(r.inputs[1].values, Values::F32(vec![3.0]));
    }

    #[test]
    fn bad_binary_framing_is_named() {
        let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let (body, len) = binary_body(header, &[&[0; 4]]);
        let e = parse_rest(&body, Some(&len), &schema()).unwrap_err();
        assert_eq!(e.to_string(), "input 'x': binary_data_size 8 runs past the end of the body (4 bytes left)");

        let (body, len) = binary_body(header, &[&[0; 12]]);
        assert_eq!(parse_rest(&body, Some(&len), &schema()).unwrap_err(), V2Error::TrailingBinary(4));

        let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
        let (body, len) = binary_body(header, &[&[0; 4]]);
        let e = parse_rest(&body, Some(&len), &schema()).unwrap_err();
        assert_eq!(e.to_string(), "input 'x': shape [2] of FP32 takes 8 bytes but 4 were sent");

        let e = parse_rest(header.as_bytes(), None, &schema()).unwrap_err();
        assert!(matches!(e, V2Error::BinaryWithoutHeader { .. }), "{e}");

        let header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":-1}}]}"#;
        let (body, len) = binary_body(header, &[]);
        assert!(matches!(parse_rest(&body, Some(&len), &schema()), Err(V2Error::BadParameter { .. })));
    }

    #[test]
    fn header_length_larger_than_the_body_or_absurd() {
        let body = br#"{"inputs":[]}"#;
        let e = parse_rest(body, Some("14"), &schema()).unwrap_err();
        assert_eq!(e.to_string(), "Inference-Header-Content-Length 14 is larger than the body (13 bytes)");
        let e = parse_rest(body, Some("99999999999999999999999"), &schema()).unwrap_err();
        assert!(matches!(e, V2Error::BadHeaderLength(_)));
        let e = parse_rest(body, Some("-3"), &schema()).unwrap_err();
        assert_eq!(e.to_string(), "Inference-Header-Content-Length '-3' is not a byte count");
        let e = parse_rest(body, Some("18446744073709551615"), &schema()).unwrap_err();
        assert!(matches!(e, V2Error::HeaderTooLong { .. }));
        // A length that cuts the JSON short is malformed JSON, not a crash.
        let e = parse_rest(body, Some("5"), &schema()).unwrap_err();
        assert!(matches!(e, V2Error::Malformed(_)), "{e}");
    }

    #[test]
    fn duplicate_inputs_and_unknown_datatypes() {
        let body = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#;
        assert_eq!(parse_rest(body, None, &schema()).unwrap_err(), V2Error::DuplicateInput("x".into()));
        let body = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"COMPLEX","data":[1]}]}"#;
        assert!(matches!(parse_rest(body, None, &schema()), Err(V2Error::UnknownDatatype { .. })));
        let body = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#;
        assert!(matches!(parse_rest(body, None, &schema()), Err(V2Error::NoData { .. })));
        let body = br#"{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}"#;
        let e = parse_rest(body, None, &schema()).unwrap_err();
        assert!(e.to_string().contains("missing field `shape`"), "{e}");
    }

    #[test]
    fn raw_single_input_body() {
        let one = Schema::new(vec![Field::new("v", FieldType::Array(Numeric::F32, 2))]).unwrap();
        let body = Values::F32(vec![1.0, 2.0, 3.0, 4.0]).to_raw();
        let r = parse_rest(&body, Some("0"), &one).unwrap();
        assert_eq!(r.inputs[0].shape, vec![2, 2]);
        let e = parse_rest(&body[..6], Some("0"), &one).unwrap_err();
        assert!(e.to_string().contains("not a whole number of FP32 rows of 8 bytes"), "{e}");

        let text = Schema::new(vec![Field::new("t", FieldType::Str)]).unwrap();
        let body = Values::Bytes(vec![b"a".to_vec(), b"bc".to_vec()]).to_raw();
        let r = parse_rest(&body, Some("0"), &text).unwrap();
        assert_eq!(r.inputs[0].values, Values::Bytes(vec![b"a".to_vec(), b"bc".to_vec()]));
        assert!(parse_rest(&body[..7], Some("0"), &text).is_err());

        let e = parse_rest(&body, Some("0"), &schema()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a raw body (Inference-Header-Content-Length: 0) needs a model with one input; this one takes 'x' and 's'"
        );
    }
}
