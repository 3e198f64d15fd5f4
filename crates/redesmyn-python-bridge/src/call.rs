//! Importing `module:function` targets and calling handlers and loaders.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use redesmyn_python_abi::{prediction_kind, status, ArrowArrayStream, Object};

use crate::arrow::{capsule_stream, ArrowBatch};
use crate::interpreter::{attach, describe, polars};
use crate::sink::Reporter;

/// An imported function or a loader's model, as the host holds it.
pub struct Handle {
    object: Py<PyAny>,
    /// Whether the function takes a `params` keyword (or `**kwargs`).
    takes_params: bool,
    /// A stream handle over an async generator: the event loop that runs it.
    event_loop: Option<Py<PyAny>>,
}

/// # Safety
/// `object` must be a non-null pointer returned by `resolve` or `loader`
/// (a `Box<Handle>` behind the opaque type) and not yet passed to
/// [`release`]; `'a` must end before it is released.
pub unsafe fn handle<'a>(object: *const Object) -> &'a Handle {
    // SAFETY: by the caller's obligation `object` came from `into_object`, so
    // it is an aligned pointer to a live `Handle`; it is only ever shared
    // (`Handle` is read, never written, through it) until `release`, which
    // the caller keeps after `'a`.
    unsafe { &*(object as *const Handle) }
}

fn into_object(handle: Handle) -> *mut Object {
    Box::into_raw(Box::new(handle)) as *mut Object
}

/// # Safety
/// `object` must be null or a pointer returned by `resolve` or `loader` that
/// was not released before and is not in use by another call (the ABI
/// contract: the host releases each handle exactly once, never during a call
/// that uses it).
pub unsafe fn release(object: *mut Object) {
    if object.is_null() {
        return;
    }
    // SAFETY: `object` is non-null, so by the caller's obligation it is the
    // pointer `into_object` leaked from a `Box<Handle>`, not freed before and
    // referenced by no one else: `from_raw` takes back its only owner.
    let handle = unsafe { Box::from_raw(object as *mut Handle) };
    attach(|py| {
        if let Some(event_loop) = &handle.event_loop {
            let _ = event_loop.bind(py).call_method0("close");
        }
        drop(handle)
    });
}

/// Reports the exception's message, and its traceback for the log.
fn report(py: Python<'_>, err: &PyErr, reporter: &Reporter) {
    let traceback = err.traceback(py).and_then(|tb| tb.format().ok()).unwrap_or_default();
    reporter.error(&describe(py, err), &traceback);
}

pub fn resolve(module: &str, attribute: &str, reporter: &Reporter) -> Result<*mut Object, i32> {
    attach(|py| {
        let imported = py.import(module).map_err(|e| {
            reporter.error(&describe(py, &e), "");
            status::IMPORT
        })?;
        let mut value = imported.into_any();
        for part in attribute.split('.') {
            value = value.getattr(part).map_err(|e| {
                reporter.error(&describe(py, &e), "");
                status::MISSING_ATTRIBUTE
            })?;
        }
        if !value.is_callable() {
            reporter.error(&format!("{module}:{attribute} is not callable"), "");
            return Err(status::NOT_CALLABLE);
        }
        let takes_params = accepts_keyword(py, &value, "params");
        Ok(into_object(Handle { object: value.unbind(), takes_params, event_loop: None }))
    })
}

/// Whether `function` can be called with the keyword `name`.
fn accepts_keyword(py: Python<'_>, function: &Bound<'_, PyAny>, name: &str) -> bool {
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

fn params_kwargs<'py>(py: Python<'py>, params: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in params {
        dict.set_item(k, v)?;
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("params", dict)?;
    Ok(kwargs)
}

pub fn handler(
    function: &Handle,
    model: Option<&Handle>,
    batch: ArrowArrayStream,
    params: &[(String, String)],
    traceparent: &str,
    reporter: &Reporter,
) -> Result<u32, ()> {
    attach(|py| {
        let Some(polars) = polars() else {
            reporter.error("the Python interpreter has not started", "");
            return Err(());
        };
        let result =
            with_trace_context(py, traceparent, || invoke(py, polars, function, model, batch, params, reporter))?;
        emit_predictions(py, polars, &result, reporter)
    })
}

/// Runs `call` with the span `traceparent` names as the current
/// OpenTelemetry context (`opentelemetry.context.attach`), so spans the
/// handler starts are children of the batch span. Without a traceparent,
/// or without `opentelemetry-api` installed, `call` just runs.
fn with_trace_context<T>(py: Python<'_>, traceparent: &str, call: impl FnOnce() -> T) -> T {
    if traceparent.is_empty() {
        return call();
    }
    let attached = (|| -> PyResult<_> {
        let propagator = py.import("opentelemetry.trace.propagation.tracecontext")?;
        let context = py.import("opentelemetry.context")?;
        let carrier = PyDict::new(py);
        carrier.set_item("traceparent", traceparent)?;
        let extracted =
            propagator.getattr("TraceContextTextMapPropagator")?.call0()?.call_method1("extract", (carrier,))?;
        let token = context.call_method1("attach", (extracted,))?;
        Ok((context, token))
    })();
    let out = call();
    if let Ok((context, token)) = attached {
        let _ = context.call_method1("detach", (token,));
    }
    out
}

/// Calls `function` with the batch as a DataFrame: `(df)`, or `(model, df)`
/// with a model, and `params=` when it takes them.
fn invoke<'py>(
    py: Python<'py>,
    polars: &crate::interpreter::Polars,
    function: &Handle,
    model: Option<&Handle>,
    batch: ArrowArrayStream,
    params: &[(String, String)],
    reporter: &Reporter,
) -> Result<Bound<'py, PyAny>, ()> {
    let fail = |e: PyErr| report(py, &e, reporter);
    let batch = Bound::new(py, ArrowBatch::new(batch)).map_err(fail)?;
    let df = polars.data_frame.bind(py).call1((batch,)).map_err(fail)?;
    let kwargs = if function.takes_params { Some(params_kwargs(py, params).map_err(fail)?) } else { None };
    match model {
        // With a model cache, the model comes first: `predict(model, df)`.
        Some(model) => function.object.bind(py).call((model.object.bind(py), df), kwargs.as_ref()),
        None => function.object.bind(py).call((df,), kwargs.as_ref()),
    }
    .map_err(fail)
}

/// Calls a streaming handler and keeps what it returned as a stream handle:
/// an async generator with an event loop of its own (each step runs the
/// loop until the generator yields), anything else through `iter()`.
pub fn open_stream(
    function: &Handle,
    model: Option<&Handle>,
    batch: ArrowArrayStream,
    params: &[(String, String)],
    reporter: &Reporter,
) -> Result<*mut Object, ()> {
    attach(|py| {
        let fail = |e: PyErr| report(py, &e, reporter);
        let Some(polars) = polars() else {
            reporter.error("the Python interpreter has not started", "");
            return Err(());
        };
        let result = invoke(py, polars, function, model, batch, params, reporter)?;
        if result.hasattr("__anext__").map_err(fail)? {
            let event_loop = py.import("asyncio").map_err(fail)?.call_method0("new_event_loop").map_err(fail)?;
            return Ok(into_object(Handle {
                object: result.unbind(),
                takes_params: false,
                event_loop: Some(event_loop.unbind()),
            }));
        }
        let iterator = result.try_iter().map_err(|e| {
            let kind = result.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            reporter.error(
                &format!("a streaming Python handler must be a generator (it returned a {kind}): {}", describe(py, &e)),
                "",
            );
        })?;
        Ok(into_object(Handle { object: iterator.into_any().unbind(), takes_params: false, event_loop: None }))
    })
}

/// The next step of a stream: `Some(kind)` with its chunks and ended rows
/// reported, `None` when the generator is done.
///
/// A step is a list (or Series, array) with one value per row, `None`
/// where a row has nothing, or a dict `{"chunks": ..., "done": [rows]}`.
pub fn next_step(stream: &Handle, reporter: &Reporter) -> Result<Option<u32>, ()> {
    attach(|py| {
        let fail = |e: PyErr| report(py, &e, reporter);
        let Some(polars) = polars() else {
            reporter.error("the Python interpreter has not started", "");
            return Err(());
        };
        let iterator = stream.object.bind(py);
        let step = match &stream.event_loop {
            Some(event_loop) => {
                let next = iterator.call_method0("__anext__").map_err(fail)?;
                match event_loop.bind(py).call_method1("run_until_complete", (next,)) {
                    Ok(step) => step,
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopAsyncIteration>(py) => return Ok(None),
                    Err(e) => {
                        fail(e);
                        return Err(());
                    }
                }
            }
            None => match iterator.call_method0("__next__") {
                Ok(step) => step,
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => return Ok(None),
                Err(e) => {
                    fail(e);
                    return Err(());
                }
            },
        };
        let (chunks, done) = match step.cast::<PyDict>() {
            Ok(dict) => (dict.get_item("chunks").map_err(fail)?, dict.get_item("done").map_err(fail)?),
            Err(_) => (Some(step.clone()), None),
        };
        if let Some(done) = done.filter(|d| !d.is_none()) {
            let rows: Vec<u64> = done.extract().map_err(|e| {
                reporter.error(&format!("'done' must be a list of row indices: {}", describe(py, &e)), "");
            })?;
            reporter.rows(&rows);
        }
        match chunks.filter(|c| !c.is_none()) {
            Some(chunks) => emit_predictions(py, polars, &chunks, reporter).map(Some),
            None => Ok(Some(prediction_kind::NONE)),
        }
    })
}

/// Closes a stream's generator early, so its `finally` blocks run.
pub fn close_stream(stream: &Handle, reporter: &Reporter) -> Result<(), ()> {
    attach(|py| {
        let fail = |e: PyErr| report(py, &e, reporter);
        let iterator = stream.object.bind(py);
        match &stream.event_loop {
            Some(event_loop) => {
                let closing = iterator.call_method0("aclose").map_err(fail)?;
                event_loop.bind(py).call_method1("run_until_complete", (closing,)).map_err(fail)?;
            }
            None if iterator.hasattr("close").map_err(fail)? => {
                iterator.call_method0("close").map_err(fail)?;
            }
            None => {}
        }
        Ok(())
    })
}

/// Hands what a handler returned to the host: a `polars.DataFrame` column by
/// column, a `polars.Series`, or anything `polars.Series` accepts (a numpy
/// array, a list) as the column `predictions`.
fn emit_predictions(
    py: Python<'_>,
    polars: &crate::interpreter::Polars,
    value: &Bound<'_, PyAny>,
    reporter: &Reporter,
) -> Result<u32, ()> {
    let fail = |e: PyErr| report(py, &e, reporter);
    if value.is_instance(polars.data_frame.bind(py)).map_err(fail)? {
        for column in value.call_method0("get_columns").map_err(fail)?.try_iter().map_err(fail)? {
            emit_series(&column.map_err(fail)?, reporter).map_err(fail)?;
        }
        return Ok(prediction_kind::COLUMNS);
    }
    let series_type = polars.series.bind(py);
    let series = if value.is_instance(series_type).map_err(fail)? {
        value.clone()
    } else {
        series_type.call1(("predictions", value)).map_err(|e| {
            let kind = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            reporter.error(
                &format!(
                    "the Python handler returned a {kind}, which polars cannot turn into a column: {}",
                    describe(py, &e)
                ),
                "",
            );
        })?
    };
    emit_series(&series, reporter).map_err(fail)?;
    Ok(prediction_kind::COLUMN)
}

fn emit_series(series: &Bound<'_, PyAny>, reporter: &Reporter) -> PyResult<()> {
    let name: String = series.getattr("name")?.extract()?;
    let capsule = series.call_method0("__arrow_c_stream__")?;
    let stream = capsule_stream(&capsule)?;
    // SAFETY: `stream` points into `capsule`, which lives until the end of
    // this function, past the call; polars' `__arrow_c_stream__` made it a
    // live stream that nothing else has moved out. The host's `column` moves
    // it out during the call (the sink contract), so the capsule's destructor
    // later frees only a released struct.
    unsafe { reporter.column(&name, stream) };
    Ok(())
}

pub fn loader(
    function: &Handle,
    path: &str,
    params: &[(String, String)],
    reporter: &Reporter,
) -> Result<*mut Object, ()> {
    attach(|py| {
        let fail = |e: PyErr| reporter.error(&describe(py, &e), "");
        let kwargs = if function.takes_params { Some(params_kwargs(py, params).map_err(fail)?) } else { None };
        let model = function.object.bind(py).call((path,), kwargs.as_ref()).map_err(fail)?;
        Ok(into_object(Handle { object: model.unbind(), takes_params: false, event_loop: None }))
    })
}
