//! The ONNX runtime factory: a model file loaded at registration (its
//! inputs checked against the schema, its outputs declared), or, with a
//! model cache, a loader that makes every cached artifact a model.

use std::path::PathBuf;
use std::sync::Arc;

use redesmyn::cache::Loader;
use redesmyn::handler::Handler;
use redesmyn::model::{ModelSpec, RuntimeFactory, RuntimeParts};

use crate::{OnnxHandler, OnnxLoader, OnnxModel, OnnxOptions};

/// How a model predicts with onnxruntime.
#[derive(Debug, Clone, Default)]
pub struct OnnxRuntime {
    /// The `.onnx` file; none with a model cache, whose artifacts are the models.
    pub path: Option<PathBuf>,
    pub options: OnnxOptions,
}

impl RuntimeFactory for OnnxRuntime {
    fn make(&self, spec: &ModelSpec) -> Result<RuntimeParts, String> {
        let endpoint = |e: &dyn std::fmt::Display| format!("endpoint '{}': {e}", spec.path);
        if spec.cache.is_some() {
            let handler: Arc<dyn Handler> = Arc::new(OnnxHandler::cached(&spec.schema));
            let loader: Arc<dyn Loader> = Arc::new(OnnxLoader::new(self.options.clone()));
            return Ok(RuntimeParts::runtime(handler).with_loader(Some(loader)));
        }
        let Some(path) = &self.path else {
            return Err(endpoint(&"an ONNX runtime needs the model's path"));
        };
        let model = Arc::new(OnnxModel::load(path, &self.options).map_err(|e| endpoint(&e))?);
        let handler = OnnxHandler::new(model, &spec.schema).map_err(|e| endpoint(&e))?;
        let outputs = handler.outputs();
        let handler: Arc<dyn Handler> = Arc::new(handler);
        Ok(RuntimeParts { outputs, ..RuntimeParts::runtime(handler) })
    }
}
