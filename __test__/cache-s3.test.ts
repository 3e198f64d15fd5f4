// The model cache against a real S3-compatible server (versitygw, started
// here on a loopback port), through ObjectStoreClient.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, ObjectStoreClient, Schema, Server, py } from '../src';
import { post, until } from './helpers';
import { createBucket, putObject, startS3, type S3 } from './support/s3';

const root = join(__dirname, '..');
const A = new Schema({ a: Schema.f64() });


describe('model cache on S3-compatible object storage', () => {
  let s3: S3;
  let server: Server;
  let url: string;
  let cacheDir: string;
  const loads: string[] = [];
  let endpoint: Endpoint<{ a: ReturnType<typeof Schema.f64> }, '/s3/{run}/{model}', { scale: number }>;
  let iris: Endpoint<any, '/iris/{run_id}/{model_id}', unknown>;

  const client = (pathTemplate: string, prefix = 'models') =>
    new ObjectStoreClient({
      url: `s3://redesmyn-models/${prefix}`,
      pathTemplate,
      endpoint: s3.endpoint,
      region: s3.region,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      cacheDir,
    });
  const put = (key: string, body: string | Buffer) => putObject(s3, 'redesmyn-models', `models/${key}`, body);

  beforeAll(async () => {
    s3 = await startS3();
    await createBucket(s3, 'redesmyn-models');
    cacheDir = mkdtempSync(join(tmpdir(), 'redesmyn-s3-cache-'));
    for (const [run, model, scale] of [['1', '1', 1], ['1', '2', 2], ['1', '3', 3]] as const) {
      await put(`m/${run}/${model}/model.json`, JSON.stringify({ scale }));
    }
    for (const m of ['1', '2']) {
      await put(`iris/1/${m}/model.joblib`, readFileSync(join(root, `examples/iris/models/iris/1/${m}/model.joblib`)));
    }
    endpoint = new Endpoint({
      path: '/s3/{run}/{model}',
      schema: A,
      batch: { maxDelayMs: 2 },
      cache: new CacheConfig({
        client: client('m/{run}/{model}/model.json'),
        loadModel: async (localPath: string, params: Record<string, string>) => {
          loads.push(`${params.run}/${params.model}`);
          await new Promise((r) => setTimeout(r, 20));
          return JSON.parse(readFileSync(localPath, 'utf8')) as { scale: number };
        },
        maxSize: 2,
        refresh: { intervalMs: 100 },
        retryBackoffMs: 100,
      }),
      handler: (batch, ctx) => Array.from(batch.columns.a, (a) => a * ctx.model.scale),
    });
    iris = new Endpoint({
      path: '/iris/{run_id}/{model_id}',
      schema: new Schema({ sepal_length: Schema.f64(), sepal_width: Schema.f64(), petal_length: Schema.f64(), petal_width: Schema.f64() }),
      cache: new CacheConfig({
        client: client('iris/{run_id}/{model_id}/model.joblib'),
        loadModel: py.loader('joblib:load'),
        prefetch: true,
      }),
      handler: py.handler('test_handlers:predict_species'),
    });
    server = new Server({ port: 0, python: { venv: join(root, '.venv'), path: [join(__dirname, 'python')] } });
    server.register(endpoint).register(iris);
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  }, 20 * 60_000);

  afterAll(async () => {
    await server?.stop();
    await s3?.stop();
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  });

  it('prefetches what the template lists in the bucket, then serves each variant', async () => {
    await until(async () => (await fetch(`${url}/health/ready`)).status === 200);
    expect(await iris.cache!.keys()).toEqual([
      { run_id: '1', model_id: '1' },
      { run_id: '1', model_id: '2' },
    ]);
    const res = await post(`${url}/iris/1/2`, [{ sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 }]);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual(['virginica']);
  });

  it('downloads once for 100 concurrent first requests, atomically into the cache directory', async () => {
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => post(`${url}/s3/1/2`, [{ a: i }])));
    expect(replies.map((r) => r.status)).toEqual(Array(100).fill(200));
    expect(replies.map((r) => r.body.predictions[0])).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));
    expect(loads).toEqual(['1/2']);
    // No partial downloads are left behind.
    const files = readdirSync(cacheDir, { recursive: true }).map(String);
    expect(files.some((f) => f.includes('.download-'))).toBe(false);
    expect(files.some((f) => f.endsWith(join('m', '1', '2', 'model.json')))).toBe(true);
  });

  it('evicts the least recently used model', async () => {
    await post(`${url}/s3/1/1`, [{ a: 1 }]);
    await post(`${url}/s3/1/2`, [{ a: 1 }]);
    await post(`${url}/s3/1/3`, [{ a: 1 }]);
    expect(await endpoint.cache!.keys()).toEqual([
      { run: '1', model: '2' },
      { run: '1', model: '3' },
    ]);
    expect((await endpoint.cache!.stats()).evictions).toBeGreaterThanOrEqual(1);
  });

  it('answers a missing object with 404 and a failing loader with 503, then recovers', async () => {
    const missing = await post(`${url}/s3/7/7`, [{ a: 1 }]);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe('no model for run=7, model=7');
    await put('m/8/1/model.json', 'not json');
    const failing = await post(`${url}/s3/8/1`, [{ a: 1 }]);
    expect(failing.status).toBe(503);
    expect(failing.headers.get('retry-after')).toBeTruthy();
    await put('m/8/1/model.json', JSON.stringify({ scale: 4 }));
    await new Promise((r) => setTimeout(r, 150));
    const ok = await post(`${url}/s3/8/1`, [{ a: 2 }]);
    expect(ok.status).toBe(200);
    expect(ok.body.predictions).toEqual([8]);
  });

  it('refreshes when the ETag changes, and keeps the old model when the new one fails to load', async () => {
    expect((await post(`${url}/s3/1/3`, [{ a: 1 }])).body.predictions).toEqual([3]);
    await put('m/1/3/model.json', JSON.stringify({ scale: 30 }));
    await until(async () => (await post(`${url}/s3/1/3`, [{ a: 1 }])).body.predictions?.[0] === 30);
    const before = await endpoint.cache!.stats();
    await put('m/1/3/model.json', 'broken');
    await until(async () => (await endpoint.cache!.stats()).refreshFailures > before.refreshFailures);
    const res = await post(`${url}/s3/1/3`, [{ a: 1 }]);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual([30]);
  });

  it('never lets a parameter reach outside the prefix', async () => {
    // An object outside the prefix that traversal would reach.
    await putObject(s3, 'redesmyn-models', 'secret/model.json', JSON.stringify({ scale: 666 }));
    loads.length = 0;
    for (const path of ['/s3/..%2F..%2Fsecret/x', '/s3/1/..', '/s3/%2e%2e/%2e%2e', '/s3/1/..%5Csecret', '/s3/1/a%00b']) {
      const res = await post(`${url}${path}`, [{ a: 1 }]);
      expect([404, 422], path).toContain(res.status);
    }
    expect(loads).toEqual([]);
  });
});
