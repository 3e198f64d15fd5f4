//! Batches and predictions as Arrow C streams, through the Arrow PyCapsule
//! interface that polars reads and writes: no polars in this library, and
//! no copy of the data (polars imports and exports the buffers in place).

use std::ffi::{c_void, CStr};
use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use redesmyn_python_abi::ArrowArrayStream;

/// The capsule name the Arrow PyCapsule interface prescribes for streams.
const STREAM_CAPSULE: &CStr = c"arrow_array_stream";

/// A batch on its way into `polars.DataFrame(...)`: an object exposing
/// `__arrow_c_stream__`, which hands its stream over once.
#[pyclass(module = "redesmyn", name = "ArrowBatch")]
pub struct ArrowBatch {
    stream: Mutex<Option<ArrowArrayStream>>,
}

impl ArrowBatch {
    pub fn new(stream: ArrowArrayStream) -> Self {
        ArrowBatch { stream: Mutex::new(Some(stream)) }
    }
}

#[pymethods]
impl ArrowBatch {
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__(&self, py: Python<'_>, requested_schema: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        // The batch's own schema is the only one offered; polars asks for none.
        let _ = requested_schema;
        let stream = self
            .stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this batch's Arrow stream was already consumed"))?;
        stream_capsule(py, stream)
    }
}

/// A `PyCapsule` named `arrow_array_stream` owning `stream`. The consumer
/// moves the stream out (leaving `release` null); the capsule's destructor
/// releases whatever is left and frees the struct.
fn stream_capsule(py: Python<'_>, stream: ArrowArrayStream) -> PyResult<Py<PyAny>> {
    unsafe extern "C" fn destroy(capsule: *mut ffi::PyObject) {
        // SAFETY: called once by CPython, for a capsule made below.
        unsafe {
            let pointer = ffi::PyCapsule_GetPointer(capsule, STREAM_CAPSULE.as_ptr());
            if pointer.is_null() {
                ffi::PyErr_Clear();
                return;
            }
            drop(Box::from_raw(pointer as *mut ArrowArrayStream));
        }
    }
    let pointer = Box::into_raw(Box::new(stream)) as *mut c_void;
    // SAFETY: `pointer` is a live box, owned by the capsule from here on.
    unsafe {
        let capsule = ffi::PyCapsule_New(pointer, STREAM_CAPSULE.as_ptr(), Some(destroy));
        if capsule.is_null() {
            drop(Box::from_raw(pointer as *mut ArrowArrayStream));
        }
        Ok(Bound::from_owned_ptr_or_err(py, capsule)?.unbind())
    }
}

/// The stream inside a capsule returned by `obj.__arrow_c_stream__()`.
/// The caller must move it out before the capsule is dropped.
pub fn capsule_stream(capsule: &Bound<'_, PyAny>) -> PyResult<*mut ArrowArrayStream> {
    // SAFETY: PyCapsule_GetPointer checks the type and the name, and sets
    // an exception when either is wrong.
    let pointer = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), STREAM_CAPSULE.as_ptr()) };
    if pointer.is_null() {
        return Err(PyErr::take(capsule.py()).unwrap_or_else(|| PyRuntimeError::new_err("not an Arrow stream capsule")));
    }
    Ok(pointer as *mut ArrowArrayStream)
}
