import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, FsClient, Schema, Server, py } from '../src';
import { post, until } from './helpers';

const root = join(__dirname, '..');
const A = new Schema({ a: Schema.f64() });
const python = { venv: join(root, '.venv'), path: [join(__dirname, 'python')] };

/** A model directory whose artifacts are JSON: `{ "scale": n }`. */
function modelDir() {
  const dir = mkdtempSync(join(tmpdir(), 'redesmyn-models-'));
  const write = (run: string, model: string, content: string) => {
    mkdirSync(join(dir, 'm', run, model), { recursive: true });
    writeFileSync(join(dir, 'm', run, model, 'model.json'), content);
  };
  return { dir, write, remove: () => rmSync(dir, { recursive: true, force: true }) };
}


describe('model cache with a TypeScript loader and FsClient', () => {
  const models = modelDir();
  const loads: string[] = [];
  let liveModels: WeakRef<object>[] = [];
  const scaled = (path: string, cache: Partial<ConstructorParameters<typeof CacheConfig>[0]> = {}, delayMs = 0) =>
    new Endpoint({
      path,
      schema: A,
      batch: { maxDelayMs: 2 },
      cache: new CacheConfig({
        client: new FsClient({ basePath: models.dir, pathTemplate: 'm/{run}/{model}/model.json' }),
        loadModel: async (localPath, params) => {
          loads.push(`${params.run}/${params.model}`);
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          const { readFile } = await import('node:fs/promises');
          const model = JSON.parse(await readFile(localPath, 'utf8')) as { scale: number };
          liveModels.push(new WeakRef(model));
          return model;
        },
        maxSize: 2,
        retryBackoffMs: 100,
        params: { run: /^\d+$/ },
        ...cache,
      }),
      handler: (batch, ctx) => Array.from(batch.columns.a, (a) => a * ctx.model.scale),
    });
  const main = scaled('/p/{run}/{model}', {}, 30);
  const refreshing = scaled('/r/{run}/{model}', { refresh: { intervalMs: 100 } });
  let server: Server;
  let url: string;

  beforeAll(async () => {
    for (const [run, model, scale] of [['1', '1', 1], ['1', '2', 2], ['1', '3', 3], ['2', '1', 10]] as const) {
      models.write(run, model, JSON.stringify({ scale }));
    }
    server = new Server({ port: 0 });
    server.register(main).register(refreshing);
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server.stop();
    models.remove();
  });

  it('loads lazily on the first request of a key, once for 100 concurrent requests', async () => {
    expect(loads).toEqual([]);
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => post(`${url}/p/1/2`, [{ a: i }])));
    expect(replies.map((r) => r.status)).toEqual(Array(100).fill(200));
    expect(replies.map((r) => r.body.predictions[0])).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));
    expect(loads).toEqual(['1/2']);
    expect(await main.cache!.keys()).toEqual([{ run: '1', model: '2' }]);
    const stats = await main.cache!.stats();
    expect(stats.loads).toBe(1);
    expect(stats.size).toBe(1);
  });

  it('evicts the least recently used model and releases it', async () => {
    loads.length = 0;
    liveModels = [];
    for (const path of ['1/1', '1/3']) expect((await post(`${url}/p/${path}`, [{ a: 1 }])).status).toBe(200);
    // Now 1/2 (touched first, before 1/1 and 1/3) was least recently used.
    expect(await main.cache!.keys()).toEqual([
      { run: '1', model: '1' },
      { run: '1', model: '3' },
    ]);
    expect((await main.cache!.stats()).evictions).toBeGreaterThanOrEqual(1);
    // Touch 1/1, then load 2/1: 1/3 goes.
    await post(`${url}/p/1/1`, [{ a: 1 }]);
    await post(`${url}/p/2/1`, [{ a: 1 }]);
    expect(await main.cache!.keys()).toEqual([
      { run: '1', model: '1' },
      { run: '2', model: '1' },
    ]);
    // The evicted model's JavaScript object is released (collectable).
    await until(async () => {
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((r) => setTimeout(r, 10));
      return liveModels[1].deref() === undefined;
    });
    expect(liveModels[0].deref()).toBeDefined();
  });

  it('answers a missing artifact with 404 naming the parameters', async () => {
    const res = await post(`${url}/p/9/9`, [{ a: 1 }]);
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('no model for run=9, model=9');
  });

  it('answers a failing loader with 503 and Retry-After, then recovers once the artifact is fixed', async () => {
    models.write('3', '1', '{ not json');
    const res = await post(`${url}/p/3/1`, [{ a: 1 }]);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.body.error).toMatch(/could not be loaded: SyntaxError/);
    models.write('3', '1', JSON.stringify({ scale: 5 }));
    await new Promise((r) => setTimeout(r, 150));
    const ok = await post(`${url}/p/3/1`, [{ a: 2 }]);
    expect(ok.status).toBe(200);
    expect(ok.body.predictions).toEqual([10]);
  });

  it('refuses traversal and bad values before touching anything', async () => {
    loads.length = 0;
    const attempts = [
      '/p/1/..%2F..%2Fetc',
      '/p/1/%2e%2e',
      '/p/1/..',
      '/p/1/..%5C..',
      '/p/1/a%00b',
      '/p/1/%2Fetc%2Fpasswd',
      '/p/x/1', // not matching the run pattern
      '/p/1/%20',
    ];
    for (const path of attempts) {
      const res = await post(`${url}${path}`, [{ a: 1 }]);
      expect([404, 422], path).toContain(res.status);
      expect(res.body.error, path).toBeTypeOf('string');
    }
    expect(loads).toEqual([]);
    expect((await post(`${url}/p/x/1`, [{ a: 1 }])).body.error).toBe(`path parameter 'run' = "x" does not match /^\\d+$/`);
  });

  it('refreshes a changed artifact in the background while requests keep succeeding, and keeps the old model when a refresh fails', async () => {
    models.write('5', '1', JSON.stringify({ scale: 1 }));
    expect((await post(`${url}/r/5/1`, [{ a: 3 }])).body.predictions).toEqual([3]);
    models.write('5', '1', JSON.stringify({ scale: 7 }));
    const statuses: number[] = [];
    await until(async () => {
      const res = await post(`${url}/r/5/1`, [{ a: 3 }]);
      statuses.push(res.status);
      return res.body.predictions?.[0] === 21;
    });
    expect(statuses.every((s) => s === 200)).toBe(true);
    const before = await refreshing.cache!.stats();
    models.write('5', '1', 'broken');
    await until(async () => (await refreshing.cache!.stats()).refreshFailures > before.refreshFailures);
    const res = await post(`${url}/r/5/1`, [{ a: 3 }]);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual([21]);
  });

  it('refuses a template whose parameters differ from the path', () => {
    const server = new Server({ port: 0 });
    const bad = new Endpoint({
      path: '/x/{run}',
      schema: A,
      cache: new CacheConfig({ client: new FsClient({ basePath: models.dir, pathTemplate: 'm/{run}/{model}/model.json' }), loadModel: () => 1 }),
      handler: () => [1],
    });
    expect(() => server.register(bad)).toThrow(/must match the endpoint's path parameters/);
  });
});

describe('model cache with a Python loader', () => {
  const models = modelDir();
  let server: Server;
  let url: string;
  const iris = new Endpoint({
    path: '/iris/{run_id}/{model_id}',
    schema: new Schema({ sepal_length: Schema.f64(), sepal_width: Schema.f64(), petal_length: Schema.f64(), petal_width: Schema.f64() }),
    cache: new CacheConfig({
      client: new FsClient({ basePath: join(root, 'examples/iris/models'), pathTemplate: 'iris/{run_id}/{model_id}/model.joblib' }),
      loadModel: py.loader('joblib:load'),
      prefetch: true,
    }),
    handler: py.handler('test_handlers:predict_species'),
  });
  const tracked = new Endpoint({
    path: '/tracked/{run}/{model}',
    schema: A,
    cache: new CacheConfig({
      client: new FsClient({ basePath: models.dir, pathTemplate: 'm/{run}/{model}/model.json' }),
      loadModel: py.loader('test_handlers:load_tracked'),
      maxSize: 1,
      retryBackoffMs: 50,
    }),
    handler: py.handler('test_handlers:tracked_alive'),
  });

  beforeAll(async () => {
    models.write('1', 'a', 'A');
    models.write('1', 'b', 'B');
    models.write('1', 'c', 'broken');
    server = new Server({ port: 0, python });
    server.register(iris).register(tracked);
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server.stop();
    models.remove();
  });

  it('prefetches both iris variants before ready, and each predicts like scikit-learn', async () => {
    await until(async () => (await fetch(`${url}/health/ready`)).status === 200);
    expect(await iris.cache!.keys()).toEqual([
      { run_id: '1', model_id: '1' },
      { run_id: '1', model_id: '2' },
    ]);
    const script = `
import json, joblib, numpy as np
from sklearn.datasets import load_iris
X, _ = load_iris(return_X_y=True)
names = np.array(["setosa", "versicolor", "virginica"])
out = {m: names[joblib.load(f"examples/iris/models/iris/1/{m}/model.joblib").predict(X)].tolist() for m in ["1", "2"]}
print(json.dumps({"X": X.tolist(), **out}))`;
    const expected = JSON.parse(execFileSync(join(root, '.venv/bin/python'), ['-c', script], { cwd: root, encoding: 'utf8' }));
    const records = (expected.X as number[][]).map(([sepal_length, sepal_width, petal_length, petal_width]) => ({ sepal_length, sepal_width, petal_length, petal_width }));
    for (const m of ['1', '2']) {
      const res = await post(`${url}/iris/1/${m}`, records);
      expect(res.status).toBe(200);
      expect(res.body.predictions).toEqual(expected[m]);
    }
    expect((await iris.cache!.stats()).loads).toBe(2);
    expect((await post(`${url}/iris/1/3`, records.slice(0, 1))).status).toBe(404);
  });

  it('drops an evicted Python model', async () => {
    expect((await post(`${url}/tracked/1/a`, [{ a: 1 }])).body.predictions).toEqual(['A:1']);
    // maxSize 1: loading b evicts a, whose object Python then frees.
    const b = await post(`${url}/tracked/1/b`, [{ a: 1 }]);
    expect(b.body.predictions[0]).toMatch(/^B:[12]$/);
    await until(async () => (await post(`${url}/tracked/1/b`, [{ a: 1 }])).body.predictions[0] === 'B:1');
  });

  it('answers a Python loader exception with 503 and the message', async () => {
    const res = await post(`${url}/tracked/1/c`, [{ a: 1 }]);
    expect(res.status).toBe(503);
    expect(res.body.error).toMatch(/ValueError: broken artifact/);
  });
});
