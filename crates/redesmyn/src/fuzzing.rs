//! Entry points for the fuzz targets (`crates/redesmyn/fuzz`) into parts
//! the crate keeps private. Compiled only under `--cfg fuzzing`, which
//! cargo-fuzz sets: never part of the library's API.

use std::path::PathBuf;

use crate::schema::Schema;
use crate::score::{read, validate, Format};

/// Reads `file` as scoring input in the format `format` picks (CSV,
/// NDJSON, Parquet, Arrow IPC), in chunks of a few rows, and validates each
/// chunk. Panics where a promise breaks: a chunk's row numbers must follow
/// on from the previous chunk's, and validation must keep or reject every
/// row of a chunk.
pub fn score_file(schema: &Schema, format: u8, file: &[u8]) {
    let format = [Format::Csv, Format::NdJson, Format::Parquet, Format::Ipc][usize::from(format % 4)];
    let path = scratch();
    std::fs::write(&path, file).expect("the scratch file is writable");
    let Ok(mut reader) = read::open(&path, format, schema, 3) else { return };
    let mut next_row = 1u64;
    while let Ok(Some(chunk)) = reader.next_chunk() {
        let rows: Vec<u64> = match chunk.column(read::ROW).and_then(|c| c.u64().cloned()) {
            Ok(rows) => rows.into_no_null_iter().collect(),
            Err(e) => panic!("a chunk without its row numbers: {e}"),
        };
        let expected: Vec<u64> = (next_row..next_row + rows.len() as u64).collect();
        assert_eq!(rows, expected, "row numbers of a {format:?} chunk");
        next_row += rows.len() as u64;
        let height = chunk.height();
        if let Ok(checked) = validate::check(schema, chunk) {
            assert_eq!(checked.valid.height() + checked.rejects.len(), height, "validation lost rows");
        }
    }
}

/// One scratch file per fuzzing process.
fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("redesmyn-fuzz-score-{}", std::process::id()))
}
