//! Between Python values and the core's types.

use polars::prelude::*;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_polars::{PyDataFrame, PySeries};
use redesmyn::{HandlerError, Params, Predictions};

/// `"ValueError: message"`, as Python prints an exception's last line.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    let name = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    match err.value(py).str() {
        Ok(text) if !text.to_string_lossy().is_empty() => {
            format!("{name}: {}", text.to_string_lossy())
        }
        _ => name,
    }
}

/// A handler error carrying the exception's message, and its traceback for the log.
pub fn handler_error(py: Python<'_>, err: &PyErr) -> HandlerError {
    let error = HandlerError::new(describe(py, err));
    match err.traceback(py).and_then(|tb| tb.format().ok()) {
        Some(traceback) => error.with_detail(traceback),
        None => error,
    }
}

pub fn params_dict<'py>(py: Python<'py>, params: &Params) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in params.iter() {
        dict.set_item(k, v)?;
    }
    Ok(dict)
}

/// What a Python handler returned, as predictions: a `polars.Series`, a
/// `polars.DataFrame` (one column per output), or anything `polars.Series`
/// accepts (a numpy array, a list).
pub fn to_predictions(py: Python<'_>, value: &Bound<'_, PyAny>) -> Result<Predictions, HandlerError> {
    let fail = |e: PyErr| handler_error(py, &e);
    let polars = py.import("polars").map_err(fail)?;
    let frame_type = polars.getattr("DataFrame").map_err(fail)?;
    if value.is_instance(&frame_type).map_err(fail)? {
        let frame: PyDataFrame = value.extract().map_err(fail)?;
        return Ok(Predictions::Columns(frame.0));
    }
    let series_type = polars.getattr("Series").map_err(fail)?;
    let series = if value.is_instance(&series_type).map_err(fail)? {
        value.clone()
    } else {
        series_type.call1(("predictions", value)).map_err(|e| {
            let kind = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            HandlerError::new(format!(
                "the Python handler returned a {kind}, which polars cannot turn into a column: {}",
                describe(py, &e)
            ))
        })?
    };
    let series: PySeries = series.extract().map_err(fail)?;
    Ok(Predictions::Column(series.0))
}

/// The batch as a `polars.DataFrame` sharing the batch's Arrow buffers.
pub fn frame_to_py<'py>(py: Python<'py>, frame: DataFrame) -> PyResult<Bound<'py, PyAny>> {
    PyDataFrame(frame).into_pyobject(py)
}
