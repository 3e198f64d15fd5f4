// Artifacts and score files in every object store redesmyn reads, each on a
// real emulator started by the project's scripts: S3 (versitygw), Google
// Cloud Storage (fake-gcs-server), Azure Blob (Azurite) and plain HTTP.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheConfig, Endpoint, ObjectStoreClient, Schema, Server, py } from '../src';
import { post } from './helpers';
import { startStore, type StoreKind, type TestStore } from './support/stores';

const root = join(__dirname, '..');
const A = new Schema({ a: Schema.f64() });
const IRIS = new Schema({ sepal_length: Schema.f64(), sepal_width: Schema.f64(), petal_length: Schema.f64(), petal_width: Schema.f64() });
const VIRGINICA = { sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 };

/** Runs `redesmyn score` (scoreCommand) in a child with `env` added; resolves with its exit code and output. */
function score(args: string[], env: Record<string, string>) {
  const code = `
const mod = await import(${JSON.stringify(join(root, 'src/cli/score.ts'))});
process.exit(await (mod.scoreCommand ?? mod.default.scoreCommand)(${JSON.stringify(args)}));`;
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: root, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const MODULE = `import { Endpoint, Schema } from ${JSON.stringify(join(root, 'src'))};
export const double = new Endpoint({ path: '/double', schema: new Schema({ x: Schema.f64() }), handler: (b) => Array.from(b.columns.x, (x) => 2 * x) });
`;

describe.each(['s3', 'gs', 'az', 'http'] as StoreKind[])('object store %s', (kind) => {
  let store: TestStore;
  let server: Server;
  let url: string;
  let dir: string;
  const loads: string[] = [];

  const client = (pathTemplate: string, extra: Partial<ConstructorParameters<typeof ObjectStoreClient>[0]> = {}) =>
    new ObjectStoreClient({ url: store.url('models'), pathTemplate, options: store.options, cacheDir: join(dir, 'cache'), ...extra });
  const jsonModel = (path: string, c: ObjectStoreClient, maxSize = 1) =>
    new Endpoint({
      path,
      schema: A,
      batch: { maxDelayMs: 2 },
      cache: new CacheConfig({
        client: c,
        loadModel: (localPath: string, params: Record<string, string>) => {
          loads.push(`${path.split('/')[1]}:${Object.values(params).join('/')}`);
          return JSON.parse(readFileSync(localPath, 'utf8')) as { scale: number };
        },
        maxSize,
        retryBackoffMs: 50,
      }),
      handler: (batch, ctx) => Array.from(batch.columns.a, (a) => a * (ctx.model as { scale: number }).scale),
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `redesmyn-store-${kind}-`));
    store = await startStore(kind);
    for (const m of ['1', '2']) await store.put(`models/m/${m}/model.json`, JSON.stringify({ scale: Number(m) }));
    await store.put('models/big/1/model.json', JSON.stringify({ scale: 1, padding: 'x'.repeat(4096) }));
    await store.put('models/iris/1/model.joblib', readFileSync(join(root, 'examples/iris/models/iris/1/2/model.joblib')));
    await store.put('secret/model.json', JSON.stringify({ scale: 666 }));
    server = new Server({ port: 0, python: { venv: join(root, '.venv'), path: [join(__dirname, 'python')] } });
    server.register(jsonModel('/m/{model}', client('m/{model}/model.json')));
    server.register(jsonModel('/limited/{model}', client('big/{model}/model.json', { maxBytes: 1024 })));
    server.register(
      new Endpoint({
        path: '/iris/{run}',
        schema: IRIS,
        cache: new CacheConfig({ client: client('iris/{run}/model.joblib'), loadModel: py.loader('joblib:load') }),
        handler: py.handler('test_handlers:predict_species'),
      }),
    );
    if (kind === 'http') {
      // Its object is declared at 5 GB (see the test); the limit is 1 GB.
      const limit = { maxBytes: 1 << 30 };
      server.register(jsonModel('/huge/{model}', client('huge/{model}/model.json', limit)));
    }
    if (store.wrongKey) server.register(jsonModel('/wrong/{model}', client('m/{model}/model.json', { options: store.wrongKey })));
    await server.serve();
    url = `http://127.0.0.1:${server.port}`;
  }, 10 * 60_000);

  afterAll(async () => {
    await server?.stop();
    await store?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads a model variant from the store, evicts it, and loads it again', async () => {
    expect((await post(`${url}/m/1`, [{ a: 3 }])).body.predictions).toEqual([3]);
    expect((await post(`${url}/m/2`, [{ a: 3 }])).body.predictions).toEqual([6]); // maxSize 1: evicts m/1
    expect((await post(`${url}/m/1`, [{ a: 5 }])).body.predictions).toEqual([5]);
    expect(loads.filter((l) => l.startsWith('m:'))).toEqual(['m:1', 'm:2', 'm:1']);
    const files = readdirSync(join(dir, 'cache'), { recursive: true }).map(String);
    expect(files.filter((f) => f.includes('.download-'))).toEqual([]);
    expect(files.filter((f) => f.endsWith(join('m', '1', 'model.json')))).toHaveLength(1); // one version, kept once
  });

  it('serves a scikit-learn model through py.loader', async () => {
    const res = await post(`${url}/iris/1`, [VIRGINICA]);
    expect(res.status).toBe(200);
    expect(res.body.predictions).toEqual(['virginica']);
  });

  it('answers a missing object with 404 and keeps parameters inside the prefix', async () => {
    expect((await post(`${url}/m/9`, [{ a: 1 }])).status).toBe(404);
    const before = loads.length;
    for (const path of ['/m/..', '/m/..%2F..%2Fsecret', '/m/%2e%2e', '/m/a%3Fb', '/m/a%23b', '/m/a%5Cb', '/m/a%00b', '/m/%2F%2Fother-bucket']) {
      const res = await post(`${url}${path}`, [{ a: 1 }]);
      expect([404, 422], path).toContain(res.status);
    }
    expect(loads.length).toBe(before);
  });

  it('refuses an object larger than maxBytes before downloading it', async () => {
    const res = await post(`${url}/limited/1`, [{ a: 1 }]);
    expect(res.status).toBe(503);
    expect(res.body.error).toMatch(/big\/1\/model\.json is \d+ bytes, more than the limit of 1024 bytes; not downloaded/);
    expect(readdirSync(join(dir, 'cache'), { recursive: true }).map(String).some((f) => f.includes('big'))).toBe(false);
  });

  it.runIf(kind === 'http')('refuses an object declared at 5 GB before asking for its bytes', async () => {
    const web = store.web!;
    web.intercept = (req, res) => {
      if (!req.url?.includes('/huge/1/')) return false;
      // The headers of a 5 GB object; its bytes are never sent.
      res.writeHead(200, { 'Content-Length': String(5 * 1024 ** 3), ETag: '"huge"', 'Last-Modified': new Date().toUTCString() });
      res.end();
      return true;
    };
    try {
      const res = await post(`${url}/huge/1`, [{ a: 1 }]);
      expect(res.status).toBe(503);
      expect(res.body.error).toContain('huge/1/model.json is 5368709120 bytes, more than the limit of 1073741824 bytes; not downloaded');
      expect(web.requests.filter((r) => r.includes('/huge/1/'))).toEqual([`HEAD /${store.bucket}/models/huge/1/model.json`]);
    } finally {
      web.intercept = undefined;
    }
  });

  it.runIf(kind === 'http')('downloads again when the object changes between its HEAD and its GET (ETag, If-Match)', async () => {
    await store.put('models/m/5/model.json', JSON.stringify({ scale: 5 }));
    const web = store.web!;
    let swapped = false;
    web.intercept = (req) => {
      if (req.method === 'GET' && req.url?.endsWith('/m/5/model.json') && !swapped) {
        swapped = true;
        void store.put('models/m/5/model.json', JSON.stringify({ scale: 50 })); // written before the file is read below
      }
      return false;
    };
    try {
      const res = await post(`${url}/m/5`, [{ a: 1 }]);
      expect(res.status).toBe(200);
      expect(res.body.predictions).toEqual([50]);
      // HEAD, a GET refused with 412 (If-Match the old ETag), then HEAD and GET of the new content.
      expect(web.requests.filter((r) => r.endsWith('/m/5/model.json')).map((r) => r.split(' ')[0])).toEqual(['HEAD', 'GET', 'HEAD', 'GET', 'HEAD']);
    } finally {
      web.intercept = undefined;
    }
  });

  it.runIf(kind !== 'http')('fails a model whose key the store refuses (or has none), saying where credentials were looked for', async () => {
    const res = await post(`${url}/wrong/1`, [{ a: 1 }]);
    expect(res.status).toBe(503);
    expect(res.body.error).toContain('has no usable credentials');
    expect(res.body.error).toContain({ s3: 'AWS_ACCESS_KEY_ID', gs: 'GOOGLE_APPLICATION_CREDENTIALS', az: 'AZURE_STORAGE_ACCOUNT_KEY', http: '' }[kind]);
  });

  it('redesmyn score reads its input from the store and writes its output to it', async () => {
    writeFileSync(join(dir, 'double.ts'), MODULE);
    await store.put('data/in.csv', 'x\n1\n2.5\nnot-a-number\n4\n');
    // Credentials the cloud's standard way: its environment variables.
    const output = kind === 'http' ? join(dir, 'out.csv') : store.url('results/out.csv');
    const r = await score(['--endpoint', `${join(dir, 'double.ts')}#double`, '--input', store.url('data/in.csv'), '--output', output], store.env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`scored 3 of 4 rows (1 rejected, see ${kind === 'http' ? `${output}.rejects.csv` : store.url('results/out.csv.rejects.csv')})`);
    expect(r.stdout).toContain(`-> ${output}`);
    const written = kind === 'http' ? readFileSync(output) : await store.get('results/out.csv');
    expect(written.toString()).toBe('x,prediction\n1.0,2\n2.5,5\n4.0,8\n');
    if (kind !== 'http') expect((await store.get('results/out.csv.rejects.csv')).toString()).toContain('not-a-number');
  }, 60_000);

  it('redesmyn score names the URL of a missing input, and refuses to write where it cannot', async () => {
    const missing = await score(['--endpoint', `${join(dir, 'double.ts')}#double`, '--input', store.url('data/nope.csv'), '--output', join(dir, 'x.csv')], store.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(store.url('data/nope.csv'));
    if (kind === 'http') {
      const r = await score(['--endpoint', `${join(dir, 'double.ts')}#double`, '--input', store.url('data/in.csv'), '--output', store.url('out.csv')], {});
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('HTTP locations are read-only');
    } else {
      const other = store.url('data/in.csv').replace(`://${store.bucket}/`, '://no-such-bucket/').replace(`/${store.bucket}/`, '/no-such-bucket/');
      const r = await score(['--endpoint', `${join(dir, 'double.ts')}#double`, '--input', other, '--output', join(dir, 'y.csv')], store.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('no-such-bucket');
    }
  }, 60_000);
});
