//! A Python function as a core [`Handler`].

use std::sync::Arc;

use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use redesmyn::{Batch, Handler, HandlerError, Predictions};

use crate::convert::{frame_to_py, handler_error, params_dict, to_predictions};
use crate::interpreter::PythonError;
use crate::loader::PyModel;
use crate::target::Target;

/// `def predict(df: pl.DataFrame) -> pl.Series` (or `(model, df)` when the
/// endpoint has a model). A function that accepts a `params` keyword (or
/// `**kwargs`) also gets the path parameters as a dict.
pub struct PyHandler {
    function: Arc<Py<PyAny>>,
    target: Target,
    takes_params: bool,
}

impl PyHandler {
    /// Imports the function now, so a wrong reference fails at registration.
    pub fn new(target: Target) -> Result<Self, PythonError> {
        let function = target.resolve()?;
        let takes_params = Python::attach(|py| accepts_keyword(py, function.bind(py), "params"));
        Ok(PyHandler { function: Arc::new(function), target, takes_params })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// Whether `function` can be called with the keyword `name`.
pub(crate) fn accepts_keyword(py: Python<'_>, function: &Bound<'_, PyAny>, name: &str) -> bool {
    let check = || -> PyResult<bool> {
        let inspect = py.import("inspect")?;
        let parameters = inspect.call_method1("signature", (function,))?.getattr("parameters")?;
        if parameters.contains(name)? {
            return Ok(true);
        }
        let var_keyword = inspect.getattr("Parameter")?.getattr("VAR_KEYWORD")?;
        for p in parameters.call_method0("values")?.try_iter()? {
            if p?.getattr("kind")?.eq(&var_keyword)? {
                return Ok(true);
            }
        }
        Ok(false)
    };
    check().unwrap_or(false)
}

impl Handler for PyHandler {
    fn call(&self, batch: Batch) -> BoxFuture<'static, Result<Predictions, HandlerError>> {
        let function = self.function.clone();
        let takes_params = self.takes_params;
        Box::pin(async move {
            // Python runs on a blocking thread; the GIL is taken there, only for the call.
            tokio::task::spawn_blocking(move || Python::attach(|py| invoke(py, &function, batch, takes_params)))
                .await
                .map_err(|e| HandlerError::new(format!("the Python handler's thread failed: {e}")))?
        })
    }
}

fn invoke(py: Python<'_>, function: &Py<PyAny>, batch: Batch, takes_params: bool) -> Result<Predictions, HandlerError> {
    let fail = |e: PyErr| handler_error(py, &e);
    // With a model cache, the model comes first: `predict(model, df)`.
    let model = match &batch.loaded {
        Some(model) => match model.downcast_ref::<PyModel>() {
            Some(m) => Some(m.0.clone_ref(py)),
            None => {
                return Err(HandlerError::new("a Python handler needs a model made by a Python loader (py.loader)"))
            }
        },
        None => None,
    };
    let df = frame_to_py(py, batch.frame).map_err(fail)?;
    let kwargs = if takes_params {
        let kwargs = PyDict::new(py);
        kwargs.set_item("params", params_dict(py, &batch.params).map_err(fail)?).map_err(fail)?;
        Some(kwargs)
    } else {
        None
    };
    let call = match model {
        Some(model) => function.bind(py).call((model, df), kwargs.as_ref()),
        None => function.bind(py).call((df,), kwargs.as_ref()),
    };
    let result = call.map_err(|e| {
        let error = handler_error(py, &e);
        tracing::error!(error = %error.message, traceback = error.detail.as_deref().unwrap_or(""), "Python handler raised");
        error
    })?;
    to_predictions(py, &result)
}
