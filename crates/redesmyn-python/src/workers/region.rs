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

use memmap2::{MmapMut, MmapOptions};
use std::ffi::CString;
use std::fs::File;
use std::io::Cursor;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use polars::prelude::*;
use polars_arrow::array::Array;
use polars_arrow::datatypes::ArrowSchema;
use polars_arrow::io::ipc::read::{read_stream_metadata, StreamReader, StreamState};
use polars_arrow::io::ipc::write::{StreamWriter, WriteOptions};

/// One shared-memory file, inherited by the worker process, and the host's
/// mapping of it.
pub struct Region {
    file: File,
    map: Option<MmapMut>,
    /// The host's encoding buffer.
    scratch: Vec<u8>,
}

/// The smallest region: a batch of a few thousand numbers fits without growing.
const MIN_SIZE: u64 = 1 << 20;

impl Region {
    /// A new, empty memfd (closed on exec: the worker gets it only as the
    /// descriptor it is told to keep, see `process.rs`).
    pub fn new(name: &str) -> std::io::Result<Region> {
        Ok(Region { file: memfd(name)?, map: None, scratch: Vec::new() })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The mapping of at least `len` bytes, growing the file (to a power
    /// of two) when it is shorter, and mapped again when the file grew.
    fn mapped(&mut self, len: usize) -> std::io::Result<&mut MmapMut> {
        let size = self.file.metadata()?.len();
        let mapped = self.map.as_ref().map_or(0, |m| m.len() as u64);
        if mapped < len as u64 || mapped < size {
            let wanted = size.max((len as u64).next_power_of_two()).max(MIN_SIZE);
            if size < wanted {
                self.file.set_len(wanted)?;
            }
            // SAFETY: the file is a memfd only this process and its worker
            // hold; it is never truncated (it only grows), and the protocol
            // keeps the two sides from touching a region at the same time:
            // the host writes a batch before it sends the control line, and
            // reads predictions only after the worker answered. The mapping
            // covers the file's current length.
            self.map = Some(unsafe { MmapOptions::new().len(wanted as usize).map_mut(&self.file)? });
        }
        self.map.as_mut().ok_or_else(|| std::io::Error::other("the region is not mapped"))
    }

    /// Writes `frame` as an Arrow IPC stream at offset 0; returns its length.
    pub fn write_frame(&mut self, frame: &DataFrame) -> PolarsResult<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let written = encode(frame, &mut scratch).and_then(|()| {
            self.mapped(scratch.len())?[..scratch.len()].copy_from_slice(&scratch);
            Ok(scratch.len())
        });
        self.scratch = scratch;
        written
    }

    /// Reads the Arrow IPC stream of `len` bytes at offset 0, in place.
    pub fn read_frame(&mut self, len: usize) -> PolarsResult<DataFrame> {
        let size = self.file.metadata()?.len();
        if len as u64 > size {
            polars_bail!(ComputeError: "the worker answered {len} bytes, but its region holds {size}");
        }
        decode(&self.mapped(len)?[..len])
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
        use std::os::unix::fs::FileExt;
        let mut region = Region::new("test").unwrap();
        let len = region.write_frame(&frame()).unwrap();
        // What the worker does: open the same memory by its descriptor.
        let other = File::options().read(true).write(true).open(format!("/proc/self/fd/{}", region.fd())).unwrap();
        let mut bytes = vec![0; len];
        other.read_exact_at(&mut bytes, 0).unwrap();
        assert!(decode(&bytes).unwrap().equals_missing(&frame()));
        // And what it answers: written through its own descriptor, read through the host's map.
        let mut answer = Vec::new();
        let small = DataFrame::new_infer_height(vec![Series::new("p".into(), [1i64, 2, 3]).into()]).unwrap();
        encode(&small, &mut answer).unwrap();
        other.write_all_at(&answer, 0).unwrap();
        assert!(region.read_frame(answer.len()).unwrap().equals(&small));
        // An answer larger than the region is refused, not read out of bounds.
        assert!(region.read_frame(1 << 40).is_err());
    }

    #[test]
    fn an_empty_frame_keeps_its_columns() {
        let empty =
            DataFrame::new_infer_height(vec![Series::new_empty("x".into(), &DataType::Float64).into()]).unwrap();
        let mut out = Vec::new();
        encode(&empty, &mut out).unwrap();
        let back = decode(&out).unwrap();
        assert_eq!(back.height(), 0);
        assert_eq!(back.get_column_names(), ["x"]);
    }
}
