//! Starting the embedded interpreter once, with the configured environment:
//! choose and check the environment, load its libpython globally, load the
//! bridge, start Python through it. Nothing Python is in the process before
//! the first Python endpoint or loader is registered.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::bridge::{self, Bridge};
use crate::environment::{self, PythonConfig};

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
static STARTED: OnceLock<Result<Bridge, PythonError>> = OnceLock::new();

/// Sets the environment for the interpreter. Before it starts, the last
/// configuration wins; after, only new import paths can be added (the
/// executable and virtual environment are fixed for the process).
pub fn configure(config: PythonConfig) -> Result<(), PythonError> {
    let mut current = CONFIG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(Ok(bridge)) = STARTED.get() {
        let running = current.clone().unwrap_or_default();
        let differs = |a: &Option<PathBuf>, b: &Option<PathBuf>| b.is_some() && a != b;
        if differs(&running.executable, &config.executable) || differs(&running.venv, &config.venv) {
            return Err(PythonError::Config(
                "Python is already running with another executable or virtual environment; one process embeds one"
                    .into(),
            ));
        }
        return bridge.add_paths(&absolute_paths(&config.path)).map_err(|f| PythonError::Config(f.message));
    }
    *current = Some(config);
    Ok(())
}

/// The configured environment (the default before any configuration).
pub(crate) fn config() -> PythonConfig {
    CONFIG.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// Starts the interpreter on first call; later calls return the first result.
pub fn ensure_started() -> Result<(), PythonError> {
    started().map(drop)
}

/// The started bridge (starting it if needed).
pub(crate) fn started() -> Result<&'static Bridge, PythonError> {
    STARTED
        .get_or_init(|| {
            let config = CONFIG.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            start(&config).map_err(PythonError::Start)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn start(config: &PythonConfig) -> Result<Bridge, String> {
    let executable = environment::chosen_executable(config, std::env::var_os("VIRTUAL_ENV").map(PathBuf::from))?;
    let probe = environment::probe(&executable)?;
    let env = environment::check(&executable, probe, |p| p.is_file())?;
    // Find the bridge before loading anything, so a missing file leaves the process untouched.
    let bridge_path = bridge::bridge_path()?;
    if !bridge_path.exists() {
        return Err(bridge::missing(&bridge_path));
    }
    bridge::load_libpython(&env.libpython)?;
    let bridge = Bridge::load(&bridge_path)?;
    let info = bridge.start(&env.program, &absolute_paths(&config.path)).map_err(|f| f.message)?;
    let get = |key: &str| info.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str());
    tracing::info!(
        prefix = get("prefix"),
        executable = get("executable"),
        version = get("version").split_whitespace().next().unwrap_or(""),
        minor = %env.probe.minor_version(),
        polars = get("polars"),
        libpython = %env.libpython.display(),
        bridge = %bridge_path.display(),
        "Python started"
    );
    Ok(bridge)
}

pub(crate) fn absolute_paths(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).to_string_lossy().into_owned()).collect()
}
