//! Starting CPython through the limited API, and its import paths.
//!
//! `PyConfig` is not in the stable ABI, so the start is the one embedders of
//! any CPython use: `Py_SetProgramName(<environment>/bin/python)`, then
//! `Py_InitializeEx(0)`. The program name decides `sys.prefix` (a venv's
//! python finds its `pyvenv.cfg`, hence its site-packages) and
//! `sys.executable`; `0` leaves SIGINT and friends to Node.

use std::ffi::CString;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use redesmyn_python_abi::status;

use crate::sink::Reporter;

/// `polars.DataFrame` and `polars.Series`, looked up once.
pub struct Polars {
    pub data_frame: Py<PyAny>,
    pub series: Py<PyAny>,
}

static POLARS: OnceLock<Polars> = OnceLock::new();

pub fn polars() -> Option<&'static Polars> {
    POLARS.get()
}

/// A thread's own Python thread state, kept from its first call into Python
/// until the thread ends.
///
/// `Python::attach` alone creates a thread state when it takes the GIL and
/// deletes it when it lets go. Extensions built with pybind11 (TensorFlow,
/// PyTorch, …) remember the thread state they first saw on a thread and use
/// it again later: once deleted, that is a dangling pointer, and the process
/// crashes. Holding one `PyGILState_Ensure` for the thread's life (the GIL
/// itself released at once) keeps every call on the thread on one thread
/// state; the thread's end releases it.
struct ThreadState {
    gil: ffi::PyGILState_STATE,
    state: *mut ffi::PyThreadState,
}

impl ThreadState {
    fn pin() -> Self {
        // SAFETY: called only from `attach`, outside any `Python::attach` of
        // this thread (the thread-local is first touched before the GIL is
        // taken), after `start` initialised the interpreter: `PyGILState_Ensure`
        // then takes the GIL with this thread's (new) thread state, and
        // `PyEval_SaveThread` releases the GIL keeping that state, whose
        // gilstate counter stays at one.
        unsafe {
            let gil = ffi::PyGILState_Ensure();
            let state = ffi::PyEval_SaveThread();
            ThreadState { gil, state }
        }
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // SAFETY: runs at the thread's end, outside any call into Python on
        // it; the interpreter is never finalised while the host runs, and the
        // check skips the release if it was. `state` is the one `pin` saved.
        unsafe {
            if ffi::Py_IsInitialized() != 0 {
                ffi::PyEval_RestoreThread(self.state);
                ffi::PyGILState_Release(self.gil);
            }
        }
    }
}

thread_local! {
    static THREAD_STATE: ThreadState = ThreadState::pin();
}

/// `Python::attach` on this thread's lasting thread state (see [`ThreadState`]).
pub fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    THREAD_STATE.with(|_| ());
    Python::attach(f)
}

pub fn start(program: &str, paths: &[String], reporter: &Reporter) -> i32 {
    // SAFETY: the ABI contract has the host call `start` first and once per
    // process, so no other thread is in CPython here: `Py_IsInitialized`
    // may be called without the GIL, and the pre-initialisation calls
    // (`Py_DecodeLocale`, `Py_SetProgramName`) run before `Py_InitializeEx`
    // as CPython requires. `bytes` is a NUL-terminated C string alive for
    // `Py_DecodeLocale`; the wide string it returns is checked for null and
    // never freed, because CPython keeps using the program name's storage.
    // `Py_InitializeEx` leaves this thread holding the GIL, which
    // `PyEval_SaveThread` then releases (its thread state is dropped on
    // purpose: later calls attach through `attach`, which keeps one per thread).
    unsafe {
        if ffi::Py_IsInitialized() == 0 {
            let Ok(bytes) = CString::new(program) else {
                reporter.error(&format!("the Python executable path '{program}' contains a NUL byte"), "");
                return status::FAILED;
            };
            let wide = ffi::Py_DecodeLocale(bytes.as_ptr(), std::ptr::null_mut());
            if wide.is_null() {
                reporter.error(&format!("could not decode the Python executable path '{program}'"), "");
                return status::FAILED;
            }
            // CPython keeps the pointer for the life of the process: `wide` is never freed.
            #[allow(
                deprecated,
                reason = "PyConfig, the replacement, is outside the limited API this abi3 library is built against; \
                          an allow, not an expect, as only some pyo3-ffi configurations mark it deprecated"
            )]
            ffi::Py_SetProgramName(wide);
            ffi::Py_InitializeEx(0);
            if ffi::Py_IsInitialized() == 0 {
                reporter.error("the Python interpreter could not start", "");
                return status::FAILED;
            }
            // Release the GIL: every later use attaches on its own thread.
            ffi::PyEval_SaveThread();
        }
    }
    let code = add_paths(paths, reporter);
    if code != status::OK {
        return code;
    }
    attach(|py| {
        let polars = match py.import("polars") {
            Ok(polars) => polars,
            Err(e) => {
                let prefix = sys_text(py, "prefix");
                reporter.error(
                    &format!(
                        "polars could not be imported in the Python environment at {prefix} ({}); \
                         install it there: {} -m pip install polars",
                        describe(py, &e),
                        sys_text(py, "executable"),
                    ),
                    "",
                );
                return status::FAILED;
            }
        };
        let types = (|| -> PyResult<Polars> {
            Ok(Polars { data_frame: polars.getattr("DataFrame")?.unbind(), series: polars.getattr("Series")?.unbind() })
        })();
        match types {
            Ok(types) => {
                let _ = POLARS.set(types);
            }
            Err(e) => {
                reporter.error(&format!("this polars has no DataFrame or Series: {}", describe(py, &e)), "");
                return status::FAILED;
            }
        }
        for key in ["prefix", "executable", "version"] {
            reporter.info(key, &sys_text(py, key));
        }
        if let Ok(version) = polars.getattr("__version__").and_then(|v| v.extract::<String>()) {
            reporter.info("polars", &version);
        }
        status::OK
    })
}

fn sys_text(py: Python<'_>, name: &str) -> String {
    py.import("sys")
        .and_then(|sys| sys.getattr(name))
        .and_then(|v| v.str().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

pub fn add_paths(paths: &[String], reporter: &Reporter) -> i32 {
    if paths.is_empty() {
        return status::OK;
    }
    attach(|py| {
        let result = (|| -> PyResult<()> {
            let sys_path = py.import("sys")?.getattr("path")?;
            for (i, path) in paths.iter().enumerate() {
                if !sys_path.contains(path)? {
                    sys_path.call_method1("insert", (i, path))?;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => status::OK,
            Err(e) => {
                reporter.error(&format!("could not extend sys.path: {}", describe(py, &e)), "");
                status::FAILED
            }
        }
    })
}

/// `"ValueError: message"`, as Python prints an exception's last line.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    let name = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    match err.value(py).str() {
        Ok(text) if !text.to_string_lossy().is_empty() => format!("{name}: {}", text.to_string_lossy()),
        _ => name,
    }
}
