import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Endpoint, PredictionError, Schema, Server } from '../src';
import { post } from './helpers';

const A = new Schema({ a: Schema.f64() });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Sample = { labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string };
type MetricFamily = { name: string; type: string; metrics: Sample[] };

describe('Prometheus metrics, EMF and telemetry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'redesmyn-emf-'));
  const emfFile = join(dir, 'emf.jsonl');
  const ok = new Endpoint({ path: '/ok', schema: A, batch: { maxDelayMs: 1 }, handler: (b) => Array.from(b.columns.a) });
  const fail = new Endpoint({
    path: '/fail',
    schema: A,
    handler: () => {
      throw new Error('nope');
    },
  });
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = new Server({
      port: 0,
      metrics: { emf: { namespace: 'redesmyn-test', dimensions: { Service: 'ops' }, output: emfFile, intervalMs: 200 } },
    });
    server.register(ok).register(fail);
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts requests per endpoint and status, in a format Prometheus parsers read', async () => {
    for (let i = 0; i < 7; i++) expect((await post(`${url}/ok`, [{ a: i }])).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await post(`${url}/ok`, [{ a: 'x' }])).status).toBe(422);
    for (let i = 0; i < 2; i++) expect((await post(`${url}/fail`, [{ a: 1 }])).status).toBe(500);
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const classic = await res.text();
    const families = parsePrometheus(classic) as MetricFamily[];
    const family = (name: string) => families.find((f) => f.name === name)!;
    const requests = family('redesmyn_requests_total');
    expect(requests.type).toBe('COUNTER');
    const count = (endpoint: string, status: string) =>
      Number(requests.metrics.find((m) => m.labels?.endpoint === endpoint && m.labels?.status === status)?.value ?? 0);
    expect(count('/ok', '200')).toBe(7);
    expect(count('/ok', '422')).toBe(3);
    expect(count('/fail', '500')).toBe(2);
    expect(family('redesmyn_request_duration_seconds').type).toBe('HISTOGRAM');
    expect(family('redesmyn_batch_size').type).toBe('HISTOGRAM');
    // The parser keeps only buckets of labelled histograms: read counts from the text.
    expect(classic).toMatch(/^redesmyn_request_duration_seconds_count\{endpoint="\/ok"\} 10$/m);
    expect(classic).toMatch(/^redesmyn_batch_size_count\{endpoint="\/ok"\} 7$/m);
    for (const name of ['redesmyn_queue_duration_seconds', 'redesmyn_handler_duration_seconds', 'redesmyn_queue_depth', 'redesmyn_in_flight']) {
      expect(family(name), name).toBeDefined();
    }
    expect(Number(family('redesmyn_in_flight').metrics.find((m) => m.labels?.endpoint === '/ok')!.value)).toBe(0);
    // Prometheus itself asks for OpenMetrics.
    const open = await fetch(`${url}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5' } });
    expect(open.headers.get('content-type')).toMatch(/^application\/openmetrics-text/);
    const text = await open.text();
    expect(text).toContain('# TYPE redesmyn_requests counter');
    expect(text.trimEnd().endsWith('# EOF')).toBe(true);
  });

  it('writes EMF documents that follow the specification', async () => {
    await post(`${url}/ok`, [{ a: 1 }, { a: 2 }]);
    let lines: string[] = [];
    for (let i = 0; i < 50 && lines.length === 0; i++) {
      await sleep(100);
      try {
        lines = readFileSync(emfFile, 'utf8').trim().split('\n').filter(Boolean);
      } catch {
        // not written yet
      }
    }
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const doc = JSON.parse(line);
      // The spec: a root object with "_aws" holding Timestamp (ms since epoch)
      // and CloudWatchMetrics, an ARRAY of directives; each directive has a
      // Namespace, Dimensions (an array of dimension sets, each an array of at
      // most 30 names whose values are strings on the root) and Metrics (at most
      // 100 MetricDefinitions with a Name, and a Unit from the CloudWatch list),
      // each Name's value on the root being a number or an array of at most 100 numbers.
      expect(typeof doc._aws.Timestamp).toBe('number');
      expect(Math.abs(doc._aws.Timestamp - Date.now())).toBeLessThan(60_000);
      expect(Array.isArray(doc._aws.CloudWatchMetrics)).toBe(true);
      for (const directive of doc._aws.CloudWatchMetrics) {
        expect(directive.Namespace).toBe('redesmyn-test');
        expect(Array.isArray(directive.Dimensions)).toBe(true);
        for (const set of directive.Dimensions) {
          expect(set.length).toBeLessThanOrEqual(30);
          for (const name of set) expect(typeof doc[name]).toBe('string');
        }
        expect(directive.Dimensions).toEqual([['Endpoint', 'Service']]);
        expect(directive.Metrics.length).toBeLessThanOrEqual(100);
        for (const metric of directive.Metrics) {
          expect(typeof metric.Name).toBe('string');
          expect(['Count', 'Milliseconds', 'Seconds', 'Bytes', 'None', 'Count/Second']).toContain(metric.Unit);
          const value = doc[metric.Name];
          if (Array.isArray(value)) {
            expect(value.length).toBeLessThanOrEqual(100);
            for (const v of value) expect(typeof v).toBe('number');
          } else {
            expect(typeof value).toBe('number');
          }
        }
      }
    }
    const okDocs = lines.map((l) => JSON.parse(l)).filter((d) => d.Endpoint === '/ok');
    expect(okDocs.reduce((n, d) => n + d.Requests, 0)).toBeGreaterThanOrEqual(1);
    expect(okDocs.some((d) => d.Service === 'ops' && Array.isArray(d.Latency))).toBe(true);
  });

  it('answers with server-timing and batch-size headers', async () => {
    const res = await post(`${url}/ok`, [{ a: 1 }], { 'x-request-id': 'trace-me' });
    expect(res.headers.get('x-request-id')).toBe('trace-me');
    expect(res.headers.get('server-timing')).toMatch(/^queue;dur=[\d.]+, handler;dur=[\d.]+, total;dur=[\d.]+$/);
    expect(Number(res.headers.get('x-batch-size'))).toBeGreaterThanOrEqual(1);
  });
});

describe('overload, deadlines and disconnects', () => {
  const seenOnSlow: number[] = [];
  const slow = new Endpoint({
    path: '/slow',
    schema: A,
    batch: { maxSize: 10, maxDelayMs: 1, maxQueue: 50 },
    handler: async (b) => {
      await sleep(20);
      return Array.from(b.columns.a);
    },
  });
  const seenOnDeadline: number[] = [];
  const deadline = new Endpoint({
    path: '/deadline',
    schema: A,
    batch: { maxSize: 1, maxDelayMs: 0, timeoutMs: 50 },
    handler: async (b) => {
      seenOnDeadline.push(...b.columns.a);
      await sleep(200);
      return Array.from(b.columns.a);
    },
  });
  const seenOnQueued: number[] = [];
  const queued = new Endpoint({
    path: '/queued',
    schema: A,
    batch: { maxSize: 1, maxDelayMs: 0 },
    handler: async (b) => {
      seenOnQueued.push(...b.columns.a);
      await sleep(300);
      return Array.from(b.columns.a);
    },
  });
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = new Server({ port: 0 });
    server.register(slow).register(deadline).register(queued);
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server.stop());

  it('sheds load past maxQueue with 503 and Retry-After, answers the rest, and stays healthy', async () => {
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => post(`${url}/slow`, [{ a: i }])));
    const refused = replies.filter((r) => r.status === 503);
    const served = replies.filter((r) => r.status === 200);
    expect(refused.length + served.length).toBe(1000);
    expect(refused.length).toBeGreaterThan(0);
    expect(served.length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(r.body.error).toMatch(/queue .* is full/);
    }
    const health = await fetch(`${url}/health/ready`);
    expect(health.status).toBe(200);
    expect((await post(`${url}/slow`, [{ a: 5 }])).body.predictions).toEqual([5]);
  });

  it('answers 504 past timeoutMs and never hands expired requests to the handler', async () => {
    seenOnDeadline.length = 0;
    const replies = await Promise.all([1, 2, 3, 4].map((a) => post(`${url}/deadline`, [{ a }])));
    expect(replies.map((r) => r.status)).toEqual([504, 504, 504, 504]);
    expect(replies[0].body.error).toMatch(/deadline of 50ms passed/);
    await sleep(900);
    // Whichever arrived first ran (and overran); the others expired while it
    // ran and were dropped. Arrival order over four connections is not fixed.
    expect(seenOnDeadline).toHaveLength(1);
    expect([1, 2, 3, 4]).toContain(seenOnDeadline[0]);
  });

  it('drops a queued request whose client disconnected', async () => {
    seenOnQueued.length = 0;
    const first = post(`${url}/queued`, [{ a: 1 }]);
    await sleep(50); // the handler is now busy with a = 1
    await new Promise<void>((resolve) => {
      const req = request(`${url}/queued`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('error', () => resolve());
      req.end(JSON.stringify([{ a: 2 }]));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    const third = post(`${url}/queued`, [{ a: 3 }]);
    expect((await first).status).toBe(200);
    expect((await third).body.predictions).toEqual([3]);
    expect(seenOnQueued).toEqual([1, 3]);
  });
});

describe('in-process predictions', () => {
  const sizes: number[] = [];
  const double = new Endpoint({
    path: '/double/{factor}',
    schema: A,
    batch: { maxSize: 64, maxDelayMs: 10 },
    handler: (b, ctx) => {
      sizes.push(b.length);
      return Array.from(b.columns.a, (a) => a * Number(ctx.params.factor));
    },
  });
  let server: Server;
  beforeAll(async () => {
    server = new Server({ port: 0 });
    server.register(double);
    await server.serve();
  });
  afterAll(() => server.stop());

  it('batches 100 concurrent predict() calls and gives each its own predictions', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => double.predict<number>([{ a: i + 1 }, { a: -i - 1 }], { params: { factor: '3' } })),
    );
    results.forEach((r, i) => {
      expect(r.predictions).toEqual([3 * (i + 1), -3 * (i + 1)]);
      expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.totalMs).toBeGreaterThanOrEqual(r.handlerMs);
    });
    expect(Math.max(...results.map((r) => r.batchSize))).toBeGreaterThan(2);
    expect(Math.max(...sizes)).toBeGreaterThan(2);
  });

  it('rejects bad records with the status HTTP would give', async () => {
    const err = await double.predict([{ a: 'x' } as never], { params: { factor: '1' } }).catch((e) => e);
    expect(err).toBeInstanceOf(PredictionError);
    expect(err.status).toBe(422);
    expect(err.details).toEqual([{ record: 0, field: 'a', message: 'expected f64, found the string "x"' }]);
    const missing = await double.predict([{ a: 1 }]).catch((e) => e);
    expect(missing.status).toBe(422);
    expect(missing.message).toMatch(/missing path parameters: factor/);
  });
});

describe('structured logs', () => {
  it('logs one JSON line per request with its id, endpoint, status and timings', async () => {
    const child = spawn(join(__dirname, '..', 'node_modules/.bin/tsx'), [join(__dirname, 'fixtures/serve-and-stop.ts')], {
      env: { ...process.env, STOP_ON_INPUT: '1', REDESMYN_LOG: 'info' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const port = await new Promise<number>((resolve) => child.stdout!.on('data', (d) => resolve(JSON.parse(String(d).split('\n')[0]).port)));
    await post(`http://127.0.0.1:${port}/p`, [{ a: 1 }], { 'x-request-id': 'log-me' });
    await post(`http://127.0.0.1:${port}/p`, [{ a: 'bad' }], { 'x-request-id': 'log-me-too' });
    child.stdin!.write('stop\n');
    await new Promise((r) => child.on('exit', r));
    const lines = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const ok = lines.find((l) => l.id === 'log-me');
    expect(ok).toMatchObject({ level: 'INFO', target: 'redesmyn::request', endpoint: '/p', status: 200 });
    expect(ok.timing).toMatch(/queue;dur=/);
    expect(typeof ok.total_ms).toBe('number');
    expect(lines.find((l) => l.id === 'log-me-too')).toMatchObject({ status: 422 });
  });
});
