//! A Python function as a model loader: `joblib:load`,
//! `mlflow.sklearn:load_model`, or your own `def load(path, params)`.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use redesmyn::cache::{LoadedModel, Loader};
use redesmyn::Params;

use crate::convert::{describe, params_dict};
use crate::handler::accepts_keyword;
use crate::interpreter::PythonError;
use crate::target::Target;

/// A model made by a Python loader. Dropping it drops the Python object
/// (at once when the GIL is free, else at Python's next use).
pub struct PyModel(pub Py<PyAny>);

pub struct PyLoader {
    function: Arc<Py<PyAny>>,
    takes_params: bool,
}

impl PyLoader {
    /// Imports the function now, so a wrong reference fails at registration.
    pub fn new(target: Target) -> Result<Self, PythonError> {
        let function = target.resolve()?;
        let takes_params = Python::attach(|py| accepts_keyword(py, function.bind(py), "params"));
        Ok(PyLoader { function: Arc::new(function), takes_params })
    }
}

impl Loader for PyLoader {
    fn load(&self, artifact: &Path, params: &Params) -> BoxFuture<'static, Result<LoadedModel, String>> {
        let function = self.function.clone();
        let takes_params = self.takes_params;
        let path = artifact.to_string_lossy().into_owned();
        let params = params.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                Python::attach(|py| -> Result<LoadedModel, String> {
                    let kwargs = if takes_params {
                        let kwargs = PyDict::new(py);
                        let dict = params_dict(py, &params).map_err(|e| describe(py, &e))?;
                        kwargs.set_item("params", dict).map_err(|e| describe(py, &e))?;
                        Some(kwargs)
                    } else {
                        None
                    };
                    let model = function.bind(py).call((path,), kwargs.as_ref()).map_err(|e| describe(py, &e))?;
                    Ok(Arc::new(PyModel(model.unbind())))
                })
            })
            .await
            .map_err(|e| format!("the Python loader's thread failed: {e}"))?
        })
    }
}
