//! A Python function as a core [`Handler`].

use std::sync::Arc;

use futures::future::BoxFuture;
use redesmyn::handler::float_buffers;
use redesmyn::{Batch, Handler, HandlerError, Predictions};

use crate::arrow::{export_frame, import_column};
use crate::bridge::Object;
use crate::interpreter::{started, PythonError};
use crate::loader::model_of;
use crate::target::Target;
use redesmyn_python_abi::prediction_kind;

/// `def predict(df: pl.DataFrame) -> pl.Series` (or `(model, df)` when the
/// endpoint has a model). A function that accepts a `params` keyword (or
/// `**kwargs`) also gets the path parameters as a dict.
pub struct PyHandler {
    function: Arc<Object>,
    target: Target,
}

impl PyHandler {
    /// Starts Python if needed and imports the function now, so a wrong
    /// reference (or environment) fails at registration.
    pub fn new(target: Target) -> Result<Self, PythonError> {
        let function = target.resolve()?;
        Ok(PyHandler { function: Arc::new(function), target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

impl Handler for PyHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>> {
        let function = Arc::clone(&self.function);
        Box::pin(async move {
            // Python runs on a blocking thread; the bridge takes the GIL there, only for the call.
            tokio::task::spawn_blocking(move || invoke(&function, batch))
                .await
                .map_err(|e| HandlerError::new(format!("the Python handler's thread failed: {e}")))?
        })
    }
}

fn invoke(function: &Object, batch: Batch) -> Result<Predictions, HandlerError> {
    let bridge = started().map_err(|e| HandlerError::new(e.to_string()))?;
    // With a model cache, the model comes first: `predict(model, df)`.
    let model = model_of(&batch.loaded)?;
    let params: Vec<(&str, &str)> = batch.params.iter().collect();
    if tracing::enabled!(tracing::Level::TRACE) {
        let buffers = float_buffers(batch.frame.columns().iter().filter_map(|c| c.as_series()));
        tracing::trace!(buffers, rows = batch.frame.height(), "batch to Python");
    }
    let traceparent = batch.traceparent();
    let stream = export_frame(batch.frame);
    let (kind, columns) =
        bridge.call_handler(function, model, stream, &params, traceparent.as_deref()).map_err(|failure| {
            tracing::error!(error = %failure.message, traceback = %failure.detail, "Python handler raised");
            let error = HandlerError::new(failure.message);
            if failure.detail.is_empty() {
                error
            } else {
                error.with_detail(failure.detail)
            }
        })?;
    predictions(kind, columns)
}

/// What a Python handler (or one step of a streaming one) reported, as
/// the core's predictions.
pub(crate) fn predictions(
    kind: u32,
    columns: Vec<(String, polars_arrow::ffi::ArrowArrayStream)>,
) -> Result<Predictions, HandlerError> {
    let mut series = Vec::with_capacity(columns.len());
    for (name, stream) in columns {
        let column = import_column(&name, stream)
            .map_err(|e| HandlerError::new(format!("could not read the Python handler's column '{name}': {e}")))?;
        series.push(column);
    }
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(buffers = float_buffers(series.iter()), "predictions from Python");
    }
    if kind == prediction_kind::COLUMNS {
        let columns = series.into_iter().map(Into::into).collect();
        let frame = polars::prelude::DataFrame::new_infer_height(columns)
            .map_err(|e| HandlerError::new(format!("the Python handler's frame is not rectangular: {e}")))?;
        return Ok(Predictions::Columns(frame));
    }
    series
        .into_iter()
        .next()
        .map(Predictions::Column)
        .ok_or_else(|| HandlerError::new("the Python handler returned no column"))
}
