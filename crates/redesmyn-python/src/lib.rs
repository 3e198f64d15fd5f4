//! The PyO3 bridge of redesmyn: prediction handlers written in Python, run
//! in the same process. The interpreter starts once, on first use, with the
//! configured virtual environment; batches cross into Python as
//! `polars.DataFrame`s over the same Arrow buffers (no copy), and the GIL is
//! held only while Python code runs, on a blocking thread of the runtime.

mod convert;
mod handler;
mod interpreter;
mod loader;
mod target;

pub use handler::PyHandler;
pub use interpreter::{configure, ensure_started, PythonConfig, PythonError};
pub use loader::{PyLoader, PyModel};
pub use target::Target;
