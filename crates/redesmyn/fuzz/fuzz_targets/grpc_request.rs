//! A gRPC `ModelInferRequest` (any protobuf bytes) converted to tensors and
//! then to the schema's columns: never a panic; the conversion to JSON
//! parameters and back keeps them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use redesmyn::grpc::convert::{infer_request, json_to_parameters, parameters_to_json};
use redesmyn::grpc::proto::ModelInferRequest;
use redesmyn::v2::frame::to_frame;
use redesmyn_fuzz::schema_and_rest;

fuzz_target!(|data: &[u8]| {
    let Some((schema, bytes)) = schema_and_rest(data) else { return };
    let Ok(request) = ModelInferRequest::decode(bytes) else { return };
    let parameters = parameters_to_json(&request.parameters);
    assert_eq!(parameters_to_json(&json_to_parameters(&parameters)), parameters);
    let Ok(converted) = infer_request(request) else { return };
    if let Ok(frame) = to_frame(&schema, converted.inputs) {
        assert_eq!(frame.width(), schema.len());
    }
});
