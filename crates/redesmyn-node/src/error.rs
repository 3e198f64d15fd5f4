//! The binding's one error type. Core, Python-bridge, Polars and napi errors
//! convert into it with `From`, so `?` works everywhere; it becomes a
//! JavaScript error (`InvalidArg` for bad options, `GenericFailure` for the
//! rest) at the `#[napi]` boundary.

use std::fmt::Display;

use napi::Status;

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// Options or arguments that cannot work (`InvalidArg`).
    #[error("{0}")]
    Invalid(String),
    /// A call that was right but failed (`GenericFailure`).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Path(#[from] redesmyn::model::PathError),
    #[error(transparent)]
    Python(#[from] redesmyn_python::PythonError),
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),
    #[error("{}", .0.reason)]
    Napi(#[from] napi::Error),
    #[error("{context}: {source}")]
    Context { context: String, source: Box<BindingError> },
}

pub type Result<T, E = BindingError> = std::result::Result<T, E>;

impl BindingError {
    pub fn invalid(message: impl Into<String>) -> Self {
        BindingError::Invalid(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Self {
        BindingError::Failed(message.into())
    }

    fn status(&self) -> Status {
        match self {
            BindingError::Invalid(_) | BindingError::Path(_) | BindingError::Python(_) => Status::InvalidArg,
            BindingError::Failed(_) | BindingError::Polars(_) => Status::GenericFailure,
            BindingError::Napi(e) => e.status,
            BindingError::Context { source, .. } => source.status(),
        }
    }
}

impl From<redesmyn::ServerError> for BindingError {
    fn from(e: redesmyn::ServerError) -> Self {
        match e {
            redesmyn::ServerError::DuplicatePath(_) | redesmyn::ServerError::Registry(_) => {
                BindingError::Invalid(e.to_string())
            }
            _ => BindingError::Failed(e.to_string()),
        }
    }
}

impl From<BindingError> for napi::Error {
    fn from(e: BindingError) -> Self {
        napi::Error::new(e.status(), e.to_string())
    }
}

/// Names what failed: `load().context("loader '/p'")`.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Into<BindingError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| BindingError::Context { context: what.to_string(), source: Box::new(e.into()) })
    }
}
