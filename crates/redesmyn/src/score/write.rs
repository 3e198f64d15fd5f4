//! Writers that append chunk after chunk to a temporary file beside the
//! final one and rename it only when the run completes: an interrupted run
//! leaves nothing under the final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::{CompatLevel, DataFrame, SchemaExt};
use polars_arrow::io::ipc::write::default_ipc_fields;
use polars_io::prelude::{CsvWriter, IpcWriter, ParquetWriter, SerWriter};

use super::format::Format;
use super::ScoreError;

/// Rows gathered before a write, so a small batch size does not make
/// thousands of tiny Parquet row groups or Arrow record batches.
const WRITE_ROWS: usize = 1 << 16;

enum Sink {
    Csv(polars_io::csv::write::BatchedWriter<Output>),
    /// Boxed: Parquet's writer is several times larger than the others.
    Parquet(Box<polars_io::parquet::write::BatchedWriter<Output>>),
    Ipc(polars_io::ipc::BatchedWriter<Output>),
    NdJson(polars_io::json::BatchedWriter<Output>),
}

/// The buffered temporary file. Polars' writers own it and nothing reports
/// the error of its last flush, so that flush (and an `fsync`) happens here,
/// on drop, and a failure (a full disk) is kept for [`ChunkWriter::finish`]
/// to report instead of renaming a truncated file.
struct Output {
    file: BufWriter<File>,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Output {
    /// Keeps the first error of the file itself (a full disk), which the
    /// encoders would otherwise report as their own.
    fn record<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result {
            self.failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
        }
        result
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf);
        self.record(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.file.flush();
        self.record(flushed)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let done = self.file.flush().and_then(|()| self.file.get_ref().sync_all());
        let _ = self.record(done);
    }
}

/// A file being written under a temporary name; removed if dropped unfinished.
pub struct ChunkWriter {
    format: Format,
    temp: PathBuf,
    target: PathBuf,
    sink: Option<Sink>,
    pending: Option<DataFrame>,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    finished: bool,
}

impl ChunkWriter {
    pub fn create(target: &Path, format: Format) -> Result<Self, ScoreError> {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = dir.join(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
        Ok(ChunkWriter {
            format,
            temp,
            target: target.to_path_buf(),
            sink: None,
            pending: None,
            failed: Default::default(),
            finished: false,
        })
    }

    pub fn write(&mut self, frame: DataFrame) -> Result<(), ScoreError> {
        match &mut self.pending {
            Some(pending) => {
                pending.vstack_mut(&frame)?;
            }
            None => self.pending = Some(frame),
        }
        if self.pending.as_ref().is_some_and(|p| p.height() >= WRITE_ROWS) {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), ScoreError> {
        let Some(mut frame) = self.pending.take() else {
            return Ok(());
        };
        frame.rechunk_mut();
        if self.sink.is_none() {
            self.sink = Some(self.open(&frame)?);
        }
        let written = match self.sink.as_mut() {
            Some(Sink::Csv(w)) => w.write_batch(&frame),
            Some(Sink::Parquet(w)) => w.write_batch(&frame),
            Some(Sink::Ipc(w)) => w.write_batch(&frame),
            Some(Sink::NdJson(w)) => w.write_batch(&frame),
            None => Ok(()),
        };
        self.written(written)
    }

    /// A write's error, naming the output (and the disk's own error, such
    /// as a full disk, rather than the encoder's report of it).
    fn written<T, E: std::fmt::Display>(&self, result: Result<T, E>) -> Result<T, ScoreError> {
        result.map_err(|e| {
            let cause = self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_else(|| e.to_string());
            ScoreError::Io(format!("cannot write the output '{}': {cause}", self.target.display()))
        })
    }

    fn open(&self, first: &DataFrame) -> Result<Sink, ScoreError> {
        let file = BufWriter::with_capacity(1 << 20, self.written(File::create(&self.temp))?);
        let file = Output { file, failed: std::sync::Arc::clone(&self.failed) };
        let schema = first.schema();
        Ok(match self.format {
            Format::Csv => Sink::Csv(CsvWriter::new(file).batched(schema)?),
            Format::Parquet => Sink::Parquet(Box::new(ParquetWriter::new(file).batched(schema)?)),
            Format::Ipc => {
                let arrow = schema.to_arrow(CompatLevel::newest());
                let fields = default_ipc_fields(arrow.iter_values());
                Sink::Ipc(IpcWriter::new(file).with_compat_level(CompatLevel::newest()).batched(schema, fields)?)
            }
            Format::NdJson => Sink::NdJson(polars_io::json::BatchedWriter::new(file)),
        })
    }

    /// Writes what is left and moves the file under its final name.
    /// `empty` gives the columns of a file no row reached.
    pub fn finish(mut self, empty: DataFrame) -> Result<(), ScoreError> {
        self.flush_pending()?;
        if self.sink.is_none() {
            self.pending = Some(empty);
            self.flush_pending()?;
        }
        // Each writer writes its footer; dropping it flushes the buffer.
        let finished = match self.sink.take() {
            Some(Sink::Csv(mut w)) => w.finish(),
            Some(Sink::Parquet(w)) => w.finish().map(drop),
            Some(Sink::Ipc(mut w)) => w.finish(),
            Some(Sink::NdJson(_)) | None => Ok(()),
        };
        self.written(finished)?;
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(ScoreError::Io(format!("cannot write the output '{}': {e}", self.target.display())));
        }
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| ScoreError::Io(format!("cannot move the output to '{}': {e}", self.target.display())))?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.sink = None;
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// The rejects file: CSV with `row,reason`, written beside its final name
/// and renamed at the end like the output.
pub struct RejectsWriter {
    temp: PathBuf,
    target: PathBuf,
    file: BufWriter<File>,
    finished: bool,
}

impl RejectsWriter {
    pub fn create(target: &Path) -> Result<Self, ScoreError> {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("rejects");
        let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = dir.join(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
        let failed =
            |e: std::io::Error| ScoreError::Io(format!("cannot write the rejects '{}': {e}", target.display()));
        let mut file = BufWriter::new(File::create(&temp).map_err(failed)?);
        file.write_all(b"row,reason\n").map_err(failed)?;
        Ok(RejectsWriter { temp, target: target.to_path_buf(), file, finished: false })
    }

    pub fn write(&mut self, row: u64, reason: &str) -> Result<(), ScoreError> {
        let quoted = reason.replace('"', "\"\"").replace(['\n', '\r'], " ");
        writeln!(self.file, "{row},\"{quoted}\"").map_err(|e| self.failed(e))
    }

    fn failed(&self, e: std::io::Error) -> ScoreError {
        ScoreError::Io(format!("cannot write the rejects '{}': {e}", self.target.display()))
    }

    pub fn finish(mut self) -> Result<(), ScoreError> {
        self.file.flush().map_err(|e| self.failed(e))?;
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| ScoreError::Io(format!("cannot move the rejects to '{}': {e}", self.target.display())))?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for RejectsWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
