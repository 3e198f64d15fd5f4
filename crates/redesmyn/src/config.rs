//! Server settings: where to listen (HTTP, and gRPC when asked), how many workers, body limit, stop
//! timeout, and which metrics to record.

use std::time::Duration;

use crate::emf::EmfConfig;
use crate::jobs::JobsConfig;
use crate::management::ManagementConfig;
use actix_web::http::header::HeaderName;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 binds an ephemeral port; [`crate::RunningServer::port`] tells which.
    pub port: u16,
    /// The gRPC (Open Inference Protocol) port: off when `None`; 0 binds an
    /// ephemeral port, [`crate::RunningServer::grpc_port`] tells which.
    pub grpc_port: Option<u16>,
    /// HTTP worker threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long `stop` waits for open connections before closing them.
    pub shutdown_timeout: Duration,
    /// Record metrics: Prometheus at `/metrics`, and EMF when configured.
    pub metrics: bool,
    /// AWS Embedded Metric Format output (needs `metrics`).
    pub emf: Option<EmfConfig>,
    /// Asynchronous jobs and where they are kept: off when `None`.
    pub jobs: Option<JobsConfig>,
    /// The request header whose value keeps a client on one version of a
    /// model with traffic weights.
    pub routing_header: HeaderName,
    /// The management API: off when `None`.
    pub management: Option<ManagementConfig>,
    /// Traces over OTLP (`telemetry`): off unless asked for here or by
    /// `OTEL_TRACES_EXPORTER=otlp`.
    pub telemetry: crate::telemetry::TelemetrySpec,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            grpc_port: None,
            workers: None,
            body_limit: 8 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            metrics: true,
            emf: None,
            jobs: None,
            routing_header: HeaderName::from_static(crate::http::ROUTING_HEADER),
            management: None,
            telemetry: Default::default(),
        }
    }
}
