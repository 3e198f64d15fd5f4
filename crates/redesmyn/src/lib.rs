//! redesmyn core: serve machine-learning models with per-request schema
//! parsing straight into Polars columns and dynamic batching.
//!
//! This crate knows nothing of Node or Python: a prediction handler is the
//! [`handler::Handler`] trait, which the bindings implement. The request
//! path, room by room (docs/architecture.md has the whole map):
//! [`http`] (front door) → [`service`] (resolve the [`model`], check
//! parameters, decode with a [`codec`], queue, deadline) → [`batch`] →
//! [`handler`] → back through [`codec`] to the front door. [`server`] only
//! starts and stops the rooms.

pub mod batch;
pub mod bisect;
pub mod cache;
pub mod codec;
pub mod config;
pub mod emf;
pub mod engine;
pub mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod grpc;
pub mod handler;
pub mod http;
pub mod jobs;
pub mod logging;
pub mod management;
pub mod metrics;
pub mod model;
pub mod params;
pub mod pending;
pub mod pipeline;
pub mod prediction_cache;
pub mod schema;
pub mod score;
pub mod server;
pub mod service;
pub mod stats;
pub mod stream;
mod sync;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod v2;

pub use batch::BatchConfig;
pub use config::ServerConfig;
pub use error::{ErrorKind, Outcome, RequestError};
pub use handler::{Batch, Handler, HandlerError, Params, Predictions, Runtime};
pub use jobs::{Jobs, JobsConfig};
pub use model::{Endpoint, Model, ModelKey, ModelRegistry};
pub use schema::{Field, FieldType, Numeric, Schema};
pub use server::{RunningServer, Server, ServerError};
pub use service::{InferenceRequest, InferenceService, Prediction, ServedModel};
pub use stream::{ChunkStream, Event, Step, StreamHandler};
