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
    /// The capsule's destructor.
    ///
    /// # Safety
    /// Only CPython may call it, once, with the GIL held, as the destructor of
    /// a capsule made below (whose pointer is a `Box<ArrowArrayStream>`
    /// leaked by `Box::into_raw`).
    unsafe extern "C" fn destroy(capsule: *mut ffi::PyObject) {
        // SAFETY: CPython calls this with the GIL held and a live capsule
        // (this function's obligation), so the C API may be used. Under the
        // right name the pointer is the box leaked below, never freed before:
        // a consumer moves the stream out of the struct (nulling its
        // `release`) but leaves the struct to the capsule. So `from_raw`
        // takes back the only owner, and dropping it releases whatever stream
        // is still live exactly once. A wrong name sets an exception, which
        // is cleared because a destructor must not leave one set.
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
    // SAFETY: `py` proves the GIL is held. `pointer` is a live, non-null box
    // and the name a `'static` C string, as `PyCapsule_New` requires; on
    // success the capsule owns the box (freed by `destroy`), on failure
    // (null, exception set) nothing does, so it is taken back and dropped
    // here, once. `from_owned_ptr_or_err` gets a new reference or null with
    // an exception set, which is what `PyCapsule_New` returns.
    unsafe {
        let capsule = ffi::PyCapsule_New(pointer, STREAM_CAPSULE.as_ptr(), Some(destroy));
        if capsule.is_null() {
            drop(Box::from_raw(pointer as *mut ArrowArrayStream));
        }
        Ok(Bound::from_owned_ptr_or_err(py, capsule)?.unbind())
    }
}

/// The stream inside a capsule returned by `obj.__arrow_c_stream__()`.
/// The pointer is valid only while `capsule` is alive; the caller must move
/// the stream out (`ArrowArrayStream::take`) before the capsule is dropped.
pub fn capsule_stream(capsule: &Bound<'_, PyAny>) -> PyResult<*mut ArrowArrayStream> {
    // SAFETY: the `Bound` proves the GIL is held and keeps the object alive
    // for the call; `PyCapsule_GetPointer` accepts any object, checks that it
    // is a capsule with this name, and otherwise returns null with an
    // exception set (taken below).
    let pointer = unsafe { ffi::PyCapsule_GetPointer(capsule.as_ptr(), STREAM_CAPSULE.as_ptr()) };
    if pointer.is_null() {
        return Err(PyErr::take(capsule.py()).unwrap_or_else(|| PyRuntimeError::new_err("not an Arrow stream capsule")));
    }
    Ok(pointer as *mut ArrowArrayStream)
}
