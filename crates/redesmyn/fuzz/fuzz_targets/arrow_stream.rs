//! The Arrow C stream crossing to Python: a frame (decoded from records
//! JSON, in one or several chunks) exported as a stream of struct arrays
//! and read back by a stream reader is the same frame; each column
//! exported alone comes back through `import_column` the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use polars::prelude::*;
use redesmyn::codec::records::decode;
use redesmyn_fuzz::{column_stream, read_frame_stream, same, schema_and_rest};
use redesmyn_python::arrow::{export_frame, import_column};

fuzz_target!(|data: &[u8]| {
    let Some((schema, body)) = schema_and_rest(data) else { return };
    let Ok(frame) = decode(&schema, body) else { return };
    // A batch of two requests: two chunks per column.
    let mut batch = frame.clone();
    if batch.vstack_mut(&frame).is_err() {
        return;
    }
    for frame in [frame, batch] {
        let back = read_frame_stream(export_frame(frame.clone()));
        assert!(same(&frame, &back), "{frame:?}\ncame back as {back:?}");
        for column in frame.columns() {
            let series = column.as_materialized_series();
            let back = import_column(series.name(), column_stream(series)).expect("our own stream imports");
            let (a, b) = (series.clone().into_frame(), back.into_frame());
            assert!(same(&a, &b), "{a:?}\ncame back as {b:?}");
        }
    }
});
