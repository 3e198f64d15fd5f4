//! Server options: listen address, workers, limits, metrics, EMF, logs and
//! the Python environment.

use std::collections::HashMap;
use std::time::Duration;

use napi_derive::napi;
use redesmyn::emf::{EmfConfig, EmfOutput};
use redesmyn::management::ManagementConfig;
use redesmyn::{JobsConfig, ServerConfig};

use crate::error::{BindingError, Result};

#[napi(object)]
pub struct PythonSpec {
    /// A Python executable whose installation or venv to use.
    pub executable: Option<String>,
    /// A virtual environment directory.
    pub venv: Option<String>,
    /// Extra import paths, searched first.
    pub path: Option<Vec<String>>,
}

#[napi(object)]
pub struct ServerSpec {
    pub host: Option<String>,
    pub port: Option<u32>,
    /// The gRPC (Open Inference Protocol) port; off unless set, 0 = ephemeral.
    pub grpc_port: Option<u32>,
    pub workers: Option<u32>,
    /// Largest request body in bytes.
    pub body_limit: Option<f64>,
    pub shutdown_timeout_ms: Option<f64>,
    pub python: Option<PythonSpec>,
    /// Serve Prometheus metrics at /metrics (default true).
    pub metrics: Option<bool>,
    pub emf: Option<EmfSpec>,
    pub log: Option<LogSpec>,
    /// Asynchronous jobs (`POST <path>/jobs`, `GET /jobs/{id}`); off unless set.
    pub jobs: Option<JobsSpec>,
    /// The management API; off unless set.
    pub management: Option<ManagementSpec>,
    /// The header that keeps a client on one version under traffic weights (default `x-routing-key`).
    pub routing_header: Option<String>,
    /// Traces over OTLP; off unless set or `OTEL_TRACES_EXPORTER=otlp`.
    pub telemetry: Option<super::TelemetrySpec>,
}

#[napi(object)]
pub struct ManagementSpec {
    /// Every management call needs `Authorization: Bearer <token>`.
    pub token: String,
    pub host: Option<String>,
    /// Its own port (0 = ephemeral); by default the inference port.
    pub port: Option<u32>,
    /// The folder `path` may name files in (absolute).
    pub root: Option<String>,
}

#[napi(object)]
pub struct JobsSpec {
    /// The data directory holding the SQLite file; created when missing.
    pub dir: String,
    /// How long a finished job and its result are kept (default 86400).
    pub retention_seconds: Option<f64>,
    /// Jobs that may be queued at once; more get 503 (default 100000).
    pub max_queued: Option<f64>,
    /// Largest result kept, in bytes; a larger one fails its job (default 16 MiB).
    pub max_result_bytes: Option<f64>,
    /// Jobs handed to the model queues at once (default 64): the most job
    /// requests an online request can find ahead of it.
    pub max_running: Option<u32>,
    /// When set, job routes need `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl JobsSpec {
    fn to_config(&self) -> JobsConfig {
        let defaults = JobsConfig::new(&self.dir);
        JobsConfig {
            retention: self.retention_seconds.map_or(defaults.retention, |s| Duration::from_secs_f64(s.max(0.0))),
            max_queued: self.max_queued.map_or(defaults.max_queued, |n| n.max(0.0) as usize),
            max_result_bytes: self.max_result_bytes.map_or(defaults.max_result_bytes, |n| n.max(0.0) as usize),
            max_running: self.max_running.map_or(defaults.max_running, |n| n.max(1) as usize),
            token: self.token.clone().filter(|t| !t.is_empty()),
            ..defaults
        }
    }
}

#[napi(object)]
pub struct EmfSpec {
    pub namespace: String,
    pub dimensions: Option<HashMap<String, String>>,
    /// `stdout` (default) or a file path to append to.
    pub output: Option<String>,
    pub interval_ms: Option<f64>,
}

#[napi(object)]
pub struct LogSpec {
    /// A level (`error` … `trace`) or a filter such as `warn,redesmyn::request=info`.
    pub level: Option<String>,
    /// `json` (default) or `text`.
    pub format: Option<String>,
}

impl ServerSpec {
    pub fn to_config(&self) -> Result<ServerConfig> {
        let defaults = ServerConfig::default();
        let port = match self.port {
            Some(p) if p > u16::MAX as u32 => return Err(BindingError::invalid(format!("port {p} is out of range"))),
            Some(p) => p as u16,
            None => defaults.port,
        };
        let grpc_port = match self.grpc_port {
            Some(p) if p > u16::MAX as u32 => {
                return Err(BindingError::invalid(format!("grpcPort {p} is out of range")))
            }
            p => p.map(|p| p as u16),
        };
        Ok(ServerConfig {
            host: self.host.clone().unwrap_or(defaults.host),
            port,
            grpc_port,
            workers: self.workers.map(|w| w.max(1) as usize),
            body_limit: self.body_limit.map_or(defaults.body_limit, |b| b.max(0.0) as usize),
            shutdown_timeout: self
                .shutdown_timeout_ms
                .map_or(defaults.shutdown_timeout, |ms| Duration::from_millis(ms.max(0.0) as u64)),
            metrics: self.metrics.unwrap_or(defaults.metrics),
            emf: self.emf.as_ref().map(|e| EmfConfig {
                namespace: e.namespace.clone(),
                dimensions: e.dimensions.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
                output: match e.output.as_deref() {
                    None | Some("stdout") => EmfOutput::Stdout,
                    Some(path) => EmfOutput::File(path.into()),
                },
                interval: Duration::from_secs_f64(e.interval_ms.unwrap_or(60_000.0).max(10.0) / 1e3),
            }),
            jobs: self.jobs.as_ref().map(JobsSpec::to_config),
            routing_header: match &self.routing_header {
                Some(h) => redesmyn::http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| BindingError::invalid(format!("routingHeader '{h}' is not a header name")))?,
                None => defaults.routing_header,
            },
            management: match &self.management {
                Some(m) if m.token.len() < 16 => {
                    return Err(BindingError::invalid("management.token must be at least 16 characters"))
                }
                Some(m) => Some(ManagementConfig {
                    token: m.token.clone(),
                    host: m.host.clone(),
                    port: match m.port {
                        Some(p) if p > u16::MAX as u32 => {
                            return Err(BindingError::invalid(format!("management.port {p} is out of range")))
                        }
                        p => p.map(|p| p as u16),
                    },
                    root: m.root.as_ref().map(Into::into),
                }),
                None => None,
            },
            telemetry: self.telemetry.as_ref().map(Into::into).unwrap_or_default(),
        })
    }
}

impl PythonSpec {
    pub fn to_config(&self) -> redesmyn_python::PythonConfig {
        redesmyn_python::PythonConfig {
            executable: self.executable.as_ref().map(Into::into),
            venv: self.venv.as_ref().map(Into::into),
            path: self.path.iter().flatten().map(Into::into).collect(),
        }
    }
}
