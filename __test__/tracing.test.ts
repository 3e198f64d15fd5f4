// OpenTelemetry traces against a real collector: Jaeger all-in-one, built
// and started by scripts/jaeger.mjs. Requests with a known `traceparent`
// come concurrently over native REST, V2 REST, gRPC (grpcurl) and SSE, so
// that batches mix them; the trace read back from Jaeger's query API must
// keep the caller's trace id, hang each server span from the caller's span,
// and have each batch span linked to every request span it served (which
// names it). Then: sampling at 0 exports nothing, a collector that is down
// costs spans (counted in /metrics) and nothing else, the standard OTEL_*
// variables turn tracing on with no option, and bad settings fail the
// start naming the option.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, Schema, Server, py } from '../src';
import { ensureGoTools } from '../scripts/go-tools.mjs';
import { startJaeger } from '../scripts/jaeger.mjs';
import { post, serve, until } from './helpers';

const run = promisify(execFile);
const root = join(__dirname, '..');
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

interface JaegerSpan {
  spanID: string;
  operationName: string;
  references: { refType: 'CHILD_OF' | 'FOLLOWS_FROM'; traceID: string; spanID: string }[];
  tags: { key: string; value: unknown }[];
  logs: { fields: { key: string; value: unknown }[] }[];
  processID: string;
}
interface JaegerTrace {
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string }>;
}

const tag = (span: JaegerSpan, key: string) => span.tags.find((t) => t.key === key)?.value;
const parentOf = (span: JaegerSpan) => span.references.find((r) => r.refType === 'CHILD_OF')?.spanID;
const linksOf = (span: JaegerSpan) => span.references.filter((r) => r.refType === 'FOLLOWS_FROM').map((r) => r.spanID);

let jaeger: Awaited<ReturnType<typeof startJaeger>>;
let grpcurl: string;

const doubled = () =>
  new Endpoint({
    path: '/double',
    name: 'double',
    schema: new Schema({ x: Schema.f64() }),
    // A window, so that concurrent requests share batches.
    batch: { maxSize: 64, maxDelayMs: 150 },
    handler: (batch) => Array.from(batch.columns.x, (x) => x * 2),
  });

const words = () =>
  new Endpoint({
    path: '/words',
    name: 'words',
    schema: new Schema({ text: Schema.str() }),
    stream: true,
    async *handler(batch) {
      yield batch.columns.text.map((t) => `${t}!`);
    },
  });

/** A handler that makes a span of its own with `@opentelemetry/api`, as application code would. */
const tracedTs = () =>
  new Endpoint({
    path: '/traced-ts',
    name: 'traced-ts',
    schema: new Schema({ x: Schema.f64() }),
    handler: async (batch) =>
      trace.getTracer('app').startActiveSpan('ts-handler-work', async (span) => {
        span.setAttribute('app.rows', batch.length);
        await new Promise((r) => setTimeout(r, 5));
        // Still the handler's span after an await: the context follows async code.
        trace.getActiveSpan()?.addEvent('after-await');
        span.end();
        return Array.from(batch.columns.x, (x) => x + 1);
      }),
  });

/** The trace `traceId` once Jaeger holds at least `spans` of its spans. */
async function traceWith(traceId: string, spans: number): Promise<JaegerTrace> {
  let trace: JaegerTrace | undefined;
  await until(async () => {
    trace = await jaeger.trace(traceId);
    return (trace?.spans.length ?? 0) >= spans;
  }, 30_000, 200);
  // Late spans of the same trace (a batch ends after its requests are answered).
  await new Promise((r) => setTimeout(r, 500));
  return (await jaeger.trace(traceId)) as JaegerTrace;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

async function grpcInfer(address: string, traceparent: string, x: number) {
  const request = JSON.stringify({
    model_name: 'double',
    inputs: [{ name: 'x', datatype: 'FP64', shape: [1], contents: { fp64_contents: [x] } }],
  });
  const { stdout } = await run(grpcurl, ['-plaintext', '-v', '-H', `traceparent: ${traceparent}`, '-d', request, address, 'inference.GRPCInferenceService/ModelInfer']);
  return stdout;
}

async function sse(url: string, traceparent: string) {
  const res = await fetch(`${url}/words`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', traceparent },
    body: JSON.stringify([{ text: 'hi' }]),
  });
  const body = await res.text();
  return { headers: res.headers, body };
}

beforeAll(async () => {
  ({ grpcurl } = ensureGoTools(['grpcurl']));
  jaeger = await startJaeger();
}, 600_000);

afterAll(async () => {
  await jaeger?.stop();
});

describe('traces in Jaeger', () => {
  let server: Server;
  let url: string;
  let grpc: string;
  let app: NodeTracerProvider;

  beforeAll(async () => {
    // The application's own SDK, exporting its spans to the same collector.
    app = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${jaeger.otlpHttp}/v1/traces` }))] });
    app.register();
    // Read by the Python handler's own SDK when its module is imported.
    process.env.REDESMYN_TEST_OTLP = `${jaeger.otlpHttp}/v1/traces`;
    const tracedPy = new Endpoint({
      path: '/traced-py',
      name: 'traced-py',
      schema: new Schema({ x: Schema.f64() }),
      handler: py.handler('traced_handlers:predict'),
    });
    const tracedWorkers = new Endpoint({
      path: '/traced-py-workers',
      name: 'traced-py-workers',
      schema: new Schema({ x: Schema.f64() }),
      handler: py.handler('traced_handlers:predict', { workers: 1 }),
    });
    ({ server, url } = await serve([doubled(), words(), tracedTs(), tracedPy, tracedWorkers], {
      python: { venv: join(root, '.venv'), path: [join(__dirname, 'python')] },
      grpcPort: 0,
      telemetry: { enabled: true, endpoint: jaeger.otlpHttp, protocol: 'http/protobuf', serviceName: 'redesmyn-test', exportDelayMs: 100 },
    }));
    grpc = `127.0.0.1:${server.grpcPort}`;
  });
  afterAll(async () => {
    await server?.stop();
    await app?.shutdown();
  });

  it('runs a TypeScript handler under the batch span: its own @opentelemetry/api spans are children of it', async () => {
    const traceId = hex(16);
    const r = await post(`${url}/traced-ts`, [{ x: 1 }, { x: 2 }], { traceparent: `00-${traceId}-${hex(8)}-01` });
    expect(r.body.predictions).toEqual([2, 3]);
    await app.forceFlush();
    const spans = (await traceWith(traceId, 5)).spans;
    const batch = spans.find((s) => s.operationName === 'batch');
    const own = spans.find((s) => s.operationName === 'ts-handler-work');
    expect(batch).toBeDefined();
    expect(own).toBeDefined();
    expect(parentOf(own!)).toBe(batch!.spanID);
    expect(tag(own!, 'app.rows')).toBe(2);
  });

  it.each(['/traced-py', '/traced-py-workers'])('runs a Python handler (%s) under the batch span: its own opentelemetry-api spans are children of it', async (path) => {
    const traceId = hex(16);
    const r = await post(`${url}${path}`, [{ x: 1 }, { x: 2 }, { x: 3 }], { traceparent: `00-${traceId}-${hex(8)}-01` });
    expect(r.body.predictions).toEqual([2, 3, 4]);
    const trace = await traceWith(traceId, 5);
    const batch = trace.spans.find((s) => s.operationName === 'batch');
    const own = trace.spans.find((s) => s.operationName === 'py-handler-work');
    expect(own).toBeDefined();
    expect(parentOf(own!)).toBe(batch!.spanID);
    expect(tag(own!, 'app.rows')).toBe(3);
    expect(trace.processes[own!.processID].serviceName).toBe('python-handler');
  });

  it('keeps the caller trace, hangs each request from its caller and links every batch to the requests it served', async () => {
    const traceId = hex(16);
    const callers: string[] = [];
    const parent = () => {
      const span = hex(8);
      callers.push(span);
      return `00-${traceId}-${span}-01`;
    };
    const sent = [
      ...[1, 2, 3, 4].map((x) => post(`${url}/double`, [{ x }], { traceparent: parent() }).then((r) => ({ kind: 'native', r }))),
      ...[5, 6, 7, 8].map((x) =>
        post(`${url}/v2/models/double/infer`, { inputs: [{ name: 'x', datatype: 'FP64', shape: [1], data: [x] }] }, { traceparent: parent() }).then((r) => ({
          kind: 'v2',
          r,
        })),
      ),
    ];
    const grpcs = [9, 10].map((x) => grpcInfer(grpc, parent(), x));
    const stream = sse(url, parent());
    const answers = await Promise.all(sent);
    for (const { r } of answers) {
      expect(r.status).toBe(200);
      // The answer names the server span: the caller's trace, a span of its own.
      const traceparent = r.headers.get('traceparent') ?? '';
      expect(traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      expect(callers).not.toContain(traceparent.split('-')[2]);
    }
    expect(answers[0].r.body.predictions).toEqual([2]);
    for (const out of await Promise.all(grpcs)) {
      expect(out).toContain(`traceparent: 00-${traceId}-`);
      expect(out).toContain('"modelName": "double"');
    }
    const streamed = await stream;
    expect(streamed.body).toContain('hi!');
    expect(streamed.headers.get('traceparent')).toMatch(new RegExp(`^00-${traceId}-`));

    // 11 server spans, their queue waits (10 unary), a batch and its handler call at least.
    const trace = await traceWith(traceId, 11 + 10 + 1 + 1);
    const spans = trace.spans;
    const byId = new Map(spans.map((s) => [s.spanID, s]));
    expect(Object.values(trace.processes).map((p) => p.serviceName)).toContain('redesmyn-test');

    const servers = spans.filter((s) => tag(s, 'span.kind') === 'server');
    expect(servers).toHaveLength(11);
    expect(servers.map(parentOf).sort()).toEqual([...callers].sort());
    const protocols = servers.map((s) => tag(s, 'redesmyn.protocol')).sort();
    expect(protocols).toEqual(['native', 'native', 'native', 'native', 'native', 'v2-grpc', 'v2-grpc', 'v2-rest', 'v2-rest', 'v2-rest', 'v2-rest']);
    for (const s of servers) expect(tag(s, 'redesmyn.model')).toBe(s.operationName.includes('words') ? 'words' : 'double');
    // The stream is one span, its steps events of it.
    const streamSpan = servers.find((s) => tag(s, 'redesmyn.model') === 'words')!;
    const steps = streamSpan.logs.filter((l) => l.fields.some((f) => f.key === 'event' && f.value === 'step'));
    expect(steps.length).toBeGreaterThanOrEqual(1);
    expect(steps[0].fields.find((f) => f.key === 'redesmyn.chunks')?.value).toBe(1);

    const unary = servers.filter((s) => tag(s, 'redesmyn.model') === 'double');
    expect(unary).toHaveLength(10);
    const batches = new Set<string>();
    for (const request of unary) {
      expect(tag(request, 'redesmyn.rows')).toBe(1);
      const batchId = tag(request, 'redesmyn.batch.span_id') as string;
      const batch = byId.get(batchId);
      expect(batch?.operationName).toBe('batch');
      // The batch is the child of the first request it serves and links the others;
      // the request's queue wait is its child.
      expect([parentOf(batch!), ...linksOf(batch!)]).toContain(request.spanID);
      expect(spans.some((s) => s.operationName === 'queue' && parentOf(s) === request.spanID)).toBe(true);
      batches.add(batchId);
    }
    // Concurrent requests shared batches, each batch tied to all it served and only those.
    expect(batches.size).toBeLessThan(unary.length);
    let linked = 0;
    for (const id of batches) {
      const batch = byId.get(id)!;
      const served = [parentOf(batch), ...linksOf(batch)];
      linked += served.length;
      expect(tag(batch, 'redesmyn.batch.requests')).toBe(served.length);
      expect(spans.some((s) => s.operationName === 'handler' && parentOf(s) === id)).toBe(true);
    }
    expect(linked).toBe(unary.length);
  });
});

describe('sampling, a collector that is down, the environment, bad settings', () => {
  it('exports nothing at sampling 0', async () => {
    const { server, url } = await serve([doubled()], {
      telemetry: { enabled: true, endpoint: jaeger.otlpHttp, sampler: 'traceidratio', samplerArg: 0, exportDelayMs: 50 },
    });
    try {
      const r = await post(`${url}/double`, [{ x: 1 }]);
      expect(r.status).toBe(200);
      const traceId = (r.headers.get('traceparent') ?? '').split('-')[1];
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(r.headers.get('traceparent')).toMatch(/-00$/); // not sampled
      await new Promise((done) => setTimeout(done, 1000));
      expect(await jaeger.trace(traceId)).toBeUndefined();
      expect(await metric(url, 'redesmyn_trace_spans_exported_total')).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('loses only spans when the collector is down, and counts them', async () => {
    // A port nothing listens on.
    const { server, url } = await serve([doubled()], {
      telemetry: { enabled: true, endpoint: 'http://127.0.0.1:9', exportDelayMs: 50 },
    });
    try {
      const answers = await Promise.all([1, 2, 3, 4, 5].map((x) => post(`${url}/double`, [{ x }])));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
      expect(answers.map((a) => a.body.predictions[0])).toEqual([2, 4, 6, 8, 10]);
      await until(async () => (await metric(url, 'redesmyn_trace_spans_failed_total')) > 0, 20_000, 100);
      expect(await metric(url, 'redesmyn_trace_spans_exported_total')).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('turns on with OTEL_TRACES_EXPORTER=otlp and the standard variables (OTLP over gRPC)', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpGrpc,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_SERVICE_NAME: 'redesmyn-from-env',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    try {
      const { server, url } = await serve([doubled()]);
      try {
        const traceId = hex(16);
        const r = await post(`${url}/double`, [{ x: 1 }], { traceparent: `00-${traceId}-${hex(8)}-01` });
        expect(r.status).toBe(200);
        const trace = await traceWith(traceId, 4);
        expect(Object.values(trace.processes).map((p) => p.serviceName)).toContain('redesmyn-from-env');
      } finally {
        await server.stop();
      }
    } finally {
      process.env = saved;
    }
  });

  it('refuses to start with an unparsable endpoint or an unknown sampler, naming the option', async () => {
    const cases: [object, RegExp][] = [
      [{ enabled: true, endpoint: 'not a url' }, /telemetry\.endpoint/],
      [{ enabled: true, sampler: 'sometimes' }, /telemetry\.sampler.*unknown sampler/],
      [{ enabled: true, protocol: 'udp' }, /telemetry\.protocol/],
    ];
    for (const [telemetry, message] of cases) {
      const server = new Server({ host: '127.0.0.1', port: 0, telemetry: telemetry as never });
      server.register(doubled());
      await expect(server.serve()).rejects.toThrow(message);
    }
  });
});
