//! A Python generator function as a core [`StreamHandler`].
//!
//! The function is called with the batch as `call_handler` would call it;
//! what it returns (a generator, any iterable, or an async generator) stays
//! in the bridge as a stream handle. Each step is one `next_step` on a
//! blocking thread, taking the GIL only for that step. Dropping the stream
//! before the generator finished (every client left, a timeout, a stop)
//! closes it on a blocking thread, so `GeneratorExit` runs its `finally`.
//! A mutex keeps a close from overlapping a step still running.

use std::sync::{Arc, Mutex};

use redesmyn::stream::{Step, Steps, StreamHandler};
use redesmyn::{Batch, HandlerError};
use redesmyn_python_abi::prediction_kind;

use crate::arrow::export_frame;
use crate::bridge::{Failure, Object};
use crate::handler::predictions;
use crate::interpreter::started;
use crate::loader::model_of;
use crate::target::Target;

/// `def generate(df: pl.DataFrame): yield [...]` (or `(model, df)`, and
/// `params=` when it takes them); `async def` generators work too.
pub struct PyStreamHandler {
    function: Arc<Object>,
    target: Target,
}

impl PyStreamHandler {
    /// Starts Python if needed and imports the function now.
    pub fn new(target: Target) -> Result<Self, crate::PythonError> {
        let function = target.resolve()?;
        Ok(PyStreamHandler { function: Arc::new(function), target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// An open generator: closed when dropped unless it finished.
struct Generator {
    handle: Arc<Mutex<Option<Object>>>,
    finished: bool,
    /// The batch's model stays loaded while its generator runs.
    _loaded: Option<redesmyn::cache::LoadedModel>,
}

impl Drop for Generator {
    fn drop(&mut self) {
        let handle = Arc::clone(&self.handle);
        let finished = self.finished;
        let close = move || {
            let mut guard = handle.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(stream), false) = (guard.as_ref(), finished) {
                if let Ok(bridge) = started() {
                    if let Err(failure) = bridge.close_stream(stream) {
                        tracing::warn!(error = %failure.message, "closing a Python generator failed");
                    }
                }
            }
            // Released (taking the GIL) on this blocking thread too.
            drop(guard.take());
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(close)),
            Err(_) => close(),
        }
    }
}

fn handler_error(failure: Failure) -> HandlerError {
    tracing::error!(error = %failure.message, traceback = %failure.detail, "Python streaming handler raised");
    let error = HandlerError::new(failure.message);
    if failure.detail.is_empty() {
        error
    } else {
        error.with_detail(failure.detail)
    }
}

fn thread_failed(e: tokio::task::JoinError) -> HandlerError {
    HandlerError::new(format!("the Python handler's thread failed: {e}"))
}

enum State {
    Start(Batch, Arc<Object>),
    Open(Generator),
    Done,
}

impl StreamHandler for PyStreamHandler {
    fn open(&self, batch: Batch) -> Steps {
        let start = State::Start(batch, Arc::clone(&self.function));
        Box::pin(futures::stream::unfold(start, |state| async move {
            let mut generator = match state {
                State::Done => return None,
                State::Open(generator) => generator,
                State::Start(batch, function) => {
                    let loaded = batch.loaded.clone();
                    let opened = tokio::task::spawn_blocking(move || open(&function, batch)).await;
                    match opened.map_err(thread_failed).and_then(|r| r) {
                        Ok(stream) => {
                            Generator { handle: Arc::new(Mutex::new(Some(stream))), finished: false, _loaded: loaded }
                        }
                        Err(e) => return Some((Err(e), State::Done)),
                    }
                }
            };
            let handle = Arc::clone(&generator.handle);
            let pulled = tokio::task::spawn_blocking(move || step(&handle)).await;
            match pulled.map_err(thread_failed).and_then(|r| r) {
                Ok(Some(step)) => Some((Ok(step), State::Open(generator))),
                Ok(None) => {
                    generator.finished = true;
                    None
                }
                Err(e) => {
                    // A generator that raised is finished; closing it does nothing.
                    generator.finished = true;
                    Some((Err(e), State::Done))
                }
            }
        }))
    }
}

fn open(function: &Object, batch: Batch) -> Result<Object, HandlerError> {
    let bridge = started().map_err(|e| HandlerError::new(e.to_string()))?;
    let model = model_of(&batch.loaded)?;
    let params: Vec<(&str, &str)> = batch.params.iter().collect();
    let stream = export_frame(batch.frame);
    bridge.open_stream(function, model, stream, &params).map_err(handler_error)
}

fn step(handle: &Mutex<Option<Object>>) -> Result<Option<Step>, HandlerError> {
    let bridge = started().map_err(|e| HandlerError::new(e.to_string()))?;
    let guard = handle.lock().unwrap_or_else(|p| p.into_inner());
    let Some(stream) = guard.as_ref() else { return Ok(None) };
    let Some(step) = bridge.next_step(stream).map_err(handler_error)? else { return Ok(None) };
    let chunks = match step.kind {
        prediction_kind::NONE => None,
        kind => Some(predictions(kind, step.columns)?),
    };
    Ok(Some(Step { chunks, ended: step.ended.into_iter().map(|r| r as usize).collect() }))
}
