// The `telemetry` option of a Server and of settings.json: OpenTelemetry
// traces over OTLP (docs/observability.md). Its own module so that the
// repository's settings can name it without importing the server.

export interface TelemetryOptions {
  /** Export traces (default: on when `OTEL_TRACES_EXPORTER=otlp`). */
  enabled?: boolean;
  /** The collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` (HTTP appends `/v1/traces`). */
  endpoint?: string;
  /** As `OTEL_EXPORTER_OTLP_PROTOCOL` (default `http/protobuf`). */
  protocol?: 'grpc' | 'http/protobuf';
  /** As `OTEL_SERVICE_NAME` (default `redesmyn`). */
  serviceName?: string;
  /** As `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`). */
  sampler?: 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';
  /** As `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `traceidratio` samplers. */
  samplerArg?: number;
  /** Ended spans waiting for export; more are dropped and counted in `/metrics` (default 2048). */
  maxQueue?: number;
  /** How often spans are exported, in milliseconds (default 5000, `OTEL_BSP_SCHEDULE_DELAY`). */
  exportDelayMs?: number;
}
