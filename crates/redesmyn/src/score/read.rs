//! Readers that hand a file over a few rows at a time, so a file larger
//! than memory scores in bounded memory.
//!
//! Every chunk carries [`ROW`], the 1-based number of each row in the
//! input, so a row rejected anywhere later is reported by its place in the
//! file. Text formats (CSV, NDJSON) read the schema's fields as strings:
//! validation then casts them and names the values that do not parse,
//! instead of one bad value failing a whole chunk.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::sync::Arc;

use polars::prelude::{DataFrame, DataType, IntoColumn, NamedFrom, Schema as FrameSchema, Series};
use polars_arrow::io::ipc::read::{read_file_metadata, FileReader};
use polars_io::prelude::{CsvReadOptions, ParquetReader, SerReader};

use super::format::Format;
use super::parquet_footer;
use super::ScoreError;
use crate::schema::Schema;

/// The column holding each row's 1-based number in the input file.
pub const ROW: &str = "__redesmyn_row";

/// A file read in chunks of about `rows` rows.
pub trait ChunkReader: Send {
    /// The next chunk, with its [`ROW`] column; `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<DataFrame>, ScoreError>;
    /// The file's row count when its metadata says so (Parquet, Arrow).
    fn total_rows(&self) -> Option<u64>;
}

pub fn open(path: &Path, format: Format, schema: &Schema, rows: usize) -> Result<Box<dyn ChunkReader>, ScoreError> {
    let file = File::open(path).map_err(|e| ScoreError::Io(format!("cannot open '{}': {e}", path.display())))?;
    let rows = rows.max(1);
    let what = format!("'{}' ({format:?})", path.display());
    let reader: Box<dyn ChunkReader> = contained(&what, || {
        let reader: Box<dyn ChunkReader> = match format {
            Format::Csv => Box::new(TextReader::new(file, TextKind::Csv, schema, rows)?),
            Format::NdJson => Box::new(TextReader::new(file, TextKind::NdJson, schema, rows)?),
            Format::Parquet => {
                let mut file = file;
                let len = file.metadata().map_err(|e| ScoreError::Io(format!("cannot read {what}: {e}")))?.len();
                parquet_footer::check(&mut file, len)
                    .map_err(|e| ScoreError::Format(format!("{what} is not a readable Parquet file: {e}")))?;
                Box::new(ParquetChunks::new(file, rows)?)
            }
            Format::Ipc => Box::new(IpcChunks::new(file)?),
        };
        Ok(reader)
    })?;
    Ok(Box::new(Contained { reader, what }))
}

/// A reader whose panics are errors: the file libraries panic on some
/// malformed files (polars-parquet on a corrupt footer, found by the
/// `score_input` fuzz target), which must fail the run, not the process.
struct Contained {
    reader: Box<dyn ChunkReader>,
    what: String,
}

impl ChunkReader for Contained {
    fn next_chunk(&mut self) -> Result<Option<DataFrame>, ScoreError> {
        let reader = &mut self.reader;
        contained(&self.what, || reader.next_chunk())
    }

    fn total_rows(&self) -> Option<u64> {
        self.reader.total_rows()
    }
}

fn contained<T>(what: &str, step: impl FnOnce() -> Result<T, ScoreError>) -> Result<T, ScoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let why = crate::handler::panic_message(panic.as_ref());
        Err(ScoreError::Format(format!("{what} cannot be read; the file is malformed: {why}")))
    })
}

fn with_row_numbers(mut frame: DataFrame, first: u64) -> Result<DataFrame, ScoreError> {
    let n = frame.height() as u64;
    let rows = Series::new(ROW.into(), (first..first + n).collect::<Vec<u64>>());
    frame.with_column(rows.into_column())?;
    Ok(frame)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Csv,
    NdJson,
}

/// CSV or NDJSON: records are cut from the byte stream (a CSV record ends
/// at a newline outside quotes) and each chunk is parsed by Polars.
struct TextReader {
    kind: TextKind,
    lines: BufReader<File>,
    header: Vec<u8>,
    /// Fixed after the first chunk: inferred types, the schema's fields as strings.
    frame_schema: Option<Arc<FrameSchema>>,
    schema: Schema,
    rows: usize,
    next_row: u64,
    done: bool,
}

impl TextReader {
    fn new(file: File, kind: TextKind, schema: &Schema, rows: usize) -> Result<Self, ScoreError> {
        let mut reader = TextReader {
            kind,
            lines: BufReader::with_capacity(1 << 20, file),
            header: Vec::new(),
            frame_schema: None,
            schema: schema.clone(),
            rows,
            next_row: 1,
            done: false,
        };
        if kind == TextKind::Csv {
            reader.header = reader.next_records(1)?.0;
        }
        Ok(reader)
    }

    /// Up to `n` whole records as bytes, and how many there are.
    fn next_records(&mut self, n: usize) -> Result<(Vec<u8>, usize), ScoreError> {
        let mut out = Vec::new();
        let mut count = 0;
        let mut in_quotes = false;
        while count < n {
            let start = out.len();
            let read = self.lines.read_until(b'\n', &mut out).map_err(|e| ScoreError::Io(e.to_string()))?;
            if read == 0 {
                self.done = true;
                if in_quotes || (out.len() > start && !out.ends_with(b"\n")) {
                    out.push(b'\n');
                    count += 1;
                }
                break;
            }
            if self.kind == TextKind::Csv {
                let quotes = out[start..].iter().filter(|&&b| b == b'"').count();
                if quotes % 2 == 1 {
                    in_quotes = !in_quotes;
                }
                if in_quotes {
                    continue;
                }
            }
            if out[start..].iter().all(u8::is_ascii_whitespace) {
                out.truncate(start);
                continue;
            }
            count += 1;
        }
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        Ok((out, count))
    }

    fn parse(&self, bytes: Vec<u8>, schema: Option<Arc<FrameSchema>>) -> Result<DataFrame, ScoreError> {
        Ok(match self.kind {
            TextKind::Csv => {
                let mut all = Vec::with_capacity(self.header.len() + bytes.len());
                all.extend_from_slice(&self.header);
                all.extend_from_slice(&bytes);
                CsvReadOptions::default()
                    .with_has_header(true)
                    .with_schema(schema)
                    .with_infer_schema_length(Some(1000))
                    .map_parse_options(|p| p.with_truncate_ragged_lines(true))
                    .into_reader_with_file_handle(Cursor::new(all))
                    .finish()?
            }
            TextKind::NdJson => {
                let schema = match schema {
                    Some(s) => s,
                    None => Arc::new(polars_io::ndjson::infer_schema(&mut Cursor::new(&bytes), None)?),
                };
                polars_io::ndjson::core::parse_ndjson(&bytes, None, &schema, true)?
            }
        })
    }
}

impl ChunkReader for TextReader {
    fn next_chunk(&mut self) -> Result<Option<DataFrame>, ScoreError> {
        if self.done {
            return Ok(None);
        }
        let (bytes, count) = self.next_records(self.rows)?;
        if count == 0 {
            return Ok(None);
        }
        let schema = match &self.frame_schema {
            Some(s) => Arc::clone(s),
            None => {
                let inferred = self.parse(bytes.clone(), None)?;
                let mut schema = (**inferred.schema()).clone();
                for field in self.schema.fields() {
                    if schema.contains(&field.name) {
                        schema.with_column(field.name.as_str().into(), DataType::String);
                    }
                }
                let schema = Arc::new(schema);
                self.frame_schema = Some(Arc::clone(&schema));
                schema
            }
        };
        let frame = self.parse(bytes, Some(schema))?;
        let first = self.next_row;
        self.next_row += frame.height() as u64;
        with_row_numbers(frame, first).map(Some)
    }

    fn total_rows(&self) -> Option<u64> {
        None
    }
}

/// Parquet: slices of at most `rows` rows that never straddle a row group,
/// so at most one row group is decoded at a time.
struct ParquetChunks {
    file: File,
    metadata: polars_io::prelude::FileMetadataRef,
    /// Row ranges `(start, len)` still to read.
    groups: std::collections::VecDeque<(usize, usize)>,
    rows: usize,
}

impl ParquetChunks {
    fn new(file: File, rows: usize) -> Result<Self, ScoreError> {
        let mut reader = ParquetReader::new(file.try_clone().map_err(|e| ScoreError::Io(e.to_string()))?);
        let metadata = Arc::clone(reader.get_metadata()?);
        let mut start = 0;
        let mut groups = std::collections::VecDeque::new();
        for group in &metadata.row_groups {
            let n = group.num_rows();
            groups.push_back((start, n));
            start += n;
        }
        Ok(ParquetChunks { file, metadata, groups, rows: rows.max(1 << 16) })
    }
}

impl ChunkReader for ParquetChunks {
    fn next_chunk(&mut self) -> Result<Option<DataFrame>, ScoreError> {
        let Some((start, len)) = self.groups.pop_front() else {
            return Ok(None);
        };
        let take = len.min(self.rows);
        if take < len {
            self.groups.push_front((start + take, len - take));
        }
        let file = self.file.try_clone().map_err(|e| ScoreError::Io(e.to_string()))?;
        let mut reader = ParquetReader::new(file).with_slice(Some((start, take)));
        reader.set_metadata(Arc::clone(&self.metadata));
        let frame = reader.finish()?;
        with_row_numbers(frame, start as u64 + 1).map(Some)
    }

    fn total_rows(&self) -> Option<u64> {
        Some(self.metadata.num_rows as u64)
    }
}

/// Arrow IPC file: one record batch at a time.
struct IpcChunks {
    reader: FileReader<BufReader<File>>,
    next_row: u64,
}

impl IpcChunks {
    fn new(file: File) -> Result<Self, ScoreError> {
        let mut file = BufReader::new(file);
        let metadata = read_file_metadata(&mut file)?;
        Ok(IpcChunks { reader: FileReader::new(file, metadata, None, None), next_row: 1 })
    }
}

impl ChunkReader for IpcChunks {
    fn next_chunk(&mut self) -> Result<Option<DataFrame>, ScoreError> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let frame = DataFrame::from(batch?);
        let first = self.next_row;
        self.next_row += frame.height() as u64;
        with_row_numbers(frame, first).map(Some)
    }

    fn total_rows(&self) -> Option<u64> {
        None
    }
}
