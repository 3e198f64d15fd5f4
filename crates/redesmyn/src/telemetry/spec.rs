//! What a server is told about tracing, from its `telemetry` option and the
//! standard `OTEL_*` variables, checked once at start: an option that is
//! set wins over its variable, and a value that cannot be used is an error
//! naming where it came from.

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

/// The `telemetry` option of a server. Every field left out falls back to
/// its OpenTelemetry variable, then to the SDKs' default.
#[derive(Debug, Clone, Default)]
pub struct TelemetrySpec {
    /// Export traces. Unset: on when `OTEL_TRACES_EXPORTER=otlp` (and
    /// `OTEL_SDK_DISABLED` is not `true`).
    pub enabled: Option<bool>,
    /// The collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); over
    /// HTTP, `/v1/traces` is appended. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// names the full URL instead.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub protocol: Option<String>,
    /// `OTEL_SERVICE_NAME`; `redesmyn` by default.
    pub service_name: Option<String>,
    /// `OTEL_TRACES_SAMPLER`: `always_on`, `always_off`, `traceidratio`,
    /// `parentbased_always_on` (the default), `parentbased_always_off`,
    /// `parentbased_traceidratio`.
    pub sampler: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `*traceidratio` samplers.
    pub sampler_arg: Option<f64>,
    /// Finished spans waiting for export (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048):
    /// more are dropped and counted, never waited for.
    pub max_queue: Option<usize>,
    /// How often queued spans are exported (`OTEL_BSP_SCHEDULE_DELAY`, ms, 5000).
    pub export_delay: Option<Duration>,
}

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// A spec checked and completed: what the exporter is built from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub service_name: Option<String>,
    pub sampler: Sampler,
    pub max_queue: usize,
    pub export_delay: Duration,
    pub export_batch: usize,
}

/// A telemetry setting that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{option}: {reason} (got '{value}')")]
pub struct TelemetryError {
    /// The option or variable the value came from.
    pub option: String,
    pub value: String,
    pub reason: String,
}

/// A value and the name of where it came from (an option or a variable).
struct Setting {
    from: String,
    value: String,
}

impl TelemetrySpec {
    /// The settings with the process's environment, or `None` when tracing is off.
    pub fn resolve(&self) -> Result<Option<Resolved>, TelemetryError> {
        self.resolve_with(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// As [`Self::resolve`], reading variables through `env`.
    pub fn resolve_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Resolved>, TelemetryError> {
        let enabled = match self.enabled {
            Some(enabled) => enabled,
            None => {
                let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                let exporter = env("OTEL_TRACES_EXPORTER").unwrap_or_default();
                let exporter = exporter.trim().to_ascii_lowercase();
                match exporter.as_str() {
                    "" | "none" => false,
                    "otlp" => !disabled,
                    _ => {
                        return Err(invalid("OTEL_TRACES_EXPORTER", &exporter, "only 'otlp' and 'none' are supported"))
                    }
                }
            }
        };
        if !enabled {
            return Ok(None);
        }
        let pick = |option: &str, own: Option<String>, variable: &str| match own {
            Some(value) => Some(Setting { from: format!("telemetry.{option}"), value }),
            None => env(variable).map(|value| Setting { from: variable.to_string(), value }),
        };
        let protocol = match pick("protocol", self.protocol.clone(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| pick("protocol", None, "OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            None => OtlpProtocol::HttpProtobuf,
            Some(s) => match s.value.trim() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                other => return Err(invalid(&s.from, other, "expected 'grpc' or 'http/protobuf'")),
            },
        };
        let endpoint = endpoint(self, protocol, &env)?;
        let sampler = sampler(self, &env)?;
        let max_queue = match self.max_queue {
            Some(n) => Some(n),
            None => number(&env, "OTEL_BSP_MAX_QUEUE_SIZE")?,
        }
        .unwrap_or(2048);
        if max_queue == 0 {
            return Err(invalid("telemetry.maxQueue", "0", "must be at least 1"));
        }
        let export_delay = match self.export_delay {
            Some(d) => d,
            None => Duration::from_millis(number(&env, "OTEL_BSP_SCHEDULE_DELAY")?.unwrap_or(5000) as u64),
        };
        let export_batch = number(&env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")?.unwrap_or(512).clamp(1, max_queue);
        let service_name = self.service_name.clone().or_else(|| env("OTEL_SERVICE_NAME"));
        Ok(Some(Resolved { endpoint, protocol, service_name, sampler, max_queue, export_delay, export_batch }))
    }
}

fn invalid(option: &str, value: &str, reason: &str) -> TelemetryError {
    TelemetryError { option: option.to_string(), value: value.to_string(), reason: reason.to_string() }
}

fn number(env: &impl Fn(&str) -> Option<String>, variable: &str) -> Result<Option<usize>, TelemetryError> {
    env(variable)
        .map(|v| v.trim().parse::<usize>().map_err(|_| invalid(variable, &v, "expected a whole number")))
        .transpose()
}

/// The URL spans are sent to. An option or the generic variable is the
/// collector's base URL (HTTP appends the traces path); the traces
/// variable is the full URL, as the OTLP exporter specification says.
fn endpoint(
    spec: &TelemetrySpec,
    protocol: OtlpProtocol,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, TelemetryError> {
    let (from, value, full) = match (&spec.endpoint, env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        (Some(own), _) => ("telemetry.endpoint".to_string(), own.clone(), false),
        (None, Some(traces)) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".to_string(), traces, true),
        (None, None) => match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(base) => ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), base, false),
            None => {
                return Ok(match protocol {
                    OtlpProtocol::Grpc => "http://localhost:4317".into(),
                    OtlpProtocol::HttpProtobuf => "http://localhost:4318/v1/traces".into(),
                })
            }
        },
    };
    let value = value.trim().to_string();
    let url = url::Url::parse(&value).map_err(|e| invalid(&from, &value, &format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(&from, &value, "expected an http:// or https:// URL with a host"));
    }
    if full || protocol == OtlpProtocol::Grpc {
        return Ok(value);
    }
    Ok(format!("{}/v1/traces", value.trim_end_matches('/')))
}

fn sampler(spec: &TelemetrySpec, env: &impl Fn(&str) -> Option<String>) -> Result<Sampler, TelemetryError> {
    let (from, name) = match &spec.sampler {
        Some(own) => ("telemetry.sampler".to_string(), own.clone()),
        None => match env("OTEL_TRACES_SAMPLER") {
            Some(v) => ("OTEL_TRACES_SAMPLER".to_string(), v),
            None => (String::new(), "parentbased_always_on".to_string()),
        },
    };
    let ratio = || -> Result<f64, TelemetryError> {
        let (arg_from, arg) = match spec.sampler_arg {
            Some(r) => ("telemetry.samplerArg", r.to_string()),
            None => ("OTEL_TRACES_SAMPLER_ARG", env("OTEL_TRACES_SAMPLER_ARG").unwrap_or_else(|| "1.0".into())),
        };
        match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(invalid(arg_from, &arg, "expected a ratio between 0 and 1")),
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        other => {
            return Err(invalid(
                &from,
                other,
                "unknown sampler; expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn off_unless_asked_for() {
        assert!(TelemetrySpec::default().resolve_with(env(&[])).unwrap().is_none());
        let on = TelemetrySpec::default().resolve_with(env(&[("OTEL_TRACES_EXPORTER", "otlp")])).unwrap().unwrap();
        assert_eq!(on.endpoint, "http://localhost:4318/v1/traces");
        let disabled = [("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_SDK_DISABLED", "true")];
        assert!(TelemetrySpec::default().resolve_with(env(&disabled)).unwrap().is_none());
    }

    #[test]
    fn the_option_wins_over_its_variable_and_http_gets_the_traces_path() {
        let spec = TelemetrySpec {
            enabled: Some(true),
            endpoint: Some("http://collector:4318/".into()),
            ..Default::default()
        };
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        let r = spec.resolve_with(env(&vars)).unwrap().unwrap();
        assert_eq!((r.endpoint.as_str(), r.protocol), ("http://collector:4318/", OtlpProtocol::Grpc));
        let spec = TelemetrySpec { protocol: Some("http/protobuf".into()), ..spec };
        assert_eq!(spec.resolve_with(env(&vars)).unwrap().unwrap().endpoint, "http://collector:4318/v1/traces");
    }

    #[test]
    fn bad_settings_name_their_option() {
        let on = [("OTEL_TRACES_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")];
        let e = TelemetrySpec::default().resolve_with(env(&on)).unwrap_err();
        assert_eq!(e.option, "OTEL_EXPORTER_OTLP_ENDPOINT");
        let spec = TelemetrySpec { enabled: Some(true), sampler: Some("sometimes".into()), ..Default::default() };
        let e = spec.resolve_with(env(&[])).unwrap_err();
        assert_eq!(e.option, "telemetry.sampler");
        assert!(e.to_string().contains("unknown sampler"), "{e}");
        let vars = [("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")];
        let spec = TelemetrySpec { enabled: Some(true), ..Default::default() };
        assert_eq!(spec.resolve_with(env(&vars)).unwrap_err().option, "OTEL_TRACES_SAMPLER_ARG");
        let e = TelemetrySpec { protocol: Some("udp".into()), ..spec }.resolve_with(env(&[])).unwrap_err();
        assert_eq!(e.option, "telemetry.protocol");
    }
}
