//! Starting the embedded interpreter once, with the configured environment.

use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;

/// Which Python environment handlers run in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonConfig {
    /// A Python executable whose installation (or virtual environment) to use.
    pub executable: Option<PathBuf>,
    /// A virtual environment directory (its `bin/python` is the executable).
    pub venv: Option<PathBuf>,
    /// Extra import paths, searched before site-packages.
    pub path: Vec<PathBuf>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PythonError {
    #[error("'{0}' is not a Python reference of the form 'module:function'")]
    BadTarget(String),
    #[error("could not import Python module '{module}': {error}")]
    Import { module: String, error: String },
    #[error("Python module '{module}' has no attribute '{attribute}'")]
    MissingAttribute { module: String, attribute: String },
    #[error("Python object '{0}' is not callable")]
    NotCallable(String),
    #[error("the Python interpreter could not start: {0}")]
    Start(String),
    #[error("{0}")]
    Config(String),
}

static CONFIG: Mutex<Option<PythonConfig>> = Mutex::new(None);
static STARTED: OnceLock<Result<(), PythonError>> = OnceLock::new();

/// Sets the environment for the interpreter. Before it starts, the last
/// configuration wins; after, only new import paths can be added (the
/// executable and virtual environment are fixed for the process).
pub fn configure(config: PythonConfig) -> Result<(), PythonError> {
    let mut current = CONFIG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(Ok(())) = STARTED.get() {
        let running = current.clone().unwrap_or_default();
        let differs = |a: &Option<PathBuf>, b: &Option<PathBuf>| b.is_some() && a != b;
        if differs(&running.executable, &config.executable) || differs(&running.venv, &config.venv) {
            return Err(PythonError::Config(
                "Python is already running with another executable or virtual environment; one process embeds one"
                    .into(),
            ));
        }
        add_paths(&config.path).map_err(PythonError::Config)?;
        return Ok(());
    }
    *current = Some(config);
    Ok(())
}

/// Starts the interpreter on first call; later calls return the first result.
pub fn ensure_started() -> Result<(), PythonError> {
    STARTED
        .get_or_init(|| {
            let config = CONFIG.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            start(&config).map_err(PythonError::Start)
        })
        .clone()
}

fn start(config: &PythonConfig) -> Result<(), String> {
    promote_libpython_symbols()?;
    let executable = config
        .executable
        .clone()
        .or_else(|| config.venv.as_ref().map(|v| v.join("bin").join("python")))
        .or_else(|| std::env::var_os("VIRTUAL_ENV").map(|v| PathBuf::from(v).join("bin").join("python")));
    if let Some(exe) = &executable {
        if !exe.exists() {
            return Err(format!("no Python executable at {}", exe.display()));
        }
        check_venv_version(exe)?;
    }
    // SAFETY: the interpreter is initialised once (guarded by STARTED), with
    // a configuration that lives until `Py_InitializeFromConfig` returns.
    unsafe {
        if ffi::Py_IsInitialized() == 0 {
            let mut cfg = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
            ffi::PyConfig_InitPythonConfig(cfg.as_mut_ptr());
            let mut cfg = cfg.assume_init();
            // Node owns SIGINT / SIGTERM; argv is Node's, not Python's.
            cfg.install_signal_handlers = 0;
            cfg.parse_argv = 0;
            if let Some(exe) = &executable {
                let exe = CString::new(exe.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
                // The executable decides sys.prefix: a venv's python finds
                // its pyvenv.cfg and site-packages.
                let raw: *mut ffi::PyConfig = &mut cfg;
                let status = ffi::PyConfig_SetBytesString(raw, &raw mut (*raw).program_name, exe.as_ptr());
                check(status, &mut cfg)?;
                let status = ffi::PyConfig_SetBytesString(raw, &raw mut (*raw).executable, exe.as_ptr());
                check(status, &mut cfg)?;
            }
            let status = ffi::Py_InitializeFromConfig(&cfg);
            check(status, &mut cfg)?;
            ffi::PyConfig_Clear(&mut cfg);
            // Release the GIL: every use attaches on its own thread.
            ffi::PyEval_SaveThread();
        }
    }
    add_paths(&config.path)?;
    Python::attach(|py| -> PyResult<()> {
        let sys = py.import("sys")?;
        let prefix: String = sys.getattr("prefix")?.extract()?;
        let version: String = sys.getattr("version")?.extract()?;
        tracing::info!(%prefix, version = %version.split_whitespace().next().unwrap_or(""), "Python started");
        Ok(())
    })
    .map_err(|e| e.to_string())
}

unsafe fn check(status: ffi::PyStatus, cfg: &mut ffi::PyConfig) -> Result<(), String> {
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let message = if status.err_msg.is_null() {
        "unknown error".to_string()
    } else {
        unsafe { CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
    };
    unsafe { ffi::PyConfig_Clear(cfg) };
    Err(message)
}

/// Extension modules (numpy, polars, scikit-learn) resolve CPython symbols
/// from the global namespace. libpython arrived as a dependency of a Node
/// addon, which is loaded with local symbols; reopening it with
/// `RTLD_GLOBAL` makes its symbols visible to them.
fn promote_libpython_symbols() -> Result<(), String> {
    // SAFETY: dladdr / dlopen are called with valid pointers; RTLD_NOLOAD
    // only touches a library that is already loaded.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let symbol = ffi::Py_IsInitialized as *const c_void;
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return Err("could not locate libpython in this process".into());
        }
        let handle = libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD);
        if handle.is_null() {
            let path = CStr::from_ptr(info.dli_fname).to_string_lossy();
            return Err(format!("could not make the symbols of {path} global"));
        }
    }
    Ok(())
}

/// The `major.minor` of the embedded libpython.
pub fn embedded_version() -> String {
    // SAFETY: Py_GetVersion returns a static string and may be called before initialisation.
    let full = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy().into_owned();
    let version = full.split_whitespace().next().unwrap_or("");
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A venv made by another minor version cannot load into this interpreter.
fn check_venv_version(executable: &Path) -> Result<(), String> {
    let dir = executable.parent().and_then(Path::parent);
    let Some(cfg) = dir.map(|d| d.join("pyvenv.cfg")).filter(|p| p.exists()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&cfg).map_err(|e| format!("{}: {e}", cfg.display()))?;
    let version = text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    });
    let embedded = embedded_version();
    match version {
        Some(v) if !v.starts_with(&format!("{embedded}.")) && v != embedded => Err(format!(
            "the virtual environment {} was made with Python {v}, but this build of redesmyn embeds Python {embedded}; \
             make the venv with Python {embedded} or rebuild redesmyn against your Python",
            dir.map_or(String::new(), |d| d.display().to_string())
        )),
        _ => Ok(()),
    }
}

fn add_paths(paths: &[PathBuf]) -> Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    Python::attach(|py| -> PyResult<()> {
        let sys_path = py.import("sys")?.getattr("path")?;
        for (i, path) in paths.iter().enumerate() {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let text = path.to_string_lossy().into_owned();
            if !sys_path.contains(&text)? {
                sys_path.call_method1("insert", (i, text))?;
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())
}
