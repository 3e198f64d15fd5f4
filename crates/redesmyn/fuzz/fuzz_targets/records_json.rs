//! Records JSON into columns, for every field type, nullability and
//! nesting the schema allows: never a panic; a decoded frame follows the
//! schema; written back as records by the predictions writer it decodes to
//! the same frame (unless it holds a non-finite float, which JSON writes
//! as null).
#![no_main]
use libfuzzer_sys::fuzz_target;
use redesmyn::codec::predictions::write_predictions;
use redesmyn::codec::records::decode;
use redesmyn::handler::Predictions;
use redesmyn_fuzz::{has_non_finite, same, schema_and_rest};

fuzz_target!(|data: &[u8]| {
    let Some((schema, body)) = schema_and_rest(data) else { return };
    let Ok(frame) = decode(&schema, body) else { return };
    assert_eq!(frame.width(), schema.len());
    for (column, field) in frame.columns().iter().zip(schema.fields()) {
        assert_eq!(column.name().as_str(), field.name);
        assert_eq!(column.dtype(), &field.ty.dtype(), "field {}", field.name);
        if !field.nullable {
            assert_eq!(column.null_count(), 0, "a null in non-nullable field {}", field.name);
        }
    }
    let mut written = Vec::new();
    write_predictions(&mut written, &Predictions::Columns(frame.clone()));
    match decode(&schema, &written) {
        Ok(again) => assert!(same(&frame, &again), "{frame:?}\nwritten {}\nread back {again:?}", String::from_utf8_lossy(&written)),
        Err(e) => assert!(has_non_finite(&frame), "{frame:?} written as {} does not decode: {e}", String::from_utf8_lossy(&written)),
    }
});
