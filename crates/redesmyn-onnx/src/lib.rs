//! ONNX models as redesmyn handlers. onnxruntime is opened at run time from
//! a shared library (see [`library`]), so nothing is downloaded or linked at
//! build time and the core crate stays free of it. Each model runs on a
//! thread of its own ([`model`]); batches become tensors batched along the
//! first dimension and outputs become prediction columns ([`tensor`]).

pub mod error;
pub mod handler;
pub mod library;
pub mod model;
pub mod runtime;
pub mod tensor;

pub use error::OnnxError;
pub use handler::{metadata, OnnxHandler, OnnxLoader};
pub use model::{OnnxModel, OnnxOptions, TensorInfo};
pub use runtime::OnnxRuntime;
