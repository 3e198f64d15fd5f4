//! How an endpoint predicts: one tagged runtime spec,
//! `{ kind: 'js', handler, load?, release? }`,
//! `{ kind: 'js-stream', open, pull, load?, release? }` or
//! `{ kind: 'python', handler: 'module:function', loader?: 'module:function', stream? }` or
//! `{ kind: 'onnx', path?, dylib?, intraThreads? }` or
//! `{ kind: 'pipeline', steps }` (options/pipeline.rs).
//! A new runtime is a new variant here and a factory in its own crate
//! (the core's `RuntimeFactory`); the core's model builder assembles it.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use std::sync::Arc;

use redesmyn::cache::Loader;
use redesmyn::model::RuntimeParts;
use redesmyn::stream::StreamHandler;
use redesmyn::Handler;

use super::PipelineRuntimeSpec;
use crate::js_handler::{HandlerArgs, JsHandler};
use crate::js_loader::{JsLoader, LoadFn, ReleaseFn};
use crate::js_reply::Ignored;
use crate::js_stream::{JsStreamHandler, OpenArgs, PullArgs};

/// A TypeScript handler, and with a model cache its loader and release hook.
#[napi(object, object_to_js = false)]
pub struct JsRuntimeSpec<'a> {
    #[napi(ts_type = "'js'")]
    pub kind: String,
    /// Called with each batch and its ticket; answers the ticket with
    /// `answerBatch(ticket, output)` (errors as `{ error }`), never throws.
    #[napi(ts_type = "(batch: BatchView, ticket: number) => void")]
    pub handler: Function<'a, HandlerArgs, Ignored>,
    /// Makes a model from an artifact's local path and the parameters.
    #[napi(ts_type = "(path: string, params: Record<string, string>) => Promise<LoadOutput>")]
    pub load: Option<LoadFn>,
    /// Drops the model of an id the core no longer holds.
    #[napi(ts_type = "(id: number) => void")]
    pub release: Option<ReleaseFn>,
}

/// A TypeScript streaming handler: `open` starts a generator for a batch,
/// `pull` takes its next step (or, with `close`, ends it early).
#[napi(object, object_to_js = false)]
pub struct JsStreamRuntimeSpec<'a> {
    #[napi(ts_type = "'js-stream'")]
    pub kind: String,
    /// Called with each batch and a ticket; answers the ticket with a
    /// `StreamOpenedOutput` (errors as `{ error }`), never throws.
    #[napi(ts_type = "(batch: BatchView, ticket: number) => void")]
    pub open: Function<'a, OpenArgs, Ignored>,
    /// Answers the ticket with up to `max` steps (at least one; the last may
    /// be the end or an error), never throws. With `close`, ends the generator.
    #[napi(ts_type = "(id: number, close: boolean, ticket: number, max: number) => void")]
    pub pull: Function<'a, PullArgs, Ignored>,
    #[napi(ts_type = "(path: string, params: Record<string, string>) => Promise<LoadOutput>")]
    pub load: Option<LoadFn>,
    #[napi(ts_type = "(id: number) => void")]
    pub release: Option<ReleaseFn>,
}

impl<'a> JsRuntimeSpec<'a> {
    /// The handler (and loader) as core runtime parts.
    pub fn into_parts(self, path: &str) -> crate::error::Result<RuntimeParts> {
        let handler: Arc<dyn Handler> = Arc::new(JsHandler::new(path, self.handler)?);
        Ok(RuntimeParts::runtime(handler).with_loader(js_loader(path, self.load, self.release)))
    }
}

impl<'a> JsStreamRuntimeSpec<'a> {
    /// The streaming handler (and loader) as core runtime parts.
    pub fn into_parts(self, path: &str) -> crate::error::Result<RuntimeParts> {
        let handler: Arc<dyn StreamHandler> = Arc::new(JsStreamHandler::new(path, self.open, self.pull)?);
        Ok(RuntimeParts::runtime(handler).with_loader(js_loader(path, self.load, self.release)))
    }
}

/// A TypeScript loader, when both its hooks are given.
fn js_loader(path: &str, load: Option<LoadFn>, release: Option<ReleaseFn>) -> Option<Arc<dyn Loader>> {
    match (load, release) {
        (Some(load), Some(release)) => Some(Arc::new(JsLoader::new(path, load, release))),
        _ => None,
    }
}

/// A Python handler `'module:function'`, and with a model cache its loader.
#[napi(object, object_to_js = false)]
pub struct PythonRuntimeSpec {
    #[napi(ts_type = "'python'")]
    pub kind: String,
    pub handler: String,
    pub loader: Option<String>,
    /// The handler is a generator (or async generator) function.
    pub stream: Option<bool>,
    /// Run the handler in a pool of worker processes instead of in-process.
    pub workers: Option<PythonWorkersSpec>,
}

/// A pool of Python worker processes (crates/redesmyn-python/src/workers).
#[napi(object, object_to_js = false)]
pub struct PythonWorkersSpec {
    /// Worker processes.
    pub count: u32,
    /// Replace a worker whose resident memory exceeds this after a batch.
    pub max_rss_mib: Option<u32>,
    /// Kill and replace a worker whose batch runs longer than this.
    pub timeout_ms: Option<f64>,
}

impl PythonRuntimeSpec {
    /// The Python runtime factory (`redesmyn-python`).
    pub fn factory(&self) -> redesmyn_python::PythonRuntime {
        redesmyn_python::PythonRuntime {
            handler: self.handler.clone(),
            loader: self.loader.clone(),
            stream: self.stream.unwrap_or(false),
            workers: self.workers.as_ref().filter(|w| w.count > 0).map(PythonWorkersSpec::options),
        }
    }
}

impl PythonWorkersSpec {
    /// The pool's options (each worker's models: the cache's size, set by the factory).
    fn options(&self) -> redesmyn_python::workers::WorkerOptions {
        redesmyn_python::workers::WorkerOptions {
            count: self.count.max(1) as usize,
            max_rss_mib: self.max_rss_mib.map(u64::from),
            timeout: self.timeout_ms.map(|ms| std::time::Duration::from_secs_f64(ms.max(1.0) / 1e3)),
            models: 1,
        }
    }
}

/// An ONNX model run by onnxruntime (crates/redesmyn-onnx), off Node's thread.
#[napi(object, object_to_js = false)]
pub struct OnnxRuntimeSpec {
    #[napi(ts_type = "'onnx'")]
    pub kind: String,
    /// The `.onnx` file; omitted with a model cache, whose artifacts are the models.
    pub path: Option<String>,
    /// The onnxruntime shared library (else `$ORT_DYLIB_PATH`, else `onnxruntime-node`'s copy).
    pub dylib: Option<String>,
    /// Threads onnxruntime may use inside one run (its default: one per core).
    pub intra_threads: Option<u32>,
}

impl OnnxRuntimeSpec {
    /// The ONNX runtime factory (`redesmyn-onnx`).
    pub fn factory(&self) -> redesmyn_onnx::OnnxRuntime {
        redesmyn_onnx::OnnxRuntime {
            path: self.path.as_ref().map(std::path::PathBuf::from),
            options: redesmyn_onnx::OnnxOptions {
                dylib: self.dylib.as_ref().map(std::path::PathBuf::from),
                intra_threads: self.intra_threads.map(|n| n as usize),
            },
        }
    }
}

/// One of the runtimes, by its `kind`.
pub enum RuntimeSpec<'a> {
    Js(JsRuntimeSpec<'a>),
    JsStream(JsStreamRuntimeSpec<'a>),
    Python(PythonRuntimeSpec),
    Onnx(OnnxRuntimeSpec),
    Pipeline(PipelineRuntimeSpec),
}

impl TypeName for RuntimeSpec<'_> {
    fn type_name() -> &'static str {
        "JsRuntimeSpec | JsStreamRuntimeSpec | PythonRuntimeSpec | OnnxRuntimeSpec | PipelineRuntimeSpec"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for RuntimeSpec<'_> {}

impl FromNapiValue for RuntimeSpec<'_> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: napi hands over a live env and value on the Node thread.
        let object = unsafe { Object::from_napi_value(env, value)? };
        match object.get::<String>("kind")?.as_deref() {
            // SAFETY: the same live env and value.
            Some("js") => Ok(RuntimeSpec::Js(unsafe { JsRuntimeSpec::from_napi_value(env, value)? })),
            // SAFETY: the same live env and value.
            Some("js-stream") => {
                Ok(RuntimeSpec::JsStream(unsafe { JsStreamRuntimeSpec::from_napi_value(env, value)? }))
            }
            // SAFETY: the same live env and value.
            Some("python") => Ok(RuntimeSpec::Python(unsafe { PythonRuntimeSpec::from_napi_value(env, value)? })),
            // SAFETY: the same live env and value.
            Some("onnx") => Ok(RuntimeSpec::Onnx(unsafe { OnnxRuntimeSpec::from_napi_value(env, value)? })),
            // SAFETY: the same live env and value.
            Some("pipeline") => Ok(RuntimeSpec::Pipeline(unsafe { PipelineRuntimeSpec::from_napi_value(env, value)? })),
            other => Err(Error::new(
                Status::InvalidArg,
                format!("unknown runtime kind {other:?}: expected 'js', 'js-stream', 'python', 'onnx' or 'pipeline'"),
            )),
        }
    }
}
