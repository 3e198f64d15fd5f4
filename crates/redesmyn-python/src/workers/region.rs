//! The shared memory a batch and its predictions cross in: a memfd per
//! direction, written and read as Arrow IPC streams (polars' own IPC
//! writer and reader, `polars_arrow::io::ipc`).
//!
//! The host writes a batch at offset 0 of the batch region (growing the
//! file when a batch is larger than any before) and tells the worker its
//! length; the worker maps the region and reads the stream in place. The
//! worker writes its predictions at offset 0 of the predictions region and
//! answers their length. A region's tail past the length is stale and never
//! read. Both buffers are kept between batches, so a steady load allocates
//! nothing.

use std::ffi::CString;
use std::fs::File;
use std::io::Cursor;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;

use polars::prelude::*;
use polars_arrow::array::Array;
use polars_arrow::datatypes::ArrowSchema;
use polars_arrow::io::ipc::read::{read_stream_metadata, StreamReader, StreamState};
use polars_arrow::io::ipc::write::{StreamWriter, WriteOptions};

/// One shared-memory file, inherited by the worker process.
pub struct Region {
    file: File,
    /// The host's scratch buffer for encoding or decoding.
    scratch: Vec<u8>,
}

impl Region {
    /// A new, empty memfd (closed on exec: the worker gets it only as the
    /// descriptor it is told to keep, see `process.rs`).
    pub fn new(name: &str) -> std::io::Result<Region> {
        Ok(Region { file: memfd(name)?, scratch: Vec::new() })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Writes `frame` as an Arrow IPC stream at offset 0; returns its length.
    pub fn write_frame(&mut self, frame: &DataFrame) -> PolarsResult<usize> {
        self.scratch.clear();
        encode(frame, &mut self.scratch)?;
        self.file.write_all_at(&self.scratch, 0)?;
        Ok(self.scratch.len())
    }

    /// Reads the Arrow IPC stream of `len` bytes at offset 0.
    pub fn read_frame(&mut self, len: usize) -> PolarsResult<DataFrame> {
        self.scratch.resize(len, 0);
        self.file.read_exact_at(&mut self.scratch, 0)?;
        decode(&self.scratch)
    }
}

fn memfd(name: &str) -> std::io::Result<File> {
    let name = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: `name` is a NUL-terminated string alive for the call;
    // `memfd_create` only reads it and returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by no one else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `frame` as an Arrow IPC stream: a schema message, one record batch per
/// chunk, the end-of-stream marker.
pub fn encode(frame: &DataFrame, out: &mut Vec<u8>) -> PolarsResult<()> {
    let compat = CompatLevel::newest();
    let schema: ArrowSchema = frame
        .columns()
        .iter()
        .map(|c| {
            let field = c.dtype().to_arrow_field(c.name().clone(), compat);
            (field.name.clone(), field)
        })
        .collect();
    let mut frame = frame.clone();
    frame.align_chunks();
    let mut writer = StreamWriter::new(out, WriteOptions { compression: None });
    writer.start(&schema, None)?;
    for batch in frame.iter_chunks(compat, false) {
        writer.write(&batch, None)?;
    }
    writer.finish()
}

/// The frame of an Arrow IPC stream.
pub fn decode(bytes: &[u8]) -> PolarsResult<DataFrame> {
    let mut cursor = Cursor::new(bytes);
    let metadata = read_stream_metadata(&mut cursor)?;
    let fields: Vec<_> = metadata.schema.iter_values().cloned().collect();
    let mut chunks: Vec<Vec<Box<dyn Array>>> = vec![Vec::new(); fields.len()];
    for state in StreamReader::new(cursor, metadata, None) {
        match state? {
            StreamState::Some(batch) => {
                for (column, array) in chunks.iter_mut().zip(batch.into_arrays()) {
                    column.push(array);
                }
            }
            StreamState::Waiting => break,
        }
    }
    let columns = fields
        .iter()
        .zip(chunks)
        .map(|(field, chunks)| {
            let series = match chunks.is_empty() {
                true => Series::new_empty(field.name.clone(), &DataType::from_arrow_field(field)),
                false => Series::try_from((field, chunks))?,
            };
            Ok(Column::from(series))
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new_infer_height(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        let mut frame = DataFrame::new_infer_height(vec![
            Series::new("x".into(), [1.5f64, 2.5]).into(),
            Series::new("name".into(), ["a", "b"]).into(),
            Series::new("n".into(), [Some(1i64), None]).into(),
        ])
        .unwrap();
        // A batch of two requests: two chunks.
        frame
            .vstack_mut(
                &DataFrame::new_infer_height(vec![
                    Series::new("x".into(), [3.5f64]).into(),
                    Series::new("name".into(), ["c"]).into(),
                    Series::new("n".into(), [Some(3i64)]).into(),
                ])
                .unwrap(),
            )
            .unwrap();
        frame
    }

    #[test]
    fn a_frame_round_trips_through_the_shared_region() {
        let mut region = Region::new("test").unwrap();
        let len = region.write_frame(&frame()).unwrap();
        // A smaller frame after a larger one: the stale tail is never read.
        let small = DataFrame::new_infer_height(vec![Series::new("x".into(), [9.0f64]).into()]).unwrap();
        let small_len = region.write_frame(&small).unwrap();
        assert!(small_len < len);
        assert!(region.read_frame(small_len).unwrap().equals(&small));
        region.write_frame(&frame()).unwrap();
        let back = region.read_frame(len).unwrap();
        assert!(back.equals_missing(&frame()), "{back}");
    }

    #[test]
    fn another_descriptor_of_the_region_sees_the_same_bytes() {
        let mut region = Region::new("test").unwrap();
        let len = region.write_frame(&frame()).unwrap();
        // What the worker does: open the same memory by its descriptor.
        let other = File::open(format!("/proc/self/fd/{}", region.fd())).unwrap();
        let mut bytes = vec![0; len];
        other.read_exact_at(&mut bytes, 0).unwrap();
        assert!(decode(&bytes).unwrap().equals_missing(&frame()));
    }

    #[test]
    fn an_empty_frame_keeps_its_columns() {
        let empty = DataFrame::new_infer_height(vec![Series::new_empty("x".into(), &DataType::Float64).into()]).unwrap();
        let mut out = Vec::new();
        encode(&empty, &mut out).unwrap();
        let back = decode(&out).unwrap();
        assert_eq!(back.height(), 0);
        assert_eq!(back.get_column_names(), ["x"]);
    }
}
