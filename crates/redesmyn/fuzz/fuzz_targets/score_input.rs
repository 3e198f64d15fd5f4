//! File scoring's readers (CSV, NDJSON, Parquet, Arrow IPC) and its
//! validation, on any file: never a panic; every chunk numbers its rows
//! from 1 without gaps, and validation splits a chunk into rows that fit
//! the schema and rejected rows, losing none.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redesmyn_fuzz::schema_and_rest;

fuzz_target!(|data: &[u8]| {
    let Some((schema, rest)) = schema_and_rest(data) else { return };
    let Some((&format, file)) = rest.split_first() else { return };
    redesmyn::fuzzing::score_file(&schema, format, file);
});
