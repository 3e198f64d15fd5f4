//! A V2 REST infer body, JSON or with binary tensors after an
//! `Inference-Header-Content-Length` header, into the schema's columns:
//! never a panic, and a frame only when it has the schema's fields.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redesmyn::v2::binary::parse_rest;
use redesmyn::v2::frame::to_frame;
use redesmyn_fuzz::schema_and_rest;

fuzz_target!(|data: &[u8]| {
    let Some((schema, rest)) = schema_and_rest(data) else { return };
    let Some((&mode, body)) = rest.split_first() else { return };
    // The header is absent, 0 (the raw single-input form), the length the
    // next two bytes give (little-endian), or a length past the body.
    let (header, body) = match mode % 4 {
        0 => (None, body),
        1 => (Some("0".to_string()), body),
        2 if body.len() >= 2 => (Some(u16::from_le_bytes([body[0], body[1]]).to_string()), &body[2..]),
        _ => (Some(format!("{}", body.len() + usize::from(mode))), body),
    };
    let Ok(request) = parse_rest(body, header.as_deref(), &schema) else { return };
    if let Ok(frame) = to_frame(&schema, request.inputs) {
        assert_eq!(frame.width(), schema.len());
        for (column, field) in frame.columns().iter().zip(schema.fields()) {
            assert_eq!(column.dtype(), &field.ty.dtype(), "field {}", field.name);
        }
    }
});
