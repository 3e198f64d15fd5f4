// `redesmyn serve <store URL>`: a whole model repository in S3, GCS or Azure
// Blob (real emulators from the project's scripts), copied into a local
// cache, with credentials from the cloud's standard variables; --watch
// brings in a new version uploaded while serving, with no failed request;
// a restart reuses the cached files; a stopped store or a refused key
// leaves what serves serving.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, until } from './helpers';
import { serveCli, type ServedCli } from './support/cli';
import { createBucket, putObject, startS3 } from './support/s3';
import { startStore, type StoreKind, type TestStore } from './support/stores';

const root = join(__dirname, '..');
const venv = join(root, '.venv');
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
const ROW = { sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 };
const SETTINGS = { runtime: 'sklearn', parameters: { uri: 'model.joblib' }, inputs: [{ name: 'input-0', datatype: 'FP64', shape: [-1, 4] }], columns: COLUMNS };

type Served = ServedCli;

/** `redesmyn serve URL ...` with `env` added. */
function serve(url: string, extra: string[], env: Record<string, string>): Promise<Served> {
  return serveCli(['serve', url, '--port', '0', '--venv', venv, ...extra], { ...process.env, ...env });
}

async function stop(s: Served) {
  if (s.child.exitCode === null) s.child.kill('SIGTERM');
  return s.exit;
}

const current = async (s: Served) => (await post(`${s.url}/predictions/hot`, [ROW])).body.predictions?.[0];

const BIG = 192 * 1024 * 1024;

/**
 * A scikit-learn classifier that answers `k` for every row, as joblib bytes
 * (made in the project's venv), carrying `padding` random bytes to make it large.
 */
function constantModel(dir: string, k: number, padding = 0): Buffer {
  const file = join(dir, `constant-${k}-${padding}.joblib`);
  if (!existsSync(file)) {
    execFileSync(join(venv, 'bin', 'python'), ['-c', `
import os, joblib, numpy as np
from sklearn.dummy import DummyClassifier
m = DummyClassifier(strategy="constant", constant=${k}).fit(np.zeros((2, 4)), [${k}, ${k === 0 ? 1 : 0}])
m.padding_ = np.frombuffer(os.urandom(${padding}), dtype=np.uint8)
joblib.dump(m, ${JSON.stringify(file)})`]);
  }
  return readFileSync(file);
}

describe.each(['s3', 'gs', 'az'] as StoreKind[])('redesmyn serve %s://bucket/repository', (kind) => {
  let store: TestStore;
  let dir: string;
  let cache: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `redesmyn-store-repo-${kind}-`));
    cache = join(dir, 'cache');
    store = await startStore(kind);
    await store.put('repo/hot/model-settings.json', JSON.stringify(SETTINGS));
    await store.put('repo/hot/1/model.joblib', constantModel(dir, 1));
  }, 10 * 60_000);

  afterAll(async () => {
    await store?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });


  it('serves the repository, takes a new version uploaded while serving with no failed request, and reuses the copy on restart', async () => {
    const s = await serve(store.url('repo'), ['--watch', '--watch-interval', '200', '--store-cache', cache], store.env);
    let running = true;
    const seen: { status: number; value: unknown }[] = [];
    try {
      expect(s.log()).toMatch(/"message":"repository copied".*"downloaded":2,"reused":0/);
      expect(await current(s)).toBe(1);
      const clients = [0, 1, 2].map(async () => {
        while (running) {
          const r = await post(`${s.url}/predictions/hot`, [ROW]);
          seen.push({ status: r.status, value: r.body?.predictions?.[0] });
        }
      });
      await store.put('repo/hot/2/model.joblib', constantModel(dir, 2));
      await until(async () => (await current(s)) === 2, 30_000, 100);
      expect(s.log()).toMatch(/"message":"repository synced".*"downloaded":1/);
      expect(s.log()).toMatch(/"message":"default version moved","model":"hot","from":"1","version":"2"/);
      await new Promise((r) => setTimeout(r, 300));
      running = false;
      await Promise.all(clients);
    } finally {
      running = false;
      expect(await stop(s)).toBe(0);
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((r) => r.status !== 200)).toEqual([]);
    const first2 = seen.findIndex((r) => r.value === 2);
    expect(first2).toBeGreaterThan(-1);
    // No leftovers of a download in the copy.
    expect(readdirSync(cache, { recursive: true }).map(String).filter((f) => f.includes('.download-') || f.includes('staging'))).toEqual([]);

    // A restart finds every file unchanged in the cache.
    const again = await serve(store.url('repo'), ['--store-cache', cache], store.env);
    try {
      expect(again.log()).toMatch(/"message":"repository copied".*"downloaded":0,"reused":3/);
      expect(await current(again)).toBe(2);
    } finally {
      expect(await stop(again)).toBe(0);
    }
  }, 120_000);

  it('serves a local repository whose parameters.uri is a URL in the store, and fails a model whose object is missing with its URL', async () => {
    await store.put('artifacts/iris/model.joblib', constantModel(dir, 3));
    const local = join(dir, 'local');
    mkdirSync(join(local, 'by-url'), { recursive: true });
    writeFileSync(join(local, 'by-url', 'model-settings.json'), JSON.stringify({ ...SETTINGS, parameters: { uri: store.url('artifacts/iris/model.joblib') } }));
    mkdirSync(join(local, 'missing'), { recursive: true });
    writeFileSync(join(local, 'missing', 'model-settings.json'), JSON.stringify({ ...SETTINGS, parameters: { uri: store.url('artifacts/nope/model.joblib') } }));
    const s = await serve(local, [], { ...store.env, REDESMYN_STORE_CACHE: cache });
    try {
      expect((await post(`${s.url}/predictions/by-url`, [ROW])).body.predictions).toEqual([3]);
      const failed = JSON.parse(s.log().split('\n').find((l) => l.includes('"model failed"')) ?? '{}');
      expect(failed).toMatchObject({ model: 'missing', reason: expect.stringContaining(store.url('artifacts/nope/model.joblib')) });
    } finally {
      expect(await stop(s)).toBe(0);
    }
  }, 60_000);

  it('refuses an object larger than --store-max-bytes before downloading anything', async () => {
    const limited = join(dir, 'limited-cache');
    const failed = await serve(store.url('repo'), ['--store-cache', limited, '--store-max-bytes', '100'], store.env).catch((e) => e as { code: number; out: string });
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { out: string }).out).toMatch(/repo\/hot\/1\/model\.joblib is \d+ bytes, more than the limit of 100 bytes; not downloaded/);
    expect(readdirSync(limited, { recursive: true }).map(String).filter((f) => f.endsWith('model.joblib') || f.includes('.download-'))).toEqual([]);
  }, 60_000);

  it('fails with the URL when the bucket does not exist', async () => {
    const url = store.url('repo').replace(`/${store.bucket}`, '/no-such-bucket').replace(`//${store.bucket}`, '//no-such-bucket');
    const failed = await serve(url, ['--store-cache', cache], store.env).catch((e) => e as { code: number; out: string });
    expect('code' in failed && failed.code).toBe(1);
    expect((failed as { out: string }).out).toContain('no-such-bucket');
  }, 60_000);

  it.runIf(kind !== 'gs')('fails naming the credential problem when the key is wrong', async () => {
    const wrong: Record<string, string> = kind === 's3' ? { AWS_SECRET_ACCESS_KEY: 'not-the-secret' } : { AZURE_STORAGE_ACCOUNT_KEY: Buffer.from('not the key').toString('base64') };
    const failed = await serve(store.url('repo'), ['--store-cache', join(dir, 'other-cache')], { ...store.env, ...wrong }).catch((e) => e as { code: number; out: string });
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { out: string }).out).toMatch(/has no usable credentials [\s\S]*looked for the option/);
  }, 60_000);
});

describe('redesmyn serve --watch when the store stops in the middle of a download', () => {
  it('keeps the old version serving, never serves the partial download, and loads the new version at a poll after the store is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redesmyn-store-stop-'));
    const dataDir = join(dir, 's3-data');
    let s3 = await startS3({ dataDir });
    const port = Number(new URL(s3.endpoint).port);
    const keys = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    let s: Served | undefined;
    let running = true;
    const seen: { status: number; value: unknown }[] = [];
    try {
      await createBucket(s3, 'models');
      await putObject(s3, 'models', 'repo/hot/model-settings.json', JSON.stringify(SETTINGS));
      await putObject(s3, 'models', 'repo/hot/1/model.joblib', constantModel(dir, 1));
      const cache = join(dir, 'cache');
      s = await serve('s3://models/repo', ['--watch', '--watch-interval', '100', '--store-cache', cache], s3.env);
      const served = s;
      expect(await current(served)).toBe(1);
      const clients = [0, 1].map(async () => {
        while (running) {
          const r = await post(`${served.url}/predictions/hot`, [ROW]);
          seen.push({ status: r.status, value: r.body?.predictions?.[0] });
        }
      });
      // Version 2: one large model file (one object, so no poll sees half a version); the store stops while it downloads.
      const big = constantModel(dir, 2, BIG);
      await putObject(s3, 'models', 'repo/hot/2/model.joblib', big);
      const staging = () => readdirSync(cache, { recursive: true }).map(String).filter((f) => f.includes('staging') && f.includes('.download-'));
      await until(() => staging().some((f) => statSync(join(cache, f)).size > 0), 60_000, 2);
      await s3.stop();
      await until(() => served.log().includes('repository sync failed'), 30_000, 50);
      const tree = readdirSync(cache).find((f) => f.startsWith('repository-')) as string;
      expect(existsSync(join(cache, tree, 'tree', 'hot', '2'))).toBe(false);
      expect(await current(served)).toBe(1);
      // Back on the same port with the same data: the next poll downloads version 2 whole.
      s3 = await startS3({ dataDir, port, ...keys });
      await until(async () => (await current(served)) === 2, 60_000, 100);
      expect(statSync(join(cache, tree, 'tree', 'hot', '2', 'model.joblib')).size).toBe(big.length);
      running = false;
      await Promise.all(clients);
    } finally {
      running = false;
      if (s) expect(await stop(s)).toBe(0);
      await s3.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(seen.filter((r) => r.status !== 200)).toEqual([]);
    const first2 = seen.findIndex((r) => r.value === 2);
    expect(first2).toBeGreaterThan(-1);
    expect(seen.slice(0, first2).every((r) => r.value === 1)).toBe(true);
  }, 180_000);
});
