//! V2 output encoding against V2 input decoding: a frame (decoded from
//! records JSON) encoded as a REST response, once as JSON data and once as
//! binary tensors, then sent back as a request (`outputs` renamed
//! `inputs`), decodes to the same frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redesmyn::codec::records::decode;
use redesmyn::handler::Predictions;
use redesmyn::v2::binary::parse_rest;
use redesmyn::v2::frame::to_frame;
use redesmyn::v2::output::{encode_rest, outputs_from_predictions, ResponseMeta};
use redesmyn_fuzz::{same, schema_and_rest};

fuzz_target!(|data: &[u8]| {
    let Some((schema, body)) = schema_and_rest(data) else { return };
    let Ok(frame) = decode(&schema, body) else { return };
    if frame.height() == 0 || frame.columns().iter().any(|c| c.null_count() > 0) {
        return;
    }
    // Lists of varying length and such have no tensor form: refused, not a panic.
    let Ok(outputs) = outputs_from_predictions(&Predictions::Columns(frame.clone()), &[]) else { return };
    for binary in [false, true] {
        let selected: Vec<_> = outputs.iter().cloned().map(|o| (o, binary)).collect();
        let meta = ResponseMeta { model_name: "m", model_version: None, id: Some("r"), parameters: None };
        let encoded = encode_rest(meta, &selected);
        let split = encoded.header_length.unwrap_or(encoded.body.len());
        let (json, tail) = encoded.body.split_at(split);
        let mut response: serde_json::Value = serde_json::from_slice(json).expect("the response is JSON");
        let outputs = response.as_object_mut().unwrap().remove("outputs").unwrap();
        let request = serde_json::json!({ "id": "r", "inputs": outputs });
        let mut again = serde_json::to_vec(&request).unwrap();
        let header = encoded.header_length.map(|_| again.len().to_string());
        again.extend_from_slice(tail);
        let parsed = parse_rest(&again, header.as_deref(), &schema)
            .unwrap_or_else(|e| panic!("binary {binary}: our own response does not parse as a request: {e}"));
        let decoded = to_frame(&schema, parsed.inputs)
            .unwrap_or_else(|e| panic!("binary {binary}: our own tensors do not fit the schema: {e}"));
        assert!(same(&frame, &decoded), "binary {binary}: {frame:?}\nbecame {decoded:?}");
    }
});
