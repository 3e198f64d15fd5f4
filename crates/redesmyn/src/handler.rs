//! The contract between the core and a prediction handler (TypeScript,
//! Python, or plain Rust in tests).

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::Stream;
use polars::prelude::*;

use crate::cache::LoadedModel;

pub use crate::params::Params;

/// What a handler is called with: the concatenated rows of every request in
/// the batch, the parameters they share, and the loaded artifact those
/// parameters select when the model has an artifact cache.
pub struct Batch {
    pub frame: DataFrame,
    pub params: Arc<Params>,
    pub loaded: Option<LoadedModel>,
    /// The batch's span, when a request in it is traced: the handler's own
    /// spans belong under it (bindings pass it on as a `traceparent`).
    pub trace: Option<crate::telemetry::SpanContext>,
}

impl Batch {
    /// The W3C `traceparent` of the batch's span, when it is traced.
    pub fn traceparent(&self) -> Option<String> {
        self.trace.as_ref().map(crate::telemetry::traceparent)
    }
}

/// One prediction per input row: either a single column (each prediction a
/// scalar or a list) or several named columns (each prediction an object).
#[derive(Debug, Clone)]
pub enum Predictions {
    Column(Series),
    Columns(DataFrame),
}

impl Predictions {
    pub fn len(&self) -> usize {
        match self {
            Predictions::Column(s) => s.len(),
            Predictions::Columns(df) => df.height(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The predictions of rows `offset .. offset + len` (zero copy).
    pub fn slice(&self, offset: usize, len: usize) -> Predictions {
        match self {
            Predictions::Column(s) => Predictions::Column(s.slice(offset as i64, len)),
            Predictions::Columns(df) => Predictions::Columns(df.slice(offset as i64, len)),
        }
    }
}

/// A handler failure. `message` goes to the client; `detail` (a traceback or
/// stack) goes to the log only.
#[derive(Debug, Clone)]
pub struct HandlerError {
    pub message: String,
    pub detail: Option<String>,
}

impl HandlerError {
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError { message: message.into(), detail: None }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

/// Runs predictions for a batch. Implementations must not block the calling
/// task: heavy or foreign work (Python, JavaScript) is handed to its own
/// thread and awaited.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>>;
}

/// What predicts for a model: a handler that answers each batch once, or a
/// streaming handler that yields steps (see [`StreamHandler`]).
#[derive(Clone)]
pub enum Runtime {
    Unary(Arc<dyn Handler>),
    Stream(Arc<dyn StreamHandler>),
}

impl Runtime {
    pub fn is_stream(&self) -> bool {
        matches!(self, Runtime::Stream(_))
    }
}

impl From<Arc<dyn Handler>> for Runtime {
    fn from(handler: Arc<dyn Handler>) -> Self {
        Runtime::Unary(handler)
    }
}

impl From<Arc<dyn StreamHandler>> for Runtime {
    fn from(handler: Arc<dyn StreamHandler>) -> Self {
        Runtime::Stream(handler)
    }
}

/// Any `Fn(Batch) -> Future` is a handler, which keeps tests and Rust users short.
impl<F, Fut> Handler for F
where
    F: Fn(Batch) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Predictions, HandlerError>> + Send + 'static,
{
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>> {
        Box::pin(self(batch))
    }
}

/// One step of a streaming handler.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// One value per batch row, null where a row has nothing this step;
    /// `None` when no row has a chunk.
    pub chunks: Option<Predictions>,
    /// Batch rows that end after this step's chunks.
    pub ended: Vec<usize>,
}

impl Step {
    pub fn chunks(chunks: Predictions) -> Self {
        Step { chunks: Some(chunks), ended: Vec::new() }
    }

    /// Ends `rows` (batch row indices) after this step.
    pub fn ending(mut self, rows: impl IntoIterator<Item = usize>) -> Self {
        self.ended.extend(rows);
        self
    }
}

/// The steps of one batch. Dropping it before its end cancels the handler.
pub type Steps = BoxStream<'static, Result<Step, HandlerError>>;

/// Runs a batch as a stream of steps. Like [`Handler`], it must not
/// block the calling task; the stream is polled from the batch's task.
pub trait StreamHandler: Send + Sync + 'static {
    fn open(&self, batch: Batch) -> Steps;
}

/// Any `Fn(Batch) -> Stream` is a streaming handler (tests, Rust users).
impl<F, S> StreamHandler for F
where
    F: Fn(Batch) -> S + Send + Sync + 'static,
    S: Stream<Item = Result<Step, HandlerError>> + Send + 'static,
{
    fn open(&self, batch: Batch) -> Steps {
        Box::pin(self(batch))
    }
}

/// Addresses of the value buffers of `Float64` columns, as `name=0x...`:
/// logged at `trace` where a batch crosses into a runtime or a pipeline,
/// so that zero copy can be checked against the address a runtime sees.
pub fn float_buffers<'a>(columns: impl Iterator<Item = &'a Series>) -> String {
    let mut out = Vec::new();
    for series in columns {
        if let Ok(values) = series.f64() {
            for chunk in values.downcast_iter() {
                out.push(format!("{}={:#x}", series.name(), chunk.values().as_ptr() as usize));
            }
        }
    }
    out.join(",")
}

/// What a caught panic says (its `String` or `&str` payload).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_buffers_names_each_chunk() {
        let s = Series::new("x".into(), [1.0f64]);
        let text = float_buffers([&s].into_iter());
        assert!(text.starts_with("x=0x"), "{text}");
        assert_eq!(float_buffers([&Series::new("i".into(), [1i32])].into_iter()), "");
    }
}
