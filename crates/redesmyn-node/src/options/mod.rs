//! Plain option objects passed from TypeScript, by area, each converting
//! to its core equivalent in the same file.

mod cache;
mod endpoint;
mod pipeline;
mod prediction_cache;
mod runtime;
mod server;
mod telemetry;

pub use endpoint::EndpointSpec;
pub use pipeline::PipelineRuntimeSpec;
pub use runtime::RuntimeSpec;
pub use server::ServerSpec;
pub use telemetry::TelemetrySpec;
