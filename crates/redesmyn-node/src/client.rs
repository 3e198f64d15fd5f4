//! `NativeClient`: the in-process door of a serving server: predictions,
//! streams and file scoring through an endpoint path, with the same
//! parsing, queue, batching and handler as HTTP requests.

use std::collections::HashMap;
use std::sync::Arc;

use napi_derive::napi;

use crate::failure::ErrorReport;
use crate::score_run::{NativeScoreRun, ScoreSpec};
use crate::shared::Shared;
use crate::stream_handle::NativeStream;

/// An in-process prediction, or why it failed.
#[napi(object)]
pub struct PredictionReport {
    pub id: String,
    /// The predictions as JSON text, when it succeeded.
    pub predictions: Option<String>,
    pub error: Option<ErrorReport>,
    pub queue_ms: f64,
    pub handler_ms: f64,
    pub total_ms: f64,
    pub batch_size: u32,
}

#[napi]
pub struct NativeClient {
    shared: Arc<Shared>,
}

impl NativeClient {
    pub fn new(shared: Arc<Shared>) -> Self {
        NativeClient { shared }
    }
}

#[napi]
impl NativeClient {
    /// Predicts through the endpoint at `path`; `records` is JSON text.
    #[napi]
    pub async fn predict(
        &self,
        path: String,
        params: HashMap<String, String>,
        records: String,
    ) -> napi::Result<PredictionReport> {
        let running = self.shared.running()?;
        let params = redesmyn::Params::new(params.into_iter().collect());
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok(match running.predict(&path, params, records.as_bytes()).await {
            Ok(p) => {
                let mut predictions = Vec::new();
                match &p.answer {
                    Some(a) => redesmyn::codec::predictions::write_predictions(&mut predictions, &a.predictions),
                    None => predictions.extend_from_slice(b"[]"),
                }
                let answer = p.answer.as_ref();
                PredictionReport {
                    id: p.id,
                    predictions: Some(String::from_utf8_lossy(&predictions).into_owned()),
                    error: None,
                    queue_ms: answer.map_or(0.0, |a| ms(a.queued)),
                    handler_ms: answer.map_or(0.0, |a| ms(a.handled)),
                    total_ms: ms(p.total),
                    batch_size: answer.map_or(0, |a| a.batch_rows as u32),
                }
            }
            Err(e) => PredictionReport {
                id: String::new(),
                predictions: None,
                error: Some((&e).into()),
                queue_ms: 0.0,
                handler_ms: 0.0,
                total_ms: 0.0,
                batch_size: 0,
            },
        })
    }

    /// Opens a stream from the streaming endpoint at `path`; an error
    /// before the first chunk is the stream's first and only event.
    #[napi]
    pub fn open_stream(
        &self,
        path: String,
        params: HashMap<String, String>,
        records: String,
    ) -> napi::Result<NativeStream> {
        let running = self.shared.running()?;
        let params = redesmyn::Params::new(params.into_iter().collect());
        Ok(match running.stream(&path, params, records.as_bytes()) {
            Ok(stream) => NativeStream::new(stream),
            Err(e) => NativeStream::failed((&e).into()),
        })
    }

    /// Prepares a run that scores a file through the endpoint at `path`.
    #[napi]
    pub fn score_run(&self, path: String, spec: ScoreSpec) -> napi::Result<NativeScoreRun> {
        Ok(NativeScoreRun::new(self.shared.running()?, path, spec))
    }
}
