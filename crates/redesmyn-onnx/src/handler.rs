//! The model as a core [`Handler`], and as a cache [`Loader`] when an
//! endpoint's artifacts are ONNX files (`/{model}/...` → `model.onnx`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use redesmyn::cache::{LoadedModel, Loader};
use redesmyn::v2::wire::TensorMetadata;
use redesmyn::{Batch, Handler, HandlerError, Params, Predictions, Schema};

use crate::error::OnnxError;
use crate::model::{OnnxModel, OnnxOptions};
use crate::tensor::Binding;

/// Predicts with one ONNX model, or with the cached model a batch's
/// parameters select when the endpoint has a model cache.
pub struct OnnxHandler {
    schema: Schema,
    model: Option<(Arc<OnnxModel>, Binding)>,
}

impl OnnxHandler {
    /// Serves `model`, checking now that rows of `schema` fit its inputs.
    pub fn new(model: Arc<OnnxModel>, schema: &Schema) -> Result<Self, OnnxError> {
        let binding = model.bind(schema)?;
        Ok(OnnxHandler { schema: schema.clone(), model: Some((model, binding)) })
    }

    /// Serves whichever model the endpoint's cache loaded (see [`OnnxLoader`]).
    pub fn cached(schema: &Schema) -> Self {
        OnnxHandler { schema: schema.clone(), model: None }
    }

    /// The outputs of the fixed model, for V2 metadata.
    pub fn outputs(&self) -> Vec<TensorMetadata> {
        self.model.as_ref().map(|(m, _)| metadata(m)).unwrap_or_default()
    }
}

/// A model's outputs as V2 metadata.
pub fn metadata(model: &OnnxModel) -> Vec<TensorMetadata> {
    model
        .outputs()
        .iter()
        .map(|o| TensorMetadata { name: o.name.clone(), datatype: o.datatype.clone(), shape: o.shape.clone() })
        .collect()
}

impl Handler for OnnxHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>> {
        let chosen = match (&batch.loaded, &self.model) {
            (Some(loaded), _) => match Arc::clone(loaded).downcast::<OnnxModel>() {
                Ok(model) => model.bind(&self.schema).map(|b| (model, b)).map_err(HandlerError::from),
                Err(_) => Err(HandlerError::new("the cached model is not an ONNX model")),
            },
            (None, Some((model, binding))) => Ok((Arc::clone(model), binding.clone())),
            (None, None) => Err(HandlerError::new("no ONNX model is loaded for these parameters")),
        };
        Box::pin(async move {
            let (model, binding) = chosen?;
            model.predict(batch.frame, binding).await
        })
    }
}

/// Loads cached artifacts as ONNX models, on a blocking thread.
pub struct OnnxLoader {
    options: OnnxOptions,
}

impl OnnxLoader {
    pub fn new(options: OnnxOptions) -> Self {
        OnnxLoader { options }
    }
}

impl Loader for OnnxLoader {
    fn load(&self, artifact: &Path, _params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>> {
        let (path, options): (PathBuf, OnnxOptions) = (artifact.to_path_buf(), self.options.clone());
        Box::pin(async move {
            let loaded = tokio::task::spawn_blocking(move || OnnxModel::load(&path, &options))
                .await
                .map_err(|e| format!("the ONNX loader stopped: {e}"))?;
            loaded.map(|m| Arc::new(m) as LoadedModel).map_err(|e| e.to_string())
        })
    }
}
