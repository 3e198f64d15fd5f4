/**
 * The batch span as the current OpenTelemetry context of a TypeScript
 * handler call. When a request in the batch is traced, the core hands over
 * the batch span's W3C `traceparent`; if the application uses
 * `@opentelemetry/api` (an optional peer dependency, looked up once), the
 * handler runs with that span as its active context, so spans it starts
 * become children of the batch span. They are exported by the
 * application's own OpenTelemetry SDK (a `NodeTracerProvider` with an OTLP
 * exporter), as any span it makes: the core exports only its own.
 */
import { createRequire } from 'node:module';

type Api = typeof import('@opentelemetry/api');

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

let api: Api | null | undefined;

/** `@opentelemetry/api` when the application has it, else `null`. */
function otel(): Api | null {
  if (api === undefined) {
    try {
      api = createRequire(__filename)('@opentelemetry/api') as Api;
    } catch {
      api = null;
    }
  }
  return api;
}

/** Runs `call` with the span `traceparent` names as the active context. */
export function withTraceContext<T>(traceparent: string | undefined, call: () => T): T {
  const parsed = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  const otelApi = parsed === null ? null : otel();
  if (parsed === null || otelApi === null) return call();
  const spanContext = { traceId: parsed[1], spanId: parsed[2], traceFlags: Number.parseInt(parsed[3], 16), isRemote: true };
  const active = otelApi.trace.setSpanContext(otelApi.ROOT_CONTEXT, spanContext);
  return otelApi.context.with(active, call);
}
