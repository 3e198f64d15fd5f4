//! File scoring through the inference service: a file is read a chunk at
//! a time, each chunk's rows are checked by the endpoint's schema, queued
//! like any request (same batcher, handler and model cache as online
//! traffic) and written out as they come back, in input order.
//!
//! Memory stays bounded whatever the file's size: a reader, a few chunks
//! in flight and a writer's buffer. Bad rows do not stop the run: they go
//! to the rejects file with their row number and reason. A request whose
//! handler call fails is bisected as the batcher bisects a batch
//! (`crate::bisect`): its rows run again in halves, and only the rows that
//! fail alone are rejected, with the handler's message (when the endpoint
//! isolates poison, the default; else, and for failures that are not the
//! handler's, the request is tried once more, then all its rows rejected).

mod format;
mod parquet_footer;
pub(crate) mod read;
mod remote;
pub(crate) mod validate;
mod write;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use polars::prelude::{DataFrame, IdxCa, IdxSize, IntoColumn, PlSmallStr, PolarsError};
use tokio::sync::mpsc;

pub use format::Format;
use read::ROW;

use crate::bisect::{bisect, Part, Trial};
use crate::cache::StoreOptions;
use crate::error::RequestError;
use crate::handler::{Params, Predictions};
use crate::service::ServedModel;

/// Chunks queued at once: enough to keep the handler busy while the next
/// chunk is read and the last one written.
const IN_FLIGHT: usize = 2;

/// What to score and where the results go.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Format names (`csv`, `parquet`, `ndjson`, `arrow`); else from the extension.
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    /// Rows per chunk, and so per handler call.
    pub batch_size: usize,
    /// Input columns copied to the output (default: all), before the predictions.
    pub columns: Option<Vec<String>>,
    /// Where rejected rows go; default `<output>.rejects.csv`, written only when a row is rejected.
    pub rejects: Option<PathBuf>,
    /// Values of the endpoint's path parameters (which model variant scores).
    pub params: Params,
    /// Least time between two progress reports.
    pub progress_every: Duration,
    /// `object_store` options for an input or output that is a store URL
    /// (`s3://`, `gs://`, `az://`, `http(s)://` for inputs), on top of the
    /// cloud's standard environment variables.
    pub store_options: StoreOptions,
}

impl ScoreOptions {
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        ScoreOptions {
            input: input.into(),
            output: output.into(),
            input_format: None,
            output_format: None,
            batch_size: 10_000,
            columns: None,
            rejects: None,
            params: Params::default(),
            progress_every: Duration::from_millis(200),
            store_options: StoreOptions::new(),
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Rows read and dealt with (scored or rejected).
    pub rows: u64,
    pub scored: u64,
    pub rejected: u64,
    /// Rows in the file, when its metadata says (Parquet).
    pub total_rows: Option<u64>,
    pub rows_per_second: f64,
    pub elapsed: Duration,
    /// Requests whose handler call failed once and ran again (bisected,
    /// or tried once more).
    pub retried: u64,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub progress: Progress,
    pub output: PathBuf,
    /// Set when a rejects file was written.
    pub rejects: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Format(String),
    #[error("the input has no column '{0}', which the endpoint's schema requires")]
    MissingColumn(String),
    #[error("the input has no column '{0}' to copy to the output")]
    UnknownColumn(String),
    #[error("{0}")]
    Polars(#[from] PolarsError),
    #[error("{0}")]
    Request(#[from] RequestError),
    #[error("the scoring run stopped: {0}")]
    Stopped(String),
}

/// How one request of the file (a slice of `batch_size` rows) ended.
enum Scored {
    /// Every row answered at the first call.
    Whole(Predictions),
    /// Tried twice, failed both times: every row is rejected.
    Failed(RequestError),
    /// Bisected: the rows answered, in parts, and the rows rejected.
    Parts(Rows),
}

/// The rows of a failed request, bisected: indices into the request's rows.
struct Rows {
    answered: Vec<(Vec<IdxSize>, Predictions)>,
    rejected: Vec<(IdxSize, String)>,
}

/// A failed request's rows run again in parts through the model.
struct RowTrial<'m> {
    model: &'m ServedModel,
    params: Params,
    inputs: DataFrame,
    rows: Rows,
}

impl Trial for RowTrial<'_> {
    type Item = IdxSize;

    async fn run(&mut self, items: Vec<IdxSize>) -> Part<IdxSize> {
        let index = IdxCa::from_vec(PlSmallStr::EMPTY, items.clone());
        let frame = match self.inputs.take(&index) {
            Ok(frame) => frame,
            Err(e) => return Part::Failed(items, e.to_string()),
        };
        match self.model.infer(self.params.clone(), frame, Instant::now(), None).await {
            Ok(Some(answer)) => {
                self.rows.answered.push((items, answer.predictions));
                Part::Done
            }
            Ok(None) => Part::Failed(items, "no answer".into()),
            Err(e) => Part::Failed(items, e.to_string()),
        }
    }

    fn guilty(&mut self, items: Vec<IdxSize>, message: &str) {
        self.rows.rejected.extend(items.into_iter().map(|i| (i, format!("the handler failed on this row: {message}"))));
    }

    fn fail(&mut self, items: Vec<IdxSize>, message: &str) {
        self.rows.rejected.extend(items.into_iter().map(|i| (i, format!("the handler failed: {message}"))));
    }
}

/// Scores one request: its predictions, or, if the handler failed, what
/// bisecting (or one more try) made of it. True when it ran again.
async fn score_request(model: &ServedModel, params: Params, inputs: DataFrame) -> (Scored, bool) {
    let first = model.infer(params.clone(), inputs.clone(), Instant::now(), None).await;
    match first {
        Ok(Some(answer)) => (Scored::Whole(answer.predictions), false),
        Ok(None) => (Scored::Failed(RequestError::Handler("no answer".into())), false),
        Err(RequestError::Handler(message)) if model.isolates() && inputs.height() > 1 => {
            let items: Vec<IdxSize> = (0..inputs.height() as IdxSize).collect();
            let rows = Rows { answered: Vec::new(), rejected: Vec::new() };
            let mut trial = RowTrial { model, params, inputs, rows };
            bisect(&mut trial, items, message).await;
            (Scored::Parts(trial.rows), true)
        }
        Err(_) => {
            let again = model.infer(params, inputs, Instant::now(), None).await;
            let scored = match again {
                Ok(Some(answer)) => Scored::Whole(answer.predictions),
                Ok(None) => Scored::Failed(RequestError::Handler("no answer".into())),
                Err(e) => Scored::Failed(e),
            };
            (scored, true)
        }
    }
}

/// Scores `options.input` into `options.output` through `model`; either
/// may be an object-store URL (see [`remote`]). `progress` hears how far the
/// run is, at most every `progress_every` and once at the end.
pub async fn score(
    model: &ServedModel,
    mut options: ScoreOptions,
    progress: impl FnMut(&Progress) + Send,
) -> Result<Summary, ScoreError> {
    let remote_input = remote::is_remote(&options.input);
    let remote_output = remote::is_remote(&options.output);
    let remote_rejects = options.rejects.as_deref().is_some_and(remote::is_remote);
    if !(remote_input || remote_output || remote_rejects) {
        return score_local(model, options, progress).await;
    }
    let staging = remote::Staging::new()?;
    let url = |p: &std::path::Path| p.to_string_lossy().into_owned();
    if remote_input {
        // The copy keeps the object's name, so its extension still tells the format.
        Format::resolve(options.input_format.as_deref(), &options.input)?;
        options.input = staging.download(&url(&options.input), &options.store_options).await?;
    }
    let output_url = url(&options.output);
    if remote_output {
        Format::resolve(options.output_format.as_deref(), &options.output)?;
        options.output = staging.output_path(&output_url, &options.store_options)?;
    }
    // The rejects file goes beside the output unless named.
    let rejects_url = match (&options.rejects, remote_output) {
        (Some(r), _) if remote_rejects => Some(url(r)),
        (None, true) => Some(format!("{output_url}.rejects.csv")),
        _ => None,
    };
    if remote_rejects {
        let local = staging.output_path(rejects_url.as_deref().unwrap_or_default(), &options.store_options)?;
        options.rejects =
            Some(local.with_file_name(format!("rejects-{}", local.file_name().unwrap_or_default().to_string_lossy())));
    }
    let store_options = options.store_options.clone();
    let mut summary = score_local(model, options, progress).await?;
    if remote_output {
        staging.upload(&summary.output, &output_url, &store_options).await?;
        summary.output = PathBuf::from(&output_url);
    }
    if let (Some(local), Some(target)) = (summary.rejects.clone(), rejects_url) {
        staging.upload(&local, &target, &store_options).await?;
        summary.rejects = Some(PathBuf::from(target));
    }
    Ok(summary)
}

async fn score_local(
    model: &ServedModel,
    options: ScoreOptions,
    mut progress: impl FnMut(&Progress) + Send,
) -> Result<Summary, ScoreError> {
    let started = Instant::now();
    let params = model.require_params(&options.params)?;
    let input_format = Format::resolve(options.input_format.as_deref(), &options.input)?;
    let output_format = Format::resolve(options.output_format.as_deref(), &options.output)?;
    let rejects_path = options.rejects.clone().unwrap_or_else(|| {
        let mut name = options.output.file_name().unwrap_or_default().to_os_string();
        name.push(".rejects.csv");
        options.output.with_file_name(name)
    });
    let batch_size = options.batch_size.max(1);

    // The reader runs on its own thread and stays at most two chunks ahead.
    let mut reader = read::open(&options.input, input_format, model.schema(), batch_size)?;
    let total_rows = reader.total_rows();
    let (chunk_tx, mut chunks) = mpsc::channel::<Result<DataFrame, ScoreError>>(2);
    let reading = std::thread::spawn(move || loop {
        let next = reader.next_chunk().transpose();
        let Some(next) = next else { break };
        let failed = next.is_err();
        if chunk_tx.blocking_send(next).is_err() || failed {
            break;
        }
    });

    // The writer runs on its own thread too; it owns the output and rejects files.
    let (write_tx, write_rx) = mpsc::channel::<WriteMsg>(2);
    let writer_output = options.output.clone();
    let writer_rejects = rejects_path.clone();
    let explicit_rejects = options.rejects.is_some();
    let writing = std::thread::spawn(move || {
        write_loop(write_rx, &writer_output, output_format, &writer_rejects, explicit_rejects)
    });

    let mut state = Progress { total_rows, ..Default::default() };
    let mut last_report = Instant::now();
    let mut in_flight: FuturesOrdered<_> = FuturesOrdered::new();
    let mut pending: std::collections::VecDeque<DataFrame> = std::collections::VecDeque::new();
    let mut empty: Option<DataFrame> = None;
    let mut reading_done = false;
    let mut ready: std::collections::VecDeque<(DataFrame, DataFrame)> = std::collections::VecDeque::new();
    let result: Result<(), ScoreError> = async {
        loop {
            while in_flight.len() < IN_FLIGHT {
                if let Some((kept, inputs)) = ready.pop_front() {
                    let params = params.clone();
                    pending.push_back(kept);
                    in_flight.push_back(async move {
                        let rows = inputs.height() as u64;
                        let (scored, retried) = score_request(model, params, inputs).await;
                        (rows, scored, retried)
                    });
                    continue;
                }
                if reading_done {
                    break;
                }
                match chunks.recv().await {
                    None => reading_done = true,
                    Some(chunk) => {
                        let checked = validate::check(model.schema(), chunk?)?;
                        for (row, reason) in checked.rejects {
                            state.rejected += 1;
                            state.rows += 1;
                            send(&write_tx, WriteMsg::Reject(row, reason)).await?;
                        }
                        let kept = keep_columns(&checked.valid, options.columns.as_deref())?;
                        if empty.is_none() {
                            empty = Some(kept.clear());
                        }
                        let inputs = checked.valid.select(model.schema().fields().iter().map(|f| f.name.as_str()))?;
                        // A reader's chunk may be larger than a batch: each slice is one request.
                        let mut offset = 0;
                        while offset < inputs.height() {
                            let len = batch_size.min(inputs.height() - offset);
                            ready.push_back((kept.slice(offset as i64, len), inputs.slice(offset as i64, len)));
                            offset += len;
                        }
                    }
                }
            }
            if in_flight.is_empty() {
                break;
            }
            let Some((rows, scored, retried)) = in_flight.next().await else { break };
            let kept = pending.pop_front().ok_or_else(|| ScoreError::Stopped("lost a chunk".into()))?;
            state.retried += u64::from(retried);
            state.rows += rows;
            let mut parts = match scored {
                Scored::Whole(predictions) => Rows { answered: vec![(Vec::new(), predictions)], rejected: Vec::new() },
                Scored::Failed(e) => {
                    let reason = format!("handler failed twice: {e}");
                    Rows { answered: Vec::new(), rejected: (0..rows as IdxSize).map(|i| (i, reason.clone())).collect() }
                }
                Scored::Parts(parts) => parts,
            };
            // Answered parts in row order; an empty index list is the whole request.
            parts.answered.sort_by_key(|(items, _)| items.first().copied());
            for (items, predictions) in parts.answered {
                let rows_kept = if items.is_empty() {
                    kept.clone()
                } else {
                    kept.take(&IdxCa::from_vec(PlSmallStr::EMPTY, items))?
                };
                let out = with_predictions(rows_kept, predictions)?;
                state.scored += out.height() as u64;
                send(&write_tx, WriteMsg::Rows(out.drop(ROW).unwrap_or(out))).await?;
            }
            parts.rejected.sort_by_key(|(i, _)| *i);
            let numbers = kept.column(ROW)?.u64()?.clone();
            for (i, reason) in parts.rejected {
                if let Some(row) = numbers.get(i as usize) {
                    state.rejected += 1;
                    send(&write_tx, WriteMsg::Reject(row, reason)).await?;
                }
            }
            if last_report.elapsed() >= options.progress_every {
                last_report = Instant::now();
                report(&mut state, started, &mut progress);
            }
        }
        Ok(())
    }
    .await;
    drop(chunks);
    let _ = reading.join();
    let rejected = state.rejected;
    let finish = match &result {
        Ok(()) => WriteMsg::Finish(empty.map(|e| e.drop(ROW).unwrap_or(e)).unwrap_or_default()),
        Err(_) => WriteMsg::Abort,
    };
    let _ = write_tx.send(finish).await;
    drop(write_tx);
    let written = writing.join().map_err(|_| ScoreError::Stopped("the writer panicked".into()))?;
    // A writer that failed first explains a loop that stopped because it ended.
    let rejects = match (result, written) {
        (Err(ScoreError::Stopped(_)), Err(e)) | (Ok(()), Err(e)) | (Err(e), _) => return Err(e),
        (Ok(()), Ok(rejects)) => rejects,
    };
    report(&mut state, started, &mut progress);
    Ok(Summary {
        progress: state,
        output: options.output,
        rejects: rejects.filter(|_| rejected > 0 || explicit_rejects),
    })
}

fn report(state: &mut Progress, started: Instant, progress: &mut impl FnMut(&Progress)) {
    state.elapsed = started.elapsed();
    let seconds = state.elapsed.as_secs_f64();
    state.rows_per_second = if seconds > 0.0 { state.rows as f64 / seconds } else { 0.0 };
    progress(state);
}

/// The columns copied to the output (with the row numbers, dropped when written).
fn keep_columns(valid: &DataFrame, columns: Option<&[String]>) -> Result<DataFrame, ScoreError> {
    match columns {
        None => Ok(valid.clone()),
        Some(names) => {
            for name in names {
                if valid.column(name).is_err() {
                    return Err(ScoreError::UnknownColumn(name.clone()));
                }
            }
            Ok(valid.select(names.iter().map(String::as_str).chain([ROW]))?)
        }
    }
}

/// The kept columns followed by the prediction column(s): a single output
/// is named `prediction`, several keep the handler's names.
fn with_predictions(mut kept: DataFrame, predictions: Predictions) -> Result<DataFrame, ScoreError> {
    let columns = match predictions {
        Predictions::Column(series) => vec![series.with_name("prediction".into()).into_column()],
        Predictions::Columns(frame) => frame.columns().to_vec(),
    };
    for column in columns {
        if kept.column(column.name()).is_ok() {
            return Err(ScoreError::Format(format!(
                "the prediction column '{}' has the name of an input column; choose the output columns with `columns`",
                column.name()
            )));
        }
        kept.with_column(column)?;
    }
    Ok(kept)
}

enum WriteMsg {
    Rows(DataFrame),
    Reject(u64, String),
    Finish(DataFrame),
    Abort,
}

async fn send(tx: &mpsc::Sender<WriteMsg>, msg: WriteMsg) -> Result<(), ScoreError> {
    tx.send(msg).await.map_err(|_| ScoreError::Stopped("the writer ended".into()))
}

/// Owns the output and rejects files; returns the rejects path if written.
fn write_loop(
    mut rx: mpsc::Receiver<WriteMsg>,
    output: &std::path::Path,
    format: Format,
    rejects_path: &std::path::Path,
    always_rejects: bool,
) -> Result<Option<PathBuf>, ScoreError> {
    let mut writer = write::ChunkWriter::create(output, format)?;
    let mut rejects = if always_rejects { Some(write::RejectsWriter::create(rejects_path)?) } else { None };
    let mut failure = None;
    while let Some(msg) = rx.blocking_recv() {
        let step = match msg {
            WriteMsg::Rows(frame) => writer.write(frame),
            WriteMsg::Reject(row, reason) => {
                if rejects.is_none() {
                    match write::RejectsWriter::create(rejects_path) {
                        Ok(r) => rejects = Some(r),
                        Err(e) => return Err(e),
                    }
                }
                match rejects.as_mut() {
                    Some(r) => r.write(row, &reason),
                    None => Ok(()),
                }
            }
            WriteMsg::Finish(empty) => {
                writer.finish(empty)?;
                return match rejects {
                    Some(r) => r.finish().map(|()| Some(rejects_path.to_path_buf())),
                    None => Ok(None),
                };
            }
            WriteMsg::Abort => return Err(ScoreError::Stopped("aborted".into())),
        };
        if let Err(e) = step {
            failure = Some(e);
            break;
        }
    }
    Err(failure.unwrap_or_else(|| ScoreError::Stopped("interrupted".into())))
}

#[cfg(test)]
mod tests;
