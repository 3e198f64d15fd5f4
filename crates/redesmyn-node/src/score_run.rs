//! `NativeScoreRun`: one file-scoring run (`endpoint.score()` drives it).
//! The binding converts the options and forwards to `redesmyn::score`;
//! progress is a snapshot JavaScript reads when it likes, so no callback
//! crosses threads while rows are being scored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi_derive::napi;
use redesmyn::score::{Progress, ScoreOptions, Summary};
use redesmyn::RunningServer;

use crate::error::BindingError;

/// Options of a scoring run, as `endpoint.score()` passes them.
#[napi(object)]
pub struct ScoreSpec {
    pub input: String,
    pub output: String,
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    pub batch_size: Option<u32>,
    pub columns: Option<Vec<String>>,
    pub rejects: Option<String>,
    pub params: Option<HashMap<String, String>>,
    /// `object_store` options for inputs and outputs that are store URLs.
    pub store_options: Option<HashMap<String, String>>,
}

/// Where a run stands.
#[napi(object)]
#[derive(Clone, Default)]
pub struct ScoreProgressReport {
    /// Rows dealt with so far (scored or rejected).
    pub rows: f64,
    pub scored: f64,
    pub rejected: f64,
    /// Rows in the input when its metadata says (Parquet).
    pub total_rows: Option<f64>,
    pub rows_per_second: f64,
    pub elapsed_ms: f64,
    /// Chunks whose handler call failed once and was tried again.
    pub retried: f64,
}

#[napi(object)]
pub struct ScoreSummaryReport {
    pub progress: ScoreProgressReport,
    pub output: String,
    /// The rejects file, when one was written.
    pub rejects: Option<String>,
}

impl From<&Progress> for ScoreProgressReport {
    fn from(p: &Progress) -> Self {
        ScoreProgressReport {
            rows: p.rows as f64,
            scored: p.scored as f64,
            rejected: p.rejected as f64,
            total_rows: p.total_rows.map(|n| n as f64),
            rows_per_second: p.rows_per_second,
            elapsed_ms: p.elapsed.as_secs_f64() * 1e3,
            retried: p.retried as f64,
        }
    }
}

impl From<Summary> for ScoreSummaryReport {
    fn from(s: Summary) -> Self {
        ScoreSummaryReport {
            progress: ScoreProgressReport::from(&s.progress),
            output: s.output.display().to_string(),
            rejects: s.rejects.map(|p| p.display().to_string()),
        }
    }
}

impl From<ScoreSpec> for ScoreOptions {
    fn from(spec: ScoreSpec) -> Self {
        let mut options = ScoreOptions::new(spec.input, spec.output);
        options.input_format = spec.input_format;
        options.output_format = spec.output_format;
        if let Some(n) = spec.batch_size {
            options.batch_size = n as usize;
        }
        options.columns = spec.columns;
        options.rejects = spec.rejects.map(Into::into);
        options.params = redesmyn::Params::new(spec.params.unwrap_or_default().into_iter().collect());
        options.progress_every = Duration::from_millis(50);
        options.store_options = spec.store_options.unwrap_or_default().into_iter().collect();
        options
    }
}

#[napi]
pub struct NativeScoreRun {
    running: Arc<RunningServer>,
    path: String,
    options: Mutex<Option<ScoreOptions>>,
    progress: Arc<Mutex<ScoreProgressReport>>,
}

impl NativeScoreRun {
    pub fn new(running: Arc<RunningServer>, path: String, spec: ScoreSpec) -> Self {
        NativeScoreRun {
            running,
            path,
            options: Mutex::new(Some(spec.into())),
            progress: Arc::new(Mutex::new(ScoreProgressReport::default())),
        }
    }
}

#[napi]
impl NativeScoreRun {
    /// The latest progress snapshot.
    #[napi]
    pub fn progress(&self) -> ScoreProgressReport {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the scoring to its end (once).
    #[napi]
    pub async fn run(&self) -> napi::Result<ScoreSummaryReport> {
        let options = self.options.lock().unwrap_or_else(|p| p.into_inner()).take();
        let options = options.ok_or_else(|| BindingError::failed("this scoring run has already run"))?;
        let snapshot = Arc::clone(&self.progress);
        let summary = self
            .running
            .score(&self.path, options, move |p| {
                *snapshot.lock().unwrap_or_else(|e| e.into_inner()) = ScoreProgressReport::from(p);
            })
            .await
            .map_err(|e| BindingError::failed(e.to_string()))?;
        Ok(summary.into())
    }
}
