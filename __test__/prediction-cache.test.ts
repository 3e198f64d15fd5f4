import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, FsClient, Schema, Server, readModelSettings } from '../src';
import { post } from './helpers';

const X = new Schema({ x: Schema.f64() });

/** A handler that doubles `x` and remembers every row and batch it was given. */
function counting() {
  const rows: number[] = [];
  const batches: number[] = [];
  const handler = (batch: { length: number; columns: { x: Float64Array } }) => {
    batches.push(batch.length);
    rows.push(...batch.columns.x);
    return Array.from(batch.columns.x, (x) => x * 2);
  };
  return { rows, batches, handler, reset: () => ((rows.length = 0), (batches.length = 0)) };
}

const records = (xs: number[]) => xs.map((x) => ({ x }));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** A metric's value for one endpoint, from the Prometheus text at `/metrics`. */
async function metric(url: string, name: string, endpoint: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{endpoint="${endpoint}"}`));
  if (!line) throw new Error(`no ${name} for ${endpoint} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('prediction cache', () => {
  const plain = counting();
  const ttl = counting();
  const bounded = counting();
  const scaledRows: number[] = [];
  const artifacts = mkdtempSync(join(tmpdir(), 'redesmyn-predcache-'));
  const double = new Endpoint({
    path: '/double',
    schema: X,
    batch: { maxDelayMs: 30, maxSize: 1024 },
    predictionCache: { maxEntries: 10_000 },
    handler: plain.handler,
  });
  const expiring = new Endpoint({
    path: '/expiring',
    schema: X,
    predictionCache: { maxEntries: 100, ttlMs: 200 },
    handler: ttl.handler,
  });
  const small = new Endpoint({
    path: '/bounded',
    schema: X,
    batch: { maxSize: 2000 },
    predictionCache: { maxEntries: 500 },
    handler: bounded.handler,
  });
  const scaled = new Endpoint({
    path: '/scaled/{run}',
    schema: X,
    predictionCache: { maxEntries: 100 },
    cache: new CacheConfig({
      client: new FsClient({ basePath: artifacts, pathTemplate: '{run}.json' }),
      loadModel: async (path) => JSON.parse((await import('node:fs')).readFileSync(path, 'utf8')) as { scale: number },
    }),
    handler: (batch, { model }) => {
      scaledRows.push(...batch.columns.x);
      return Array.from(batch.columns.x, (x) => x * model.scale);
    },
  });
  const uncached = counting();
  const off = new Endpoint({ path: '/off', schema: X, handler: uncached.handler });
  let server: Server;
  let url: string;

  beforeAll(async () => {
    writeFileSync(join(artifacts, '1.json'), JSON.stringify({ scale: 10 }));
    server = new Server({ host: '127.0.0.1', port: 0, workers: 2 });
    for (const e of [double, expiring, small, scaled, off]) server.register(e as Endpoint<any, any, any>);
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server.stop();
    rmSync(artifacts, { recursive: true, force: true });
  });

  it('answers repeated records without calling the handler', async () => {
    const first = await post(`${url}/double`, records([1, 2, 3]));
    expect(first.body.predictions).toEqual([2, 4, 6]);
    expect(first.headers.get('x-cached-rows')).toBeNull();
    const again = await post(`${url}/double`, records([3, 1, 2]));
    expect(again.status).toBe(200);
    expect(again.body.predictions).toEqual([6, 2, 4]);
    expect(again.headers.get('x-cached-rows')).toBe('3');
    expect(again.headers.get('x-batch-size')).toBe('0');
    expect(plain.rows).toEqual([1, 2, 3]);
    const off1 = await post(`${url}/off`, records([1]));
    const off2 = await post(`${url}/off`, records([1]));
    expect([off1.body.predictions, off2.body.predictions]).toEqual([[2], [2]]);
    expect(uncached.rows).toEqual([1, 1]);
    expect(double.predictionCache!.stats()).toMatchObject({ hits: 3, misses: 3, entries: 3 });
    expect(await metric(url, 'redesmyn_prediction_cache_hits_total', '/double')).toBe(3);
    expect(await metric(url, 'redesmyn_prediction_cache_misses_total', '/double')).toBe(3);
  });

  it('sends only the uncached half of a request to the handler, and answers in order', async () => {
    plain.reset();
    const evens = range(100, 164).filter((x) => x % 2 === 0);
    await post(`${url}/double`, records(evens));
    plain.reset();
    const all = range(100, 164);
    const reply = await post(`${url}/double`, records(all));
    expect(reply.body.predictions).toEqual(all.map((x) => x * 2));
    expect(reply.headers.get('x-cached-rows')).toBe('32');
    expect(plain.rows).toEqual(all.filter((x) => x % 2 === 1));
    expect(plain.batches).toEqual([32]);
  });

  it('gives every concurrent client its full answer while their uncached rows share batches', async () => {
    plain.reset();
    // Seed: rows 1000..1639 with an even offset are known.
    await post(`${url}/double`, records(range(0, 640).filter((i) => i % 2 === 0).map((i) => 1000 + i)));
    plain.reset();
    const clients = range(0, 10).map((c) => range(0, 64).map((i) => 1000 + c * 64 + i));
    const replies = await Promise.all(clients.map((xs) => post(`${url}/double`, records(xs))));
    replies.forEach((reply, c) => {
      expect(reply.status).toBe(200);
      expect(reply.body.predictions).toEqual(clients[c].map((x) => x * 2));
      expect(reply.headers.get('x-cached-rows')).toBe('32');
    });
    // Only the odd rows ran, each once, and batches took rows of several requests.
    expect([...plain.rows].sort((a, b) => a - b)).toEqual(clients.flat().filter((x) => x % 2 === 1));
    expect(Math.max(...plain.batches)).toBeGreaterThan(32);
  });

  it('runs a record again once its answer has expired', async () => {
    await post(`${url}/expiring`, records([7]));
    await post(`${url}/expiring`, records([7]));
    expect(ttl.rows).toEqual([7]);
    await new Promise((r) => setTimeout(r, 400));
    const late = await post(`${url}/expiring`, records([7]));
    expect(late.body.predictions).toEqual([14]);
    expect(ttl.rows).toEqual([7, 7]);
  });

  it('forgets answers when the model artifact is reloaded, and keys by path parameters', async () => {
    expect((await post(`${url}/scaled/1`, records([1, 2]))).body.predictions).toEqual([10, 20]);
    expect((await post(`${url}/scaled/1`, records([1, 2]))).body.predictions).toEqual([10, 20]);
    expect(scaledRows).toEqual([1, 2]);
    // Forced reload of the same artifact: answers are computed again.
    await scaled.cache!.refresh(true);
    expect((await post(`${url}/scaled/1`, records([1, 2]))).body.predictions).toEqual([10, 20]);
    expect(scaledRows).toEqual([1, 2, 1, 2]);
    // A changed artifact: the new model answers, not the cache.
    writeFileSync(join(artifacts, '1.json'), JSON.stringify({ scale: 100 }));
    const later = new Date(Date.now() + 5_000);
    (await import('node:fs')).utimesSync(join(artifacts, '1.json'), later, later);
    await scaled.cache!.refresh();
    expect((await post(`${url}/scaled/1`, records([1, 2]))).body.predictions).toEqual([100, 200]);
    // Another parameter value is another model variant: no hit across them.
    writeFileSync(join(artifacts, '2.json'), JSON.stringify({ scale: 3 }));
    expect((await post(`${url}/scaled/2`, records([1]))).body.predictions).toEqual([3]);
    expect(scaledRows).toEqual([1, 2, 1, 2, 1, 2, 1]);
  });

  it('holds at most maxEntries rows under 100 000 distinct records', async () => {
    for (let start = 0; start < 100_000; start += 2000) {
      const reply = await post(`${url}/bounded`, records(range(start, start + 2000)));
      expect(reply.status).toBe(200);
      expect(small.predictionCache!.stats().entries).toBeLessThanOrEqual(500);
    }
    expect(bounded.rows.length).toBe(100_000);
    const stats = small.predictionCache!.stats();
    expect(stats.entries).toBeGreaterThan(0);
    expect(stats.entries).toBeLessThanOrEqual(500);
    const gauge = await metric(url, 'redesmyn_prediction_cache_entries', '/bounded');
    expect(gauge).toBeLessThanOrEqual(500);
    expect(gauge).toBeGreaterThan(0);
    expect(await metric(url, 'redesmyn_prediction_cache_bytes', '/bounded')).toBeGreaterThan(0);
  });

  it('answers V2 REST inference from the same cache as native requests', async () => {
    plain.reset();
    await post(`${url}/double`, records([5000, 5001]));
    const v2 = await post(`${url}/v2/models/double/infer`, {
      inputs: [{ name: 'x', datatype: 'FP64', shape: [3], data: [5001, 5002, 5000] }],
    });
    expect(v2.status).toBe(200);
    expect(v2.body.outputs[0].data).toEqual([10002, 10004, 10000]);
    expect(plain.rows).toEqual([5000, 5001, 5002]);
    const native = await post(`${url}/double`, records([5002]));
    expect(native.body.predictions).toEqual([10004]);
    expect(plain.rows).toEqual([5000, 5001, 5002]);
  });

  it('refuses bad settings and a streaming endpoint with a cache', () => {
    expect(
      () =>
        new Endpoint({
          path: '/s',
          schema: X,
          stream: true,
          predictionCache: { maxEntries: 1 },
          handler: async function* () {},
        }),
    ).toThrow(/streaming endpoint cannot have a predictionCache/);
    const bad = new Server({ port: 0 });
    expect(() => bad.register(new Endpoint({ path: '/b', schema: X, predictionCache: { maxEntries: 0.5 }, handler: () => [] }))).toThrow(
      /predictionCache.maxEntries must be a whole number/,
    );
  });
});

describe('prediction cache in a model repository (model-settings.json `cache`)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'redesmyn-predcache-repo-'));
  const settings = (cache: unknown) =>
    JSON.stringify({ runtime: 'typescript', parameters: { uri: 'model.mjs' }, inputs: [{ name: 'x', datatype: 'FP64', shape: [-1] }], cache });
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    mkdirSync(join(dir, 'tripled'));
    writeFileSync(join(dir, 'tripled', 'model-settings.json'), settings({ maxEntries: 10, ttlMs: 60_000 }));
    writeFileSync(join(dir, 'tripled', 'model.mjs'), 'export function predict(batch) { return Array.from(batch.columns.x, (x) => x * 3); }\n');
    // As a user runs it: `redesmyn serve <dir>` (the built CLI).
    child = spawn(process.execPath, [join(__dirname, '..', 'dist', 'cli.js'), 'serve', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    url = await new Promise<string>((done, fail) => {
      let out = '';
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n').find((l) => l.includes('"message":"serving"'));
        if (line) done(`http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.on('exit', (code) => fail(new Error(`redesmyn serve exited (${code}):\n${out}`)));
    });
  });
  afterAll(() => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the model with the cache its settings ask for', async () => {
    const first = await post(`${url}/predictions/tripled`, [{ x: 1 }, { x: 2 }]);
    expect(first.body).toMatchObject({ predictions: [3, 6] });
    expect(first.headers.get('x-batch-size')).toBe('2');
    const again = await post(`${url}/predictions/tripled`, [{ x: 2 }, { x: 1 }]);
    expect(again.body.predictions).toEqual([6, 3]);
    expect(again.headers.get('x-cached-rows')).toBe('2');
    expect(again.headers.get('x-batch-size')).toBe('0');
    expect(await metric(url, 'redesmyn_prediction_cache_hits_total', '/predictions/tripled')).toBe(2);
  });

  it('refuses a bad cache setting, naming the file and the key', () => {
    const file = join(dir, 'bad-settings.json');
    writeFileSync(file, settings({ maxEntries: 0 }));
    expect(() => readModelSettings(file)).toThrow(`${file}: 'cache.maxEntries': expected a positive integer, got 0`);
    writeFileSync(file, settings({ maxEntries: 5, size: 1 }));
    expect(() => readModelSettings(file)).toThrow(`${file}: 'cache.size': unknown key; expected one of: maxEntries, maxBytes, ttlMs`);
    writeFileSync(file, settings({ ttlMs: 5 }));
    expect(() => readModelSettings(file)).toThrow(`${file}: 'cache.maxEntries': missing`);
    writeFileSync(file, settings({ maxEntries: 5, ttlMs: -1 }));
    expect(() => readModelSettings(file)).toThrow(`${file}: 'cache.ttlMs': expected a number of milliseconds > 0, got -1`);
    writeFileSync(file, settings(true));
    expect(() => readModelSettings(file)).toThrow(`${file}: 'cache': expected an object`);
  });
});
