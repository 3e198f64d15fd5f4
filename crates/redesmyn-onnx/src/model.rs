//! One loaded ONNX model: its session, what it takes and gives (for V2
//! metadata), and the thread that runs it. onnxruntime's `run` is blocking
//! and not reentrant, so each model owns a dedicated thread that converts a
//! batch to tensors, runs it and converts the outputs back: neither Node's
//! thread nor a tokio worker ever waits on inference.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};
use polars::prelude::DataFrame;
use redesmyn::{HandlerError, Predictions, Schema};
use tokio::sync::oneshot;

use crate::error::OnnxError;
pub use crate::tensor::TensorInfo;
use crate::tensor::{self, Binding};

/// How to open a model.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// The onnxruntime shared library (else `$ORT_DYLIB_PATH`, else `onnxruntime-node`'s copy).
    pub dylib: Option<PathBuf>,
    /// Threads onnxruntime may use inside one run (its default: one per core).
    pub intra_threads: Option<usize>,
}

struct Job {
    frame: DataFrame,
    binding: Binding,
    reply: oneshot::Sender<Result<Predictions, HandlerError>>,
}

/// A model ready to predict. Dropping it ends its thread once queued batches are done.
pub struct OnnxModel {
    path: String,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel").field("path", &self.path).field("inputs", &self.inputs).finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Opens onnxruntime (once per process) and loads the model at `path`.
    /// Blocking: call it from a thread that may block.
    pub fn load(path: &Path, options: &OnnxOptions) -> Result<OnnxModel, OnnxError> {
        let shown = path.display().to_string();
        let model_error = |reason: String| OnnxError::Model { path: shown.clone(), reason };
        if !path.is_file() {
            return Err(model_error("no such file".into()));
        }
        let env = crate::library::environment(options.dylib.as_deref())?;
        let mut builder = Session::builder(&env).map_err(|e| model_error(e.to_string()))?;
        if let Some(n) = options.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| model_error(e.to_string()))?;
        }
        let session = builder.commit_from_file(path).map_err(|e| model_error(e.to_string()))?;
        let unsupported = |reason: String| OnnxError::Unsupported { path: shown.clone(), reason };
        let inputs = session
            .inputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype(), "input"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unsupported)?;
        let outputs = session
            .outputs()
            .iter()
            .map(|o| describe(o.name(), o.dtype(), "output"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unsupported)?;
        for input in &inputs {
            if tensor::input_kind(input.ty).is_none() {
                return Err(unsupported(format!(
                    "input '{}' is {}; inputs must be FP32, FP64, INT32 or INT64",
                    input.name, input.datatype
                )));
            }
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
        std::thread::Builder::new()
            .name("redesmyn-onnx".into())
            .spawn(move || serve(session, names, queue))
            .map_err(|e| model_error(format!("cannot start its thread: {e}")))?;
        Ok(OnnxModel { path: shown, inputs, outputs, jobs: Mutex::new(jobs) })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The graph's inputs, in order.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The graph's outputs, in order: a batch answers with all of them.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// How rows of `schema` feed this model's inputs (see [`crate::tensor`]).
    pub fn bind(&self, schema: &Schema) -> Result<Binding, OnnxError> {
        tensor::bind(&self.inputs, schema).map_err(|reason| OnnxError::Schema { path: self.path.clone(), reason })
    }

    /// Runs one batch on the model's thread.
    pub async fn predict(&self, frame: DataFrame, binding: Binding) -> Result<Predictions, HandlerError> {
        let (reply, answer) = oneshot::channel();
        let sent = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).send(Job { frame, binding, reply });
        if sent.is_err() {
            return Err(HandlerError::new(format!("ONNX model {}: its thread has stopped", self.path)));
        }
        answer.await.unwrap_or_else(|_| Err(HandlerError::new(format!("ONNX model {}: the run was lost", self.path))))
    }
}

/// The model's thread: one batch at a time, until the model is dropped.
fn serve(mut session: Session, outputs: Vec<String>, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        // A panic inside a conversion must fail the batch, not the thread.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tensor::run(&mut session, &outputs, &job.frame, &job.binding)
        }))
        .unwrap_or_else(|_| Err(OnnxError::Run("the ONNX run panicked".into())));
        let _ = job.reply.send(result.map_err(HandlerError::from));
    }
}

fn describe(name: &str, dtype: &ValueType, what: &str) -> Result<TensorInfo, String> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => Ok(TensorInfo {
            name: name.to_string(),
            datatype: v2_datatype(*ty).to_string(),
            shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
            ty: *ty,
        }),
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => Err(format!(
            "{what} '{name}' is a sequence of maps (scikit-learn's ZipMap); export the model with \
             options={{id(model): {{'zipmap': False}}}} so probabilities come as a tensor"
        )),
        other => Err(format!("{what} '{name}' is {other}, not a tensor; only tensor {what}s are served")),
    }
}

/// The Open Inference Protocol's name of an element type.
fn v2_datatype(ty: TensorElementType) -> &'static str {
    match ty {
        TensorElementType::Float32 => "FP32",
        TensorElementType::Float64 => "FP64",
        TensorElementType::Float16 => "FP16",
        TensorElementType::Int8 => "INT8",
        TensorElementType::Int16 => "INT16",
        TensorElementType::Int32 => "INT32",
        TensorElementType::Int64 => "INT64",
        TensorElementType::Uint8 => "UINT8",
        TensorElementType::Uint16 => "UINT16",
        TensorElementType::Uint32 => "UINT32",
        TensorElementType::Uint64 => "UINT64",
        TensorElementType::Bool => "BOOL",
        TensorElementType::String => "BYTES",
        _ => "UNKNOWN",
    }
}
