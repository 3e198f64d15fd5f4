//! A Python function as a model loader: `joblib:load`,
//! `mlflow.sklearn:load_model`, or your own `def load(path, params)`.
//!
//! This file is the only one that names the core's model type.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use redesmyn::cache::{LoadedModel, Loader};
use redesmyn::{HandlerError, Params};

use crate::bridge::Object;
use crate::interpreter::{started, PythonError};
use crate::target::Target;

/// A model made by a Python loader: the Python object stays in the bridge.
/// Dropping it releases the object there (the GIL is taken then, on a
/// blocking thread).
pub struct PyModel(pub(crate) Object);

pub struct PyLoader {
    function: Arc<Object>,
}

impl PyLoader {
    /// Starts Python if needed and imports the function now, so a wrong
    /// reference fails at registration.
    pub fn new(target: Target) -> Result<Self, PythonError> {
        let function = target.resolve()?;
        Ok(PyLoader { function: Arc::new(function) })
    }
}

impl Loader for PyLoader {
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>> {
        let function = Arc::clone(&self.function);
        let path = artifact.to_string_lossy().into_owned();
        let params = params.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || -> Result<LoadedModel, String> {
                let bridge = started().map_err(|e| e.to_string())?;
                let pairs: Vec<(&str, &str)> = params.iter().collect();
                let model = bridge.call_loader(&function, &path, &pairs).map_err(|f| f.message)?;
                Ok(Arc::new(PyModel(model)))
            })
            .await
            .map_err(|e| format!("the Python loader's thread failed: {e}"))?
        })
    }
}

/// The Python model of a batch, if its endpoint has a model cache.
pub(crate) fn model_of(model: &Option<LoadedModel>) -> Result<Option<&Object>, HandlerError> {
    match model {
        Some(model) => match model.downcast_ref::<PyModel>() {
            Some(m) => Ok(Some(&m.0)),
            None => Err(HandlerError::new("a Python handler needs a model made by a Python loader (py.loader)")),
        },
        None => Ok(None),
    }
}
