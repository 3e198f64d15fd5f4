//! The `telemetry` option: traces over OTLP. Fields left out fall back to
//! the standard `OTEL_*` variables in the core, which also checks them.

use std::time::Duration;

use napi_derive::napi;
use redesmyn::telemetry::TelemetrySpec as CoreTelemetrySpec;

#[napi(object)]
pub struct TelemetrySpec {
    /// Export traces (default: on when `OTEL_TRACES_EXPORTER=otlp`).
    pub enabled: Option<bool>,
    /// The collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: Option<String>,
    /// `OTEL_SERVICE_NAME` (default `redesmyn`).
    pub service_name: Option<String>,
    /// `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`).
    pub sampler: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `traceidratio` samplers.
    pub sampler_arg: Option<f64>,
    /// Ended spans waiting for export; more are dropped and counted (default 2048).
    pub max_queue: Option<u32>,
    /// How often spans are exported, in ms (default 5000).
    pub export_delay_ms: Option<f64>,
}

impl From<&TelemetrySpec> for CoreTelemetrySpec {
    fn from(spec: &TelemetrySpec) -> Self {
        CoreTelemetrySpec {
            enabled: spec.enabled,
            endpoint: spec.endpoint.clone(),
            protocol: spec.protocol.clone(),
            service_name: spec.service_name.clone(),
            sampler: spec.sampler.clone(),
            sampler_arg: spec.sampler_arg,
            max_queue: spec.max_queue.map(|n| n as usize),
            export_delay: spec.export_delay_ms.map(|ms| Duration::from_millis(ms.max(1.0) as u64)),
        }
    }
}
