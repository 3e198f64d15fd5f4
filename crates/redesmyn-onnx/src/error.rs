//! What can go wrong loading or running an ONNX model. Load-time errors
//! (library, file, unsupported model, schema mismatch) fail registration;
//! run-time errors fail only the batch they happened in.

use redesmyn::HandlerError;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The onnxruntime shared library is missing or would not open.
    #[error("onnxruntime is not available: {reason}")]
    LibraryMissing { reason: String },
    /// The model file is missing or is not a model onnxruntime can load.
    #[error("cannot load ONNX model {path}: {reason}")]
    Model { path: String, reason: String },
    /// The model has an input or output this runtime does not handle.
    #[error("ONNX model {path}: {reason}")]
    Unsupported { path: String, reason: String },
    /// The endpoint's schema cannot feed the model's inputs.
    #[error("ONNX model {path} does not fit the schema: {reason}")]
    Schema { path: String, reason: String },
    /// A batch could not be converted or run.
    #[error("{0}")]
    Run(String),
}

impl From<OnnxError> for HandlerError {
    fn from(e: OnnxError) -> Self {
        HandlerError::new(e.to_string())
    }
}
