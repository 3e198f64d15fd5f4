//! Python handlers and model loaders for redesmyn, run in the same process.
//!
//! This crate is the host side and links no Python: when the first Python
//! endpoint or loader is registered it chooses the environment
//! ([`environment`]), loads that environment's libpython with global
//! symbols, then loads the bridge library (`redesmyn-python-bridge`, built
//! once against CPython's stable ABI) and starts the interpreter through it
//! ([`bridge`]). Batches cross into Python as Arrow C streams that
//! `polars.DataFrame` reads in place (no copy), predictions come back the
//! same way, and the GIL is held only while Python code runs, on a blocking
//! thread of the runtime.

// Public to the fuzz targets only (`--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod arrow;
#[cfg(not(fuzzing))]
mod arrow;
mod bridge;
mod environment;
mod handler;
mod interpreter;
mod loader;
mod runtime;
mod stream;
mod target;
pub mod workers;

pub use bridge::{BRIDGE_ENV, BRIDGE_FILE};
pub use environment::PythonConfig;
pub use handler::PyHandler;
pub use interpreter::{configure, ensure_started, PythonError};
pub use loader::{PyLoader, PyModel};
pub use runtime::PythonRuntime;
pub use stream::PyStreamHandler;
pub use target::Target;
