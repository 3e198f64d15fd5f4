//! redesmyn core: serve machine-learning models over HTTP with per-request
//! schema parsing straight into Polars columns and dynamic batching.
//!
//! This crate knows nothing of Node or Python: a prediction handler is the
//! [`handler::Handler`] trait, which the bindings implement.

pub mod batch;
pub mod cache;
pub mod decode;
pub mod emf;
pub mod encode;
pub mod endpoint;
pub mod error;
pub mod grpc;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod schema;
pub mod server;
pub mod v2;

pub use batch::BatchConfig;
pub use endpoint::Endpoint;
pub use error::RequestError;
pub use handler::{Batch, Handler, HandlerError, Params, Predictions};
pub use schema::{Field, FieldType, Numeric, Schema};
pub use server::{RunningServer, Server, ServerConfig, ServerError};
